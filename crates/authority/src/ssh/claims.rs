//! SSH claims of a provisioner: whether it may sign SSH certificates, and for how long.

use crate::error::{Error, Result};
use mayfly_config::claims::ClaimsConfig;
use mayfly_config::duration::GoDuration;

/// Resolved SSH claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshClaims {
    /// `enableSSHCA`: off unless set, as in step.
    pub enabled: bool,
    pub user_min: time::Duration,
    pub user_max: time::Duration,
    pub user_default: time::Duration,
    pub host_min: time::Duration,
    pub host_max: time::Duration,
    pub host_default: time::Duration,
}

impl SshClaims {
    /// step's defaults: users 16 h (5 min to 24 h), hosts 30 days (5 min to 30 days).
    pub const DEFAULT: SshClaims = SshClaims {
        enabled: false,
        user_min: time::Duration::minutes(5),
        user_max: time::Duration::hours(24),
        user_default: time::Duration::hours(16),
        host_min: time::Duration::minutes(5),
        host_max: time::Duration::days(30),
        host_default: time::Duration::days(30),
    };

    /// Applies `config` over `base` and checks min ≤ default ≤ max for users and hosts.
    pub fn resolve(base: SshClaims, config: Option<&ClaimsConfig>) -> Result<SshClaims> {
        let Some(c) = config else {
            return Ok(base);
        };
        let pick = |v: Option<GoDuration>, fallback: time::Duration| v.map_or(fallback, |d| d.0);
        let claims = SshClaims {
            enabled: c.enable_ssh_ca.unwrap_or(base.enabled),
            user_min: pick(c.min_user_ssh_cert_duration, base.user_min),
            user_max: pick(c.max_user_ssh_cert_duration, base.user_max),
            user_default: pick(c.default_user_ssh_cert_duration, base.user_default),
            host_min: pick(c.min_host_ssh_cert_duration, base.host_min),
            host_max: pick(c.max_host_ssh_cert_duration, base.host_max),
            host_default: pick(c.default_host_ssh_cert_duration, base.host_default),
        };
        for (who, min, default, max) in [
            (
                "User",
                claims.user_min,
                claims.user_default,
                claims.user_max,
            ),
            (
                "Host",
                claims.host_min,
                claims.host_default,
                claims.host_max,
            ),
        ] {
            if min <= time::Duration::ZERO || min > default || default > max {
                return Err(Error::Config(format!(
                    "claims must satisfy 0 < min{who}SSHCertDuration ({}) <= default{who}SSHCertDuration ({}) <= max{who}SSHCertDuration ({})",
                    GoDuration(min),
                    GoDuration(default),
                    GoDuration(max)
                )));
            }
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_inherit_and_bad_bounds_name_the_fields() {
        let global: ClaimsConfig =
            serde_json::from_str(r#"{"enableSSHCA": true, "maxHostSSHCertDuration": "1440h"}"#)
                .unwrap();
        let global = SshClaims::resolve(SshClaims::DEFAULT, Some(&global)).unwrap();
        assert!(global.enabled);
        assert_eq!(global.host_max, time::Duration::days(60));
        let own: ClaimsConfig =
            serde_json::from_str(r#"{"defaultUserSSHCertDuration": "8h"}"#).unwrap();
        let own = SshClaims::resolve(global, Some(&own)).unwrap();
        assert!(own.enabled, "inherited");
        assert_eq!(own.user_default, time::Duration::hours(8));
        assert_eq!(own.host_max, time::Duration::days(60), "inherited");

        let bad: ClaimsConfig =
            serde_json::from_str(r#"{"defaultUserSSHCertDuration": "48h"}"#).unwrap();
        let err = SshClaims::resolve(SshClaims::DEFAULT, Some(&bad))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("defaultUserSSHCertDuration (48h0m0s)"),
            "{err}"
        );
        assert!(err.contains("maxUserSSHCertDuration (24h0m0s)"), "{err}");
    }
}
