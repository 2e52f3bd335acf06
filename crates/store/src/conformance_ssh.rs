//! What every [`SshStore`] backend must do, written once (like [`crate::conformance`]):
//! issuances round-trip, a token burns once, a revocation happens once and only to a stored
//! certificate, and the KRL and host lists see exactly what they should.

use mayfly_authority::ssh::store::{IssuedSshCertificate, RevokedSsh, SshStore};
use mayfly_authority::store::{CertificateStatus, Revocation, StoreError};
use mayfly_pki::ssh::CertType;
use time::OffsetDateTime;

use crate::conformance::fresh_token;

/// Runs every case on `store`.
pub async fn run_all(store: &dyn SshStore) {
    round_trip_and_single_use(store).await;
    revocation_and_lists(store).await;
}

/// A certificate as the authority would record it.
pub fn sample(
    cert_type: CertType,
    principals: &[&str],
    valid_for: time::Duration,
) -> IssuedSshCertificate {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    IssuedSshCertificate {
        serial: mayfly_pki::ssh::random_serial().unwrap_or(1),
        cert_type,
        key_id: "key id".into(),
        principals: principals.iter().map(|p| p.to_string()).collect(),
        valid_after: now - time::Duration::minutes(1),
        valid_before: now + valid_for,
        blob: vec![1, 2, 3],
        provisioner: "admin".into(),
    }
}

pub async fn round_trip_and_single_use(store: &dyn SshStore) {
    let certificate = sample(CertType::User, &["alice", "ops"], time::Duration::hours(1));
    let token = fresh_token("admin");
    store
        .record_ssh_issuance(&certificate, Some(&token))
        .await
        .expect("record");
    let stored = store
        .ssh_certificate(certificate.serial)
        .await
        .expect("look up")
        .expect("stored");
    assert_eq!(stored.certificate, certificate);
    assert_eq!(stored.status, CertificateStatus::Valid);

    let mut second = sample(CertType::User, &["alice"], time::Duration::hours(1));
    second.serial = second.serial.wrapping_add(1).max(1);
    let replay = store.record_ssh_issuance(&second, Some(&token)).await;
    assert!(
        matches!(replay, Err(StoreError::TokenAlreadyUsed { .. })),
        "{replay:?}"
    );
    assert!(
        store
            .ssh_certificate(second.serial)
            .await
            .unwrap()
            .is_none()
    );

    let duplicate = store.record_ssh_issuance(&certificate, None).await;
    assert!(
        matches!(duplicate, Err(StoreError::SerialTaken { .. })),
        "{duplicate:?}"
    );
    // u64 serials above i64::MAX are kept exactly.
    let mut big = sample(CertType::Host, &["big"], time::Duration::hours(1));
    big.serial = u64::MAX - 7;
    store.record_ssh_issuance(&big, None).await.expect("record");
    assert_eq!(
        store
            .ssh_certificate(u64::MAX - 7)
            .await
            .unwrap()
            .unwrap()
            .certificate
            .serial,
        u64::MAX - 7
    );
}

pub async fn revocation_and_lists(store: &dyn SshStore) {
    let now = OffsetDateTime::now_utc();
    let host = sample(CertType::Host, &["web1.internal"], time::Duration::days(30));
    let expired_host = {
        let mut c = sample(CertType::Host, &["old.internal"], time::Duration::hours(1));
        c.valid_before = now - time::Duration::hours(1);
        c.valid_after = now - time::Duration::hours(2);
        c
    };
    let user = sample(CertType::User, &["bob"], time::Duration::hours(1));
    for c in [&host, &expired_host, &user] {
        store.record_ssh_issuance(c, None).await.expect("record");
    }
    let hosts = store.ssh_hosts(now).await.expect("hosts");
    assert!(hosts.iter().any(|h| h.principals == ["web1.internal"]));
    assert!(
        !hosts.iter().any(|h| h.principals == ["old.internal"]),
        "expired hosts are not listed"
    );
    assert!(!hosts.iter().any(|h| h.cert_type == CertType::User));

    let revocation = |serial: u64| Revocation {
        serial: serial.to_string(),
        reason_code: 1,
        reason: "lost".into(),
        revoked_at: now.replace_nanosecond(0).unwrap_or(now),
        revoked_by: "token:admin".into(),
    };
    let token = fresh_token("admin");
    store
        .revoke_ssh(&revocation(user.serial), Some(&token))
        .await
        .expect("revoke");
    let again = store.revoke_ssh(&revocation(user.serial), None).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyRevoked { .. })),
        "{again:?}"
    );
    let unknown = store.revoke_ssh(&revocation(1), None).await;
    assert!(
        matches!(unknown, Err(StoreError::CertificateNotFound { .. })),
        "{unknown:?}"
    );
    // A burnt token cannot revoke another certificate.
    let replay = store
        .revoke_ssh(&revocation(host.serial), Some(&token))
        .await;
    assert!(
        matches!(replay, Err(StoreError::TokenAlreadyUsed { .. })),
        "{replay:?}"
    );
    assert_eq!(
        store
            .ssh_certificate(host.serial)
            .await
            .unwrap()
            .unwrap()
            .status,
        CertificateStatus::Valid,
        "a refused revocation changes nothing"
    );
    let stored = store.ssh_certificate(user.serial).await.unwrap().unwrap();
    assert_eq!(stored.status, CertificateStatus::Revoked);
    assert_eq!(stored.revocation.map(|r| r.reason), Some("lost".into()));

    store
        .revoke_ssh(&revocation(expired_host.serial), None)
        .await
        .expect("revoke");
    let revoked = store.revoked_ssh(now).await.expect("revoked");
    assert!(revoked.contains(&RevokedSsh {
        serial: user.serial,
        cert_type: CertType::User
    }));
    assert!(
        !revoked.iter().any(|r| r.serial == expired_host.serial),
        "expired certificates need no KRL entry"
    );
    store
        .revoke_ssh(&revocation(host.serial), None)
        .await
        .expect("revoke");
    let hosts = store.ssh_hosts(now).await.expect("hosts");
    assert!(
        !hosts.iter().any(|h| h.serial == host.serial),
        "revoked hosts are not listed"
    );
}
