//! A JSON body extractor whose every failure (too large, not JSON, wrong shape) answers in the
//! API's error shape, with a message that names the problem.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, RequestError};

/// Request bodies larger than this are refused before parsing.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| RequestError::BodyTooLarge {
                limit: MAX_BODY_BYTES,
            })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            if e.is_data() {
                RequestError::BodyWrongShape(e)
            } else {
                RequestError::BodyNotJson(e)
            }
        })?;
        Ok(JsonBody(value))
    }
}
