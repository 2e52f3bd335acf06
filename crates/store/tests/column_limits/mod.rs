//! What the authority and the ACME server let through at their longest reaches its column whole,
//! on every engine: the checks upstream and the schema agree. (SQLite keeps any length; these
//! matter on PostgreSQL and MariaDB, whose `VARCHAR(n)` refuses a longer value, a 500 for a
//! request the checks had accepted.) Shared by the SQLite and the networked tests.

use mayfly_acme::model::{Authorization, AuthorizationStatus, RequestedIdentifier};
use mayfly_acme::store::{AcmeStore, AuthorizationRow, OrderRow};
use mayfly_authority::provisioner::MAX_NAME_LEN;
use mayfly_authority::revocation::{MAX_REVOKED_BY_LEN, revoked_by_column};
use mayfly_authority::ssh::store::SshStore;
use mayfly_authority::store::{CertStore, Revocation};
use mayfly_authority::token::MAX_TOKEN_ID_LEN;
use mayfly_pki::ssh::CertType;
use mayfly_store::{conformance, conformance_ssh};
use time::OffsetDateTime;

/// The names a revocation is recorded by at their longest: a token or an ID token of a
/// provisioner with the longest name allowed (in characters, so two-byte ones), and a
/// certificate presented over mutual TLS, whose common name nothing bounds.
fn longest_revokers() -> Vec<String> {
    let name = "é".repeat(MAX_NAME_LEN);
    vec![
        format!("token:{name}"),
        format!("oidc:{name}"),
        format!("mtls:{}", "c".repeat(1024)),
    ]
}

fn revocation(serial: String, credential: &str) -> Revocation {
    Revocation {
        serial,
        reason_code: 1,
        reason: "key compromised".into(),
        revoked_at: OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid time"),
        revoked_by: revoked_by_column(credential),
    }
}

/// A certificate of the provisioner with the longest name, bought with a token of the longest
/// `jti`, and its revocation by that name (or an unbounded common name), recorded as the
/// authority records it, are stored and read back whole: X.509 and SSH.
pub async fn revoked_by_at_the_longest_provisioner_name<S: CertStore + SshStore>(store: &S) {
    let provisioner = "é".repeat(MAX_NAME_LEN);
    for credential in longest_revokers() {
        let certificate = conformance::sample_certificate(&provisioner);
        // Bought with a token of the longest provisioner name and `jti`: the used-token key.
        let mut token = conformance::fresh_token(&provisioner);
        let padding = MAX_TOKEN_ID_LEN - token.jti.len();
        token.jti.push_str(&"j".repeat(padding));
        store
            .record_issuance(&certificate, Some(&token), &conformance::ISSUED_AUDIT)
            .await
            .expect("a certificate of the longest provisioner name");
        let revocation = revocation(certificate.serial.clone(), &credential);
        assert_eq!(
            revocation.revoked_by.chars().count(),
            MAX_REVOKED_BY_LEN,
            "{credential}"
        );
        store
            .revoke(&revocation, None, &conformance::REVOKED_AUDIT)
            .await
            .unwrap_or_else(|e| panic!("revoked by {credential:?}: {e:?}"));
        let stored = store
            .certificate(&certificate.serial)
            .await
            .expect("lookup")
            .expect("stored");
        assert_eq!(
            stored.revocation.as_ref(),
            Some(&revocation),
            "{credential}"
        );

        let mut ssh = conformance_ssh::sample(CertType::User, &["alice"], time::Duration::hours(1));
        ssh.provisioner = provisioner.clone();
        store
            .record_ssh_issuance(&ssh, None, &conformance::SSH_ISSUED_AUDIT)
            .await
            .expect("an SSH certificate of the longest provisioner name");
        let revocation = self::revocation(ssh.serial.to_string(), &credential);
        store
            .revoke_ssh(&revocation, None, &conformance::SSH_REVOKED_AUDIT)
            .await
            .unwrap_or_else(|e| panic!("SSH revoked by {credential:?}: {e:?}"));
        let stored = store
            .ssh_certificate(ssh.serial)
            .await
            .expect("lookup")
            .expect("stored");
        assert_eq!(
            stored.revocation.as_ref(),
            Some(&revocation),
            "{credential}"
        );
    }
}

/// The longest DNS name ACME accepts (253 characters, here under a wildcard, the longest key
/// an order and an authorization are indexed by) is stored whole and found again by it; one
/// character more is refused before anything is stored.
pub async fn acme_identifier_at_its_longest(store: &dyn AcmeStore) {
    const NOW: i64 = 1_800_000_000;
    // Labels of at most 63 characters, so that only the name's length is at stake.
    let name = |last: usize| {
        ["a", "b", "c"]
            .iter()
            .map(|c| c.repeat(63))
            .chain(["d".repeat(last)])
            .collect::<Vec<_>>()
            .join(".")
    };
    let base = name(61);
    assert_eq!(base.len(), 253);
    let requested = |value: String| RequestedIdentifier {
        kind: "dns".into(),
        value,
    };
    assert!(
        requested(format!("*.{}", name(62))).validate().is_err(),
        "a name of 254 characters was accepted"
    );
    let identifier = requested(format!("*.{base}"))
        .validate()
        .expect("a name of 253 characters");
    let order_key = identifier.key();
    let unique = format!("{:x}", OffsetDateTime::now_utc().unix_timestamp_nanos());
    let authorization = Authorization {
        id: format!("authz-longest-{unique}"),
        account: format!("acct-longest-{unique}"),
        identifier: identifier.authorization_identifier(),
        status: AuthorizationStatus::Valid,
        expires: NOW + 3600,
        wildcard: identifier.is_wildcard(),
        challenges: Vec::new(),
    };
    let authorization_key = authorization.index_key();
    assert_eq!(
        (order_key.len(), authorization_key.len()),
        (259, 259),
        "dns:*. and the name"
    );
    let order_id = format!("order-longest-{unique}");
    let identifiers = vec![order_key.clone()];
    store
        .insert_order(
            &OrderRow {
                id: &order_id,
                account: &authorization.account,
                identifiers: &identifiers,
                body: "{}",
                created_at: NOW,
            },
            &[AuthorizationRow {
                id: &authorization.id,
                account: &authorization.account,
                identifier: &authorization_key,
                status: authorization.status,
                expires_at: authorization.expires,
                body: "{}",
            }],
        )
        .await
        .expect("an order for the longest name");
    let found = store
        .valid_authorizations(&authorization.account, &authorization_key, NOW)
        .await
        .expect("authorizations by the longest key");
    assert_eq!(found.len(), 1, "the authorization under its whole key");
    let counted = store
        .count_orders_by_identifier(&order_key, NOW)
        .await
        .expect("orders by the longest key");
    assert_eq!(counted, 1, "the order under its whole key");
}
