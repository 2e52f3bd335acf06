//! What every request carries for observability: an id on every log line of the request and in
//! its `X-Request-Id` response header, the client's address for the audit log, and its route,
//! status and latency in the metrics.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::serve::PeerCertificates;

/// The request id header, as step-ca names it.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Latency of HTTP requests, by route, method and status.
pub const HTTP_REQUEST_SECONDS: &str = "mayfly_http_request_duration_seconds";

/// A client's own request id is kept when it is this short and plain, so ids can be followed
/// across a proxy; anything else is replaced rather than written into the logs.
const MAX_CLIENT_ID: usize = 64;

/// Wraps a request: see the module documentation.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(request.headers().get(&REQUEST_ID));
    let method = method_label(request.method());
    let route = crate::metrics::enabled().then(|| {
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned())
    });
    let remote = request
        .extensions()
        .get::<PeerCertificates>()
        .map(|peer| peer.remote);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method,
        path = %request.uri().path(),
        remote = tracing::field::Empty,
    );
    if let Some(remote) = remote {
        span.record("remote", tracing::field::display(remote));
    }
    let serving = mayfly_authority::audit::with_client_address(
        remote.map(|address| address.ip()),
        next.run(request),
    );
    let mut response = serving.instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(route) = route {
        metrics::histogram!(
            HTTP_REQUEST_SECONDS,
            "route" => route,
            "method" => method,
            "status" => response.status().as_u16().to_string(),
        )
        .record(started.elapsed().as_secs_f64());
    }
    response
}

/// The client's id when it is plain enough to log, else a new one: a random prefix chosen once
/// per process (so instances sharing a database do not collide) and a counter.
fn request_id(client: Option<&HeaderValue>) -> String {
    if let Some(id) = client.and_then(|value| value.to_str().ok())
        && !id.is_empty()
        && id.len() <= MAX_CLIENT_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return id.to_owned();
    }
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        mayfly_pki::random::random_hex(4).unwrap_or_else(|_| format!("{:08x}", std::process::id()))
    });
    format!(
        "{prefix}-{:06x}",
        COUNTER.fetch_add(1, Ordering::Relaxed) + 1
    )
}

/// Methods as fixed label values; anything unusual is one value, so clients cannot make new
/// series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_client_id_is_kept_and_anything_else_replaced() {
        let kept = HeaderValue::from_static("trace-42.a_b");
        assert_eq!(request_id(Some(&kept)), "trace-42.a_b");
        for bad in [
            "has space",
            "quote\"",
            "new\\nline",
            "",
            &"x".repeat(MAX_CLIENT_ID + 1),
        ] {
            let value = HeaderValue::from_str(bad).unwrap();
            let id = request_id(Some(&value));
            assert_ne!(id, bad);
            assert!(id.contains('-'), "{id}");
        }
        let (a, b) = (request_id(None), request_id(None));
        assert_ne!(a, b, "each request gets its own id");
    }
}
