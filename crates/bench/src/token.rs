//! One-time tokens, as `step ca token` (and `mayfly ca token`) make them.
//!
//! This duplicates the claim building of the CLI's `ca::token::sign_token`; both belong in a
//! shared crate.

use std::time::{SystemTime, UNIX_EPOCH};

use mayfly_pki::PrivateKey;
use mayfly_pki::jose::jws;
use serde_json::json;

/// Token lifetime: long enough for a long run, within the CA's 1-hour limit.
pub const LIFETIME_SECONDS: i64 = 3000;

/// What every token of a run shares.
pub struct TokenSigner<'a> {
    pub key: &'a PrivateKey,
    pub kid: &'a str,
    /// The provisioner name (`iss`).
    pub issuer: &'a str,
    pub ca_url: &'a str,
    /// SHA-256 fingerprint of the root, lower-case hex (`sha`).
    pub root_fingerprint: &'a str,
}

impl TokenSigner<'_> {
    /// The claims of a token for `subject`, issued at `now` (Unix seconds).
    pub fn claims(&self, subject: &str, now: i64, jti: &str) -> serde_json::Value {
        json!({
            "aud": format!("{}/1.0/sign", self.ca_url.trim_end_matches('/')),
            "exp": now + LIFETIME_SECONDS,
            "iat": now,
            "iss": self.issuer,
            "jti": jti,
            "nbf": now,
            "sans": [subject],
            "sha": self.root_fingerprint,
            "sub": subject,
        })
    }

    /// A signed token for `subject`, valid from now.
    pub fn sign(&self, subject: &str) -> anyhow::Result<String> {
        let jti = mayfly_pki::random::random_hex(32)?;
        let claims = self.claims(subject, unix_now(), &jti);
        Ok(jws::sign_compact(
            self.key,
            self.kid,
            claims.to_string().as_bytes(),
        )?)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use mayfly_pki::KeyAlgorithm;
    use mayfly_pki::jose::jwk::Jwk;
    use mayfly_pki::jose::jws::Jws;

    use super::*;

    #[test]
    fn claims_like_step() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let signer = TokenSigner {
            key: &key,
            kid: "kid",
            issuer: "dev",
            ca_url: "https://ca.internal:9000/",
            root_fingerprint: "ab12",
        };
        let claims = signer.claims("bench-1.internal", 1000, "00ff");
        assert_eq!(
            claims,
            json!({
                "aud": "https://ca.internal:9000/1.0/sign",
                "exp": 4000,
                "iat": 1000,
                "iss": "dev",
                "jti": "00ff",
                "nbf": 1000,
                "sans": ["bench-1.internal"],
                "sha": "ab12",
                "sub": "bench-1.internal",
            })
        );
        const { assert!(LIFETIME_SECONDS <= 3600) };
    }

    #[test]
    fn signed_token_verifies() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let public = Jwk::public_from_key(&key).unwrap();
        let kid = public.kid.clone().unwrap();
        let signer = TokenSigner {
            key: &key,
            kid: &kid,
            issuer: "dev",
            ca_url: "https://127.0.0.1:1",
            root_fingerprint: "ab12",
        };
        let token = signer.sign("a.internal").unwrap();
        let jws = Jws::parse(&token).unwrap();
        assert_eq!(jws.header().kid.as_deref(), Some(kid.as_str()));
        let payload: serde_json::Value =
            serde_json::from_slice(jws.verify(&public).unwrap()).unwrap();
        assert_eq!(payload["sub"], "a.internal");
        assert_eq!(payload["jti"].as_str().unwrap().len(), 64);
        assert_eq!(
            payload["exp"].as_i64().unwrap() - payload["nbf"].as_i64().unwrap(),
            LIFETIME_SECONDS
        );
    }
}
