//! The read-only JSON handlers behind [`TaskAdmin`](super::TaskAdmin).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query};
use serde_json::{Value, json};

use super::audit::AuditEntry;
use super::error::ApiError;
use super::extract::Tasks;
use super::{Admin, Settings, query};
use crate::dispatch::QueueStats;
use crate::history::{ListPage, Metrics};
use crate::task::{TaskId, TaskRecord};

pub(crate) type ApiResult<T> = Result<Json<T>, ApiError>;

/// The record as the API shows it: without arguments unless `display_args`.
pub(crate) fn shown(mut record: TaskRecord, settings: &Settings) -> TaskRecord {
    if !settings.display_args {
        record.args = None;
    }
    record
}

pub(crate) fn parse_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse().map_err(|_| ApiError::task_not_found())
}

pub(super) async fn list(
    tasks: Tasks,
    admin: Admin,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<ListPage> {
    let filter = query::filter(&params, &[])?;
    let mut page = tasks.list(&filter).await?;
    page.tasks = page
        .tasks
        .into_iter()
        .map(|r| shown(r, &admin.settings))
        .collect();
    Ok(Json(page))
}

pub(super) async fn one(
    tasks: Tasks,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<TaskRecord> {
    let id = parse_id(&id)?;
    let record = tasks.get(id).await?.ok_or_else(ApiError::task_not_found)?;
    Ok(Json(shown(record, &admin.settings)))
}

pub(super) async fn metrics(tasks: Tasks) -> ApiResult<Metrics> {
    Ok(Json(tasks.metrics().await?))
}

pub(super) async fn health(tasks: Tasks) -> Json<Value> {
    Json(json!({
        "status": if tasks.is_shutting_down() { "shutting_down" } else { "ok" },
        "store_connected": true,
        "instance_id": tasks.instance_id(),
        "started_at": tasks.started_at(),
        "is_leader": false,
    }))
}

pub(super) async fn queues(tasks: Tasks) -> Json<Vec<QueueStats>> {
    Json(tasks.queues())
}

pub(super) async fn schedules() -> Json<Vec<Value>> {
    Json(Vec::new())
}

pub(super) async fn registered(tasks: Tasks) -> Json<Vec<Value>> {
    let mut list: Vec<Value> = tasks
        .registry()
        .registrations()
        .into_iter()
        .map(|r| {
            let o = r.options();
            let (file, line) = r.location();
            json!({
                "name": r.name(),
                "module": r.module_path(),
                "location": format!("{file}:{line}"),
                "options": {
                    "retries": o.retries,
                    "delay": o.delay.as_secs_f64(),
                    "backoff": o.backoff,
                    "max_delay": o.max_delay.map(|d| d.as_secs_f64()),
                    "jitter": o.jitter,
                    "timeout": o.timeout.map(|d| d.as_secs_f64()),
                    "persist": o.persist,
                    "requeue_on_interrupt": o.requeue_on_interrupt,
                    "queue": o.queue,
                    "priority": o.priority,
                },
            })
        })
        .collect();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(list)
}

pub(super) async fn audit(admin: Admin) -> Json<Vec<AuditEntry>> {
    Json(admin.audit.entries())
}
