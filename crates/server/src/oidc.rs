//! The HTTPS client OIDC provisioners fetch their providers' discovery documents and keys with.
//!
//! Providers are trusted as step-ca trusts them: through the system's certificate store, or
//! the files `SSL_CERT_FILE` and `SSL_CERT_DIR` name instead. Only https; a 200 or nothing; a
//! timeout and a size limit, so a slow or hostile provider cannot hold the CA up.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mayfly_authority::credential::oidc::keys::{Fetch, Fetched};
use mayfly_authority::store::BoxFuture;

/// A discovery document or key set is a few KiB.
const MAX_BODY: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches over HTTPS, trusting the system's roots.
pub struct HttpsFetch {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl std::fmt::Debug for HttpsFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsFetch").finish_non_exhaustive()
    }
}

impl HttpsFetch {
    /// Loads the trusted roots: the system's store, or `SSL_CERT_FILE` / `SSL_CERT_DIR`.
    pub fn new() -> anyhow::Result<Self> {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "reading the system's trusted certificates");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (_, unreadable) = roots.add_parsable_certificates(loaded.certs);
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "some of the system's trusted certificates cannot be used"
            );
        }
        if roots.is_empty() {
            tracing::warn!(
                "no trusted certificates found (system store, SSL_CERT_FILE, SSL_CERT_DIR): \
                 OIDC providers cannot be reached"
            );
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn fetch(&self, url: &str) -> Result<Fetched, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let request = Request::get(uri)
            .header(hyper::header::ACCEPT, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("mayfly-ca/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
            let status = response.status();
            if status != StatusCode::OK {
                return Err(format!("{url}: HTTP {status}"));
            }
            let max_age = response
                .headers()
                .get(hyper::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(max_age);
            let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the body: {e}"))?
                .to_bytes()
                .to_vec();
            Ok(Fetched { body, max_age })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{url}: no answer within {} s", TIMEOUT.as_secs()))?
    }
}

impl Fetch for HttpsFetch {
    fn get<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Fetched, String>> {
        Box::pin(self.fetch(url))
    }
}

/// `max-age=N` of a Cache-Control header.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

/// An error with its causes, which hyper keeps apart (the TLS reason is a cause's cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=3600, must-revalidate"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
