//! step's renewal token (`Authorization: Bearer` on `/renew`, `step ca renew --mtls=false`): the
//! certificate to renew travels in the token's `x5cInsecure` header, and the token is signed
//! with the certificate's key. This module checks the token; whether this CA issued the
//! certificate is the presented-certificate check's ([`super::presented`]).

use mayfly_pki::jose::jws::Jws;
use time::OffsetDateTime;

use super::jwt::{self, TokenClaims};
use crate::error::{Error, Result};

/// The issuer step's clients write into renewal tokens (older clients wrote the provisioner's
/// name, which is accepted too).
pub const RENEWAL_TOKEN_ISSUER: &str = "step-ca-client/1.0";

/// The header that carries the certificate chain of a renewal token, as step writes it.
pub const RENEWAL_CHAIN_HEADER: &str = "x5cInsecure";

/// A renewal token whose signature, audience, subject and time window were checked.
#[derive(Debug, Clone)]
pub struct RenewalToken {
    /// The certificate to renew (DER); whether this CA issued it is the caller's check.
    pub leaf: Vec<u8>,
    /// `iss`: [`RENEWAL_TOKEN_ISSUER`] or the name of the provisioner that issued the leaf,
    /// which only the caller knows.
    pub issuer: String,
    /// What makes the token single use: its `jti`, or the SHA-256 of the whole token when it
    /// has none (step's renewal tokens carry no `jti`), as step-ca keys it.
    pub reuse_key: String,
    pub expires_at: OffsetDateTime,
}

/// Verifies a renewal token (`Authorization: Bearer` on `/renew`, step's `ca renew
/// --mtls=false`): a JWS signed by the key of the certificate its `x5cInsecure` (or `x5c`)
/// header carries, for one of `audiences`, with `sub` the certificate's common name.
pub fn verify_renewal_token(
    token: &str,
    audiences: &[String],
    now: OffsetDateTime,
) -> Result<RenewalToken> {
    let jws = Jws::parse(token).map_err(|e| Error::TokenMalformed(e.to_string()))?;
    let mut chain = jws
        .certificate_chain(RENEWAL_CHAIN_HEADER)
        .map_err(|e| Error::TokenMalformed(e.to_string()))?;
    if chain.is_empty() {
        chain = jws
            .x5c()
            .map_err(|e| Error::TokenMalformed(e.to_string()))?;
    }
    let leaf = chain.into_iter().next().ok_or_else(|| {
        Error::TokenMalformed(format!(
            "header has no \"{RENEWAL_CHAIN_HEADER}\" (or \"x5c\") certificate"
        ))
    })?;
    let info = mayfly_pki::cert::CertificateInfo::from_der(&leaf)
        .map_err(|e| Error::TokenMalformed(format!("{RENEWAL_CHAIN_HEADER} certificate: {e}")))?;
    let spki = mayfly_pki::cert::subject_public_key_info(&leaf)
        .map_err(|e| Error::TokenMalformed(format!("{RENEWAL_CHAIN_HEADER} certificate: {e}")))?;
    let payload = jws.verify_with_spki(&spki).map_err(|e| match e {
        mayfly_pki::Error::JwsSignatureInvalid => Error::TokenSignatureInvalid,
        other => Error::TokenMalformed(other.to_string()),
    })?;
    let claims: TokenClaims = serde_json::from_slice(payload)
        .map_err(|e| Error::TokenMalformed(format!("claims: {e}")))?;
    jwt::check_audience(&claims, audiences)?;
    // step-ca expects the certificate's common name as `sub` when it has one.
    if !info.common_name.is_empty() && claims.sub != info.common_name {
        return Err(Error::TokenMalformed(format!(
            "claim \"sub\" is {:?}, not the certificate's common name {:?}",
            claims.sub, info.common_name
        )));
    }
    let exp = jwt::check_time_window(&claims, now)?;
    // step's renewal tokens carry no `jti`: the token's hash stands in for it.
    let reuse_key = jwt::reuse_key(&claims.jti, token)?;
    Ok(RenewalToken {
        leaf,
        issuer: claims.iss,
        reuse_key,
        expires_at: exp + jwt::LEEWAY,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mayfly_pki::cert::{LeafSigner, LeafTemplate, create_root};
    use mayfly_pki::{KeyAlgorithm, PrivateKey, San, SerialNumber};
    use serde_json::{Value, json};
    use time::Duration;

    use super::*;
    use crate::credential::{Audiences, Endpoint};

    /// When the tests' tokens start; `exp` is five minutes later.
    const T: i64 = 1_800_000_000;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    /// A certificate for app.test (its DER and key), as a client holds it to renew it.
    struct Holder {
        leaf: Vec<u8>,
        key: PrivateKey,
        audiences: Audiences,
    }

    impl Holder {
        fn new() -> Self {
            let root_key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
            let root = create_root("Renewal Root", &root_key, at(T) + Duration::days(365)).unwrap();
            let signer = LeafSigner::new(&root, Arc::new(root_key)).unwrap();
            let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
            let template = LeafTemplate {
                common_name: "app.test".into(),
                sans: vec![San::parse("app.test").unwrap()],
                not_before: at(T) - Duration::hours(1),
                not_after: at(T) + Duration::hours(23),
                serial: SerialNumber::random().unwrap(),
                rsa_key: false,
                provisioner: None,
            };
            let leaf = signer
                .sign(&template, &key.public_key_spki_der().unwrap())
                .unwrap();
            Holder {
                leaf,
                key,
                audiences: Audiences::new(&["ca.test".to_string()]),
            }
        }

        /// What `step ca renew --mtls=false` writes: no `jti`.
        fn claims(&self) -> Value {
            json!({
                "aud": "https://ca.test/1.0/renew", "iss": RENEWAL_TOKEN_ISSUER,
                "sub": "app.test", "nbf": T, "iat": T, "exp": T + 300,
            })
        }

        /// A renewal token carrying the leaf in `header`, signed by `key`.
        fn sign_with(&self, key: &PrivateKey, header: &str, claims: &Value) -> String {
            mayfly_pki::jose::jws::sign_compact_chain(
                key,
                header,
                std::slice::from_ref(&self.leaf),
                claims.to_string().as_bytes(),
            )
            .unwrap()
        }

        fn sign(&self, claims: &Value) -> String {
            self.sign_with(&self.key, RENEWAL_CHAIN_HEADER, claims)
        }

        fn verify_at(&self, token: &str, now: i64) -> Result<RenewalToken> {
            verify_renewal_token(token, self.audiences.of(Endpoint::Renew), at(now))
        }
    }

    fn with(mut claims: Value, changes: Value) -> Value {
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    }

    #[test]
    fn the_window_has_sixty_seconds_of_leeway_each_way() {
        let h = Holder::new();
        let token = h.sign(&h.claims());
        assert!(h.verify_at(&token, T + 300 + 60).is_ok(), "exp + 60 s");
        assert!(
            matches!(
                h.verify_at(&token, T + 300 + 61),
                Err(Error::TokenExpired { .. })
            ),
            "exp + 61 s"
        );
        assert!(h.verify_at(&token, T - 60).is_ok(), "nbf - 60 s");
        assert!(
            matches!(
                h.verify_at(&token, T - 61),
                Err(Error::TokenNotYetValid { .. })
            ),
            "nbf - 61 s"
        );
    }

    #[test]
    fn the_token_carries_the_certificate_and_is_kept_until_it_can_no_longer_be_accepted() {
        let h = Holder::new();
        let renewal = h.verify_at(&h.sign(&h.claims()), T).unwrap();
        assert_eq!(renewal.leaf, h.leaf);
        assert_eq!(renewal.issuer, RENEWAL_TOKEN_ISSUER);
        assert_eq!(renewal.expires_at, at(T + 300) + Duration::seconds(60));
        // Chains in `x5c` (older clients) are read too.
        let x5c = h.sign_with(&h.key, "x5c", &h.claims());
        assert_eq!(h.verify_at(&x5c, T).unwrap().leaf, h.leaf);
    }

    #[test]
    fn a_token_for_another_endpoint_or_ca_is_refused() {
        let h = Holder::new();
        for aud in ["https://ca.test/1.0/sign", "https://other.test/1.0/renew"] {
            let claims = with(h.claims(), json!({ "aud": aud }));
            assert!(
                matches!(
                    h.verify_at(&h.sign(&claims), T),
                    Err(Error::TokenAudienceMismatch { .. })
                ),
                "{aud}"
            );
        }
    }

    #[test]
    fn the_subject_must_be_the_certificate_s_common_name() {
        let h = Holder::new();
        let claims = with(h.claims(), json!({"sub": "other.test"}));
        match h.verify_at(&h.sign(&claims), T) {
            Err(Error::TokenMalformed(message)) => {
                assert!(message.contains("common name"), "{message}");
            }
            other => panic!("sub other.test: {other:?}"),
        }
    }

    #[test]
    fn a_token_without_a_jti_is_single_use_by_its_hash() {
        let h = Holder::new();
        let token = h.sign(&h.claims());
        let renewal = h.verify_at(&token, T).unwrap();
        assert_eq!(renewal.reuse_key, jwt::token_hash(&token));
        let with_jti = with(h.claims(), json!({"jti": "renew-1"}));
        let renewal = h.verify_at(&h.sign(&with_jti), T).unwrap();
        assert_eq!(renewal.reuse_key, "renew-1");
    }

    #[test]
    fn a_token_signed_by_a_key_other_than_the_certificate_s_is_refused() {
        let h = Holder::new();
        let thief = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let token = h.sign_with(&thief, RENEWAL_CHAIN_HEADER, &h.claims());
        assert!(matches!(
            h.verify_at(&token, T),
            Err(Error::TokenSignatureInvalid)
        ));
    }

    #[test]
    fn a_token_without_a_certificate_is_malformed() {
        let h = Holder::new();
        let token =
            mayfly_pki::jose::jws::sign_compact(&h.key, "kid", h.claims().to_string().as_bytes())
                .unwrap();
        assert!(matches!(
            h.verify_at(&token, T),
            Err(Error::TokenMalformed(_))
        ));
    }
}
