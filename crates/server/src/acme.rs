//! The ACME routes (RFC 8555) at `/acme/{provisioner}/…` and `/2.0/acme/{provisioner}/…`.
//!
//! Handlers only translate: the request's URL, content type and body go to `mayfly-acme`, whose
//! [`Reply`] or [`Error`] becomes the response here. Errors are problem documents
//! (`application/problem+json`) carrying the RFC 8555 type the acme crate named; every response
//! carries a fresh `Replay-Nonce` and a `Link` to the directory.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mayfly_acme::{Acme, Error, ErrorKind, Reply, ReplyBody, Request};
use mayfly_authority::Authority;

use crate::api::AppState;
use crate::serve::PeerCertificates;

const PREFIXES: &[&str] = &["/acme", "/2.0/acme"];

/// The ACME routes, under both prefixes.
pub fn router() -> Router<Arc<AppState>> {
    let mut router = Router::new();
    for prefix in PREFIXES {
        router = router
            .route(
                &format!("{prefix}/{{provisioner}}/directory"),
                get(directory),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/new-nonce"),
                get(new_nonce_get).head(new_nonce_head),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/new-account"),
                post(new_account),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/new-order"),
                post(new_order),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/revoke-cert"),
                post(revoke),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/key-change"),
                post(key_change),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/account/{{id}}"),
                post(account),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/account/{{id}}/orders"),
                post(account_orders),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/order/{{id}}"),
                post(order),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/order/{{id}}/finalize"),
                post(finalize),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/authz/{{id}}"),
                post(authorization),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/challenge/{{id}}/{{index}}"),
                post(challenge),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/certificate/{{serial}}"),
                post(certificate),
            )
            .route(
                &format!("{prefix}/{{provisioner}}/renewal-info/{{cert_id}}"),
                get(renewal_info),
            );
    }
    router
}

/// What every ACME handler works from, extracted from the request.
struct Context {
    authority: Arc<Authority>,
    acme: Acme,
    base_url: String,
    url: String,
    content_type: Option<String>,
    /// The client's address, which the per-address limits count against.
    client: Option<IpAddr>,
}

impl FromRequestParts<Arc<AppState>> for Context {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<PeerCertificates>()
            .map(|peer| peer.remote.ip());
        Context::new(state, &parts.headers, &parts.uri, client).map_err(IntoResponse::into_response)
    }
}

impl Context {
    fn new(
        state: &AppState,
        headers: &HeaderMap,
        uri: &Uri,
        client: Option<IpAddr>,
    ) -> Result<Self, AcmeResponseError> {
        let authority = state.authority();
        let acme = state
            .acme()
            .cloned()
            .ok_or_else(|| AcmeResponseError::bare(Error::NotFound("ACME".into())))?;
        let requested = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()));
        let host = url_host(requested, authority.dns_names(), state.https_port());
        let path = uri.path();
        let prefix = PREFIXES
            .iter()
            .rev()
            .find(|p| path.starts_with(&format!("{p}/")))
            .copied()
            .unwrap_or("/acme");
        // The provisioner segment as sent (still percent-encoded), so URLs round-trip.
        let segment = path[prefix.len() + 1..].split('/').next().unwrap_or("");
        let base_url = format!("https://{host}{prefix}/{segment}");
        Ok(Context {
            authority,
            acme,
            base_url,
            url: format!("https://{host}{path}"),
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            client,
        })
    }

    fn request<'a>(&'a self, body: &'a [u8]) -> Request<'a> {
        Request {
            base_url: &self.base_url,
            url: &self.url,
            content_type: self.content_type.as_deref(),
            body,
            client: self.client,
        }
    }

    /// A fresh nonce for the response; none when the client holds as many unused ones as it
    /// may (RFC 8555 6.5 asks for one in error responses only as a SHOULD).
    async fn nonce(&self) -> Option<HeaderValue> {
        match self.acme.new_nonce(&self.authority, self.client).await {
            Ok(nonce) => HeaderValue::from_str(&nonce).ok(),
            Err(Error::RateLimited { .. }) => None,
            Err(e) => {
                tracing::error!(error = %e, "creating a nonce failed");
                None
            }
        }
    }

    async fn respond(&self, result: Result<Reply, Error>) -> Response {
        let nonce = self.nonce().await;
        let index =
            HeaderValue::from_str(&format!("<{}/directory>;rel=\"index\"", self.base_url)).ok();
        let mut response = match result {
            Ok(reply) => render(reply),
            Err(error) => AcmeResponseError::bare(error).into_response(),
        };
        let headers = response.headers_mut();
        if let Some(nonce) = nonce {
            headers.insert("replay-nonce", nonce);
        }
        if let Some(index) = index {
            headers.append(header::LINK, index);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The `host[:port]` of every URL an ACME answer carries: the one the client asked for when its
/// host is one of the CA's names (so a client behind a load balancer gets its own port back),
/// else the CA's first name on its own port. A `Host` header is the client's to choose: taken
/// as it came, it would let anyone make the directory point elsewhere.
fn url_host(requested: Option<&str>, dns_names: &[String], port: u16) -> String {
    let known = |name: &str| dns_names.iter().any(|n| n.eq_ignore_ascii_case(name));
    if let Some(requested) = requested {
        let (name, port_text) = match requested.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((name, tail)) => (name, tail.strip_prefix(':')),
                None => ("", None),
            },
            None => match requested.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (requested, None),
            },
        };
        let port_ok = port_text.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
        if !name.is_empty() && port_ok && known(name) {
            return requested.to_owned();
        }
    }
    let name = dns_names.first().map_or("localhost", String::as_str);
    let name = if name.contains(':') {
        format!("[{name}]")
    } else {
        name.to_owned()
    };
    if port == 443 {
        name
    } else {
        format!("{name}:{port}")
    }
}

fn render(reply: Reply) -> Response {
    let status = if reply.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = match reply.body {
        ReplyBody::Json(value) => (status, axum::Json(value)).into_response(),
        ReplyBody::PemChain(pem) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pem-certificate-chain"),
            )],
            pem,
        )
            .into_response(),
        ReplyBody::Empty => status.into_response(),
    };
    let headers = response.headers_mut();
    if let Some(location) = reply.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    for link in reply.links {
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.append(header::LINK, value);
        }
    }
    if let Some(seconds) = reply.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// An ACME error on its way to becoming a problem document.
struct AcmeResponseError(Error);

impl AcmeResponseError {
    fn bare(error: Error) -> Self {
        Self(error)
    }
}

impl IntoResponse for AcmeResponseError {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = match error.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let detail = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %error, "ACME request failed");
            "internal server error".to_string()
        } else {
            tracing::info!(target: "mayfly::audit", status = status.as_u16(), problem = error.problem_type().name(), reason = %error, "ACME request refused");
            error.to_string()
        };
        let body = serde_json::json!({
            "type": error.problem_type().urn(),
            "detail": detail,
            "status": status.as_u16(),
        });
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            body.to_string(),
        )
            .into_response();
        match &error {
            Error::RateLimited {
                retry_after_seconds,
                ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            Error::KeyInUse { location } => {
                if let Ok(value) = HeaderValue::from_str(location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
            }
            _ => {}
        }
        response
    }
}

async fn directory(Path(provisioner): Path<String>, context: Context) -> Response {
    match context
        .acme
        .directory(&context.authority, &provisioner, &context.base_url)
    {
        Ok(reply) => render(reply),
        Err(e) => AcmeResponseError::bare(e).into_response(),
    }
}

/// `newNonce`: rate-limited per client address, and refused (429) while the address holds as
/// many unused nonces as it may.
async fn new_nonce(provisioner: &str, context: &Context, status: StatusCode) -> Response {
    if let Err(e) = mayfly_acme::service::acme_provisioner(&context.authority, provisioner) {
        return AcmeResponseError::bare(e).into_response();
    }
    let nonce = match context.acme.nonce_request(context.client) {
        Ok(()) => {
            context
                .acme
                .new_nonce(&context.authority, context.client)
                .await
        }
        Err(refused) => Err(refused),
    };
    let nonce = match nonce {
        Ok(nonce) => nonce,
        Err(e) => return AcmeResponseError::bare(e).into_response(),
    };
    let mut response = status.into_response();
    if let Ok(nonce) = HeaderValue::from_str(&nonce) {
        response.headers_mut().insert("replay-nonce", nonce);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn new_nonce_get(Path(provisioner): Path<String>, context: Context) -> Response {
    new_nonce(&provisioner, &context, StatusCode::NO_CONTENT).await
}

async fn new_nonce_head(Path(provisioner): Path<String>, context: Context) -> Response {
    new_nonce(&provisioner, &context, StatusCode::OK).await
}

async fn new_account(Path(provisioner): Path<String>, context: Context, body: Bytes) -> Response {
    let result = context
        .acme
        .new_account(&context.authority, &provisioner, &context.request(&body))
        .await;
    context.respond(result).await
}

async fn new_order(Path(provisioner): Path<String>, context: Context, body: Bytes) -> Response {
    let result = context
        .acme
        .new_order(&context.authority, &provisioner, &context.request(&body))
        .await;
    context.respond(result).await
}

async fn revoke(Path(provisioner): Path<String>, context: Context, body: Bytes) -> Response {
    let result = context
        .acme
        .revoke(&context.authority, &provisioner, &context.request(&body))
        .await;
    context.respond(result).await
}

async fn key_change(Path(_provisioner): Path<String>, context: Context, body: Bytes) -> Response {
    let result = context
        .acme
        .key_change(&context.authority, &context.request(&body))
        .await;
    context.respond(result).await
}

async fn account(
    Path((_provisioner, id)): Path<(String, String)>,
    context: Context,
    body: Bytes,
) -> Response {
    let result = context
        .acme
        .account(&context.authority, &context.request(&body), &id)
        .await;
    context.respond(result).await
}

async fn account_orders(
    Path((_provisioner, id)): Path<(String, String)>,
    context: Context,
    body: Bytes,
) -> Response {
    let result = context
        .acme
        .account_orders(&context.authority, &context.request(&body), &id)
        .await;
    context.respond(result).await
}

async fn order(
    Path((_provisioner, id)): Path<(String, String)>,
    context: Context,
    body: Bytes,
) -> Response {
    let result = context
        .acme
        .order(&context.authority, &context.request(&body), &id)
        .await;
    context.respond(result).await
}

async fn finalize(
    Path((provisioner, id)): Path<(String, String)>,
    context: Context,
    body: Bytes,
) -> Response {
    let result = context
        .acme
        .finalize(
            &context.authority,
            &provisioner,
            &context.request(&body),
            &id,
        )
        .await;
    context.respond(result).await
}

async fn authorization(
    Path((_provisioner, id)): Path<(String, String)>,
    context: Context,
    body: Bytes,
) -> Response {
    let result = context
        .acme
        .authorization(&context.authority, &context.request(&body), &id)
        .await;
    context.respond(result).await
}

async fn challenge(
    Path((provisioner, id, index)): Path<(String, String, String)>,
    context: Context,
    body: Bytes,
) -> Response {
    let Ok(index) = index.parse::<usize>() else {
        return context
            .respond(Err(Error::NotFound(format!("challenge {index:?}"))))
            .await;
    };
    let result = context
        .acme
        .challenge(
            &context.authority,
            &provisioner,
            &context.request(&body),
            &id,
            index,
        )
        .await;
    context.respond(result).await
}

async fn certificate(
    Path((_provisioner, serial)): Path<(String, String)>,
    context: Context,
    body: Bytes,
) -> Response {
    let result = context
        .acme
        .certificate(&context.authority, &context.request(&body), &serial)
        .await;
    context.respond(result).await
}

async fn renewal_info(
    Path((provisioner, cert_id)): Path<(String, String)>,
    context: Context,
) -> Response {
    let result = context
        .acme
        .renewal_info(&context.authority, &provisioner, &cert_id)
        .await;
    match result {
        Ok(reply) => render(reply),
        Err(e) => AcmeResponseError::bare(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn urls_name_the_ca_whatever_host_a_request_claims() {
        let names = ["ca.internal".to_owned(), "::1".to_owned()];
        let host = |requested: Option<&str>| url_host(requested, &names, 9000);
        assert_eq!(host(Some("ca.internal:9000")), "ca.internal:9000");
        // Behind a load balancer the client's port is the balancer's.
        assert_eq!(host(Some("CA.internal")), "CA.internal");
        assert_eq!(host(Some("[::1]:8443")), "[::1]:8443");
        for attack in [
            Some("evil.example"),
            Some("evil.example:9000"),
            Some("ca.internal.evil.example"),
            Some("ca.internal:9000/evil"),
            Some("ca.internal:"),
            Some("ca.internal:99999"),
            Some("[::2]:9000"),
            Some("[::1"),
            Some(""),
            None,
        ] {
            assert_eq!(host(attack), "ca.internal:9000", "{attack:?}");
        }
        assert_eq!(url_host(None, &names, 443), "ca.internal");
        assert_eq!(url_host(None, &["::1".to_owned()], 9000), "[::1]:9000");
    }
}
