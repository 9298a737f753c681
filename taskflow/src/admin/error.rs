//! JSON error responses: `{"detail": "…"}` with the status code that fits the error.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// An admin API error: a status code and a `detail` message, answered as JSON.
///
/// # Examples
///
/// ```
/// use axum::response::IntoResponse;
/// let response = taskflow::admin::ApiError::from(taskflow::Error::ShuttingDown).into_response();
/// assert_eq!(response.status(), 503);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
}

impl ApiError {
    /// An error with this status and message.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = taskflow::admin::ApiError::new(axum::http::StatusCode::BAD_REQUEST, "bad limit");
    /// assert_eq!(e.detail(), "bad limit");
    /// ```
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    /// The status code.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = taskflow::admin::ApiError::new(axum::http::StatusCode::NOT_FOUND, "x");
    /// assert_eq!(e.status(), 404);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    ///
    /// # Examples
    ///
    /// See [`ApiError::new`].
    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub(crate) fn task_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Task not found")
    }

    pub(crate) fn not_mounted() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no taskflow TaskManager is mounted on this router: call `TaskAdmin::new(&manager).mount(router)` after adding the routes that use `Tasks`",
        )
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::NotFound(_) => return Self::task_not_found(),
            Error::QueueFull { .. } | Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Error::InvalidState { .. }
            | Error::CannotCancelBlocking(_)
            | Error::NotRetryable(_) => StatusCode::BAD_REQUEST,
            Error::UnknownTask { .. } | Error::NotOwned { .. } => StatusCode::CONFLICT,
            Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Arguments { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::DuplicateTask { .. } | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "detail": self.detail })),
        )
            .into_response()
    }
}

/// Handlers can return `Result<_, taskflow::Error>`: the error answers as [`ApiError`] JSON.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
