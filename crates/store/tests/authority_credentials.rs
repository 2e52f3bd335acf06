//! The pipeline's stages that need a store, on SQLite at a fixed, moved clock: a certificate
//! presented for its own renewal (credential/presented.rs), an SSH-POP token
//! (credential/sshpop.rs), and signing with recording (issue.rs). They live here, not in the
//! authority's unit tests, because the store depends on the authority.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use mayfly_authority::clock::FixedClock;
use mayfly_authority::credential::{Audiences, Endpoint};
use mayfly_authority::policy::ssh::SshSignOptions;
use mayfly_authority::policy::{NamePolicies, ValidityRequest};
use mayfly_authority::provisioner::{JwkProvisioner, Provisioner, SshPopProvisioner};
use mayfly_authority::revocation::{ReasonCode, RevokeRequest};
use mayfly_authority::ssh::claims::SshClaims;
use mayfly_authority::ssh::store::SshStore;
use mayfly_authority::ssh::{SshCa, SshKeys};
use mayfly_authority::store::{AdminStore, CertStore, CertificateStatus};
use mayfly_authority::{Authority, AuthorityParts, Error, Issued};
use mayfly_config::claims::Claims;
use mayfly_pki::cert::CertificateInfo;
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::jose::jws;
use mayfly_pki::ssh::{CertType, SshCertificate, SshPublicKey};
use mayfly_pki::{KeyAlgorithm, LeafSigner, LeafTemplate, PrivateKey, San, SerialNumber};
use mayfly_store::SqliteStore;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

/// When the tests start.
const T: i64 = 1_750_000_000;

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap()
}

/// A CA at ca.test with JWK provisioners sharing one key, told apart by `iss`: `ops` (step's
/// claims, SSH enabled), `late` (renewal after expiry allowed), `frozen` (renewal disabled); an
/// SSHPOP provisioner; an SSH CA; a SQLite store; a clock at T.
struct Ca {
    dir: std::path::PathBuf,
    authority: Authority,
    store: Arc<SqliteStore>,
    clock: Arc<FixedClock>,
    provisioner_key: PrivateKey,
    kid: String,
    intermediate_der: Vec<u8>,
    intermediate_key: Arc<PrivateKey>,
    audiences: Audiences,
}

impl Ca {
    async fn new(test: &str) -> Ca {
        let dir = std::env::temp_dir().join(format!("mayfly-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let later = at(T) + Duration::days(3650);
        let root_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let root = mayfly_pki::cert::create_root("Test Root", &root_key, later).unwrap();
        let intermediate_key = Arc::new(PrivateKey::generate(KeyAlgorithm::EcP256).unwrap());
        let intermediate_der = mayfly_pki::cert::create_intermediate(
            "Test Intermediate",
            &intermediate_key,
            &root,
            &root_key,
            later,
            None,
        )
        .unwrap();
        let provisioner_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let public = Jwk::public_from_key(&provisioner_key).unwrap();
        let kid = public.kid.clone().unwrap();
        let jwk = |name: &str, claims: Claims| {
            Provisioner::Jwk(Box::new(JwkProvisioner {
                name: name.into(),
                key: public.clone(),
                kid: kid.clone(),
                encrypted_key: None,
                claims,
                admin: false,
            }))
        };
        let provisioners = vec![
            jwk("ops", Claims::DEFAULT),
            jwk(
                "late",
                Claims {
                    allow_renewal_after_expiry: true,
                    ..Claims::DEFAULT
                },
            ),
            jwk(
                "frozen",
                Claims {
                    disable_renewal: true,
                    ..Claims::DEFAULT
                },
            ),
            Provisioner::SshPop(Box::new(SshPopProvisioner {
                name: "sshpop".into(),
                claims: Claims::DEFAULT,
            })),
        ];
        let store = Arc::new(SqliteStore::open(&dir.join("mayfly.db")).await.unwrap());
        let ssh_key = || -> Arc<dyn mayfly_pki::Signer> {
            Arc::new(PrivateKey::generate(KeyAlgorithm::EcP256).unwrap())
        };
        let ssh = SshCa::new(
            SshKeys {
                user_key: ssh_key(),
                host_key: ssh_key(),
                claims: HashMap::from([(
                    "ops".to_string(),
                    SshClaims {
                        enabled: true,
                        ..SshClaims::DEFAULT
                    },
                )]),
            },
            store.clone(),
        )
        .unwrap();
        let clock = Arc::new(FixedClock::new(at(T)));
        let authority = Authority::new(AuthorityParts {
            roots: vec![root],
            federated_roots: Vec::new(),
            intermediate: mayfly_authority::authority::IntermediateCa {
                certificate_der: intermediate_der.clone(),
                key: intermediate_key.clone(),
            },
            provisioners,
            name_policies: NamePolicies::default(),
            backdate: Duration::minutes(1),
            dns_names: vec!["ca.test".into()],
            store: store.clone(),
            clock: clock.clone(),
            ssh: Some(ssh),
            publication: mayfly_authority::publication::Publication::default(),
        })
        .unwrap();
        Ca {
            dir,
            authority,
            store,
            clock,
            provisioner_key,
            kid,
            intermediate_der,
            intermediate_key,
            audiences: Audiences::new(&["ca.test".into()]),
        }
    }

    fn now(&self) -> i64 {
        use mayfly_authority::clock::Clock as _;
        self.clock.now().unix_timestamp()
    }

    /// A JWK token of `provisioner` for `endpoint`, valid from now for five minutes.
    fn token(&self, provisioner: &str, endpoint: Endpoint, sub: &str, extra: Value) -> String {
        let now = self.now();
        let mut claims = json!({
            "aud": self.audiences.of(endpoint)[0], "iss": provisioner, "sub": sub,
            "nbf": now, "iat": now, "exp": now + 300,
            "jti": mayfly_pki::random::random_hex(16).unwrap(),
        });
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        jws::sign_compact(
            &self.provisioner_key,
            &self.kid,
            claims.to_string().as_bytes(),
        )
        .unwrap()
    }

    /// A certificate for app.test issued through `provisioner`, with its key.
    async fn issue(&self, provisioner: &str) -> (Issued, PrivateKey) {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let csr = mayfly_pki::csr::create_pem(&key, "app.test", &[San::parse("app.test").unwrap()])
            .unwrap();
        let ott = self.token(provisioner, Endpoint::Sign, "app.test", json!({}));
        let issued = self
            .authority
            .sign(&csr, &ott, ValidityRequest::default())
            .await
            .unwrap();
        (issued, key)
    }

    /// step's renewal token for `leaf`, signed by `key`, with `iss`.
    fn renewal_token(&self, leaf: &[u8], key: &PrivateKey, iss: &str) -> String {
        let now = self.now();
        let claims = json!({
            "aud": self.audiences.of(Endpoint::Renew)[0], "iss": iss, "sub": "app.test",
            "nbf": now, "iat": now, "exp": now + 300,
        });
        jws::sign_compact_chain(
            key,
            "x5cInsecure",
            &[leaf.to_vec()],
            claims.to_string().as_bytes(),
        )
        .unwrap()
    }

    /// An SSH certificate issued through `ops` for a new key, with that key.
    async fn ssh_certificate(
        &self,
        cert_type: &str,
        principal: &str,
    ) -> (SshCertificate, PrivateKey) {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let public = SshPublicKey::from_private_key(&key).unwrap();
        let ssh = json!({"certType": cert_type, "keyID": principal, "principals": [principal]});
        let ott = self.token(
            "ops",
            Endpoint::SshSign,
            principal,
            json!({"step": {"ssh": ssh}}),
        );
        let issued = self
            .authority
            .ssh_sign(
                &base64::engine::general_purpose::STANDARD.encode(public.blob()),
                &ott,
                &SshSignOptions::default(),
            )
            .await
            .unwrap();
        (issued.certificate, key)
    }

    /// An SSH-POP token for `endpoint` carrying `certificate`, signed by `key`, valid from
    /// `nbf` for five minutes.
    fn sshpop(
        &self,
        certificate: &SshCertificate,
        key: &PrivateKey,
        endpoint: Endpoint,
        nbf: i64,
    ) -> String {
        let claims = json!({
            "aud": format!("{}#sshpop/sshpop", self.audiences.of(endpoint)[0]),
            "iss": "sshpop", "sub": certificate.template.serial.to_string(),
            "nbf": nbf, "iat": nbf, "exp": nbf + 300,
            "jti": mayfly_pki::random::random_hex(16).unwrap(),
        });
        jws::sign_compact_sshpop(key, &certificate.to_base64(), claims.to_string().as_bytes())
            .unwrap()
    }

    async fn certificates(&self) -> u64 {
        self.store.counts().await.unwrap().certificates
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// issue.rs

#[tokio::test]
async fn an_issued_certificate_is_returned_only_as_recorded_and_a_replayed_token_buys_nothing() {
    let ca = Ca::new("issue-recorded").await;
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let csr =
        mayfly_pki::csr::create_pem(&key, "app.test", &[San::parse("app.test").unwrap()]).unwrap();
    let ott = ca.token("ops", Endpoint::Sign, "app.test", json!({}));
    let issued = ca
        .authority
        .sign(&csr, &ott, ValidityRequest::default())
        .await
        .unwrap();
    assert_eq!(issued.issuer_der, ca.intermediate_der);
    let stored = ca.store.certificate(&issued.serial).await.unwrap().unwrap();
    assert_eq!(stored.certificate.der, issued.certificate_der);
    assert_eq!(stored.certificate.provisioner, "ops");
    assert_eq!(stored.certificate.subject, "app.test");
    assert_eq!(stored.certificate.sans, vec!["app.test".to_string()]);
    // Backdated by the authority's backdate; step's default lifetime from now.
    assert_eq!(stored.certificate.not_before, at(T) - Duration::minutes(1));
    assert_eq!(stored.certificate.not_after, at(T) + Duration::hours(24));

    // The same token again: refused, and nothing more is recorded.
    assert!(matches!(
        ca.authority
            .sign(&csr, &ott, ValidityRequest::default())
            .await,
        Err(Error::TokenAlreadyUsed)
    ));
    assert_eq!(ca.certificates().await, 1);
}

// presented.rs

#[tokio::test]
async fn a_presented_certificate_counts_only_as_stored_byte_for_byte() {
    let ca = Ca::new("presented-bytes").await;
    let (issued, key) = ca.issue("ops").await;
    let renewed = ca.authority.renew(&issued.certificate_der).await.unwrap();
    assert_ne!(renewed.serial, issued.serial);

    // The same serial, subject and key, signed by the same intermediate, but not the bytes
    // this CA recorded.
    let info = CertificateInfo::from_der(&issued.certificate_der).unwrap();
    let signer = LeafSigner::new(&ca.intermediate_der, ca.intermediate_key.clone()).unwrap();
    let twin = signer
        .sign(
            &LeafTemplate {
                common_name: "app.test".into(),
                sans: vec![San::parse("app.test").unwrap()],
                not_before: info.not_before,
                not_after: info.not_after + Duration::days(30),
                serial: SerialNumber::from_decimal(&issued.serial).unwrap(),
                rsa_key: false,
                provisioner: None,
            },
            &key.public_key_spki_der().unwrap(),
        )
        .unwrap();
    assert_ne!(twin, issued.certificate_der);
    assert!(matches!(
        ca.authority.renew(&twin).await,
        Err(Error::RenewNotIssuedHere { .. })
    ));
    let token = ca.renewal_token(&twin, &key, "step-ca-client/1.0");
    assert!(matches!(
        ca.authority.renew_with_token(&token).await,
        Err(Error::RenewNotIssuedHere { .. })
    ));
}

#[tokio::test]
async fn a_revoked_certificate_is_not_renewed() {
    let ca = Ca::new("presented-revoked").await;
    let (issued, _) = ca.issue("ops").await;
    ca.authority
        .record_revocation(
            &issued.serial,
            ReasonCode::from_code(1).unwrap(),
            "",
            "mtls:app.test",
            None,
        )
        .await
        .unwrap();
    let stored = ca.store.certificate(&issued.serial).await.unwrap().unwrap();
    assert_eq!(stored.status, CertificateStatus::Revoked);
    assert!(matches!(
        ca.authority.renew(&issued.certificate_der).await,
        Err(Error::RenewRevoked { .. })
    ));
}

#[tokio::test]
async fn after_expiry_only_a_provisioner_that_allows_it_renews() {
    let ca = Ca::new("presented-expired").await;
    let (ops, _) = ca.issue("ops").await;
    let (late, _) = ca.issue("late").await;
    let not_after = CertificateInfo::from_der(&ops.certificate_der)
        .unwrap()
        .not_after;

    // Up to notAfter itself, renewal is open to both.
    ca.clock.set(not_after);
    ca.authority.renew(&ops.certificate_der).await.unwrap();

    ca.clock.set(not_after + Duration::seconds(1));
    assert!(matches!(
        ca.authority.renew(&ops.certificate_der).await,
        Err(Error::RenewExpired { .. })
    ));
    let renewed = ca.authority.renew(&late.certificate_der).await.unwrap();
    // The new one starts now, for the old one's lifetime.
    let info = CertificateInfo::from_der(&renewed.certificate_der).unwrap();
    assert_eq!(
        info.not_before,
        not_after + Duration::seconds(1) - Duration::minutes(1)
    );
}

#[tokio::test]
async fn a_provisioner_that_disables_renewal_refuses_it() {
    let ca = Ca::new("presented-disabled").await;
    let (frozen, _) = ca.issue("frozen").await;
    assert!(matches!(
        ca.authority.renew(&frozen.certificate_der).await,
        Err(Error::RenewalDisabled { .. })
    ));
}

#[tokio::test]
async fn a_renewal_token_names_the_certificate_s_provisioner_and_buys_one_certificate() {
    let ca = Ca::new("presented-token").await;
    let (issued, key) = ca.issue("ops").await;
    // Another provisioner's name as the issuer: refused.
    let other = ca.renewal_token(&issued.certificate_der, &key, "late");
    assert!(matches!(
        ca.authority.renew_with_token(&other).await,
        Err(Error::TokenIssuerMismatch { .. })
    ));
    // step's issuer, or the provisioner's own name, is accepted once.
    let token = ca.renewal_token(&issued.certificate_der, &key, "step-ca-client/1.0");
    ca.authority.renew_with_token(&token).await.unwrap();
    let before = ca.certificates().await;
    assert!(matches!(
        ca.authority.renew_with_token(&token).await,
        Err(Error::TokenAlreadyUsed)
    ));
    assert_eq!(ca.certificates().await, before);
    let own = ca.renewal_token(&issued.certificate_der, &key, "ops");
    ca.authority.renew_with_token(&own).await.unwrap();
}

// sshpop.rs

#[tokio::test]
async fn sshpop_renews_a_host_certificate_of_this_ca_for_its_holder() {
    let ca = Ca::new("sshpop-renew").await;
    let (host, key) = ca.ssh_certificate("host", "web.test").await;
    let ott = ca.sshpop(&host, &key, Endpoint::SshRenew, T);
    let renewed = ca.authority.ssh_renew(&ott).await.unwrap().certificate;
    assert_ne!(renewed.template.serial, host.template.serial);
    assert_eq!(renewed.template.principals, host.template.principals);
    assert_eq!(renewed.template.key_id, host.template.key_id);
    assert_eq!(renewed.template.cert_type, CertType::Host);
    assert_eq!(renewed.public_key, host.public_key);
    // Once.
    assert!(matches!(
        ca.authority.ssh_renew(&ott).await,
        Err(Error::TokenAlreadyUsed)
    ));
}

#[tokio::test]
async fn a_certificate_of_another_ssh_ca_is_refused() {
    let ca = Ca::new("sshpop-other-ca").await;
    let (host, key) = ca.ssh_certificate("host", "web.test").await;
    // The same certificate, signed by another host CA key.
    let other_ca = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let forged =
        mayfly_pki::ssh::sign_certificate(&host.template, &host.public_key, &other_ca).unwrap();
    let ott = ca.sshpop(&forged, &key, Endpoint::SshRenew, T);
    assert!(matches!(
        ca.authority.ssh_renew(&ott).await,
        Err(Error::RenewNotIssuedHere { .. })
    ));
    // Revocation finds the certificate by serial alone: only the CA key check stands between
    // another CA's certificate and ours.
    let request = RevokeRequest {
        serial: host.template.serial.to_string(),
        reason_code: ReasonCode::from_code(1).unwrap(),
        reason: String::new(),
        passive: true,
    };
    let revoke = ca.sshpop(&forged, &key, Endpoint::SshRevoke, T);
    assert!(matches!(
        ca.authority.ssh_revoke(&request, &revoke).await,
        Err(Error::RenewNotIssuedHere { .. })
    ));
    let stored = ca
        .store
        .ssh_certificate(host.template.serial)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, CertificateStatus::Valid);
}

#[tokio::test]
async fn an_sshpop_token_is_signed_by_the_certificate_s_key_within_the_leeway() {
    let ca = Ca::new("sshpop-token").await;
    let (host, key) = ca.ssh_certificate("host", "web.test").await;
    let thief = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    assert!(matches!(
        ca.authority
            .ssh_renew(&ca.sshpop(&host, &thief, Endpoint::SshRenew, T))
            .await,
        Err(Error::TokenSignatureInvalid)
    ));
    // A token for rekeying does not renew.
    assert!(matches!(
        ca.authority
            .ssh_renew(&ca.sshpop(&host, &key, Endpoint::SshRekey, T))
            .await,
        Err(Error::TokenAudienceMismatch { .. })
    ));
    // Expired 61 s ago, refused; 60 s ago, accepted.
    assert!(matches!(
        ca.authority
            .ssh_renew(&ca.sshpop(&host, &key, Endpoint::SshRenew, T - 361))
            .await,
        Err(Error::TokenExpired { .. })
    ));
    ca.authority
        .ssh_renew(&ca.sshpop(&host, &key, Endpoint::SshRenew, T - 360))
        .await
        .unwrap();
}

#[tokio::test]
async fn only_unrevoked_unexpired_host_certificates_are_renewed() {
    let ca = Ca::new("sshpop-host-only").await;
    let (user, user_key) = ca.ssh_certificate("user", "alice").await;
    assert!(matches!(
        ca.authority
            .ssh_renew(&ca.sshpop(&user, &user_key, Endpoint::SshRenew, T))
            .await,
        Err(Error::SshRenewHostOnly)
    ));

    let (revoked, revoked_key) = ca.ssh_certificate("host", "old.test").await;
    let request = RevokeRequest {
        serial: revoked.template.serial.to_string(),
        reason_code: ReasonCode::from_code(1).unwrap(),
        reason: String::new(),
        passive: true,
    };
    ca.authority
        .ssh_revoke(
            &request,
            &ca.sshpop(&revoked, &revoked_key, Endpoint::SshRevoke, T),
        )
        .await
        .unwrap();
    assert!(matches!(
        ca.authority
            .ssh_renew(&ca.sshpop(&revoked, &revoked_key, Endpoint::SshRenew, T))
            .await,
        Err(Error::RenewRevoked { .. })
    ));

    // Valid up to its last second, not at validBefore: SSH-POP has no renewal after expiry.
    let (host, key) = ca.ssh_certificate("host", "web.test").await;
    let valid_before = i64::try_from(host.template.valid_before).unwrap();
    ca.clock.set(at(valid_before - 1));
    ca.authority
        .ssh_renew(&ca.sshpop(&host, &key, Endpoint::SshRenew, valid_before - 1))
        .await
        .unwrap();
    ca.clock.set(at(valid_before));
    let outcome = ca
        .authority
        .ssh_renew(&ca.sshpop(&host, &key, Endpoint::SshRenew, valid_before))
        .await;
    assert!(
        matches!(outcome, Err(Error::SshPopCertificateNotValid { .. })),
        "{outcome:?}"
    );
}
