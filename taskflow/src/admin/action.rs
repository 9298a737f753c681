//! The mutating handlers: retry, cancel, bulk retry, retry of a failed window, history deletion
//! and queue resize. Each is written to the audit log with its outcome.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiResult, parse_id, shown};
use super::auth::Principal;
use super::error::ApiError;
use super::extract::Tasks;
use super::query::{bad_request, window_param};
use super::{Admin, Shared};
use crate::dispatch::QueueConfig;
use crate::history::TaskFilter;
use crate::task::{TaskId, TaskRecord, TaskStatus};

/// Tasks one bulk request may name, and runs one window replay may dispatch.
const MAX_BULK: usize = 1_000;

/// Writes the outcome to the audit log and passes it on.
fn audited<T>(
    shared: &Shared,
    user: &Principal,
    action: &str,
    task_ids: Vec<TaskId>,
    outcome: Result<(T, String), ApiError>,
) -> Result<Json<T>, ApiError> {
    match outcome {
        Ok((body, detail)) => {
            shared.audit.record(&user.0, action, task_ids, 200, detail);
            Ok(Json(body))
        }
        Err(error) => {
            shared.audit.record(
                &user.0,
                action,
                task_ids,
                error.status().as_u16(),
                error.detail(),
            );
            Err(error)
        }
    }
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::new(e.status(), e.body_text()))
}

pub(super) async fn retry(
    tasks: Tasks,
    admin: Admin,
    user: Principal,
    Path(id): Path<String>,
) -> ApiResult<Value> {
    let id = parse_id(&id)?;
    let outcome = match tasks.retry(id).await {
        Ok(new_id) => Ok((
            json!({ "original_task_id": id, "new_task_id": new_id }),
            format!("new run {new_id}"),
        )),
        Err(e) => Err(ApiError::from(e)),
    };
    audited(&admin, &user, "retry", vec![id], outcome)
}

pub(super) async fn cancel(
    tasks: Tasks,
    admin: Admin,
    user: Principal,
    Path(id): Path<String>,
) -> ApiResult<TaskRecord> {
    let id = parse_id(&id)?;
    let outcome = tasks
        .cancel(id)
        .await
        .map(|r| (shown(r, &admin.settings), "cancelled".to_owned()))
        .map_err(ApiError::from);
    audited(&admin, &user, "cancel", vec![id], outcome)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BulkRetry {
    task_ids: Vec<String>,
}

/// Retries each id; returns the body and a summary.
async fn retry_all(tasks: &Tasks, ids: &[TaskId], unparsed: Vec<Value>) -> (Value, String) {
    let mut results = Vec::new();
    let mut errors = unparsed;
    for &id in ids {
        match tasks.retry(id).await {
            Ok(new_id) => {
                results.push(json!({ "original_task_id": id, "new_task_id": new_id }));
            }
            Err(e) => errors.push(json!({ "task_id": id, "detail": e.to_string() })),
        }
    }
    let summary = format!("{} dispatched, {} skipped", results.len(), errors.len());
    (
        json!({
            "dispatched": results.len(),
            "skipped": errors.len(),
            "results": results,
            "errors": errors,
        }),
        summary,
    )
}

pub(super) async fn bulk_retry(
    tasks: Tasks,
    admin: Admin,
    user: Principal,
    body: Result<Json<BulkRetry>, JsonRejection>,
) -> ApiResult<Value> {
    let body = match json_body(body) {
        Ok(b) if b.task_ids.len() > MAX_BULK => Err(bad_request(format!(
            "`task_ids` may name at most {MAX_BULK} tasks, got {}",
            b.task_ids.len()
        ))),
        other => other,
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return audited(&admin, &user, "bulk-retry", Vec::new(), Err(e)),
    };
    let mut ids = Vec::new();
    let mut unparsed = Vec::new();
    for raw in &body.task_ids {
        match raw.parse::<TaskId>() {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(_) => unparsed.push(json!({ "task_id": raw, "detail": "Task not found" })),
        }
    }
    let outcome = retry_all(&tasks, &ids, unparsed).await;
    audited(&admin, &user, "bulk-retry", ids, Ok(outcome))
}

/// The finished runs in `status` of the window, newest first, at most `MAX_BULK`.
async fn window(
    tasks: &Tasks,
    status: TaskStatus,
    since: Option<Duration>,
    name: Option<&str>,
) -> Result<Vec<TaskId>, ApiError> {
    let mut filter = TaskFilter::new()
        .status(status)
        .limit(TaskFilter::MAX_LIMIT);
    if let Some(since) = since.and_then(|d| chrono::Duration::from_std(d).ok()) {
        filter = filter.since(chrono::Utc::now() - since);
    }
    if let Some(name) = name {
        filter = filter.name(name);
    }
    let mut ids = Vec::new();
    loop {
        let page = tasks.list(&filter).await?;
        ids.extend(page.tasks.iter().map(|r| r.task_id));
        match page.next_cursor {
            Some(cursor) if ids.len() < MAX_BULK => filter = filter.cursor(cursor),
            _ => break,
        }
    }
    ids.truncate(MAX_BULK);
    Ok(ids)
}

pub(super) async fn retry_failed(
    tasks: Tasks,
    admin: Admin,
    user: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Value> {
    let mut since = None;
    let mut name = None;
    let mut status = TaskStatus::Failed;
    let mut parsed = Ok(());
    for (key, value) in &params {
        let step = match key.as_str() {
            "since" => window_param("since", value).map(|w| since = w),
            "name" if !value.is_empty() => {
                name = Some(value.as_str());
                Ok(())
            }
            "name" => Ok(()),
            "status" => match value.parse::<TaskStatus>() {
                Ok(s @ (TaskStatus::Failed | TaskStatus::Interrupted | TaskStatus::Rejected)) => {
                    status = s;
                    Ok(())
                }
                _ => Err(bad_request(format!(
                    "`status` must be failed, interrupted or rejected; got `{value}`"
                ))),
            },
            other => Err(bad_request(format!(
                "unknown query parameter `{other}`; expected one of since, name, status"
            ))),
        };
        if step.is_err() {
            parsed = step;
            break;
        }
    }
    if parsed.is_ok() && !params.contains_key("since") {
        parsed = Err(bad_request(
            "`since` is required: a window like `30m`, `6h` or `7d`, or `all`",
        ));
    }
    let ids = match parsed {
        Ok(()) => window(&tasks, status, since, name).await,
        Err(error) => Err(error),
    };
    let ids = match ids {
        Ok(ids) => ids,
        Err(e) => return audited(&admin, &user, "retry-failed", Vec::new(), Err(e)),
    };
    let outcome = retry_all(&tasks, &ids, Vec::new()).await;
    audited(&admin, &user, "retry-failed", ids, Ok(outcome))
}

pub(super) async fn delete_history(
    tasks: Tasks,
    admin: Admin,
    user: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Value> {
    let outcome = async {
        if let Some(other) = params.keys().find(|k| *k != "older_than") {
            return Err(bad_request(format!(
                "unknown query parameter `{other}`; expected older_than"
            )));
        }
        let raw = params.get("older_than").ok_or_else(|| {
            bad_request("`older_than` is required: a window like `30m`, `6h` or `7d`, or `all`")
        })?;
        let older_than = window_param("older_than", raw)?.unwrap_or(Duration::ZERO);
        let deleted = tasks.purge_history(older_than).await?;
        Ok((
            json!({ "deleted": deleted }),
            format!("{deleted} records older than {raw} deleted"),
        ))
    }
    .await;
    audited(&admin, &user, "delete-history", Vec::new(), outcome)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Resize {
    /// Absent: unchanged; `null`: no limit.
    #[serde(default, deserialize_with = "present")]
    concurrency: Option<Option<usize>>,
    #[serde(default)]
    max_size: Option<usize>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    Option::<usize>::deserialize(d).map(Some)
}

pub(super) async fn resize_queue(
    tasks: Tasks,
    admin: Admin,
    user: Principal,
    Path(name): Path<String>,
    body: Result<Json<Resize>, JsonRejection>,
) -> ApiResult<Value> {
    let outcome = (|| {
        let body = json_body(body)?;
        let current = tasks
            .queues()
            .into_iter()
            .find(|q| q.name == name)
            .ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, format!("queue `{name}` not found"))
            })?;
        let concurrency = body.concurrency.unwrap_or(current.concurrency);
        if concurrency == Some(0) || body.max_size == Some(0) {
            return Err(bad_request(
                "`concurrency` and `max_size` must be at least 1 (null for no concurrency limit)",
            ));
        }
        let mut config = QueueConfig::new().max_size(body.max_size.unwrap_or(current.max_size));
        if let Some(c) = concurrency {
            config = config.concurrency(c);
        }
        tasks.resize_queue(&name, config);
        let stats = tasks
            .queues()
            .into_iter()
            .find(|q| q.name == name)
            .map(|q| serde_json::to_value(q).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        let detail = format!(
            "queue `{name}`: concurrency {}, max_size {}",
            concurrency.map_or_else(|| "unlimited".to_owned(), |c| c.to_string()),
            body.max_size.unwrap_or(current.max_size)
        );
        Ok((stats, detail))
    })();
    audited(&admin, &user, "resize-queue", Vec::new(), outcome)
}
