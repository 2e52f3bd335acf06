//! ID tokens of OIDC provisioners: a JWT an OpenID provider signed for this provisioner's
//! client, as step-ca reads it.
//!
//! The token names its provisioner by its audience (or `azp`): the client id. It must be signed
//! with one of the provider's published keys ([`keys`]), name the provider's issuer, be within
//! its time window (60 s leeway) and be used once (its `nonce`). An e-mail address its
//! provider says is not verified is refused (step-ca ignores `email_verified`).
//!
//! What it grants is step-ca's: a user gets a certificate for exactly their identity (common
//! name `sub`, SANs their e-mail address and `iss#sub`), whatever the request asks, and SSH
//! user certificates for the principals derived from their e-mail address; an administrator
//! (`admins`, by e-mail address or group) gets what the request asks for.

pub mod keys;

use mayfly_pki::San;
use mayfly_pki::jose::jws::Jws;
use serde::Deserialize;
use time::OffsetDateTime;

use super::jwt::{self, Audience};
use super::{Authorization, Endpoint, Grant, TokenContext, Vouched};
use crate::error::{Error, Result};
use crate::policy::ssh::SshTokenClaims;
use crate::provisioner::{OidcProvisioner, Provisioner};
use crate::store::UsedToken;

/// The claims an ID token is routed by, read before its signature is checked.
#[derive(Deserialize)]
struct Routing {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    aud: Audience,
    #[serde(default)]
    azp: Option<String>,
}

/// The OIDC provisioner a token is for, if it is an ID token: the one whose client id is its
/// `azp`, or one of its audiences. A token that names no such client but looks like an ID
/// token (an issuer URL, an audience that is none of this CA's endpoints) is refused here, so
/// its error says what is wrong with it; any other token is left to the other verifiers.
pub(super) fn provisioner_for<'a>(
    jws: &Jws,
    context: &TokenContext<'a>,
) -> Result<Option<&'a OidcProvisioner>> {
    let mut oidc = context
        .provisioners
        .iter()
        .filter_map(|p| match p {
            Provisioner::Oidc(oidc) => Some(oidc.as_ref()),
            _ => None,
        })
        .peekable();
    if oidc.peek().is_none() {
        return Ok(None);
    }
    let Ok(routing) = serde_json::from_slice::<Routing>(jws.unverified_payload()) else {
        return Ok(None);
    };
    let audiences = routing.aud.values();
    let by_client = |id: &str| oidc.clone().find(|p| p.client_id == id);
    if let Some(found) = routing.azp.as_deref().and_then(by_client) {
        return Ok(Some(found));
    }
    if let Some(found) = audiences.iter().find_map(|a| by_client(a)) {
        return Ok(Some(found));
    }
    let ours = audiences
        .iter()
        .any(|a| context.audiences.iter().any(|e| jwt::same_audience(a, e)));
    if !ours && routing.iss.starts_with("https://") {
        return Err(Error::TokenAudienceMismatch {
            found: audiences,
            expected: oidc.map(|p| p.client_id.clone()).collect(),
        });
    }
    Ok(None)
}

/// `email_verified`: a boolean, or the string some providers send.
#[derive(Deserialize)]
#[serde(untagged)]
enum Verified {
    Bool(bool),
    Text(String),
}

impl Verified {
    fn is_false(&self) -> bool {
        match self {
            Verified::Bool(verified) => !verified,
            Verified::Text(text) => text.eq_ignore_ascii_case("false"),
        }
    }
}

/// The claims of a verified ID token used here.
#[derive(Deserialize)]
struct IdToken {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    aud: Audience,
    /// NumericDate: seconds, possibly with a fraction (RFC 7519 2).
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    iat: Option<f64>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Verified>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

impl IdToken {
    fn email(&self) -> Option<&str> {
        self.email.as_deref().filter(|e| !e.is_empty())
    }

    /// An administrator: their e-mail address (domain compared without case) or one of their
    /// groups is among `admins`.
    fn is_admin(&self, admins: &[String]) -> bool {
        let by_email = self.email().is_some_and(|email| {
            let email = sanitize_email(email);
            admins.iter().any(|admin| sanitize_email(admin) == email)
        });
        by_email || self.groups.iter().any(|group| admins.contains(group))
    }
}

/// `local@Domain` as `local@domain`: domains are not case-sensitive, local parts may be.
fn sanitize_email(email: &str) -> String {
    match email.rfind('@') {
        Some(at) => format!("{}{}", &email[..at], email[at..].to_lowercase()),
        None => email.to_string(),
    }
}

/// Verifies an ID token for `provisioner` and says what it grants.
pub(super) async fn verify(
    token: &str,
    jws: &Jws,
    provisioner: &OidcProvisioner,
    context: &TokenContext<'_>,
) -> Result<Authorization> {
    if !matches!(context.endpoint, Endpoint::Sign | Endpoint::SshSign) {
        // step-ca lets administrators revoke any certificate with an ID token; mayfly binds
        // revocation to the certificate's own token or key, which an ID token is not.
        return Err(Error::OidcEndpoint {
            endpoint: context.endpoint.path(),
            provisioner: provisioner.name.clone(),
        });
    }
    let fetch = context.oidc.ok_or_else(|| {
        Error::Config("this CA was started without a client for OpenID providers".into())
    })?;
    let kid = jws.header().kid.as_deref();
    let (provider, keys) = provisioner.keys.keys_for(kid, fetch, context.now).await?;
    if keys.is_empty() {
        return Err(Error::TokenUnknownKey {
            kid: kid.unwrap_or_default().to_owned(),
        });
    }
    let payload = keys
        .iter()
        .find_map(|key| jws.verify(key).ok())
        .ok_or(Error::TokenSignatureInvalid)?;
    let claims: IdToken = serde_json::from_slice(payload)
        .map_err(|e| Error::TokenMalformed(format!("ID token claims: {e}")))?;
    if claims.iss != provider.issuer {
        return Err(Error::TokenIssuerMismatch {
            iss: claims.iss,
            provisioner: format!("{} (issuer {})", provisioner.name, provider.issuer),
        });
    }
    let audiences = claims.aud.values();
    if !audiences.contains(&provisioner.client_id) {
        return Err(Error::TokenAudienceMismatch {
            found: audiences,
            expected: vec![provisioner.client_id.clone()],
        });
    }
    if let Some(azp) = claims.azp.as_deref().filter(|azp| !azp.is_empty())
        && azp != provisioner.client_id
    {
        return Err(Error::OidcAuthorizedParty {
            azp: azp.to_string(),
            client_id: provisioner.client_id.clone(),
        });
    }
    let exp = check_times(&claims, context.now)?;
    if claims.sub.is_empty() {
        return Err(Error::TokenMalformed("claim \"sub\" is missing".into()));
    }
    if let Some(email) = claims.email()
        && claims
            .email_verified
            .as_ref()
            .is_some_and(Verified::is_false)
    {
        return Err(Error::OidcEmailUnverified {
            email: email.to_string(),
        });
    }
    let admin = claims.is_admin(&provisioner.admins);
    if !provisioner.domains.is_empty() && !admin {
        // step-ca lets a token without an e-mail address through; a provisioner limited to
        // domains here accepts only addresses in them.
        let email = claims.email().map(sanitize_email).unwrap_or_default();
        if !provisioner
            .domains
            .iter()
            .any(|domain| email.ends_with(&format!("@{}", domain.to_lowercase())))
        {
            return Err(Error::OidcEmailDomain {
                email,
                domains: provisioner.domains.clone(),
            });
        }
    }
    if !provisioner.groups.is_empty()
        && !claims
            .groups
            .iter()
            .any(|group| provisioner.groups.contains(group))
    {
        return Err(Error::OidcGroups {
            found: claims.groups.clone(),
            allowed: provisioner.groups.clone(),
        });
    }
    // Replay: the nonce the client chose for this login, or the token itself without one.
    let reuse_key = match claims.nonce.as_deref().filter(|n| !n.is_empty()) {
        Some(nonce) => {
            // The nonce is checked as a `jti` (not blank, fits the used-token column); the
            // message names the claim the client sent.
            jwt::check_token_id(nonce).map_err(|_| {
                Error::TokenMalformed(if nonce.trim().is_empty() {
                    "claim \"nonce\" is blank (only white space)".to_string()
                } else {
                    format!(
                        "claim \"nonce\" is longer than {} bytes",
                        jwt::MAX_TOKEN_ID_LEN
                    )
                })
            })?;
            nonce.to_string()
        }
        None => jwt::token_hash(token),
    };
    authorization(provisioner, &claims, admin, reuse_key, exp)
}

/// `exp` (required), `nbf` and `iat` with the 60 s leeway; an ID token's lifetime is its
/// provider's choice. Returns `exp`.
fn check_times(claims: &IdToken, now: OffsetDateTime) -> Result<OffsetDateTime> {
    let at = |field: &str, value: f64| -> Result<OffsetDateTime> {
        if !value.is_finite() {
            return Err(Error::TokenMalformed(format!(
                "claim {field:?} is not a time"
            )));
        }
        // Whole seconds: the fraction a NumericDate may carry changes no decision here.
        jwt::timestamp(field, value.floor() as i64)
    };
    let optional = |field: &str, value: Option<f64>| value.map(|v| at(field, v)).transpose();
    let exp = at(
        "exp",
        claims
            .exp
            .ok_or_else(|| Error::TokenMalformed("claim \"exp\" is missing".into()))?,
    )?;
    jwt::check_window(
        Some(exp),
        [optional("nbf", claims.nbf)?, optional("iat", claims.iat)?],
        now,
    )?;
    Ok(exp)
}

/// Who vouches for what `provisioner` authorises.
pub(crate) fn vouched(provisioner: &OidcProvisioner) -> Vouched {
    Vouched {
        name: provisioner.name.clone(),
        type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_OIDC,
        credential_id: provisioner.client_id.clone(),
        claims: provisioner.claims,
        // Administrators of an OIDC provisioner choose names; the admin API is another matter.
        admin: false,
    }
}

fn authorization(
    provisioner: &OidcProvisioner,
    claims: &IdToken,
    admin: bool,
    reuse_key: String,
    exp: OffsetDateTime,
) -> Result<Authorization> {
    // An administrator's request decides (no SSH claims with a requested grant); a user's
    // names and SSH claims are fixed.
    let (grant, ssh) = if admin {
        (Grant::Requested, None)
    } else {
        (
            Grant::Fixed(identity_sans(claims)?),
            Some(user_ssh_claims(claims)),
        )
    };
    let detail = match claims.email() {
        Some(email) => format!("sub {}, e-mail {email}", claims.sub),
        None => format!("sub {}", claims.sub),
    };
    Ok(Authorization {
        provisioner: vouched(provisioner),
        subject: claims.sub.clone(),
        grant,
        ssh,
        burn: Some(UsedToken {
            jti: reuse_key,
            provisioner: provisioner.name.clone(),
            expires_at: exp + jwt::LEEWAY,
        }),
        credential: format!("oidc:{}", provisioner.name),
        detail,
        within: None,
        confirms: None,
    })
}

/// A user's names: their e-mail address, and `iss#sub` when the issuer is a URL.
fn identity_sans(claims: &IdToken) -> Result<Vec<San>> {
    let mut sans = Vec::new();
    if let Some(email) = claims.email() {
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) || !email.contains('@') {
            return Err(Error::TokenMalformed(format!(
                "claim \"email\" {email:?} is not an e-mail address"
            )));
        }
        sans.push(San::Email(email.to_string()));
    }
    if has_scheme(&claims.iss) {
        let issuer = claims.iss.split('#').next().unwrap_or_default();
        sans.push(San::Uri(format!(
            "{issuer}#{}",
            escape_fragment(&claims.sub)
        )));
    }
    Ok(sans)
}

/// An RFC 3986 scheme before a colon: step-ca adds the URI name only for such issuers.
fn has_scheme(iss: &str) -> bool {
    iss.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// A URL fragment as Go's `net/url` writes it, so the URI name is the one step-ca would put in
/// the certificate: unreserved characters and `$&+,/:;=?@!()*` as they are, the rest
/// percent-encoded.
fn escape_fragment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let c = char::from(byte);
        if c.is_ascii_alphanumeric() || "-_.~$&+,/:;=?@!()*".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A user's SSH claims: a user certificate for the principals step-ca derives from the e-mail
/// address (its local part made a user name, the local part as it is, the address), the
/// address as key id, whatever the request names. Without an address there are no
/// principals, and no certificate.
fn user_ssh_claims(claims: &IdToken) -> SshTokenClaims {
    let (key_id, principals) = match claims.email() {
        Some(email) => (email.to_string(), principals_of(email)),
        None => (claims.sub.clone(), Vec::new()),
    };
    SshTokenClaims {
        cert_type: "user".into(),
        key_id,
        principals,
        ..SshTokenClaims::default()
    }
}

/// step-ca's principals for an e-mail address, without empties or repeats.
fn principals_of(email: &str) -> Vec<String> {
    let local = email.rfind('@').map_or(email, |at| &email[..at]);
    let mut principals: Vec<String> = Vec::new();
    for candidate in [user_name(local), local.to_string(), email.to_string()] {
        if !candidate.is_empty() && !principals.contains(&candidate) {
            principals.push(candidate);
        }
    }
    principals
}

/// A local part as a user name (`^[a-z][-a-z0-9_]*$` when it starts with a letter): lower
/// case, dots dropped, anything else but digits and `-` made `_`.
fn user_name(local: &str) -> String {
    local
        .to_lowercase()
        .chars()
        .filter(|c| *c != '.')
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests;
