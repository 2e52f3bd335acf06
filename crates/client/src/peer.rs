//! Fetching a TLS server's certificate chain, for `mayfly certificate inspect https://…`.
//!
//! This is not an API call: the server may be any TLS endpoint, so no HTTP is spoken. The
//! handshake alone yields the chain. Verification is against caller-given roots only (never the
//! system store, as everywhere in this crate), or deliberately skipped when the caller wants to
//! look at a certificate it does not trust yet; the handshake signature is checked either way.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{Error, Result};

/// Same budget as the API client's connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The handshake gets its own budget: a server that accepts TCP and then stalls must not hang us.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The close_notify is a courtesy; do not wait long for it.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Connects to `url` (`https://host[:port]`, port 443 by default; a path is ignored) and returns
/// the certificate chain the server sent, leaf first, as DER.
///
/// With `roots` (DER), the chain must verify to one of them for the URL's host (a DNS name or an
/// IP address). With `None`, the server's certificate is not verified at all.
pub async fn peer_certificate_chain(url: &str, roots: Option<&[Vec<u8>]>) -> Result<Vec<Vec<u8>>> {
    let target = Target::parse(url)?;
    let config = client_config(roots)?;
    let server_name = ServerName::try_from(target.host.clone())
        .map_err(|e| Error::BadUrl(format!("{url} (host {:?}: {e})", target.host)))?;

    let unreachable = |detail: String| Error::Unreachable {
        url: target.display(),
        detail,
    };
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| unreachable(format!("no TCP connection within {CONNECT_TIMEOUT:?}")))?
    .map_err(|e| unreachable(e.to_string()))?;
    // Nagle only delays the handshake's small records.
    let _ = tcp.set_nodelay(true);

    let connector = TlsConnector::from(Arc::new(config));
    let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(server_name, tcp))
        .await
        .map_err(|_| Error::Timeout(HANDSHAKE_TIMEOUT))?
        .map_err(|e| {
            Error::Tls(format!(
                "handshake with {}: {}",
                target.display(),
                handshake_detail(&e)
            ))
        })?;

    let chain: Vec<Vec<u8>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
        .unwrap_or_default();

    // Say goodbye properly, so the server logs a clean close rather than a reset.
    let _ = tokio::time::timeout(
        SHUTDOWN_TIMEOUT,
        std::future::poll_fn(|cx| {
            tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut tls), cx)
        }),
    )
    .await;

    if chain.is_empty() {
        return Err(Error::Tls(format!(
            "{} sent no certificate",
            target.display()
        )));
    }
    Ok(chain)
}

/// The host and port of an `https://` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// Without the brackets of an IPv6 literal: that is the form both SNI and connect take.
    host: String,
    port: u16,
}

impl Target {
    fn parse(url: &str) -> Result<Self> {
        let bad = || Error::BadUrl(url.to_string());
        let uri: Uri = url.trim().parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("https") {
            return Err(bad());
        }
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Ok(Self {
            host: host.to_string(),
            port: uri.port_u16().unwrap_or(443),
        })
    }

    /// `host:port`, with brackets around an IPv6 address.
    fn display(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

fn client_config(roots: Option<&[Vec<u8>]>) -> Result<rustls::ClientConfig> {
    let provider = crate::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let config = match roots {
        Some(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for root in roots {
                store
                    .add(CertificateDer::from(root.clone()))
                    .map_err(|e| Error::Tls(format!("root certificate: {e}")))?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::danger::NoServerVerification::new(
                provider,
            )))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// rustls' own message for a verification failure is terse ("invalid peer certificate:
/// UnknownIssuer"); say what it means for the user.
fn handshake_detail(error: &std::io::Error) -> String {
    let text = error.to_string();
    let hint = match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            "; the server's certificate does not chain to the given roots (pass other roots, or --insecure to skip verification)"
        }
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        )) => "; the server's certificate is not valid for this host name",
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. },
        )) => "; the server's certificate has expired",
        _ => "",
    };
    format!("{text}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        let cases = [
            ("https://example.internal", "example.internal", 443),
            ("https://example.internal:8443/", "example.internal", 8443),
            ("https://127.0.0.1:9000/some/path", "127.0.0.1", 9000),
            ("https://[::1]:4433", "::1", 4433),
        ];
        for (url, host, port) in cases {
            assert_eq!(
                Target::parse(url).unwrap(),
                Target {
                    host: host.into(),
                    port
                },
                "{url}"
            );
        }
        assert_eq!(
            Target::parse("https://[::1]:4433").unwrap().display(),
            "[::1]:4433"
        );
    }

    #[test]
    fn non_https_urls_are_refused() {
        for bad in [
            "http://example.internal",
            "example.internal:443",
            "https://",
            "",
            "ftp://x",
        ] {
            assert!(matches!(Target::parse(bad), Err(Error::BadUrl(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported() {
        // Bind and drop a listener to get a port that refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = peer_certificate_chain(&format!("https://127.0.0.1:{port}"), None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    }
}
