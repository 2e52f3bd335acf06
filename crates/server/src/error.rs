//! The only place that maps errors to HTTP statuses: the server's own refusals
//! ([`RequestError`]) and the authority's errors for the step API ([`ApiError`]), and the ACME
//! service's for the ACME routes ([`AcmeProblem`]). Handlers and middleware say what went wrong;
//! the status, the headers (Retry-After, Connection: close) and the JSON body
//! `{"status", "message"}` are chosen here.
//!
//! 4xx bodies carry the error's message, which says what was wrong. An authority error of
//! 5xx carries a generic text and its cause goes to the log, so internals never reach clients;
//! the server's own 5xx refusals (a limit reached, the database gone) are written for clients
//! and say what to do.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mayfly_authority::ErrorKind;
use mayfly_proto::ErrorBody;

/// What the server itself refuses, before or beside the authority: a request it cannot read,
/// a credential missing from it, a limit it reached, something this server does not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    // The routes.
    #[error("no such route")]
    NoRoute,
    #[error("the database is unreachable")]
    DatabaseUnreachable,
    #[error("this server has no database to read")]
    NoDatabase,
    #[error("the OCSP responder is not enabled on this CA (ocsp.enabled)")]
    OcspDisabled,
    #[error("no root with SHA-256 fingerprint {fingerprint:?}")]
    RootNotFound { fingerprint: String },
    #[error("no provisioner with key id {kid:?} and an encrypted key")]
    EncryptedKeyNotFound { kid: String },

    // Credentials a request must carry.
    #[error("field \"ott\" is empty: a one-time token is required")]
    TokenMissing,
    #[error(
        "renewal needs the certificate to renew: as the client certificate over mutual TLS, \
         or in an x5c token (Authorization: Bearer) signed by its key"
    )]
    RenewalCredentialMissing,
    #[error(
        "rekeying needs the current certificate, presented as the client certificate over mutual TLS"
    )]
    RekeyCertificateMissing,
    #[error("revocation needs a one-time token (\"ott\") or the certificate over mutual TLS")]
    RevocationCredentialMissing,
    #[error("listing SSH hosts needs a client certificate from this CA (mutual TLS)")]
    SshHostsCertificateMissing,

    // Fields and parameters.
    #[error("field \"{field}\" is empty")]
    FieldEmpty { field: &'static str },
    #[error("cursor {cursor:?} is not valid")]
    CursorInvalid { cursor: String },
    #[error("limit {limit} is out of range: 1 to {max}")]
    PageLimitOutOfRange { limit: u32, max: u32 },
    #[error("{parameter} {value:?} is not a decimal serial number")]
    SerialNotDecimal {
        parameter: &'static str,
        value: String,
    },
    #[error("status {status:?} is not one of active, revoked, expired")]
    StatusUnknown { status: String },
    #[error("since {since:?} is not an RFC 3339 time")]
    SinceInvalid { since: String },
    #[error("{}", .0.body_text())]
    Query(QueryRejection),
    #[error("pem={value:?}: expected true or false")]
    CrlFormatInvalid { value: String },
    #[error("type {kind:?}: expected \"user\" or \"host\"")]
    SshConfigTypeInvalid { kind: String },
    /// The template data of `/ssh/config` does not fit the templates; the text says how.
    #[error("{0}")]
    SshConfigData(String),
    #[error("field \"type\" is {kind:?}: only \"host\" principals can be checked")]
    SshCheckHostTypeInvalid { kind: String },

    // Bodies.
    #[error("request body is not valid JSON: {0}")]
    BodyNotJson(serde_json::Error),
    #[error("request body has the wrong shape: {0}")]
    BodyWrongShape(serde_json::Error),
    /// Past what the JSON extractor reads.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// Past what the route takes ([`crate::limits::body_limit`]).
    #[error("request body is larger than {limit} bytes, the most this route takes")]
    BodyOverRouteLimit { limit: usize },
    #[error("the request body did not arrive within {} s", .after.as_secs_f64())]
    BodyTimeout { after: Duration },

    // Limits.
    #[error("the server holds as many request bodies as it may; retry shortly")]
    BodyMemoryFull,
    #[error("the server is serving its limit of {max} connections; retry shortly")]
    ConnectionLimit { max: usize },
    #[error(
        "too many requests from {address}: at most {per_second} a second; retry in {retry_after_seconds} s"
    )]
    RateLimited {
        address: IpAddr,
        per_second: f64,
        retry_after_seconds: u64,
    },
}

impl RequestError {
    /// The status of a refusal.
    fn status(&self) -> StatusCode {
        use RequestError as E;
        match self {
            E::NoRoute
            | E::OcspDisabled
            | E::RootNotFound { .. }
            | E::EncryptedKeyNotFound { .. } => StatusCode::NOT_FOUND,
            E::DatabaseUnreachable | E::BodyMemoryFull | E::ConnectionLimit { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            E::NoDatabase => StatusCode::NOT_IMPLEMENTED,
            E::TokenMissing
            | E::RenewalCredentialMissing
            | E::RekeyCertificateMissing
            | E::RevocationCredentialMissing
            | E::SshHostsCertificateMissing => StatusCode::UNAUTHORIZED,
            E::FieldEmpty { .. }
            | E::CursorInvalid { .. }
            | E::PageLimitOutOfRange { .. }
            | E::SerialNotDecimal { .. }
            | E::StatusUnknown { .. }
            | E::SinceInvalid { .. }
            | E::Query(_)
            | E::CrlFormatInvalid { .. }
            | E::SshConfigTypeInvalid { .. }
            | E::SshConfigData(_)
            | E::SshCheckHostTypeInvalid { .. }
            | E::BodyNotJson(_)
            | E::BodyWrongShape(_) => StatusCode::BAD_REQUEST,
            E::BodyTooLarge { .. } | E::BodyOverRouteLimit { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Seconds a client should wait before asking again, for refusals that pass.
    fn retry_after(&self) -> Option<u64> {
        match self {
            RequestError::BodyMemoryFull | RequestError::ConnectionLimit { .. } => Some(1),
            RequestError::RateLimited {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            _ => None,
        }
    }

    /// Whether the connection is closed after the answer: a body that never came, or was left
    /// unread, leaves the connection's framing unknown, and a server at its limits frees the
    /// connection's slot.
    fn closes_connection(&self) -> bool {
        matches!(
            self,
            RequestError::BodyTimeout { .. }
                | RequestError::BodyMemoryFull
                | RequestError::ConnectionLimit { .. }
        )
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let mut response = json_error(self.status(), self.to_string());
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// An error of the step API on its way to becoming a response: the server's own refusal or
/// the authority's decision.
#[derive(Debug)]
pub enum ApiError {
    Request(RequestError),
    Authority(mayfly_authority::Error),
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        ApiError::Request(error)
    }
}

impl From<mayfly_authority::Error> for ApiError {
    fn from(error: mayfly_authority::Error) -> Self {
        ApiError::Authority(error)
    }
}

/// The status of an authority error.
fn authority_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            ApiError::Request(error) => return error.into_response(),
            ApiError::Authority(error) => error,
        };
        let status = authority_status(error.kind());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %error, "request failed");
            return json_error(status, "internal server error".into());
        }
        tracing::info!(target: "mayfly::audit", status = status.as_u16(), reason = %error, "request refused");
        json_error(status, error.to_string())
    }
}

/// The step API's error body, as step-ca writes it.
fn json_error(status: StatusCode, message: String) -> Response {
    let body = ErrorBody {
        status: status.as_u16(),
        message,
    };
    (status, axum::Json(body)).into_response()
}

/// The status of an ACME error (RFC 8555 6.7 leaves most to the server; these follow
/// Let's Encrypt and step-ca).
fn acme_status(kind: mayfly_acme::ErrorKind) -> StatusCode {
    use mayfly_acme::ErrorKind as Acme;
    match kind {
        Acme::BadRequest => StatusCode::BAD_REQUEST,
        Acme::Unauthorized => StatusCode::UNAUTHORIZED,
        Acme::Forbidden => StatusCode::FORBIDDEN,
        Acme::NotFound => StatusCode::NOT_FOUND,
        Acme::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Acme::Conflict => StatusCode::CONFLICT,
        Acme::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Acme::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Acme::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An ACME error on its way to becoming a problem document (`application/problem+json`,
/// RFC 8555 6.7) with the RFC 8555 type the ACME service named; a rate limit carries its
/// Retry-After, a key already in use (RFC 8555 7.3.5) the Location of its account.
#[derive(Debug)]
pub struct AcmeProblem(pub mayfly_acme::Error);

impl IntoResponse for AcmeProblem {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = acme_status(error.kind());
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
            mayfly_acme::Error::RateLimited {
                retry_after_seconds,
                ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            mayfly_acme::Error::KeyInUse { location } => {
                if let Ok(value) = HeaderValue::from_str(location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON error body, the response's status and its Retry-After and Connection headers.
    async fn answer(
        response: Response,
    ) -> (u16, serde_json::Value, Option<String>, Option<String>) {
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        let (retry_after, connection) = (header(header::RETRY_AFTER), header(header::CONNECTION));
        let status = response.status().as_u16();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/json",
            "{status}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap();
        (status, body, retry_after, connection)
    }

    /// The variant's position in the table below: a variant added to [`RequestError`] does not
    /// compile here until the table gives it its status.
    fn position(error: &RequestError) -> usize {
        use RequestError as E;
        match error {
            E::NoRoute => 0,
            E::DatabaseUnreachable => 1,
            E::NoDatabase => 2,
            E::OcspDisabled => 3,
            E::RootNotFound { .. } => 4,
            E::EncryptedKeyNotFound { .. } => 5,
            E::TokenMissing => 6,
            E::RenewalCredentialMissing => 7,
            E::RekeyCertificateMissing => 8,
            E::RevocationCredentialMissing => 9,
            E::SshHostsCertificateMissing => 10,
            E::FieldEmpty { .. } => 11,
            E::CursorInvalid { .. } => 12,
            E::PageLimitOutOfRange { .. } => 13,
            E::SerialNotDecimal { .. } => 14,
            E::StatusUnknown { .. } => 15,
            E::SinceInvalid { .. } => 16,
            E::Query(_) => 17,
            E::CrlFormatInvalid { .. } => 18,
            E::SshConfigTypeInvalid { .. } => 19,
            E::SshConfigData(_) => 20,
            E::SshCheckHostTypeInvalid { .. } => 21,
            E::BodyNotJson(_) => 22,
            E::BodyWrongShape(_) => 23,
            E::BodyTooLarge { .. } => 24,
            E::BodyOverRouteLimit { .. } => 25,
            E::BodyTimeout { .. } => 26,
            E::BodyMemoryFull => 27,
            E::ConnectionLimit { .. } => 28,
            E::RateLimited { .. } => 29,
        }
    }

    /// Every refusal of the server's own, with its status, its message as clients read it
    /// (many are asserted by the integration tests too), its Retry-After and whether it
    /// closes the connection.
    #[tokio::test]
    async fn every_request_error_has_its_status_message_and_headers() {
        use RequestError as E;
        let not_json = serde_json::from_slice::<serde_json::Value>(b"{").unwrap_err();
        let wrong_shape = serde_json::from_slice::<u8>(b"\"x\"").unwrap_err();
        let wrong_shape_text = wrong_shape.to_string();
        let uri: axum::http::Uri = "/admin/audit?limit=many".parse().unwrap();
        let query =
            axum::extract::Query::<std::collections::HashMap<String, u32>>::try_from_uri(&uri)
                .unwrap_err();
        let query_text = query.body_text();
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        let cases: Vec<(RequestError, u16, String, Option<&str>, bool)> =
            vec![
            (E::NoRoute, 404, "no such route".into(), None, false),
            (E::DatabaseUnreachable, 503, "the database is unreachable".into(), None, false),
            (E::NoDatabase, 501, "this server has no database to read".into(), None, false),
            (
                E::OcspDisabled,
                404,
                "the OCSP responder is not enabled on this CA (ocsp.enabled)".into(),
                None,
                false,
            ),
            (
                E::RootNotFound { fingerprint: "ab".into() },
                404,
                "no root with SHA-256 fingerprint \"ab\"".into(),
                None,
                false,
            ),
            (
                E::EncryptedKeyNotFound { kid: "k1".into() },
                404,
                "no provisioner with key id \"k1\" and an encrypted key".into(),
                None,
                false,
            ),
            (
                E::TokenMissing,
                401,
                "field \"ott\" is empty: a one-time token is required".into(),
                None,
                false,
            ),
            (
                E::RenewalCredentialMissing,
                401,
                "renewal needs the certificate to renew: as the client certificate over mutual \
                 TLS, or in an x5c token (Authorization: Bearer) signed by its key"
                    .into(),
                None,
                false,
            ),
            (
                E::RekeyCertificateMissing,
                401,
                "rekeying needs the current certificate, presented as the client certificate \
                 over mutual TLS"
                    .into(),
                None,
                false,
            ),
            (
                E::RevocationCredentialMissing,
                401,
                "revocation needs a one-time token (\"ott\") or the certificate over mutual TLS"
                    .into(),
                None,
                false,
            ),
            (
                E::SshHostsCertificateMissing,
                401,
                "listing SSH hosts needs a client certificate from this CA (mutual TLS)".into(),
                None,
                false,
            ),
            (
                E::FieldEmpty { field: "csr" },
                400,
                "field \"csr\" is empty".into(),
                None,
                false,
            ),
            (
                E::CursorInvalid { cursor: "x".into() },
                400,
                "cursor \"x\" is not valid".into(),
                None,
                false,
            ),
            (
                E::PageLimitOutOfRange { limit: 0, max: 1000 },
                400,
                "limit 0 is out of range: 1 to 1000".into(),
                None,
                false,
            ),
            (
                E::SerialNotDecimal {
                    parameter: "after",
                    value: "0x1".into(),
                },
                400,
                "after \"0x1\" is not a decimal serial number".into(),
                None,
                false,
            ),
            (
                E::StatusUnknown { status: "gone".into() },
                400,
                "status \"gone\" is not one of active, revoked, expired".into(),
                None,
                false,
            ),
            (
                E::SinceInvalid { since: "today".into() },
                400,
                "since \"today\" is not an RFC 3339 time".into(),
                None,
                false,
            ),
            (E::Query(query), 400, query_text, None, false),
            (
                E::CrlFormatInvalid { value: "yes".into() },
                400,
                "pem=\"yes\": expected true or false".into(),
                None,
                false,
            ),
            (
                E::SshConfigTypeInvalid { kind: "both".into() },
                400,
                "type \"both\": expected \"user\" or \"host\"".into(),
                None,
                false,
            ),
            (
                E::SshConfigData("unknown variable".into()),
                400,
                "unknown variable".into(),
                None,
                false,
            ),
            (
                E::SshCheckHostTypeInvalid { kind: "user".into() },
                400,
                "field \"type\" is \"user\": only \"host\" principals can be checked".into(),
                None,
                false,
            ),
            (
                E::BodyNotJson(not_json),
                400,
                "request body is not valid JSON: EOF while parsing an object at line 1 column 1"
                    .into(),
                None,
                false,
            ),
            (
                E::BodyWrongShape(wrong_shape),
                400,
                format!("request body has the wrong shape: {wrong_shape_text}"),
                None,
                false,
            ),
            (
                E::BodyTooLarge { limit: 1048576 },
                413,
                "request body is larger than 1048576 bytes".into(),
                None,
                false,
            ),
            (
                E::BodyOverRouteLimit { limit: 131072 },
                413,
                "request body is larger than 131072 bytes, the most this route takes".into(),
                None,
                false,
            ),
            (
                E::BodyTimeout {
                    after: Duration::from_millis(1500),
                },
                408,
                "the request body did not arrive within 1.5 s".into(),
                None,
                true,
            ),
            (
                E::BodyMemoryFull,
                503,
                "the server holds as many request bodies as it may; retry shortly".into(),
                Some("1"),
                true,
            ),
            (
                E::ConnectionLimit { max: 8 },
                503,
                "the server is serving its limit of 8 connections; retry shortly".into(),
                Some("1"),
                true,
            ),
            (
                E::RateLimited {
                    address,
                    per_second: 0.5,
                    retry_after_seconds: 2,
                },
                429,
                "too many requests from 192.0.2.7: at most 0.5 a second; retry in 2 s".into(),
                Some("2"),
                false,
            ),
        ];
        let mut seen = vec![false; cases.len()];
        for (error, status, message, retry_after, closes) in cases {
            let index = position(&error);
            assert!(!seen[index], "{error:?} is in the table twice");
            seen[index] = true;
            let text = format!("{error:?}");
            // Through the API's error type, as handlers return it.
            let (got, body, got_retry, connection) =
                answer(ApiError::from(error).into_response()).await;
            assert_eq!(got, status, "{text}");
            assert_eq!(
                body,
                serde_json::json!({"status": status, "message": message}),
                "{text}"
            );
            assert_eq!(got_retry.as_deref(), retry_after, "{text}");
            assert_eq!(connection.as_deref() == Some("close"), closes, "{text}");
        }
        assert!(seen.iter().all(|&s| s), "every variant is in the table");
    }

    /// Every kind of authority error has its status here; an internal one shows no detail.
    #[tokio::test]
    async fn authority_errors_map_to_their_statuses_and_hide_internals() {
        use mayfly_authority::Error;
        for (kind, status) in [
            (ErrorKind::BadRequest, 400),
            (ErrorKind::Unauthorized, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::NotImplemented, 501),
            (ErrorKind::Internal, 500),
        ] {
            assert_eq!(authority_status(kind).as_u16(), status, "{kind:?}");
        }
        let (status, body, _, _) =
            answer(ApiError::from(Error::TokenAlreadyUsed).into_response()).await;
        assert_eq!(status, 401);
        assert_eq!(body["message"], Error::TokenAlreadyUsed.to_string());
        let (status, body, _, _) =
            answer(ApiError::from(Error::Config("secret path /etc/x".into())).into_response())
                .await;
        assert_eq!(status, 500);
        assert_eq!(
            body,
            serde_json::json!({"status": 500, "message": "internal server error"})
        );
    }

    /// Every kind of ACME error has its status here, and only here.
    #[test]
    fn acme_errors_map_to_their_statuses() {
        use mayfly_acme::{Error, ProblemType};
        let cases = [
            (Error::malformed("x"), 400),
            (Error::unauthorized("x"), 403),
            (Error::problem(ProblemType::OrderNotReady, "x"), 403),
            (Error::problem(ProblemType::BadNonce, "x"), 400),
            (Error::problem(ProblemType::AlreadyReplaced, "x"), 409),
            (Error::problem(ProblemType::ServerInternal, "x"), 500),
            (Error::NotFound("x".into()), 404),
            (Error::MethodNotAllowed("x".into()), 405),
            (
                Error::ContentType {
                    found: "text/plain".into(),
                },
                415,
            ),
            (
                Error::KeyInUse {
                    location: "https://ca/acme/a/account/1".into(),
                },
                409,
            ),
            (
                Error::RateLimited {
                    detail: "x".into(),
                    retry_after_seconds: 7,
                },
                429,
            ),
            (Error::Internal("secret".into()), 500),
        ];
        for (error, status) in cases {
            let text = format!("{error:?}");
            let response = AcmeProblem(error).into_response();
            assert_eq!(response.status().as_u16(), status, "{text}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
        }
        let limited = AcmeProblem(Error::RateLimited {
            detail: "x".into(),
            retry_after_seconds: 7,
        })
        .into_response();
        assert_eq!(limited.headers()[header::RETRY_AFTER], "7");
        let in_use = AcmeProblem(Error::KeyInUse {
            location: "https://ca/acme/a/account/1".into(),
        })
        .into_response();
        assert_eq!(
            in_use.headers()[header::LOCATION],
            "https://ca/acme/a/account/1"
        );
    }
}
