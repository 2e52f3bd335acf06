//! Routes relying parties use to check revocation: CRLs, the OCSP responder and the intermediate
//! certificate (AIA caIssuers). Served on the HTTPS listener and on the plain-HTTP one.
//!
//! OCSP answers are OCSP responses even when the request is garbage (`malformedRequest`), as RFC
//! 6960 wants; HTTP errors are left for what is not OCSP at all (a wrong method).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mayfly_authority::crl::{CrlKind, SignedCrl};
use mayfly_authority::ocsp::OcspAnswer;
use mayfly_authority::store::CrlShard;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::api::AppState;
use crate::error::{ApiError, RequestError};

/// OCSP requests are a few hundred bytes; anything this large is not one.
pub const MAX_OCSP_REQUEST_BYTES: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
pub struct CrlQuery {
    pem: Option<String>,
}

pub async fn crl(
    State(state): State<Arc<AppState>>,
    Query(query): Query<CrlQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_crl(&state, CrlKind::Full, query, &headers).await
}

pub async fn delta_crl(
    State(state): State<Arc<AppState>>,
    Query(query): Query<CrlQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_crl(&state, CrlKind::Delta, query, &headers).await
}

/// `GET /1.0/crls/{shard}`: one shard's CRL, the URL its certificates carry.
pub async fn shard_crl(
    State(state): State<Arc<AppState>>,
    Path(shard): Path<String>,
    Query(query): Query<CrlQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Only the canonical decimal form names a shard, so each shard has exactly one URL.
    let index = shard
        .parse::<u16>()
        .ok()
        .filter(|i| i.to_string() == shard)
        .and_then(CrlShard::new)
        .ok_or_else(|| mayfly_authority::Error::CrlShardUnknown(shard.clone()))?;
    serve_crl(&state, CrlKind::Shard(index), query, &headers).await
}

/// `GET /1.0/root.crl`: the root's CRL, signed offline, DER.
pub async fn root_crl(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let der = state.authority().root_crl().inspect_err(|e| {
        if matches!(e, mayfly_authority::Error::RootCrlInvalid { .. }) {
            tracing::error!(error = %e, "the root CRL cannot be served");
        }
    })?;
    let mut response = ([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(response)
}

async fn serve_crl(
    state: &AppState,
    kind: CrlKind,
    query: CrlQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let pem = match query.pem.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => {
            return Err(RequestError::CrlFormatInvalid {
                value: other.to_owned(),
            }
            .into());
        }
    };
    let authority = state.authority();
    let publisher = authority
        .crl_publisher()
        .ok_or(mayfly_authority::Error::CrlDisabled)?;
    let crl = publisher.current(kind).await?;
    let now = OffsetDateTime::now_utc();
    let mut response = if not_modified(headers, &crl.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if pem {
        let text = pem::encode_config(
            &pem::Pem::new("X509 CRL", crl.der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        ([(header::CONTENT_TYPE, "application/x-pem-file")], text).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/pkix-crl")],
            crl.der.clone(),
        )
            .into_response()
    };
    cache_headers(
        response.headers_mut(),
        &crl_cache(&crl),
        now,
        Some(CRL_MAX_AGE),
    );
    Ok(response)
}

fn crl_cache(crl: &SignedCrl) -> mayfly_authority::ocsp::CacheInfo {
    mayfly_authority::ocsp::CacheInfo {
        this_update: crl.this_update,
        next_update: crl.next_update,
        etag: crl.etag.clone(),
    }
}

/// `GET /ocsp/{base64 request}` (RFC 6960 appendix A.1).
pub async fn ocsp_get(
    State(state): State<Arc<AppState>>,
    Path(encoded): Path<String>,
    headers: HeaderMap,
) -> Response {
    let authority = state.authority();
    let Some(ocsp) = authority.ocsp_responder() else {
        return ocsp_disabled();
    };
    let request = decode_get_request(&encoded).unwrap_or_default();
    let answer = ocsp.respond(&request).await;
    ocsp_response(answer, Some(&headers))
}

/// `POST /ocsp` with an `application/ocsp-request` body.
pub async fn ocsp_post(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let authority = state.authority();
    let Some(ocsp) = authority.ocsp_responder() else {
        return ocsp_disabled();
    };
    // Too large or cut short: not an OCSP request, and answered as one that is malformed.
    let body = axum::body::to_bytes(request.into_body(), MAX_OCSP_REQUEST_BYTES)
        .await
        .unwrap_or_default();
    let answer = ocsp.respond(&body).await;
    ocsp_response(answer, None)
}

/// The base64 in a GET path: standard alphabet as RFC 6960 says, URL-safe or unpadded as some
/// clients send it. The router has already undone the percent-encoding.
fn decode_get_request(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let trimmed = encoded.trim_start_matches('/');
    if trimmed.len() > MAX_OCSP_REQUEST_BYTES * 2 {
        return None;
    }
    STANDARD
        .decode(trimmed)
        .ok()
        .or_else(|| URL_SAFE_NO_PAD.decode(trimmed.trim_end_matches('=')).ok())
        .or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(trimmed.trim_end_matches('='))
                .ok()
        })
}

fn ocsp_disabled() -> Response {
    RequestError::OcspDisabled.into_response()
}

fn ocsp_response(answer: OcspAnswer, request_headers: Option<&HeaderMap>) -> Response {
    let now = OffsetDateTime::now_utc();
    let OcspAnswer { der, cache } = answer;
    let unchanged = match (&cache, request_headers) {
        (Some(cache), Some(headers)) => not_modified(headers, &cache.etag),
        _ => false,
    };
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/ocsp-response")],
            Body::from(der.as_ref().clone()),
        )
            .into_response()
    };
    match &cache {
        Some(cache) => cache_headers(response.headers_mut(), cache, now, None),
        // Nonce and error responses are for one request only.
        None => {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    response
}

/// The intermediate certificate, DER (the AIA caIssuers URL of leaves).
pub async fn intermediate(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/pkix-cert")],
        state.authority().intermediate_der().to_vec(),
    )
        .into_response()
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag))
}

/// The longest a cache may keep a CRL. A CRL is remade at once after a revocation, long
/// before its nextUpdate (a day by default): a cache keeping it until then would hide the
/// revocation for that long. Caches still revalidate cheaply (ETag, 304).
const CRL_MAX_AGE: time::Duration = time::Duration::minutes(5);

/// RFC 5019 section 6.2: max-age up to nextUpdate (and at most `cap`), Last-Modified, Expires
/// and ETag.
fn cache_headers(
    headers: &mut HeaderMap,
    cache: &mayfly_authority::ocsp::CacheInfo,
    now: OffsetDateTime,
    cap: Option<time::Duration>,
) {
    let remaining = cache.next_update - now;
    let max_age = cap
        .map_or(remaining, |cap| remaining.min(cap))
        .whole_seconds()
        .max(0);
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(
        header::CACHE_CONTROL,
        format!("max-age={max_age}, public, no-transform, must-revalidate"),
    );
    set(header::LAST_MODIFIED, http_date(cache.this_update));
    set(header::EXPIRES, http_date(cache.next_update));
    set(header::ETAG, cache.etag.clone());
}

fn http_date(time: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_default()
}
