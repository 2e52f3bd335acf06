//! The only place that maps errors to HTTP statuses: the authority's errors for the step API
//! ([`ApiError`]) and the ACME service's for the ACME routes ([`AcmeProblem`]).
//!
//! 4xx bodies carry the error's message, which says what was wrong; 5xx bodies carry a
//! generic text and the cause goes to the log, so internals never reach clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mayfly_authority::ErrorKind;
use mayfly_proto::ErrorBody;

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
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

impl From<mayfly_authority::Error> for ApiError {
    fn from(error: mayfly_authority::Error) -> Self {
        let status = authority_status(error.kind());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %error, "request failed");
            return Self::new(status, "internal server error");
        }
        tracing::info!(target: "mayfly::audit", status = status.as_u16(), reason = %error, "request refused");
        Self::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: self.status.as_u16(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
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
