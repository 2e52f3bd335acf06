//! What every [`SshStore`] backend must do, written once (like [`crate::conformance`]):
//! issuances round-trip, a token burns once, a revocation happens once and only to a stored
//! certificate, and the KRL and host lists see exactly what they should.

use mayfly_authority::audit::{AuditAction, AuditQuery};
use mayfly_authority::ssh::store::{IssuedSshCertificate, RevokedSsh, SshStore};
use mayfly_authority::store::AdminStore;
use mayfly_authority::store::{CertificateStatus, Revocation, StoreError};
use mayfly_pki::ssh::CertType;
use time::OffsetDateTime;

use crate::conformance::{SSH_ISSUED_AUDIT, SSH_REVOKED_AUDIT, fresh_token};

/// Runs every case on `store`.
pub async fn run_all<S: SshStore + AdminStore>(store: &S) {
    round_trip_and_single_use(store).await;
    revocation_and_lists(store).await;
    audit_log(store).await;
}

/// An SSH issuance and its revocation each have their audit entry, with the key id and
/// principals standing for subject and SANs; a refused issuance has none.
pub async fn audit_log<S: SshStore + AdminStore>(store: &S) {
    let certificate = sample(
        CertType::Host,
        &["audit.internal"],
        time::Duration::hours(1),
    );
    let serial = certificate.serial.to_string();
    let token = fresh_token("admin");
    store
        .record_ssh_issuance(&certificate, Some(&token), &SSH_ISSUED_AUDIT)
        .await
        .expect("record");
    let mut replay = sample(
        CertType::Host,
        &["audit.internal"],
        time::Duration::hours(1),
    );
    replay.serial = replay.serial.wrapping_add(3).max(1);
    assert!(
        store
            .record_ssh_issuance(&replay, Some(&token), &SSH_ISSUED_AUDIT)
            .await
            .is_err()
    );
    let revocation = Revocation {
        serial: serial.clone(),
        reason_code: 4,
        reason: String::new(),
        revoked_at: OffsetDateTime::now_utc(),
        revoked_by: "sshpop:1".into(),
    };
    store
        .revoke_ssh(&revocation, None, &SSH_REVOKED_AUDIT)
        .await
        .expect("revoke");
    let of = |serial: String| {
        let query = AuditQuery {
            after: None,
            serial: Some(serial),
            since: None,
            limit: 10,
        };
        async move {
            store
                .audit_entries(&query)
                .await
                .expect("reading the audit log")
        }
    };
    assert!(
        of(replay.serial.to_string()).await.is_empty(),
        "a refused issuance was audited"
    );
    let found = of(serial).await;
    let actions: Vec<AuditAction> = found.iter().map(|e| e.action).collect();
    assert_eq!(actions, [AuditAction::SshIssued, AuditAction::SshRevoked]);
    for entry in &found {
        assert_eq!(entry.subject, "key id");
        assert_eq!(entry.sans, ["audit.internal"]);
        assert_eq!(entry.provisioner, "admin");
    }
    assert_eq!(found[1].credential, SSH_REVOKED_AUDIT.credential);
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
        .record_ssh_issuance(&certificate, Some(&token), &SSH_ISSUED_AUDIT)
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
    let replay = store
        .record_ssh_issuance(&second, Some(&token), &SSH_ISSUED_AUDIT)
        .await;
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

    let duplicate = store
        .record_ssh_issuance(&certificate, None, &SSH_ISSUED_AUDIT)
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::SerialTaken { .. })),
        "{duplicate:?}"
    );
    // u64 serials above i64::MAX are kept exactly.
    let mut big = sample(CertType::Host, &["big"], time::Duration::hours(1));
    big.serial = u64::MAX - 7;
    store
        .record_ssh_issuance(&big, None, &SSH_ISSUED_AUDIT)
        .await
        .expect("record");
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
        store
            .record_ssh_issuance(c, None, &SSH_ISSUED_AUDIT)
            .await
            .expect("record");
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
        .revoke_ssh(&revocation(user.serial), Some(&token), &SSH_REVOKED_AUDIT)
        .await
        .expect("revoke");
    let again = store
        .revoke_ssh(&revocation(user.serial), None, &SSH_REVOKED_AUDIT)
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyRevoked { .. })),
        "{again:?}"
    );
    let unknown = store
        .revoke_ssh(&revocation(1), None, &SSH_REVOKED_AUDIT)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::CertificateNotFound { .. })),
        "{unknown:?}"
    );
    // A burnt token cannot revoke another certificate.
    let replay = store
        .revoke_ssh(&revocation(host.serial), Some(&token), &SSH_REVOKED_AUDIT)
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
        .revoke_ssh(&revocation(expired_host.serial), None, &SSH_REVOKED_AUDIT)
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
        .revoke_ssh(&revocation(host.serial), None, &SSH_REVOKED_AUDIT)
        .await
        .expect("revoke");
    let hosts = store.ssh_hosts(now).await.expect("hosts");
    assert!(
        !hosts.iter().any(|h| h.serial == host.serial),
        "revoked hosts are not listed"
    );
}
