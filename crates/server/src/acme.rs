//! The ACME routes (RFC 8555) at `/acme/{provisioner}/…` and `/2.0/acme/{provisioner}/…`.
//!
//! Handlers only translate: the request's URL, content type and body go to `mayfly-acme`, whose
//! [`Reply`] or [`Error`] becomes the response here. Errors are problem documents
//! (`application/problem+json`) carrying the RFC 8555 type the acme crate named; every response
//! carries a fresh `Replay-Nonce` and a `Link` to the directory.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mayfly_acme::{Acme, Error, ErrorKind, Reply, ReplyBody, Request};
use mayfly_authority::Authority;

use crate::api::AppState;

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

/// What every ACME handler works from.
struct Context {
    authority: Arc<Authority>,
    acme: Acme,
    base_url: String,
    url: String,
    content_type: Option<String>,
}

impl Context {
    fn new(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Self, AcmeResponseError> {
        let authority = state.authority();
        let acme = state
            .acme()
            .cloned()
            .ok_or_else(|| AcmeResponseError::bare(Error::NotFound("ACME".into())))?;
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost")
            .to_string();
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
        })
    }

    fn request<'a>(&'a self, body: &'a [u8]) -> Request<'a> {
        Request {
            base_url: &self.base_url,
            url: &self.url,
            content_type: self.content_type.as_deref(),
            body,
        }
    }

    async fn nonce(&self) -> Option<HeaderValue> {
        match self.acme.new_nonce(&self.authority).await {
            Ok(nonce) => HeaderValue::from_str(&nonce).ok(),
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

macro_rules! context_or_return {
    ($state:expr, $headers:expr, $uri:expr) => {
        match Context::new(&$state, &$headers, &$uri) {
            Ok(context) => context,
            Err(e) => return e.into_response(),
        }
    };
}

async fn directory(
    State(state): State<Arc<AppState>>,
    Path(provisioner): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    match context
        .acme
        .directory(&context.authority, &provisioner, &context.base_url)
    {
        Ok(reply) => render(reply),
        Err(e) => AcmeResponseError::bare(e).into_response(),
    }
}

async fn new_nonce(
    state: &AppState,
    provisioner: &str,
    headers: &HeaderMap,
    uri: &Uri,
    status: StatusCode,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    if let Err(e) = mayfly_acme::service::acme_provisioner(&context.authority, provisioner) {
        return AcmeResponseError::bare(e).into_response();
    }
    let mut response = status.into_response();
    if let Some(nonce) = context.nonce().await {
        response.headers_mut().insert("replay-nonce", nonce);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn new_nonce_get(
    State(state): State<Arc<AppState>>,
    Path(provisioner): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    new_nonce(&state, &provisioner, &headers, &uri, StatusCode::NO_CONTENT).await
}

async fn new_nonce_head(
    State(state): State<Arc<AppState>>,
    Path(provisioner): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    new_nonce(&state, &provisioner, &headers, &uri, StatusCode::OK).await
}

async fn new_account(
    State(state): State<Arc<AppState>>,
    Path(provisioner): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .new_account(&context.authority, &provisioner, &context.request(&body))
        .await;
    context.respond(result).await
}

async fn new_order(
    State(state): State<Arc<AppState>>,
    Path(provisioner): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .new_order(&context.authority, &provisioner, &context.request(&body))
        .await;
    context.respond(result).await
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(provisioner): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .revoke(&context.authority, &provisioner, &context.request(&body))
        .await;
    context.respond(result).await
}

async fn key_change(
    State(state): State<Arc<AppState>>,
    Path(_provisioner): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .key_change(&context.authority, &context.request(&body))
        .await;
    context.respond(result).await
}

async fn account(
    State(state): State<Arc<AppState>>,
    Path((_provisioner, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .account(&context.authority, &context.request(&body), &id)
        .await;
    context.respond(result).await
}

async fn account_orders(
    State(state): State<Arc<AppState>>,
    Path((_provisioner, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .account_orders(&context.authority, &context.request(&body), &id)
        .await;
    context.respond(result).await
}

async fn order(
    State(state): State<Arc<AppState>>,
    Path((_provisioner, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .order(&context.authority, &context.request(&body), &id)
        .await;
    context.respond(result).await
}

async fn finalize(
    State(state): State<Arc<AppState>>,
    Path((provisioner, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
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
    State(state): State<Arc<AppState>>,
    Path((_provisioner, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .authorization(&context.authority, &context.request(&body), &id)
        .await;
    context.respond(result).await
}

async fn challenge(
    State(state): State<Arc<AppState>>,
    Path((provisioner, id, index)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
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
    State(state): State<Arc<AppState>>,
    Path((_provisioner, serial)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .certificate(&context.authority, &context.request(&body), &serial)
        .await;
    context.respond(result).await
}

async fn renewal_info(
    State(state): State<Arc<AppState>>,
    Path((provisioner, cert_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let context = context_or_return!(state, headers, uri);
    let result = context
        .acme
        .renewal_info(&context.authority, &provisioner, &cert_id)
        .await;
    match result {
        Ok(reply) => render(reply),
        Err(e) => AcmeResponseError::bare(e).into_response(),
    }
}
