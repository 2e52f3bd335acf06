//! A JSON body extractor whose every failure (too large, not JSON, wrong shape) answers in the
//! API's error shape, with a message that names the problem.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Request bodies larger than this are refused before parsing.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                )
            })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            let what = if e.is_data() {
                "request body has the wrong shape"
            } else {
                "request body is not valid JSON"
            };
            ApiError::bad_request(format!("{what}: {e}"))
        })?;
        Ok(JsonBody(value))
    }
}
