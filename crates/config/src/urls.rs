//! Where relying parties fetch revocation information: the paths, and the base URL in front of
//! them. One definition for what writes URLs into certificates (`ca init`, the authority), what
//! serves them (mayfly-ca) and what publishes them as files, so the three always agree.
//!
//! No path is a prefix directory of another path's file (`/1.0/crl` is a file, shards live under
//! `/1.0/crls/`), so the same layout works as files on a plain web server.

use crate::config::CaConfig;
use crate::error::{Error, Result};

/// The complete CRL (step-ca's path).
pub const CRL: &str = "/1.0/crl";
/// The delta CRL.
pub const DELTA_CRL: &str = "/1.0/crl-delta";
/// The directory of the CRL shards: `/1.0/crls/<index>`.
pub const SHARD_CRLS: &str = "/1.0/crls";
/// The root's CRL, where intermediates made by `ca init` point.
pub const ROOT_CRL: &str = "/1.0/root.crl";
/// The OCSP responder; GET requests append the request (RFC 5019).
pub const OCSP: &str = "/ocsp";
/// The intermediate certificate, DER (AIA caIssuers).
pub const INTERMEDIATE: &str = "/1.0/intermediate.crt";
/// The roots, PEM (step-ca's path).
pub const ROOTS_PEM: &str = "/roots.pem";
/// The SSH key revocation list (step-ca's path).
pub const SSH_KRL: &str = "/1.0/ssh/krl";

/// Longest URL written into certificates and remembered for a CRL shard.
pub const MAX_URL_LEN: usize = 512;

/// The path of shard `index`'s CRL.
pub fn shard_crl(index: u16) -> String {
    format!("{SHARD_CRLS}/{index}")
}

/// The base URL relying parties fetch from: `publication.baseURL` when set, else the first of
/// `dnsNames` on the plain-HTTP listener (`http_port`) when there is one, else on the HTTPS
/// listener. A port is written unless it is the scheme's default. No trailing slash.
pub fn base_url(config: &CaConfig, https_port: u16, http_port: Option<u16>) -> Result<String> {
    if let Some(base) = config
        .publication
        .as_ref()
        .and_then(|p| p.base_url.as_deref())
    {
        check_url("publication.baseURL", base)?;
        return Ok(base.trim_end_matches('/').to_owned());
    }
    let host = config.dns_names.first().ok_or_else(|| {
        Error::Config("dnsNames is empty: CRL and OCSP URLs need the CA's host name".into())
    })?;
    Ok(derived_base(host, https_port, http_port))
}

/// `http://host[:port]` on the plain listener, else `https://host[:port]`.
pub fn derived_base(host: &str, https_port: u16, http_port: Option<u16>) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match http_port {
        Some(80) => format!("http://{host}"),
        Some(port) => format!("http://{host}:{port}"),
        None if https_port == 443 => format!("https://{host}"),
        None => format!("https://{host}:{https_port}"),
    }
}

/// Refuses what is not an absolute http(s) URL of printable ASCII within [`MAX_URL_LEN`].
pub fn check_url(field: &str, url: &str) -> Result<()> {
    let valid = (url.starts_with("http://") || url.starts_with("https://"))
        && url.is_ascii()
        && !url.contains(|c: char| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(Error::Config(format!(
            "{field} {url:?} is not an http:// or https:// URL"
        )));
    }
    if url.len() > MAX_URL_LEN {
        return Err(Error::Config(format!(
            "{field} is {} bytes long; URLs written into certificates are kept to {MAX_URL_LEN}",
            url.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PublicationConfig;

    #[test]
    fn the_base_prefers_the_configured_one_then_plain_http() {
        let mut config = CaConfig {
            dns_names: vec!["ca.internal".into(), "10.0.0.1".into()],
            ..Default::default()
        };
        assert_eq!(
            base_url(&config, 9000, Some(8080)).unwrap(),
            "http://ca.internal:8080"
        );
        assert_eq!(
            base_url(&config, 9000, Some(80)).unwrap(),
            "http://ca.internal"
        );
        assert_eq!(base_url(&config, 443, None).unwrap(), "https://ca.internal");
        assert_eq!(derived_base("::1", 9000, None), "https://[::1]:9000");
        config.publication = Some(PublicationConfig {
            base_url: Some("http://pki.example.com/ca/".into()),
            ..Default::default()
        });
        assert_eq!(
            base_url(&config, 9000, Some(8080)).unwrap(),
            "http://pki.example.com/ca"
        );
        config.publication = Some(PublicationConfig {
            base_url: Some("ftp://pki.example.com".into()),
            ..Default::default()
        });
        assert!(base_url(&config, 9000, None).is_err());
        config.publication = None;
        config.dns_names.clear();
        assert!(base_url(&config, 9000, None).is_err());
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("x", "http://a.example/crl").is_ok());
        assert!(check_url("x", "https://a.example/crl").is_ok());
        for bad in [
            "a.example/crl",
            "http://a b",
            "http://ä.example",
            "http://a\n",
        ] {
            assert!(check_url("x", bad).is_err(), "{bad:?}");
        }
        let long = format!("http://a.example/{}", "x".repeat(MAX_URL_LEN));
        assert!(check_url("x", &long).is_err());
    }

    #[test]
    fn no_path_is_a_directory_of_another_file() {
        let files = [CRL, DELTA_CRL, ROOT_CRL, INTERMEDIATE, ROOTS_PEM, SSH_KRL];
        for file in files {
            for other in files.iter().chain([&SHARD_CRLS, &OCSP]) {
                assert!(
                    !other.starts_with(&format!("{file}/")),
                    "{other} is under the file {file}"
                );
            }
        }
        assert_eq!(shard_crl(7), "/1.0/crls/7");
    }
}
