//! The admin API (`/admin/...`): what the CA stored and its audit log, for an admin
//! provisioner's token or a client certificate issued through one. Read only.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use mayfly_authority::audit::{AuditEntry, AuditQuery};
use mayfly_authority::store::{CertificatePage, ListStatus};
use mayfly_authority::{Authority, Presented};
use mayfly_pki::cert::certificate_pem;
use serde::Deserialize;

use crate::api::{AppState, client_leaf};
use crate::error::{ApiError, RequestError};
use crate::serve::PeerCertificates;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/certificates", get(admin_certificates))
        .route("/admin/audit", get(admin_audit))
}

/// Checks the admin credentials of a request: a bearer token, else the client certificate.
async fn authorize(
    authority: &Authority,
    peer: &Option<axum::Extension<PeerCertificates>>,
    headers: &axum::http::HeaderMap,
) -> Result<(), ApiError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let credentials = match (bearer, client_leaf(peer)) {
        (Some(token), _) => Presented::Token(token.trim()),
        (None, Some(leaf)) => Presented::Certificate(leaf),
        (None, None) => return Err(mayfly_authority::Error::AdminCredentialsMissing.into()),
    };
    authority.authorize_admin(credentials).await?;
    Ok(())
}

fn database(state: &AppState) -> Result<&mayfly_store::AnyStore, RequestError> {
    state.database().ok_or(RequestError::NoDatabase)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Longest page of an admin listing, and the default.
const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;

/// The page size a listing asked for, within 1 to [`MAX_PAGE`].
fn page_limit(limit: Option<u32>) -> Result<u32, RequestError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(RequestError::PageLimitOutOfRange {
            limit,
            max: MAX_PAGE,
        });
    }
    Ok(limit)
}

/// A decimal serial number from the query parameter `name`; none when absent or empty.
fn decimal_serial(
    parameter: &'static str,
    value: Option<String>,
) -> Result<Option<String>, RequestError> {
    match value.filter(|v| !v.is_empty()) {
        Some(serial) if serial.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(serial)),
        Some(value) => Err(RequestError::SerialNotDecimal { parameter, value }),
        None => Ok(None),
    }
}

#[derive(Debug, Deserialize)]
struct CertificatesQuery {
    status: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /admin/certificates`: the stored certificates, a page at a time, for an admin
/// provisioner's token or a client certificate issued through one.
async fn admin_certificates(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerCertificates>>,
    headers: axum::http::HeaderMap,
    query: Result<Query<CertificatesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<mayfly_proto::CertificatesResponse>, ApiError> {
    let authority = state.authority();
    authorize(&authority, &peer, &headers).await?;

    let Query(query) = query.map_err(RequestError::Query)?;
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(text) => Some(
            ListStatus::parse(text).ok_or_else(|| RequestError::StatusUnknown {
                status: text.to_owned(),
            })?,
        ),
    };
    let limit = page_limit(query.limit)?;
    let after = decimal_serial("after", query.after)?;
    let database = database(&state)?;
    let now = authority.clock().now();
    let page = CertificatePage {
        status,
        now,
        after,
        limit,
    };
    let stored = database
        .full()
        .list_certificates(&page)
        .await
        .map_err(mayfly_authority::Error::Store)?;
    let next = (stored.len() == limit as usize)
        .then(|| stored.last().map(|c| c.certificate.serial.clone()))
        .flatten();
    let certificates = stored.iter().map(|c| certificate_entry(c, now)).collect();
    Ok(Json(mayfly_proto::CertificatesResponse {
        certificates,
        next,
    }))
}

fn certificate_entry(
    stored: &mayfly_authority::store::StoredCertificate,
    now: time::OffsetDateTime,
) -> mayfly_proto::CertificateEntry {
    use mayfly_authority::store::CertificateStatus;
    let certificate = &stored.certificate;
    let status = match stored.status {
        CertificateStatus::Revoked => "revoked",
        CertificateStatus::Valid if certificate.not_after < now => "expired",
        CertificateStatus::Valid => "active",
    };
    mayfly_proto::CertificateEntry {
        serial: certificate.serial.clone(),
        subject: certificate.subject.clone(),
        sans: certificate.sans.clone(),
        not_before: rfc3339(certificate.not_before),
        not_after: rfc3339(certificate.not_after),
        provisioner: certificate.provisioner.clone(),
        status: status.to_owned(),
        revoked_at: stored.revocation.as_ref().map(|r| rfc3339(r.revoked_at)),
        reason_code: stored.revocation.as_ref().map(|r| r.reason_code),
        certificate: certificate_pem(&certificate.der),
    }
}

#[derive(Debug, Deserialize)]
struct AuditParams {
    after: Option<u64>,
    serial: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

/// `GET /admin/audit`: the audit log, a page at a time in the order it was written.
async fn admin_audit(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerCertificates>>,
    headers: axum::http::HeaderMap,
    query: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<mayfly_proto::AuditResponse>, ApiError> {
    let authority = state.authority();
    authorize(&authority, &peer, &headers).await?;
    let Query(params) = query.map_err(RequestError::Query)?;
    let limit = page_limit(params.limit)?;
    let serial = decimal_serial("serial", params.serial)?;
    let since = match params.since.filter(|s| !s.is_empty()) {
        Some(since) => Some(
            time::OffsetDateTime::parse(&since, &time::format_description::well_known::Rfc3339)
                .map_err(|_| RequestError::SinceInvalid { since })?,
        ),
        None => None,
    };
    let query = AuditQuery {
        after: params.after,
        serial,
        since,
        limit,
    };
    let entries = database(&state)?
        .full()
        .audit_entries(&query)
        .await
        .map_err(mayfly_authority::Error::Store)?;
    let next = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(mayfly_proto::AuditResponse {
        entries: entries.iter().map(audit_entry_body).collect(),
        next,
    }))
}

fn audit_entry_body(entry: &AuditEntry) -> mayfly_proto::AuditEntryBody {
    mayfly_proto::AuditEntryBody {
        id: entry.id,
        at: rfc3339(entry.at),
        action: entry.action.as_str().to_owned(),
        serial: entry.serial.clone(),
        subject: entry.subject.clone(),
        sans: entry.sans.clone(),
        provisioner: entry.provisioner.clone(),
        credential: entry.credential.clone(),
        address: entry.address.clone(),
        detail: entry.detail.clone(),
    }
}
