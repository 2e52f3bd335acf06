//! What a verified token and an SSH sign request together may yield.
//!
//! The token is the provisioner's word: its certificate type, key id and principals bound the
//! request, which may narrow them, never widen them. Critical options restrict a certificate,
//! but only the token may add them, so a holder cannot swap one restriction for a weaker one.

use std::collections::BTreeMap;

use mayfly_pki::ssh::{CertType, SshCertTemplate};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{NamePolicy, TimeSpec};
use crate::credential::CredentialValidity;
use crate::error::{Error, Result};
use crate::ssh::claims::SshClaims;
use mayfly_config::duration::GoDuration;

/// Extensions of user certificates, as `ssh-keygen` and step set them by default.
pub const DEFAULT_USER_EXTENSIONS: &[&str] = &[
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Critical options OpenSSH defines; any other name would make sshd refuse the certificate.
const KNOWN_CRITICAL_OPTIONS: &[&str] = &["force-command", "source-address", "verify-required"];

/// Longest principal accepted (a host name is at most 253 characters).
const MAX_PRINCIPAL_LEN: usize = 255;
/// Most principals in one certificate.
const MAX_PRINCIPALS: usize = 64;

/// The `step.ssh` claims of a token, as step writes them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshTokenClaims {
    #[serde(default)]
    pub cert_type: String,
    #[serde(default, rename = "keyID")]
    pub key_id: String,
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub valid_after: String,
    #[serde(default)]
    pub valid_before: String,
    /// Critical options the provisioner allows (mayfly addition; step sets them by template).
    #[serde(default)]
    pub critical_options: BTreeMap<String, String>,
}

/// The request's side of an SSH signature, before policy.
#[derive(Debug, Clone, Default)]
pub struct SshSignOptions {
    pub cert_type: Option<String>,
    pub key_id: Option<String>,
    pub principals: Vec<String>,
    pub valid_after: Option<String>,
    pub valid_before: Option<String>,
    pub critical_options: BTreeMap<String, String>,
}

fn non_empty(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then_some(trimmed)
}

fn check_principal(principal: &str) -> Result<()> {
    if principal.is_empty()
        || principal.len() > MAX_PRINCIPAL_LEN
        || principal
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return Err(Error::SshPrincipalInvalid(principal.to_string()));
    }
    Ok(())
}

/// The SSH claims of a credential that grants what the request asks (a Kubernetes
/// service-account token, which carries none): the request's type, key id and principals,
/// each of which it must name, as step-ca requires for such tokens. Critical options are
/// not granted: nothing vouches for them.
pub fn requested_claims(request: &SshSignOptions) -> Result<SshTokenClaims> {
    let cert_type = request.cert_type.as_deref().and_then(non_empty);
    let key_id = request.key_id.as_deref().and_then(non_empty);
    match (cert_type, key_id, request.principals.is_empty()) {
        (Some(cert_type), Some(key_id), false) => Ok(SshTokenClaims {
            cert_type: cert_type.to_owned(),
            key_id: key_id.to_owned(),
            principals: request.principals.clone(),
            ..SshTokenClaims::default()
        }),
        _ => Err(Error::SshRequestInvalid(
            "this credential carries no SSH claims: the request must name certType, keyID and \
             principals"
                .into(),
        )),
    }
}

/// What bounds an SSH certificate besides its token and the request.
#[derive(Debug, Clone, Copy)]
pub struct SshBounds<'a> {
    /// The provisioner's SSH claims (lifetimes).
    pub claims: &'a SshClaims,
    /// The validity of a credential that is a certificate (an X5C token's leaf): by default
    /// the SSH certificate ends no later, and a request for more is refused.
    pub within: Option<&'a CredentialValidity>,
    /// The name policy its principals meet.
    pub names: NamePolicy<'a>,
}

/// Builds the template: token claims merged with the request, within `bounds`. `subject` is
/// the token's `sub`, the key id when nothing else names one.
pub fn ssh_template(
    token: &SshTokenClaims,
    subject: &str,
    request: &SshSignOptions,
    bounds: SshBounds<'_>,
    backdate: time::Duration,
    now: OffsetDateTime,
) -> Result<SshTemplate> {
    let SshBounds {
        claims,
        within,
        names,
    } = bounds;
    let token_type = non_empty(&token.cert_type)
        .map(CertType::parse)
        .transpose()
        .map_err(|e| Error::TokenMalformed(format!("claim \"step.ssh.certType\": {e}")))?;
    let requested_type = request
        .cert_type
        .as_deref()
        .and_then(non_empty)
        .map(CertType::parse)
        .transpose()
        .map_err(|e| Error::SshRequestInvalid(e.to_string()))?;
    let cert_type = match (token_type, requested_type) {
        (Some(t), Some(r)) if t != r => {
            return Err(Error::SshTokenMismatch {
                field: "certType",
                token: t.as_str().into(),
                requested: r.as_str().into(),
            });
        }
        (Some(t), _) => t,
        (None, Some(r)) => r,
        (None, None) => CertType::User,
    };

    let token_key_id = non_empty(&token.key_id).or_else(|| non_empty(subject));
    let key_id = match (token_key_id, request.key_id.as_deref().and_then(non_empty)) {
        (Some(t), Some(r)) if t != r => {
            return Err(Error::SshTokenMismatch {
                field: "keyID",
                token: t.into(),
                requested: r.into(),
            });
        }
        (Some(t), _) => t.to_string(),
        (None, Some(r)) => r.to_string(),
        (None, None) => String::new(),
    };

    for principal in token.principals.iter().chain(&request.principals) {
        check_principal(principal)?;
    }
    let principals = if request.principals.is_empty() {
        token.principals.clone()
    } else {
        for principal in &request.principals {
            if !token.principals.contains(principal) {
                return Err(Error::SshPrincipalNotAuthorized {
                    principal: principal.clone(),
                    authorized: token.principals.clone(),
                });
            }
        }
        request.principals.clone()
    };
    if principals.is_empty() {
        return Err(Error::SshNoPrincipals);
    }
    if principals.len() > MAX_PRINCIPALS {
        return Err(Error::SshRequestInvalid(format!(
            "{} principals: at most {MAX_PRINCIPALS}",
            principals.len()
        )));
    }
    names.check_ssh(cert_type, &principals)?;

    if let Some(name) = token
        .critical_options
        .keys()
        .find(|name| !KNOWN_CRITICAL_OPTIONS.contains(&name.as_str()))
    {
        return Err(Error::TokenMalformed(format!(
            "critical option {name:?} is not one OpenSSH knows ({KNOWN_CRITICAL_OPTIONS:?})"
        )));
    }
    for (name, value) in &request.critical_options {
        if !KNOWN_CRITICAL_OPTIONS.contains(&name.as_str()) {
            return Err(Error::SshRequestInvalid(format!(
                "critical option {name:?}: expected one of {KNOWN_CRITICAL_OPTIONS:?}"
            )));
        }
        if token.critical_options.get(name) != Some(value) {
            return Err(Error::SshCriticalOptionNotAllowed { name: name.clone() });
        }
    }

    let (min, default, max) = match cert_type {
        CertType::User => (claims.user_min, claims.user_default, claims.user_max),
        CertType::Host => (claims.host_min, claims.host_default, claims.host_max),
    };
    let time = |field: &'static str, text: Option<&str>| -> Result<Option<OffsetDateTime>> {
        text.and_then(non_empty)
            .map(|t| TimeSpec::parse(field, t).map(|spec| spec.resolve(now)))
            .transpose()
    };
    // The token's bounds win over the request's, as the provisioner signed them.
    let after = match time("validAfter", Some(&token.valid_after))? {
        Some(at) => Some(at),
        None => time("validAfter", request.valid_after.as_deref())?,
    };
    let before = match time("validBefore", Some(&token.valid_before))? {
        Some(at) => Some(at),
        None => time("validBefore", request.valid_before.as_deref())?,
    };
    let start = after.unwrap_or(now);
    let end = match (before, within) {
        (Some(before), _) => before,
        (None, Some(within)) => (start + default).min(within.not_after),
        (None, None) => start + default,
    };
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    if let Some(within) = within {
        let limit = || format!("valid until {}", rfc3339(within.not_after));
        for (field, at) in [("validAfter", start), ("validBefore", end)] {
            if at > within.not_after {
                return Err(Error::OutsideCredentialValidity {
                    field,
                    requested: rfc3339(at),
                    limit: limit(),
                });
            }
        }
    }
    if end <= start {
        return Err(Error::ValidityInverted {
            not_before: rfc3339(start),
            not_after: rfc3339(end),
        });
    }
    if start < now - backdate - crate::token::LEEWAY {
        return Err(Error::NotBeforeInPast {
            not_before: rfc3339(start),
            now: rfc3339(now),
        });
    }
    let duration = end - start;
    if duration < min || duration > max {
        return Err(Error::DurationOutOfRange {
            requested: GoDuration(duration).to_string(),
            min: GoDuration(min).to_string(),
            max: GoDuration(max).to_string(),
        });
    }
    let valid_after = if after.is_none() {
        start - backdate
    } else {
        start
    };

    let extensions = match cert_type {
        CertType::User => DEFAULT_USER_EXTENSIONS
            .iter()
            .map(|e| (e.to_string(), String::new()))
            .collect(),
        CertType::Host => BTreeMap::new(),
    };
    Ok(SshTemplate(SshCertTemplate {
        cert_type,
        serial: mayfly_pki::ssh::random_serial()?,
        key_id,
        principals,
        valid_after: unix(valid_after),
        valid_before: unix(end),
        critical_options: token.critical_options.clone(),
        extensions,
    }))
}

/// An SSH certificate as the policy decided it: the only form an SSH certificate takes before
/// it is signed. Its field is private, so one is made by [`ssh_template`] or
/// [`renewal_template`] alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTemplate(SshCertTemplate);

impl SshTemplate {
    /// What the signer encodes.
    pub fn certificate(&self) -> &SshCertTemplate {
        &self.0
    }
}

/// The template that replaces `old` (a host certificate's renewal or rekey): the same type,
/// key id, principals and options, for the same lifetime from now, with a new serial. The
/// principals meet the name policy in force now (step-ca does not check them again).
pub fn renewal_template(
    old: &SshCertTemplate,
    backdate: time::Duration,
    now: OffsetDateTime,
    names: NamePolicy<'_>,
) -> Result<SshTemplate> {
    names.check_ssh(old.cert_type, &old.principals)?;
    let lifetime = old.valid_before.saturating_sub(old.valid_after);
    let valid_after = unix(now - backdate);
    Ok(SshTemplate(SshCertTemplate {
        serial: mayfly_pki::ssh::random_serial()?,
        valid_after,
        valid_before: valid_after.saturating_add(lifetime),
        ..old.clone()
    }))
}

/// Unix seconds; times before 1970 cannot reach here (they would be in the past).
pub(crate) fn unix(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp()).unwrap_or(0)
}
