//! Where and how revocation information is published: ca.json's `crl` and `ocsp` blocks
//! resolved into URLs and durations.
//!
//! Relying parties fetch CRLs and OCSP responses over plain HTTP (they cannot be expected to
//! trust the CA's TLS certificate before they can check revocation), so when `insecureAddress`
//! is set the URLs point there; otherwise at the HTTPS address. The first of `dnsNames` is the
//! host. A port is written unless it is the scheme's default, and the very same string goes into
//! certificates and into the CRL, so the two always match.

use time::Duration;

use mayfly_config::urls;

use crate::crl::{CrlSettings, DeltaSettings};
use crate::error::{Error, Result};
use crate::ocsp::OcspSettings;
use crate::store::CrlShard;
use mayfly_config::config::CaConfig;

/// Default lifetime (nextUpdate) of complete CRLs.
pub const DEFAULT_CRL_LIFETIME: Duration = Duration::hours(24);
/// Default lifetime of delta CRLs.
pub const DEFAULT_DELTA_LIFETIME: Duration = Duration::hours(1);
/// Default validity of an OCSP response.
pub const DEFAULT_OCSP_RESPONSE_LIFETIME: Duration = Duration::hours(1);
/// Default lifetime of the delegated OCSP responder certificate.
pub const DEFAULT_OCSP_RESPONDER_LIFETIME: Duration = Duration::hours(24);

/// The CA's revocation publication; both parts are optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publication {
    pub crl: Option<CrlSettings>,
    pub ocsp: Option<OcspSettings>,
    /// Where the intermediate certificate is served, for the AIA caIssuers entry.
    pub ca_issuers_url: Option<String>,
}

/// The addresses the CA is reachable at, once bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicPorts {
    pub https: u16,
    /// The plain-HTTP listener's port, when `insecureAddress` is set.
    pub http: Option<u16>,
}

impl Publication {
    /// Resolves the configuration for a CA listening on `ports`.
    pub fn from_config(config: &CaConfig, ports: PublicPorts) -> Result<Self> {
        let crl_config = config.crl.as_ref().filter(|c| c.enabled);
        let ocsp_config = config.ocsp.as_ref().filter(|c| c.enabled);
        if crl_config.is_none() && ocsp_config.is_none() {
            return Ok(Self::default());
        }
        let base = urls::base_url(config, ports.https, ports.http).map_err(config_error)?;
        let crl = match crl_config {
            None => None,
            Some(c) => {
                let lifetime = positive("crl.cacheDuration", c.cache_duration.map(|d| d.0))?
                    .unwrap_or(DEFAULT_CRL_LIFETIME);
                let renew_after = positive("crl.renewPeriod", c.renew_period.map(|d| d.0))?
                    .unwrap_or(lifetime * 2 / 3);
                if renew_after >= lifetime {
                    return Err(Error::Config(format!(
                        "crl.renewPeriod ({renew_after}) must be shorter than crl.cacheDuration \
                         ({lifetime}), or relying parties would hold an expired CRL"
                    )));
                }
                let url = c
                    .idp_url
                    .clone()
                    .unwrap_or_else(|| format!("{base}{}", urls::CRL));
                check_url("crl.idpURL", &url)?;
                let delta = match c.delta.as_ref().filter(|d| d.enabled) {
                    None => None,
                    Some(d) => {
                        let url = d
                            .url
                            .clone()
                            .unwrap_or_else(|| format!("{base}{}", urls::DELTA_CRL));
                        check_url("crl.delta.url", &url)?;
                        Some(DeltaSettings {
                            url,
                            lifetime: positive(
                                "crl.delta.cacheDuration",
                                d.cache_duration.map(|d| d.0),
                            )?
                            .unwrap_or(DEFAULT_DELTA_LIFETIME),
                        })
                    }
                };
                let shards = c.shards.unwrap_or(1);
                if shards == 0 || shards > CrlShard::MAX_COUNT {
                    return Err(Error::Config(format!(
                        "crl.shards is {shards}; it must be between 1 and {}",
                        CrlShard::MAX_COUNT
                    )));
                }
                let shard_base = format!("{base}{}", urls::SHARD_CRLS);
                check_url("crl.shards", &format!("{shard_base}/{}", shards - 1))?;
                Some(CrlSettings {
                    url,
                    shards,
                    shard_base,
                    lifetime,
                    renew_after,
                    generate_on_revoke: c.generate_on_revoke.unwrap_or(true),
                    keep_expired: c.keep_expired,
                    delta,
                })
            }
        };
        let ocsp = match ocsp_config {
            None => None,
            Some(c) => {
                let url = c
                    .url
                    .clone()
                    .unwrap_or_else(|| format!("{base}{}", urls::OCSP));
                check_url("ocsp.url", &url)?;
                Some(OcspSettings {
                    url,
                    response_lifetime: positive(
                        "ocsp.cacheDuration",
                        c.cache_duration.map(|d| d.0),
                    )?
                    .unwrap_or(DEFAULT_OCSP_RESPONSE_LIFETIME),
                    responder_lifetime: positive(
                        "ocsp.responderLifetime",
                        c.responder_lifetime.map(|d| d.0),
                    )?
                    .unwrap_or(DEFAULT_OCSP_RESPONDER_LIFETIME),
                })
            }
        };
        Ok(Self {
            crl,
            ocsp,
            ca_issuers_url: Some(format!("{base}{}", urls::INTERMEDIATE)),
        })
    }

    /// True when revocations reach relying parties (CRL or OCSP), not only renewals.
    pub fn is_active(&self) -> bool {
        self.crl.is_some() || self.ocsp.is_some()
    }

    /// The URLs written into every leaf. With shards, each leaf's CRL URL is its shard's
    /// (see `CrlSettings::shard_for`), and there is no delta: a delta's scope is the complete
    /// CRL, not a shard.
    pub fn leaf_urls(&self) -> mayfly_pki::crl::RevocationUrls {
        mayfly_pki::crl::RevocationUrls {
            crl: self.crl.as_ref().map(|c| c.url.clone()),
            delta_crl: self
                .crl
                .as_ref()
                .filter(|c| c.shards <= 1)
                .and_then(|c| c.delta.as_ref())
                .map(|d| d.url.clone()),
            ocsp: self.ocsp.as_ref().map(|o| o.url.clone()),
            ca_issuers: self.ocsp.as_ref().and(self.ca_issuers_url.clone()),
        }
    }
}

fn positive(field: &str, value: Option<Duration>) -> Result<Option<Duration>> {
    match value {
        Some(d) if d <= Duration::ZERO => {
            Err(Error::Config(format!("{field} must be longer than 0")))
        }
        other => Ok(other),
    }
}

fn check_url(field: &str, url: &str) -> Result<()> {
    urls::check_url(field, url).map_err(config_error)
}

fn config_error(error: mayfly_config::Error) -> Error {
    Error::Config(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mayfly_config::config::{CrlConfig, DeltaCrlConfig, OcspConfig};

    fn config() -> CaConfig {
        CaConfig {
            dns_names: vec!["ca.internal".into()],
            crl: Some(CrlConfig {
                enabled: true,
                delta: Some(DeltaCrlConfig {
                    enabled: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ocsp: Some(OcspConfig {
                enabled: true,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn urls_prefer_the_plain_http_listener_and_keep_the_port() {
        let ports = PublicPorts {
            https: 9000,
            http: Some(8080),
        };
        let publication = Publication::from_config(&config(), ports).unwrap();
        let urls = publication.leaf_urls();
        assert_eq!(urls.crl.as_deref(), Some("http://ca.internal:8080/1.0/crl"));
        assert_eq!(
            urls.delta_crl.as_deref(),
            Some("http://ca.internal:8080/1.0/crl-delta")
        );
        assert_eq!(urls.ocsp.as_deref(), Some("http://ca.internal:8080/ocsp"));
        let https = Publication::from_config(
            &config(),
            PublicPorts {
                https: 9000,
                http: None,
            },
        )
        .unwrap();
        assert_eq!(https.crl.unwrap().url, "https://ca.internal:9000/1.0/crl");
    }

    #[test]
    fn defaults_and_refusals() {
        let ports = PublicPorts {
            https: 443,
            http: None,
        };
        let crl = Publication::from_config(&config(), ports)
            .unwrap()
            .crl
            .unwrap();
        assert_eq!(crl.lifetime, Duration::hours(24));
        assert_eq!(crl.renew_after, Duration::hours(16));
        assert_eq!(crl.url, "https://ca.internal/1.0/crl");

        let mut bad = config();
        if let Some(c) = bad.crl.as_mut() {
            c.renew_period = Some(mayfly_config::duration::GoDuration(Duration::hours(48)));
        }
        let err = Publication::from_config(&bad, ports)
            .unwrap_err()
            .to_string();
        assert!(err.contains("renewPeriod"), "{err}");

        let mut bad = config();
        if let Some(c) = bad.crl.as_mut() {
            c.idp_url = Some("ldap://x".into());
        }
        let err = Publication::from_config(&bad, ports)
            .unwrap_err()
            .to_string();
        assert!(err.contains("crl.idpURL"), "{err}");

        let mut off = config();
        off.crl = None;
        off.ocsp = None;
        assert!(!Publication::from_config(&off, ports).unwrap().is_active());
    }
}
