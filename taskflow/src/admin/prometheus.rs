//! `GET {path}/metrics/prometheus`: the task metrics in the Prometheus text exposition format.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::extract::Tasks;

/// Serves [`TaskManager::prometheus_metrics`](crate::TaskManager::prometheus_metrics).
pub(super) async fn metrics(tasks: Tasks) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, crate::observe::prometheus::CONTENT_TYPE)],
        tasks.prometheus_metrics(),
    )
}
