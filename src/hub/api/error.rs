//! The API's error answer: a status and a JSON body `{"error": "..."}` saying what was wrong.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::hub::model::UnknownValue;
use crate::hub::store::{StoreError, StoreErrorKind};

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let status = match err.kind {
            StoreErrorKind::NotFound => StatusCode::NOT_FOUND,
            StoreErrorKind::Conflict => StatusCode::CONFLICT,
            StoreErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            StoreErrorKind::Url
            | StoreErrorKind::Connect
            | StoreErrorKind::Migrate
            | StoreErrorKind::Database => StatusCode::SERVICE_UNAVAILABLE,
        };
        // Database internals stay in the hub's log; the client gets the store's own sentence.
        ApiError::new(status, err.to_string())
    }
}

impl From<UnknownValue> for ApiError {
    fn from(err: UnknownValue) -> Self {
        ApiError::bad_request(err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
