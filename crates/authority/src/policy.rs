//! Issuance policy: what a verified token and a CSR together may yield.
//!
//! The certificate carries exactly the names the token authorises; the CSR may ask for fewer,
//! never for others. Validity comes from the request, bounded by the provisioner's claims.

use mayfly_pki::{Csr, LeafTemplate, ProvisionerExtension, San, SerialNumber};
use time::OffsetDateTime;

use crate::claims::Claims;
use crate::duration::GoDuration;
use crate::error::{Error, Result};
use crate::token::VerifiedToken;

/// A validity bound in a request: an RFC 3339 instant or a duration from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    At(OffsetDateTime),
    FromNow(time::Duration),
}

impl TimeSpec {
    /// Parses `"2026-01-02T03:04:05Z"` or `"24h"`; `field` names the field in errors.
    pub fn parse(field: &'static str, text: &str) -> Result<Self> {
        if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        {
            return Ok(TimeSpec::At(at));
        }
        text.parse::<GoDuration>()
            .map(|d| TimeSpec::FromNow(d.0))
            .map_err(|_| Error::TimeMalformed {
                field,
                value: text.to_string(),
            })
    }

    pub fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            TimeSpec::At(at) => at,
            TimeSpec::FromNow(d) => now + d,
        }
    }
}

/// What the requester asked for besides the CSR.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidityRequest {
    pub not_before: Option<TimeSpec>,
    pub not_after: Option<TimeSpec>,
}

/// Builds the template for a `/sign` request.
pub fn leaf_template(
    token: &VerifiedToken,
    csr: &Csr,
    validity: ValidityRequest,
    claims: &Claims,
    backdate: time::Duration,
    now: OffsetDateTime,
) -> Result<LeafTemplate> {
    let authorized_text = token.authorized_sans();
    // Every SAN a token authorises goes into the certificate, so the token is held to the
    // CSR's limit.
    if authorized_text.len() > mayfly_pki::csr::MAX_SANS {
        return Err(Error::TooManySans {
            count: authorized_text.len(),
            max: mayfly_pki::csr::MAX_SANS,
        });
    }
    let authorized: Vec<San> = authorized_text
        .iter()
        .map(|s| San::parse(s).map_err(|e| Error::TokenMalformed(format!("claim \"sans\": {e}"))))
        .collect::<Result<_>>()?;
    for requested in csr.sans() {
        if !authorized.contains(requested) {
            return Err(Error::SanNotAuthorized {
                san: requested.to_string(),
                authorized: authorized_text,
            });
        }
    }
    if let Some(cn) = csr.common_name()
        && !cn.is_empty()
        && cn != token.claims.sub
        && !San::parse(cn).is_ok_and(|san| authorized.contains(&san))
    {
        return Err(Error::SanNotAuthorized {
            san: cn.to_string(),
            authorized: authorized_text,
        });
    }

    let not_before = validity.not_before.map_or(now, |t| t.resolve(now));
    let not_after = match validity.not_after {
        Some(t) => t.resolve(now),
        None => not_before + claims.default_tls_duration,
    };
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    if not_after <= not_before {
        return Err(Error::ValidityInverted {
            not_before: rfc3339(not_before),
            not_after: rfc3339(not_after),
        });
    }
    let requested = not_after - not_before;
    if requested < claims.min_tls_duration || requested > claims.max_tls_duration {
        return Err(Error::DurationOutOfRange {
            requested: GoDuration(requested).to_string(),
            min: GoDuration(claims.min_tls_duration).to_string(),
            max: GoDuration(claims.max_tls_duration).to_string(),
        });
    }
    // A notBefore in the past (beyond the backdate) would let a token mint history.
    if not_before < now - backdate - crate::token::LEEWAY {
        return Err(Error::NotBeforeInPast {
            not_before: rfc3339(not_before),
            now: rfc3339(now),
        });
    }
    // Backdate only when the requester did not pin notBefore, like step.
    let not_before = if validity.not_before.is_none() {
        not_before - backdate
    } else {
        not_before
    };

    let common_name = csr
        .common_name()
        .map(str::to_string)
        .unwrap_or_else(|| token.claims.sub.clone());
    Ok(LeafTemplate {
        common_name,
        sans: authorized,
        not_before,
        not_after,
        serial: SerialNumber::random()?,
        rsa_key: csr.is_rsa(),
        provisioner: Some(ProvisionerExtension {
            type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_JWK,
            name: token.provisioner.name.clone(),
            credential_id: token.provisioner.kid.clone(),
        }),
    })
}
