//! Requests to services other than the CA, such as an OpenID provider during a login: https
//! only, trusted through the system's certificate store, or the files `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` name instead (as step and Go programs do). The CA itself is never reached
//! this way: its trust is pinned to its root.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Error, RawResponse, Result};

/// A provider's answers are small documents.
const MAX_BODY: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

fn failed(url: &str, detail: impl Into<String>) -> Error {
    Error::Web {
        url: url.to_string(),
        detail: detail.into(),
    }
}

/// GETs `url`.
pub async fn get(url: &str) -> Result<RawResponse> {
    send(Method::GET, url, None).await
}

/// POSTs `form` to `url` as `application/x-www-form-urlencoded`.
pub async fn post_form(url: &str, form: &[(&str, &str)]) -> Result<RawResponse> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    send(Method::POST, url, Some(body.into_bytes())).await
}

async fn send(method: Method, url: &str, form: Option<Vec<u8>>) -> Result<RawResponse> {
    if !url.starts_with("https://") {
        return Err(failed(url, "only https URLs are fetched"));
    }
    let uri: Uri = url.parse().map_err(|e| failed(url, format!("{e}")))?;
    let client = client()?;
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("mayfly/", env!("CARGO_PKG_VERSION")),
        );
    if form.is_some() {
        request = request.header(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    }
    let request = request
        .body(Full::new(Bytes::from(form.unwrap_or_default())))
        .map_err(|e| failed(url, e.to_string()))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| failed(url, crate::error_chain(&e)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| failed(url, format!("reading the body: {e}")))?
            .to_bytes()
            .to_vec();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| failed(url, format!("no answer within {} s", TIMEOUT.as_secs())))?
}

fn client() -> Result<HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(loaded.certs);
    if roots.is_empty() {
        let why = loaded
            .errors
            .first()
            .map(ToString::to_string)
            .unwrap_or_else(|| "none found".into());
        return Err(Error::Tls(format!(
            "no trusted certificates (system store, SSL_CERT_FILE, SSL_CERT_DIR): {why}"
        )));
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(HyperClient::builder(TokioExecutor::new()).build(connector))
}
