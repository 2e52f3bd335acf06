//! One-time tokens (OTT): JWS signed by a JWK provisioner's key.
//!
//! [`verify`] is the only way to a [`VerifiedToken`]: signature, issuer, audience, time window
//! and lifetime are all checked here. Single use is enforced by the store when the issuance is
//! recorded, atomically with it.

use serde::Deserialize;
use time::OffsetDateTime;

use mayfly_pki::jose::jws::Jws;

use crate::error::{Error, Result};
use crate::provisioner::{JwkProvisioner, Provisioner};

/// Clock skew tolerated on `nbf`, `iat` and `exp`.
pub const LEEWAY: time::Duration = time::Duration::seconds(60);
/// The longest `jti` accepted: what the used-token column holds.
pub const MAX_TOKEN_ID_LEN: usize = 255;
/// Tokens are meant to be short-lived; a longer one is more likely a leaked long-term secret.
pub const MAX_LIFETIME: time::Duration = time::Duration::hours(1);

/// The claims of a one-time token, as step writes them.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenClaims {
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub aud: Audience,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub sha: Option<String>,
}

/// `aud` is a string or a list of strings (RFC 7519 4.1.3).
///
/// The common case comes first: serde tries untagged variants in order, and each miss builds an
/// error that is thrown away.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

impl Audience {
    pub fn values(&self) -> Vec<String> {
        match self {
            Audience::None => Vec::new(),
            Audience::One(one) => vec![one.clone()],
            Audience::Many(many) => many.clone(),
        }
    }
}

/// A token whose signature, issuer, audience and time window were checked.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub claims: TokenClaims,
    pub provisioner: JwkProvisioner,
    pub expires_at: OffsetDateTime,
}

impl VerifiedToken {
    /// The names the token authorises: `sans`, or `sub` when `sans` is empty.
    pub fn authorized_sans(&self) -> Vec<String> {
        if self.claims.sans.is_empty() {
            if self.claims.sub.is_empty() {
                Vec::new()
            } else {
                vec![self.claims.sub.clone()]
            }
        } else {
            self.claims.sans.clone()
        }
    }
}

/// What a token must match to be accepted here.
#[derive(Debug, Clone)]
pub struct TokenExpectations<'a> {
    /// Accepted `aud` values, e.g. `https://ca.internal:9000/1.0/sign`.
    pub audiences: &'a [String],
    /// SHA-256 fingerprints of this CA's roots; a token's `sha`, when present, must be one.
    pub root_fingerprints: &'a [String],
    pub now: OffsetDateTime,
}

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
}

/// Verifies `token` against the provisioners.
pub fn verify(
    token: &str,
    provisioners: &[Provisioner],
    expect: &TokenExpectations<'_>,
) -> Result<VerifiedToken> {
    let jws = Jws::parse(token).map_err(|e| Error::TokenMalformed(e.to_string()))?;
    let kid = jws
        .header()
        .kid
        .clone()
        .ok_or_else(|| Error::TokenMalformed("header has no \"kid\"".into()))?;
    // Decode claims before the signature check only to find the provisioner by (iss, kid).
    let unverified: TokenClaims = serde_json::from_slice(jws.unverified_payload())
        .map_err(|e| Error::TokenMalformed(format!("claims: {e}")))?;
    let mut by_kid = provisioners.iter().filter_map(|p| match p {
        Provisioner::Jwk(jwk) if jwk.kid == kid => Some(jwk.as_ref()),
        _ => None,
    });
    let provisioner = by_kid
        .clone()
        .find(|p| p.name == unverified.iss)
        .or_else(|| by_kid.next())
        .ok_or_else(|| Error::TokenUnknownKey { kid: kid.clone() })?;
    jws.verify(&provisioner.key).map_err(|e| match e {
        mayfly_pki::Error::JwsSignatureInvalid => Error::TokenSignatureInvalid,
        other => Error::TokenMalformed(other.to_string()),
    })?;
    // The signature covers exactly the payload decoded above, so those claims are now verified.
    let claims = unverified;

    if claims.iss != provisioner.name {
        return Err(Error::TokenIssuerMismatch {
            iss: claims.iss,
            provisioner: provisioner.name.clone(),
        });
    }
    check_audience(&claims, expect.audiences)?;
    check_token_id(&claims.jti)?;
    if let Some(sha) = &claims.sha
        && !sha.is_empty()
        && !expect
            .root_fingerprints
            .iter()
            .any(|fp| fp.eq_ignore_ascii_case(sha))
    {
        return Err(Error::TokenRootMismatch {
            found: sha.clone(),
            expected: expect
                .root_fingerprints
                .first()
                .cloned()
                .unwrap_or_default(),
        });
    }

    let exp = check_time_window(&claims, expect.now)?;
    Ok(VerifiedToken {
        claims,
        provisioner: provisioner.clone(),
        expires_at: exp + LEEWAY,
    })
}

/// A token's `jti`: present, and short enough for the column that records it as used.
pub(crate) fn check_token_id(jti: &str) -> Result<()> {
    if jti.trim().is_empty() {
        return Err(Error::TokenMalformed(
            "claim \"jti\" is missing or empty".into(),
        ));
    }
    if jti.len() > MAX_TOKEN_ID_LEN {
        return Err(Error::TokenMalformed(format!(
            "claim \"jti\" is longer than {MAX_TOKEN_ID_LEN} bytes"
        )));
    }
    Ok(())
}

/// Checks that one of the token's `aud` values is one of `expected`, ports aside.
pub(crate) fn check_audience(claims: &TokenClaims, expected: &[String]) -> Result<()> {
    let found = claims.aud.values();
    if !found
        .iter()
        .any(|a| expected.iter().any(|e| same_audience(a, e)))
    {
        return Err(Error::TokenAudienceMismatch {
            found,
            expected: expected.to_vec(),
        });
    }
    Ok(())
}

/// Two audience URLs name the same endpoint when they are equal once their ports are dropped,
/// as step-ca compares them: behind a TCP load balancer the client's URL carries the balancer's
/// port (often none, 443) while each instance listens on its own, and a token is bound to the
/// CA's name and endpoint, not to a socket. Scheme, host, path and fragment must still match.
pub fn same_audience(a: &str, b: &str) -> bool {
    a == b || without_port(a) == without_port(b)
}

/// `scheme://host:port/rest` as `scheme://host/rest`; anything that is not such a URL as it is.
fn without_port(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        // User information: the host is after it. No client of ours writes one; compared
        // whole, such an audience can only equal itself.
        return url.into();
    }
    // An IPv6 literal keeps its colons inside brackets: only a colon after `]` starts a port.
    let host = match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => &authority[..colon],
        _ => authority,
    };
    format!("{scheme}://{host}{tail}").into()
}

/// Checks `nbf`/`iat`, `exp` and the lifetime with [`LEEWAY`]; returns `exp`.
pub(crate) fn check_time_window(
    claims: &TokenClaims,
    now: OffsetDateTime,
) -> Result<OffsetDateTime> {
    let at = |field: &str, value: Option<i64>| -> Result<OffsetDateTime> {
        let seconds =
            value.ok_or_else(|| Error::TokenMalformed(format!("claim {field:?} is missing")))?;
        OffsetDateTime::from_unix_timestamp(seconds)
            .map_err(|_| Error::TokenMalformed(format!("claim {field:?} is out of range")))
    };
    let exp = at("exp", claims.exp)?;
    let nbf = match claims.nbf {
        Some(_) => at("nbf", claims.nbf)?,
        None => at("iat", claims.iat)?,
    };
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    if now > exp + LEEWAY {
        return Err(Error::TokenExpired {
            exp: rfc3339(exp),
            now: rfc3339(now),
        });
    }
    if nbf > now + LEEWAY {
        return Err(Error::TokenNotYetValid {
            nbf: rfc3339(nbf),
            now: rfc3339(now),
        });
    }
    if let Some(iat) = claims.iat {
        let iat = at("iat", Some(iat))?;
        if iat > now + LEEWAY {
            return Err(Error::TokenNotYetValid {
                nbf: rfc3339(iat),
                now: rfc3339(now),
            });
        }
    }
    let lifetime = exp - nbf;
    if lifetime > MAX_LIFETIME {
        return Err(Error::TokenLifetimeTooLong {
            seconds: lifetime.whole_seconds(),
        });
    }
    if lifetime <= time::Duration::ZERO {
        return Err(Error::TokenMalformed(
            "claim \"exp\" is not after \"nbf\"".into(),
        ));
    }
    Ok(exp)
}

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
    check_audience(&claims, audiences)?;
    // step-ca expects the certificate's common name as `sub` when it has one.
    if !info.common_name.is_empty() && claims.sub != info.common_name {
        return Err(Error::TokenMalformed(format!(
            "claim \"sub\" is {:?}, not the certificate's common name {:?}",
            claims.sub, info.common_name
        )));
    }
    let exp = check_time_window(&claims, now)?;
    // step's renewal tokens carry no `jti`: the token's hash stands in for it.
    if !claims.jti.is_empty() {
        check_token_id(&claims.jti)?;
    }
    let reuse_key = if claims.jti.trim().is_empty() {
        mayfly_pki::cert::fingerprint_sha256(token.trim().as_bytes())
    } else {
        claims.jti.clone()
    };
    Ok(RenewalToken {
        leaf,
        issuer: claims.iss,
        reuse_key,
        expires_at: exp + LEEWAY,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_match_whatever_port_they_name() {
        let ours = "https://ca.example/1.0/sign";
        // Behind a TCP load balancer on 443 the client names no port; each instance listens
        // on its own. step-ca compares the URLs without their ports.
        for theirs in [
            "https://ca.example/1.0/sign",
            "https://ca.example:443/1.0/sign",
            "https://ca.example:9000/1.0/sign",
        ] {
            assert!(same_audience(theirs, ours), "{theirs}");
        }
        assert!(same_audience(
            "https://[::1]:9000/1.0/sign",
            "https://[::1]/1.0/sign"
        ));
        assert!(same_audience(
            "https://ca.example:8443/1.0/ssh/renew#sshpop/sshpop",
            "https://ca.example/1.0/ssh/renew#sshpop/sshpop"
        ));
    }

    #[test]
    fn audiences_still_differ_by_scheme_host_path_and_fragment() {
        let ours = "https://ca.example/1.0/sign";
        for theirs in [
            "http://ca.example/1.0/sign",
            "https://other.example/1.0/sign",
            "https://ca.example.evil/1.0/sign",
            "https://ca.example/1.0/revoke",
            "https://ca.example/1.0/sign#sshpop/x",
            "https://ca.example:9000/1.0/signx",
            "ca.example/1.0/sign",
            "",
        ] {
            assert!(!same_audience(theirs, ours), "{theirs}");
        }
        // User information is not a host name.
        assert!(!same_audience(
            "https://ca.example:9000@evil/1.0/sign",
            ours
        ));
        // An IPv6 literal's colons are not a port.
        assert!(!same_audience(
            "https://[::1]/1.0/sign",
            "https://[::2]/1.0/sign"
        ));
    }
}
