//! Tokens of JWK provisioners: a JWS signed with the provisioner's key, named by its `kid` (the
//! key's RFC 7638 thumbprint) and by `iss` (the provisioner's name), as `step ca token` writes
//! them.

use mayfly_pki::jose::jws::Jws;

use super::jwt::{self, TokenClaims};
use super::{Authorization, Grant, TokenContext, Vouched};
use crate::error::{Error, Result};
use crate::provisioner::{JwkProvisioner, Provisioner};
use crate::store::UsedToken;

/// Verifies a token whose header names the key `kid`; `claims` were decoded from it unverified.
pub fn verify(
    jws: &Jws,
    claims: TokenClaims,
    kid: &str,
    context: &TokenContext<'_>,
) -> Result<Authorization> {
    let mut by_kid = context.provisioners.iter().filter_map(|p| match p {
        Provisioner::Jwk(jwk) if jwk.kid == kid => Some(jwk.as_ref()),
        _ => None,
    });
    // Two provisioners may share a key; `iss` says which one is meant.
    let provisioner = by_kid
        .clone()
        .find(|p| p.name == claims.iss)
        .or_else(|| by_kid.next())
        .ok_or_else(|| Error::TokenUnknownKey {
            kid: kid.to_owned(),
        })?;
    jws.verify(&provisioner.key).map_err(|e| match e {
        mayfly_pki::Error::JwsSignatureInvalid => Error::TokenSignatureInvalid,
        other => Error::TokenMalformed(other.to_string()),
    })?;
    // The signature covers exactly the payload the claims were decoded from: they are verified.
    if claims.iss != provisioner.name {
        return Err(Error::TokenIssuerMismatch {
            iss: claims.iss,
            provisioner: provisioner.name.clone(),
        });
    }
    jwt::check_audience(&claims, context.audiences)?;
    jwt::check_token_id(&claims.jti)?;
    jwt::check_root(&claims, context.root_fingerprints)?;
    let exp = jwt::check_time_window(&claims, context.now)?;
    authorization(provisioner, claims, exp)
}

fn authorization(
    provisioner: &JwkProvisioner,
    claims: TokenClaims,
    exp: time::OffsetDateTime,
) -> Result<Authorization> {
    let grant = Grant::Token(claims.authorized_sans());
    let burn = UsedToken {
        jti: claims.jti.clone(),
        provisioner: provisioner.name.clone(),
        expires_at: exp + jwt::LEEWAY,
    };
    let detail = format!("jti {}", claims.jti);
    let ssh = claims.ssh().cloned();
    let confirms = claims.csr_fingerprint()?;
    Ok(Authorization {
        provisioner: vouched(provisioner),
        subject: claims.sub,
        grant,
        ssh,
        burn: Some(burn),
        credential: format!("token:{}", provisioner.name),
        detail,
        within: None,
        confirms,
    })
}

/// How leaves issued through `provisioner` name it: step's JWK type and the key id.
pub fn vouched(provisioner: &JwkProvisioner) -> Vouched {
    Vouched {
        name: provisioner.name.clone(),
        type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_JWK,
        credential_id: provisioner.kid.clone(),
        claims: provisioner.claims,
        admin: provisioner.admin,
    }
}

#[cfg(test)]
mod tests {
    use mayfly_config::claims::Claims;
    use mayfly_pki::jose::jwk::Jwk;
    use mayfly_pki::{KeyAlgorithm, PrivateKey};
    use serde_json::{Value, json};
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::credential::{Audiences, Endpoint};

    /// When the tests' tokens start; `exp` is five minutes later.
    const T: i64 = 1_800_000_000;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    fn root_fingerprint() -> String {
        "ab".repeat(32)
    }

    /// A CA at ca.test with one JWK provisioner, `ops`, whose key signs the tokens.
    struct Fixture {
        key: PrivateKey,
        kid: String,
        provisioners: Vec<Provisioner>,
        audiences: Audiences,
    }

    fn provisioner(name: &str, key: &PrivateKey) -> Provisioner {
        let public = Jwk::public_from_key(key).unwrap();
        Provisioner::Jwk(Box::new(JwkProvisioner {
            name: name.into(),
            kid: public.kid.clone().unwrap(),
            key: public,
            encrypted_key: None,
            claims: Claims::DEFAULT,
            admin: false,
        }))
    }

    impl Fixture {
        fn new() -> Self {
            let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
            let kid = Jwk::public_from_key(&key).unwrap().kid.unwrap();
            let provisioners = vec![provisioner("ops", &key)];
            Fixture {
                key,
                kid,
                provisioners,
                audiences: Audiences::new(&["ca.test".to_string()]),
            }
        }

        /// The claims `step ca token` writes for `ops`, valid from T for five minutes.
        fn claims(&self) -> Value {
            json!({
                "aud": "https://ca.test/1.0/sign", "iss": "ops", "sub": "app.test",
                "sans": ["app.test", "10.0.0.1"], "nbf": T, "iat": T, "exp": T + 300,
                "jti": "jti-1", "sha": root_fingerprint(),
            })
        }

        fn sign(&self, claims: &Value) -> String {
            mayfly_pki::jose::jws::sign_compact(&self.key, &self.kid, claims.to_string().as_bytes())
                .unwrap()
        }

        /// What `verify_token` does for a token with a `kid`, at `now`.
        fn verify_at(&self, token: &str, now: i64) -> Result<Authorization> {
            let jws = Jws::parse(token).unwrap();
            let claims: TokenClaims = serde_json::from_slice(jws.unverified_payload()).unwrap();
            let kid = jws.header().kid.clone().unwrap();
            let roots = [root_fingerprint()];
            let context = TokenContext {
                provisioners: &self.provisioners,
                audiences: self.audiences.of(Endpoint::Sign),
                root_fingerprints: &roots,
                now: at(now),
                endpoint: Endpoint::Sign,
                oidc: None,
            };
            verify(&jws, claims, &kid, &context)
        }
    }

    fn with(mut claims: Value, changes: Value) -> Value {
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    #[test]
    fn the_window_has_sixty_seconds_of_leeway_each_way() {
        let f = Fixture::new();
        let token = f.sign(&f.claims());
        assert!(f.verify_at(&token, T + 300 + 60).is_ok(), "exp + 60 s");
        assert!(
            matches!(
                f.verify_at(&token, T + 300 + 61),
                Err(Error::TokenExpired { .. })
            ),
            "exp + 61 s"
        );
        assert!(f.verify_at(&token, T - 60).is_ok(), "nbf - 60 s");
        assert!(
            matches!(
                f.verify_at(&token, T - 61),
                Err(Error::TokenNotYetValid { .. })
            ),
            "nbf - 61 s"
        );
    }

    #[test]
    fn a_key_no_provisioner_has_is_refused_by_its_kid() {
        let f = Fixture::new();
        let stranger = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let kid = Jwk::public_from_key(&stranger).unwrap().kid.unwrap();
        let token =
            mayfly_pki::jose::jws::sign_compact(&stranger, &kid, f.claims().to_string().as_bytes())
                .unwrap();
        match f.verify_at(&token, T) {
            Err(e @ Error::TokenUnknownKey { .. }) => {
                assert!(e.to_string().contains(&kid), "{e}");
            }
            other => panic!("an unknown kid: {other:?}"),
        }
    }

    #[test]
    fn another_key_under_the_provisioner_s_kid_fails_the_signature() {
        let f = Fixture::new();
        let forger = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let token =
            mayfly_pki::jose::jws::sign_compact(&forger, &f.kid, f.claims().to_string().as_bytes())
                .unwrap();
        assert!(matches!(
            f.verify_at(&token, T),
            Err(Error::TokenSignatureInvalid)
        ));
    }

    #[test]
    fn the_grant_is_the_token_s_sans_or_its_subject_and_the_jti_is_burnt_under_the_provisioner() {
        let f = Fixture::new();
        let authorization = f.verify_at(&f.sign(&f.claims()), T).unwrap();
        assert_eq!(
            authorization.grant,
            Grant::Token(vec!["app.test".into(), "10.0.0.1".into()])
        );
        assert_eq!(authorization.subject, "app.test");
        assert_eq!(authorization.provisioner.name, "ops");
        assert_eq!(authorization.provisioner.credential_id, f.kid);
        assert_eq!(authorization.credential, "token:ops");
        let burn = authorization.burn.unwrap();
        assert_eq!(burn.jti, "jti-1");
        assert_eq!(burn.provisioner, "ops");
        // Remembered as long as the token could still be accepted.
        assert_eq!(burn.expires_at, at(T + 300) + Duration::seconds(60));

        let no_sans = with(f.claims(), json!({"sans": null}));
        let authorization = f.verify_at(&f.sign(&no_sans), T).unwrap();
        assert_eq!(authorization.grant, Grant::Token(vec!["app.test".into()]));
    }

    #[test]
    fn a_token_needs_a_jti_and_this_ca_s_audience_and_issuer() {
        let f = Fixture::new();
        let no_jti = with(f.claims(), json!({"jti": null}));
        assert!(matches!(
            f.verify_at(&f.sign(&no_jti), T),
            Err(Error::TokenMalformed(_))
        ));
        let elsewhere = with(f.claims(), json!({"aud": "https://other.test/1.0/sign"}));
        assert!(matches!(
            f.verify_at(&f.sign(&elsewhere), T),
            Err(Error::TokenAudienceMismatch { .. })
        ));
        let revoke = with(f.claims(), json!({"aud": "https://ca.test/1.0/revoke"}));
        assert!(matches!(
            f.verify_at(&f.sign(&revoke), T),
            Err(Error::TokenAudienceMismatch { .. })
        ));
        let other_issuer = with(f.claims(), json!({"iss": "dev"}));
        assert!(matches!(
            f.verify_at(&f.sign(&other_issuer), T),
            Err(Error::TokenIssuerMismatch { .. })
        ));
    }

    #[test]
    fn two_provisioners_sharing_a_key_are_told_apart_by_the_issuer() {
        let mut f = Fixture::new();
        f.provisioners.push(provisioner("dev", &f.key));
        let dev = with(f.claims(), json!({"iss": "dev"}));
        let authorization = f.verify_at(&f.sign(&dev), T).unwrap();
        assert_eq!(authorization.provisioner.name, "dev");
        assert_eq!(authorization.burn.unwrap().provisioner, "dev");
    }

    #[test]
    fn a_pinned_root_must_be_this_ca_s() {
        let f = Fixture::new();
        let upper = with(
            f.claims(),
            json!({"sha": root_fingerprint().to_uppercase()}),
        );
        assert!(f.verify_at(&f.sign(&upper), T).is_ok());
        let unpinned = with(f.claims(), json!({"sha": null}));
        assert!(f.verify_at(&f.sign(&unpinned), T).is_ok());
        let other = with(f.claims(), json!({"sha": "cd".repeat(32)}));
        assert!(matches!(
            f.verify_at(&f.sign(&other), T),
            Err(Error::TokenRootMismatch { .. })
        ));
    }
}
