//! One-time tokens for a run, built with the authority's own [`NewToken`], the same code
//! `mayfly ca token` uses.

use mayfly_authority::token::NewToken;
use mayfly_pki::PrivateKey;
use time::OffsetDateTime;

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
    fn token<'a>(
        &'a self,
        subject: &'a str,
        sans: &'a [String],
        now: OffsetDateTime,
    ) -> NewToken<'a> {
        NewToken {
            issuer: self.issuer,
            ca_url: self.ca_url,
            endpoint: "sign",
            subject,
            sans,
            root_fingerprint: self.root_fingerprint,
            not_before: now,
            expires_at: now + time::Duration::seconds(LIFETIME_SECONDS),
        }
    }

    /// The claims of a token for `subject`, issued at `now` (Unix seconds).
    #[cfg(test)]
    fn claims(&self, subject: &str, now: i64, jti: &str) -> serde_json::Value {
        let now = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        self.token(subject, &[], now).claims(jti, now)
    }

    /// A signed token for `subject`, valid from now.
    pub fn sign(&self, subject: &str) -> anyhow::Result<String> {
        Ok(self
            .token(subject, &[], OffsetDateTime::now_utc())
            .sign(self.key, self.kid)?)
    }
}

#[cfg(test)]
mod tests {
    use mayfly_pki::KeyAlgorithm;
    use mayfly_pki::jose::jwk::Jwk;
    use mayfly_pki::jose::jws::Jws;
    use serde_json::json;

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
