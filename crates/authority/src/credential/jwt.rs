//! The rules every token credential obeys, whatever signed it: the claims step writes, the
//! audience (compared without ports), the time window with its leeway, the lifetime cap, the
//! `jti` that makes it single use, and the root fingerprint it may pin.

use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::policy::ssh::SshTokenClaims;

/// Clock skew tolerated on `nbf`, `iat` and `exp`.
pub const LEEWAY: time::Duration = time::Duration::seconds(60);
/// The longest `jti` accepted: what the used-token column holds.
pub const MAX_TOKEN_ID_LEN: usize = 255;
/// Tokens are meant to be short-lived; a longer one is more likely a leaked long-term secret.
pub const MAX_LIFETIME: time::Duration = time::Duration::hours(1);

/// The claims of a token, as step writes them.
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
    /// step's own claims: `{"ssh": {...}}` in a token for an SSH certificate.
    #[serde(default)]
    pub step: Option<StepClaim>,
    /// The request the token is bound to (RFC 7800's confirmation claim, as step writes it).
    #[serde(default)]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Confirmation {
    #[serde(default, rename = "x5rt#S256")]
    pub fingerprint: Option<String>,
}

/// The `step` claim.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StepClaim {
    #[serde(default)]
    pub ssh: Option<SshTokenClaims>,
}

impl TokenClaims {
    /// The certificate request the token is bound to, when its `cnf` names one.
    pub fn csr_fingerprint(&self) -> Result<Option<super::CsrFingerprint>> {
        match self.cnf.as_ref().and_then(|c| c.fingerprint.as_deref()) {
            None | Some("") => Ok(None),
            Some(text) => super::CsrFingerprint::parse(text).map(Some),
        }
    }

    /// The names the token authorises: `sans`, or `sub` when `sans` is empty.
    pub fn authorized_sans(&self) -> Vec<String> {
        if !self.sans.is_empty() {
            self.sans.clone()
        } else if self.sub.is_empty() {
            Vec::new()
        } else {
            vec![self.sub.clone()]
        }
    }

    /// The `step.ssh` claims, when the token is for an SSH certificate.
    pub fn ssh(&self) -> Option<&SshTokenClaims> {
        self.step.as_ref().and_then(|step| step.ssh.as_ref())
    }
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

/// A token's `jti`: present, and short enough for the column that records it as used.
pub fn check_token_id(jti: &str) -> Result<()> {
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

/// The key a token is burnt under: its `jti` (checked by [`check_token_id`]), or for a token
/// that carries none (step's renewal tokens, X5C tokens of other minters) its hash, as
/// step-ca keys it.
pub fn reuse_key(jti: &str, token: &str) -> Result<String> {
    if jti.is_empty() {
        return Ok(token_hash(token));
    }
    check_token_id(jti)?;
    Ok(jti.to_string())
}

/// A token's SHA-256, the key of tokens single use by their bytes (service-account and ID
/// tokens, and those with no `jti`).
pub fn token_hash(token: &str) -> String {
    mayfly_pki::cert::fingerprint_sha256(token.trim().as_bytes())
}

/// A token's `sha`, when present, must be the fingerprint of one of this CA's roots: a token
/// meant for another CA is refused early.
pub fn check_root(claims: &TokenClaims, root_fingerprints: &[String]) -> Result<()> {
    match &claims.sha {
        Some(sha)
            if !sha.is_empty()
                && !root_fingerprints
                    .iter()
                    .any(|fp| fp.eq_ignore_ascii_case(sha)) =>
        {
            Err(Error::TokenRootMismatch {
                found: sha.clone(),
                expected: root_fingerprints.first().cloned().unwrap_or_default(),
            })
        }
        _ => Ok(()),
    }
}

/// Checks that one of the token's `aud` values is one of `expected`, ports aside.
pub fn check_audience(claims: &TokenClaims, expected: &[String]) -> Result<()> {
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

/// A token's time claim `field` (seconds since the epoch) as a time.
pub fn timestamp(field: &str, seconds: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| Error::TokenMalformed(format!("claim {field:?} is out of range")))
}

/// A required time claim.
fn required(field: &str, seconds: Option<i64>) -> Result<OffsetDateTime> {
    timestamp(
        field,
        seconds.ok_or_else(|| Error::TokenMalformed(format!("claim {field:?} is missing")))?,
    )
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The window every kind of token is checked against, with [`LEEWAY`] each way: not expired
/// (`exp`), and not yet to come (`nbf` and `iat`), each when the token has it. Which claims a
/// kind requires, and whether its lifetime is capped, is the kind's own rule.
pub fn check_window(
    exp: Option<OffsetDateTime>,
    starts: [Option<OffsetDateTime>; 2],
    now: OffsetDateTime,
) -> Result<()> {
    if let Some(exp) = exp
        && now > exp + LEEWAY
    {
        return Err(Error::TokenExpired {
            exp: rfc3339(exp),
            now: rfc3339(now),
        });
    }
    for start in starts.into_iter().flatten() {
        if start > now + LEEWAY {
            return Err(Error::TokenNotYetValid {
                nbf: rfc3339(start),
                now: rfc3339(now),
            });
        }
    }
    Ok(())
}

/// A provisioner token's window (JWK, X5C, SSH-POP, renewal): `exp` and a start (`nbf`, else
/// `iat`) required, [`check_window`], and a lifetime of at most [`MAX_LIFETIME`]; returns `exp`.
pub fn check_time_window(claims: &TokenClaims, now: OffsetDateTime) -> Result<OffsetDateTime> {
    let exp = required("exp", claims.exp)?;
    let start = match claims.nbf {
        Some(nbf) => timestamp("nbf", nbf)?,
        None => required("iat", claims.iat)?,
    };
    let iat = claims.iat.map(|iat| timestamp("iat", iat)).transpose()?;
    check_window(Some(exp), [Some(start), iat], now)?;
    let lifetime = exp - start;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(nbf: i64, exp: i64) -> TokenClaims {
        serde_json::from_value(serde_json::json!({"nbf": nbf, "iat": nbf, "exp": exp})).unwrap()
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn the_leeway_is_sixty_seconds_each_way() {
        let t = 1_800_000_000;
        let token = claims(t, t + 300);
        // Expired 60 s ago: still accepted; 61 s ago: refused.
        assert!(check_time_window(&token, at(t + 360)).is_ok());
        assert!(matches!(
            check_time_window(&token, at(t + 361)),
            Err(Error::TokenExpired { .. })
        ));
        // Valid from 60 s on: accepted; from 61 s on: not yet.
        assert!(check_time_window(&token, at(t - 60)).is_ok());
        assert!(matches!(
            check_time_window(&token, at(t - 61)),
            Err(Error::TokenNotYetValid { .. })
        ));
    }

    #[test]
    fn lifetimes_are_positive_and_at_most_an_hour() {
        let t = 1_800_000_000;
        assert!(check_time_window(&claims(t, t + 3600), at(t)).is_ok());
        assert!(matches!(
            check_time_window(&claims(t, t + 3601), at(t)),
            Err(Error::TokenLifetimeTooLong { seconds: 3601 })
        ));
        assert!(matches!(
            check_time_window(&claims(t, t), at(t)),
            Err(Error::TokenMalformed(_))
        ));
        let missing: TokenClaims = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(check_time_window(&missing, at(t)).is_err());
    }

    #[test]
    fn a_jti_is_present_and_fits_its_column() {
        assert!(check_token_id(&"j".repeat(MAX_TOKEN_ID_LEN)).is_ok());
        assert!(check_token_id(&"j".repeat(MAX_TOKEN_ID_LEN + 1)).is_err());
        assert!(check_token_id(" ").is_err());
    }

    #[test]
    fn a_pinned_root_must_be_ours() {
        let roots = ["ab".repeat(32)];
        let pinned = |sha: &str| -> TokenClaims {
            serde_json::from_value(serde_json::json!({"sha": sha})).unwrap()
        };
        assert!(check_root(&pinned(&"AB".repeat(32)), &roots).is_ok());
        assert!(check_root(&pinned(""), &roots).is_ok());
        assert!(matches!(
            check_root(&pinned(&"00".repeat(32)), &roots),
            Err(Error::TokenRootMismatch { .. })
        ));
    }

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
