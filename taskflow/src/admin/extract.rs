//! The [`Tasks`] extractor.

use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::manager::TaskManager;

/// An axum extractor giving handlers the [`TaskManager`] mounted with
/// [`TaskAdmin::mount`](super::TaskAdmin::mount). Derefs to the manager.
///
/// Used on a router where no manager is mounted it answers 500 with a message that says so.
///
/// # Examples
///
/// ```
/// use axum::Json;
/// use taskflow::Tasks;
///
/// #[taskflow::task(retries = 3, delay = "1s")]
/// async fn send_receipt(order_id: u64) -> Result<(), String> { Ok(()) }
///
/// async fn checkout(tasks: Tasks) -> Result<Json<serde_json::Value>, taskflow::Error> {
///     let id = tasks.add(SendReceipt { order_id: 7 }).idempotency_key("receipt-7").await?;
///     Ok(Json(serde_json::json!({ "task_id": id })))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Tasks(pub TaskManager);

impl Deref for Tasks {
    type Target = TaskManager;
    fn deref(&self) -> &TaskManager {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tasks {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<TaskManager>()
            .cloned()
            .map(Tasks)
            .ok_or_else(ApiError::not_mounted)
    }
}
