//! Typed HTTP client of the mayfly API.
//!
//! Trust is pinned: a [`Client`] verifies the server against the CA's own roots only, never the
//! system store. The one exception is bootstrapping, where the root is not known yet: there the
//! server's certificate is not checked, and the caller must compare the fetched root's
//! fingerprint with one it got out of band ([`Client::bootstrap_root`] does so itself).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
pub use hyper::Method;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mayfly_proto::{
    CertificatesResponse, EncryptedKeyResponse, ErrorBody, HealthResponse, ProvisionerBody,
    ProvisionersResponse, RekeyRequest, RevokeRequest, RootResponse, RootsResponse, SignRequest,
    SignResponse, StatusResponse,
};
use rustls::pki_types::CertificateDer;
use serde::de::DeserializeOwned;

mod danger;
pub mod peer;
mod ssh;
pub mod web;

/// Responses larger than this are refused: no honest reply of this API comes near it.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything that can go wrong talking to a CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0:?} is not a CA URL: expected https://host[:port]")]
    BadUrl(String),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("cannot reach the CA at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the CA answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("unexpected response from the CA: {0}")]
    BadResponse(String),
    #[error("fingerprint {0:?} is not a SHA-256 fingerprint (64 hex digits)")]
    BadFingerprint(String),
    #[error("root fingerprint mismatch: expected {expected}, the CA sent a root with {actual}")]
    FingerprintMismatch { expected: String, actual: String },
    #[error("timed out after {0:?} waiting for the CA")]
    Timeout(Duration),
    #[error("{0}")]
    Provisioner(String),
    /// A request to a service other than the CA ([`web`]) failed.
    #[error("{url}: {detail}")]
    Web { url: String, detail: String },
}

impl Error {
    /// The HTTP status when the CA refused the request.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// An answer as it came, for [`Client::exchange`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// A header's value as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client of one CA.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: HyperClient<Https, Full<Bytes>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client that trusts only `roots` (DER).
    pub fn new(ca_url: &str, roots: &[Vec<u8>]) -> Result<Self> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store
                .add(CertificateDer::from(root.clone()))
                .map_err(|e| Error::Tls(format!("root certificate: {e}")))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Self::with_tls(ca_url, config)
    }

    /// A client that trusts only `roots` and presents `chain` (leaf first, DER) with its key
    /// (PKCS#8 DER) as its TLS client certificate: mutual TLS for `/renew` and `/revoke`.
    pub fn with_identity(
        ca_url: &str,
        roots: &[Vec<u8>],
        chain: &[Vec<u8>],
        key_pkcs8: &[u8],
    ) -> Result<Self> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store
                .add(CertificateDer::from(root.clone()))
                .map_err(|e| Error::Tls(format!("root certificate: {e}")))?;
        }
        let chain: Vec<CertificateDer<'static>> = chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pkcs8.to_vec().into());
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(store)
            .with_client_auth_cert(chain, key)
            .map_err(|e| Error::Tls(format!("client certificate: {e}")))?;
        Self::with_tls(ca_url, config)
    }

    /// A client that does not verify the server. Only for fetching a root whose fingerprint the
    /// caller then checks: use [`Client::bootstrap_root`].
    fn unverified(ca_url: &str) -> Result<Self> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(danger::NoServerVerification::new(
                provider(),
            )))
            .with_no_client_auth();
        Self::with_tls(ca_url, config)
    }

    fn with_tls(ca_url: &str, config: rustls::ClientConfig) -> Result<Self> {
        let base = normalise_url(ca_url)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self { base, http })
    }

    /// The CA URL, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Fetches the root with SHA-256 `fingerprint` and checks the fingerprint itself, whatever
    /// the server claims; then confirms the server's own certificate chains to that root.
    /// Returns the root (DER).
    pub async fn bootstrap_root(ca_url: &str, fingerprint: &str) -> Result<Vec<u8>> {
        let fingerprint = fingerprint.trim().to_ascii_lowercase().replace(':', "");
        if fingerprint.len() != 64 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::BadFingerprint(fingerprint));
        }
        let unverified = Self::unverified(ca_url)?;
        let body: RootResponse = unverified.get_json(&format!("/root/{fingerprint}")).await?;
        let der = mayfly_pki::cert::certificates_from_pem(body.ca.as_bytes())
            .map_err(|e| Error::BadResponse(format!("root: {e}")))?
            .into_iter()
            .next()
            .ok_or_else(|| Error::BadResponse("root: no certificate".into()))?;
        let actual = mayfly_pki::cert::fingerprint_sha256(&der);
        if actual != fingerprint {
            return Err(Error::FingerprintMismatch {
                expected: fingerprint,
                actual,
            });
        }
        Self::new(ca_url, std::slice::from_ref(&der))?
            .health()
            .await?;
        Ok(der)
    }

    pub async fn health(&self) -> Result<HealthResponse> {
        self.get_json("/health").await
    }

    /// The root with this fingerprint, PEM.
    pub async fn root(&self, fingerprint: &str) -> Result<String> {
        let body: RootResponse = self.get_json(&format!("/root/{fingerprint}")).await?;
        Ok(body.ca)
    }

    /// All roots, PEM each.
    pub async fn roots(&self) -> Result<Vec<String>> {
        let body: RootsResponse = self.get_json("/roots").await?;
        Ok(body.crts)
    }

    /// Every provisioner, following pagination.
    pub async fn provisioners(&self) -> Result<Vec<ProvisionerBody>> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        for _ in 0..1000 {
            let page: ProvisionersResponse = self
                .get_json(&format!("/provisioners?cursor={cursor}"))
                .await?;
            all.extend(page.provisioners);
            if page.next_cursor.is_empty() {
                return Ok(all);
            }
            cursor = page.next_cursor;
        }
        Err(Error::BadResponse(
            "provisioner pagination does not end".into(),
        ))
    }

    pub async fn encrypted_key(&self, kid: &str) -> Result<String> {
        let body: EncryptedKeyResponse = self
            .get_json(&format!("/provisioners/{kid}/encrypted-key"))
            .await?;
        Ok(body.key)
    }

    pub async fn sign(&self, request: &SignRequest) -> Result<SignResponse> {
        self.post_json("/1.0/sign", request).await
    }

    /// Renews the client certificate this client presents (see [`Client::with_identity`]).
    pub async fn renew(&self) -> Result<SignResponse> {
        self.send(Method::POST, "/1.0/renew", Bytes::new()).await
    }

    /// Renews the certificate carried in `token` (an x5c JWS signed by its key), for clients that
    /// cannot use mutual TLS.
    pub async fn renew_with_token(&self, token: &str) -> Result<SignResponse> {
        self.send_authorized(Method::POST, "/1.0/renew", Bytes::new(), Some(token))
            .await
    }

    /// Gets a certificate for the new key in `csr_pem`, authenticated by the current certificate
    /// this client presents.
    pub async fn rekey(&self, csr_pem: &str) -> Result<SignResponse> {
        let request = RekeyRequest {
            csr: csr_pem.to_owned(),
        };
        self.post_json("/1.0/rekey", &request).await
    }

    /// Revokes a certificate, authorised by `request.ott` or by the presented certificate.
    pub async fn revoke(&self, request: &RevokeRequest) -> Result<StatusResponse> {
        self.post_json("/1.0/revoke", request).await
    }

    /// One page of `GET /admin/certificates`, authenticated by `token` (an admin provisioner's)
    /// or, without it, by the client certificate this client presents. `status` is `active`,
    /// `revoked` or `expired`; `after` is the previous page's `next`.
    pub async fn certificates_page(
        &self,
        status: Option<&str>,
        after: Option<&str>,
        limit: u32,
        token: Option<&str>,
    ) -> Result<CertificatesResponse> {
        let mut path = format!("/1.0/admin/certificates?limit={limit}");
        if let Some(status) = status {
            path.push_str(&format!("&status={status}"));
        }
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        self.send_authorized(Method::GET, &path, Bytes::new(), token)
            .await
    }

    /// One page of the audit log (admin API), entries after `after`, optionally only about
    /// `serial` or from `since` (RFC 3339) on.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter<'_>,
        after: Option<u64>,
        limit: u32,
        token: Option<&str>,
    ) -> Result<mayfly_proto::AuditResponse> {
        let mut path = format!("/1.0/admin/audit?limit={limit}");
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        if let Some(serial) = filter.serial {
            path.push_str(&format!("&serial={}", query_value(serial)));
        }
        if let Some(since) = filter.since {
            path.push_str(&format!("&since={}", query_value(since)));
        }
        self.send_authorized(Method::GET, &path, Bytes::new(), token)
            .await
    }

    /// The complete CRL (DER), or the delta CRL with `delta`.
    pub async fn crl(&self, delta: bool) -> Result<Vec<u8>> {
        let path = if delta { "/1.0/crl/delta" } else { "/1.0/crl" };
        self.fetch(Method::GET, path, Bytes::new()).await
    }

    /// The intermediate CA certificate that signs leaves and CRLs (DER).
    pub async fn intermediate(&self) -> Result<Vec<u8>> {
        self.fetch(Method::GET, "/1.0/intermediate.crt", Bytes::new())
            .await
    }

    /// Fetches `url` (http or https; https verified against `roots` only), posting `body` with
    /// `content_type` when given: what a relying party does with CRL and OCSP URLs found in a
    /// certificate. Returns the response body.
    pub async fn fetch_url(
        url: &str,
        roots: &[Vec<u8>],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Vec<u8>> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::BadUrl(url.to_string()));
        }
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store
                .add(CertificateDer::from(root.clone()))
                .map_err(|e| Error::Tls(format!("root certificate: {e}")))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client: HyperClient<_, Full<Bytes>> =
            HyperClient::builder(TokioExecutor::new()).build(connector);
        let uri: Uri = url.parse().map_err(|_| Error::BadUrl(url.to_string()))?;
        let (method, content_type, bytes) = match body {
            Some((content_type, bytes)) => (Method::POST, Some(content_type), bytes),
            None => (Method::GET, None, Vec::new()),
        };
        let mut request = Request::builder().method(method).uri(uri).header(
            hyper::header::USER_AGENT,
            concat!("mayfly/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(content_type) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| Error::BadUrl(e.to_string()))?;
        let (status, bytes) = exchange(&client, request, url).await?;
        if !status.is_success() {
            return Err(refusal(status, &bytes));
        }
        Ok(bytes.to_vec())
    }

    /// Sends a request and returns the body of a successful answer as it came (CRLs, KRLs).
    pub(crate) async fn fetch(&self, method: Method, path: &str, body: Bytes) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let uri: Uri = url.parse().map_err(|_| Error::BadUrl(url.clone()))?;
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(
                hyper::header::USER_AGENT,
                concat!("mayfly/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(|e| Error::BadUrl(e.to_string()))?;
        let (status, bytes) = exchange(&self.http, request, &self.base).await?;
        if !status.is_success() {
            return Err(refusal(status, &bytes));
        }
        Ok(bytes.to_vec())
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(Method::GET, path, Bytes::new()).await
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T> {
        let body = serde_json::to_vec(body).map_err(|e| Error::BadResponse(e.to_string()))?;
        self.send(Method::POST, path, Bytes::from(body)).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<T> {
        self.send_authorized(method, path, body, None).await
    }

    /// Sends a request to a full URL of this CA with the given content type and returns the
    /// answer whatever its status: for protocols with their own error bodies (ACME).
    pub async fn exchange(
        &self,
        method: Method,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<RawResponse> {
        let uri: Uri = url.parse().map_err(|_| Error::BadUrl(url.to_string()))?;
        let mut request = Request::builder().method(method).uri(uri).header(
            hyper::header::USER_AGENT,
            concat!("mayfly/", env!("CARGO_PKG_VERSION")),
        );
        if !content_type.is_empty() {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::BadUrl(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| Error::Unreachable {
                    url: self.base.clone(),
                    detail: error_chain(&e),
                })?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let limited = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
            let body = limited
                .collect()
                .await
                .map_err(|e| Error::BadResponse(format!("reading the body: {e}")))?
                .to_bytes()
                .to_vec();
            Ok::<_, Error>(RawResponse {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::Timeout(REQUEST_TIMEOUT))?
    }

    async fn send_authorized<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        bearer: Option<&str>,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let uri: Uri = url.parse().map_err(|_| Error::BadUrl(url.clone()))?;
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("mayfly/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(|e| Error::BadUrl(e.to_string()))?;
        let (status, bytes) = exchange(&self.http, request, &self.base).await?;
        if !status.is_success() {
            return Err(refusal(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::BadResponse(format!("{path}: {e}")))
    }
}

/// Sends `request` and reads the whole body (bounded in size and time).
async fn exchange<C>(
    client: &HyperClient<C, Full<Bytes>>,
    request: Request<Full<Bytes>>,
    url: &str,
) -> Result<(StatusCode, Bytes)>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| Error::Unreachable {
                url: url.to_string(),
                detail: error_chain(&e),
            })?;
        let status = response.status();
        let limited = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| Error::BadResponse(format!("reading the body: {e}")))?
            .to_bytes();
        Ok::<_, Error>((status, bytes))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| Error::Timeout(REQUEST_TIMEOUT))?
}

/// The error for a non-2xx answer, with the API's message when the body carries one.
fn refusal(status: StatusCode, bytes: &[u8]) -> Error {
    let message = serde_json::from_slice::<ErrorBody>(bytes)
        .map(|b| b.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).chars().take(200).collect());
    Error::Refused {
        status: status.as_u16(),
        message,
    }
}

/// Picks the JWK provisioner named `name`, or the only JWK provisioner when no name is given.
pub fn choose_jwk_provisioner<'a>(
    provisioners: &'a [ProvisionerBody],
    name: Option<&str>,
) -> Result<&'a ProvisionerBody> {
    let names = || {
        provisioners
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut jwk = provisioners
        .iter()
        .filter(|p| p.kind.eq_ignore_ascii_case("JWK"));
    match name {
        Some(name) => jwk.find(|p| p.name == name).ok_or_else(|| {
            Error::Provisioner(format!(
                "the CA has no JWK provisioner named {name:?} (it has: {})",
                names()
            ))
        }),
        None => match (jwk.next(), jwk.next()) {
            (Some(only), None) => Ok(only),
            (None, _) => Err(Error::Provisioner("the CA has no JWK provisioner".into())),
            (Some(_), Some(_)) => Err(Error::Provisioner(format!(
                "the CA has several JWK provisioners ({}): choose one with --provisioner",
                names()
            ))),
        },
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// `https://host[:port]` without a trailing slash or path.
fn normalise_url(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let uri: Uri = trimmed
        .parse()
        .map_err(|_| Error::BadUrl(url.to_string()))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() || uri.path().len() > 1 {
        return Err(Error::BadUrl(url.to_string()));
    }
    Ok(trimmed.to_string())
}

/// Joins an error's sources into one line: hyper's top-level message alone says only
/// "client error (Connect)".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// Which audit entries [`Client::audit_page`] asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFilter<'a> {
    /// Only entries about this decimal serial number.
    pub serial: Option<&'a str>,
    /// Only entries at or after this RFC 3339 time.
    pub since: Option<&'a str>,
}

/// `value` percent-encoded for a query string: everything but unreserved characters (an RFC 3339
/// time's `+` would otherwise read as a space).
fn query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, name: &str) -> ProvisionerBody {
        ProvisionerBody {
            kind: kind.into(),
            name: name.into(),
            key: None,
            encrypted_key: None,
            claims: None,
            oidc: None,
        }
    }

    #[test]
    fn the_only_jwk_provisioner_or_the_named_one_is_chosen() {
        let list = vec![body("ACME", "acme"), body("jwk", "dev")];
        assert_eq!(choose_jwk_provisioner(&list, None).unwrap().name, "dev");
        assert_eq!(
            choose_jwk_provisioner(&list, Some("dev")).unwrap().name,
            "dev"
        );
        let err = choose_jwk_provisioner(&list, Some("acme"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no JWK provisioner named \"acme\" (it has: acme, dev)"),
            "{err}"
        );
        let two = vec![body("JWK", "a"), body("JWK", "b")];
        let err = choose_jwk_provisioner(&two, None).unwrap_err().to_string();
        assert!(err.contains("several JWK provisioners (a, b)"), "{err}");
        assert!(choose_jwk_provisioner(&[], None).is_err());
    }

    #[test]
    fn urls_must_be_https_hosts() {
        assert_eq!(
            normalise_url("https://ca.internal:9000/").unwrap(),
            "https://ca.internal:9000"
        );
        for bad in ["http://ca", "ca.internal", "https://", "https://ca/x", ""] {
            assert!(normalise_url(bad).is_err(), "{bad}");
        }
    }
}
