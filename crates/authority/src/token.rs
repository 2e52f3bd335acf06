//! One-time tokens from the client's side: [`NewToken`] writes what `step ca token` writes,
//! for `mayfly ca token` and the load generator. The rules tokens are checked by live in
//! [`crate::credential`]; their names are re-exported here for the clients.

use time::OffsetDateTime;

use crate::error::Result;

pub use crate::credential::jwt::{
    Audience, LEEWAY, MAX_LIFETIME, MAX_TOKEN_ID_LEN, TokenClaims, check_audience,
    check_time_window, check_token_id, same_audience,
};
pub use crate::credential::renewal::{
    RENEWAL_CHAIN_HEADER, RENEWAL_TOKEN_ISSUER, RenewalToken, verify_renewal_token,
};

/// A new one-time token, as `step ca token` writes it: the client side of [`verify`], shared by
/// `mayfly ca token` and the load generator so both write exactly step's claims.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// The provisioner's name (`iss`).
    pub issuer: &'a str,
    /// The CA URL; the audience is its `/1.0/{endpoint}`.
    pub ca_url: &'a str,
    /// `sign`, or `revoke` for a revocation token.
    pub endpoint: &'a str,
    pub subject: &'a str,
    /// Names to authorise; the subject alone when empty.
    pub sans: &'a [String],
    /// SHA-256 fingerprint of the root the client trusts (`sha`).
    pub root_fingerprint: &'a str,
    pub not_before: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl NewToken<'_> {
    /// The claims, with `jti` and `iat` given.
    pub fn claims(&self, jti: &str, issued_at: OffsetDateTime) -> serde_json::Value {
        let sans: Vec<&str> = if self.sans.is_empty() {
            vec![self.subject]
        } else {
            self.sans.iter().map(String::as_str).collect()
        };
        serde_json::json!({
            "aud": format!("{}/1.0/{}", self.ca_url.trim_end_matches('/'), self.endpoint),
            "exp": self.expires_at.unix_timestamp(),
            "iat": issued_at.unix_timestamp(),
            "iss": self.issuer,
            "jti": jti,
            "nbf": self.not_before.unix_timestamp(),
            "sans": sans,
            "sha": self.root_fingerprint,
            "sub": self.subject,
        })
    }

    /// Signs the token with the provisioner's key; `jti` is 256 random bits, `iat` is now.
    pub fn sign(&self, key: &mayfly_pki::PrivateKey, kid: &str) -> Result<String> {
        self.sign_with_ssh(key, kid, None)
    }

    /// Like [`NewToken::sign`], with step's `"step": {"ssh": ...}` claims when `ssh` is given
    /// (certType, keyID, principals, validAfter, validBefore).
    pub fn sign_with_ssh(
        &self,
        key: &mayfly_pki::PrivateKey,
        kid: &str,
        ssh: Option<&serde_json::Value>,
    ) -> Result<String> {
        let jti = mayfly_pki::random::random_hex(32)?;
        let mut claims = self.claims(&jti, OffsetDateTime::now_utc());
        if let (Some(ssh), Some(map)) = (ssh, claims.as_object_mut()) {
            map.insert("step".into(), serde_json::json!({ "ssh": ssh }));
        }
        Ok(mayfly_pki::jose::jws::sign_compact(
            key,
            kid,
            claims.to_string().as_bytes(),
        )?)
    }

    /// The token of an X5C provisioner (the issuer), as `step ca token --x5c-cert` writes it:
    /// the audience names the provisioner in its fragment (`…#x5c/NAME`), and the token is
    /// signed by `key`, the key of `chain[0]`, with `chain` (DER, leaf first) in its `x5c`
    /// header. `ssh` as for [`NewToken::sign_with_ssh`].
    pub fn sign_x5c(
        &self,
        key: &mayfly_pki::PrivateKey,
        chain: &[Vec<u8>],
        ssh: Option<&serde_json::Value>,
    ) -> Result<String> {
        let jti = mayfly_pki::random::random_hex(32)?;
        let mut claims = self.claims(&jti, OffsetDateTime::now_utc());
        if let Some(map) = claims.as_object_mut() {
            let audience = format!(
                "{}/1.0/{}#x5c/{}",
                self.ca_url.trim_end_matches('/'),
                self.endpoint,
                self.issuer
            );
            map.insert("aud".into(), audience.into());
            if let Some(ssh) = ssh {
                map.insert("step".into(), serde_json::json!({ "ssh": ssh }));
            }
        }
        Ok(mayfly_pki::jose::jws::sign_compact_x5c(
            key,
            chain,
            claims.to_string().as_bytes(),
        )?)
    }
}
