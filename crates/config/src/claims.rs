//! Provisioner claims: the bounds of what a provisioner may issue. Global claims in
//! `authority.claims` apply where a provisioner sets none.

use serde::{Deserialize, Serialize};

use crate::duration::GoDuration;
use crate::error::{Error, Result};

/// Claims as ca.json writes them (step's names). Unset fields inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsConfig {
    #[serde(rename = "minTLSCertDuration", skip_serializing_if = "Option::is_none")]
    pub min_tls_cert_duration: Option<GoDuration>,
    #[serde(rename = "maxTLSCertDuration", skip_serializing_if = "Option::is_none")]
    pub max_tls_cert_duration: Option<GoDuration>,
    #[serde(
        rename = "defaultTLSCertDuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_tls_cert_duration: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_renewal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_renewal_after_expiry: Option<bool>,
    #[serde(rename = "enableSSHCA", skip_serializing_if = "Option::is_none")]
    pub enable_ssh_ca: Option<bool>,
    #[serde(
        rename = "minUserSSHCertDuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_user_ssh_cert_duration: Option<GoDuration>,
    #[serde(
        rename = "maxUserSSHCertDuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_user_ssh_cert_duration: Option<GoDuration>,
    #[serde(
        rename = "defaultUserSSHCertDuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_user_ssh_cert_duration: Option<GoDuration>,
    #[serde(
        rename = "minHostSSHCertDuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_host_ssh_cert_duration: Option<GoDuration>,
    #[serde(
        rename = "maxHostSSHCertDuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_host_ssh_cert_duration: Option<GoDuration>,
    #[serde(
        rename = "defaultHostSSHCertDuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_host_ssh_cert_duration: Option<GoDuration>,
}

/// Resolved X.509 claims of one provisioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub min_tls_duration: time::Duration,
    pub max_tls_duration: time::Duration,
    pub default_tls_duration: time::Duration,
    pub disable_renewal: bool,
    pub allow_renewal_after_expiry: bool,
}

impl Claims {
    /// step's defaults (seed 002): 5 minutes to 24 hours, 24 hours by default.
    pub const DEFAULT: Claims = Claims {
        min_tls_duration: time::Duration::minutes(5),
        max_tls_duration: time::Duration::hours(24),
        default_tls_duration: time::Duration::hours(24),
        disable_renewal: false,
        allow_renewal_after_expiry: false,
    };

    /// Applies `config` over `base` and checks that min ≤ default ≤ max.
    pub fn resolve(base: Claims, config: Option<&ClaimsConfig>) -> Result<Claims> {
        let Some(config) = config else {
            return Ok(base);
        };
        let pick =
            |value: Option<GoDuration>, fallback: time::Duration| value.map_or(fallback, |d| d.0);
        let claims = Claims {
            min_tls_duration: pick(config.min_tls_cert_duration, base.min_tls_duration),
            max_tls_duration: pick(config.max_tls_cert_duration, base.max_tls_duration),
            default_tls_duration: pick(config.default_tls_cert_duration, base.default_tls_duration),
            disable_renewal: config.disable_renewal.unwrap_or(base.disable_renewal),
            allow_renewal_after_expiry: config
                .allow_renewal_after_expiry
                .unwrap_or(base.allow_renewal_after_expiry),
        };
        if claims.min_tls_duration <= time::Duration::ZERO
            || claims.min_tls_duration > claims.default_tls_duration
            || claims.default_tls_duration > claims.max_tls_duration
        {
            return Err(Error::Config(format!(
                "claims must satisfy 0 < minTLSCertDuration ({}) <= defaultTLSCertDuration ({}) <= maxTLSCertDuration ({})",
                GoDuration(claims.min_tls_duration),
                GoDuration(claims.default_tls_duration),
                GoDuration(claims.max_tls_duration)
            )));
        }
        Ok(claims)
    }
}
