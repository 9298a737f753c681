//! The JSON API over real HTTP on loopback: shapes, filters, pagination and status codes.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use support::{request, serve};
use taskflow::{TaskAdmin, TaskManager, TaskStatus, Tasks};

/// Says hello; fails for the name "fail".
#[taskflow::task(name = "admin.greet")]
async fn greet(name: String) -> Result<String, String> {
    if name == "fail" {
        return Err("asked to fail".to_owned());
    }
    Ok(format!("hello {name}"))
}

/// Waits for a long time.
#[taskflow::task(name = "admin.sleepy")]
async fn sleepy() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

async fn enqueue(
    tasks: Tasks,
    axum::Json(body): axum::Json<Value>,
) -> Result<axum::Json<Value>, taskflow::Error> {
    let name = body["name"].as_str().unwrap_or_default().to_owned();
    let id = tasks
        .add(Greet { name: name.clone() })
        .tags([("who", name)])
        .await?;
    Ok(axum::Json(json!({ "task_id": id })))
}

async fn app(display_args: bool) -> (TaskManager, std::net::SocketAddr) {
    let manager = TaskManager::builder()
        .build()
        .await
        .expect("manager builds");
    let router = Router::new().route("/enqueue", post(enqueue));
    let router = TaskAdmin::new(&manager)
        .display_args(display_args)
        .mount(router);
    (manager.clone(), serve(router).await)
}

async fn finished(manager: &TaskManager, id: &str) -> Value {
    let id = id.parse().expect("a task id");
    let record = manager.wait(id).await.expect("the task finishes");
    serde_json::to_value(record).expect("records serialize")
}

#[tokio::test]
async fn handler_enqueues_and_record_has_the_documented_shape() {
    let (manager, addr) = app(true).await;
    let response = request(addr, "POST", "/enqueue", Some(r#"{"name":"ada"}"#)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let id = response.json()["task_id"]
        .as_str()
        .expect("task_id")
        .to_owned();
    finished(&manager, &id).await;

    let response = request(addr, "GET", &format!("/tasks/{id}"), None).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let record = response.json();
    for field in [
        "task_id",
        "func_name",
        "status",
        "created_at",
        "start_time",
        "end_time",
        "duration",
        "retries_used",
        "error",
        "stacktrace",
        "logs",
        "tags",
        "source",
        "priority",
        "queue",
        "executor",
        "attempt",
        "idempotency_key",
        "instance_id",
        "result",
        "args",
    ] {
        assert!(
            record.get(field).is_some(),
            "record lacks `{field}`: {record}"
        );
    }
    assert_eq!(record["task_id"], id);
    assert_eq!(record["func_name"], "admin.greet");
    assert_eq!(record["status"], "success");
    assert_eq!(record["result"], "hello ada");
    assert_eq!(record["args"], json!({ "name": "ada" }));
    assert_eq!(record["tags"], json!({ "who": "ada" }));
    assert_eq!(record["executor"], "async");
    assert_eq!(record["instance_id"], manager.instance_id());
    let created = record["created_at"]
        .as_str()
        .expect("created_at is a string");
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "RFC 3339: {created}"
    );
    assert!(
        created.ends_with('Z') || created.contains('+'),
        "explicit offset: {created}"
    );
}

#[tokio::test]
async fn args_are_hidden_unless_display_args() {
    let (manager, addr) = app(false).await;
    let id = manager
        .add(Greet { name: "bo".into() })
        .await
        .expect("enqueued");
    manager.wait(id).await.expect("finishes");
    let record = request(addr, "GET", &format!("/tasks/{id}"), None)
        .await
        .json();
    assert!(record.get("args").is_none(), "{record}");
}

#[tokio::test]
async fn unknown_and_malformed_ids_answer_404_with_detail() {
    let (_manager, addr) = app(false).await;
    for path in [
        format!("/tasks/{}", taskflow::TaskId::new()),
        "/tasks/not-a-uuid".to_owned(),
    ] {
        let response = request(addr, "GET", &path, None).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.json(), json!({ "detail": "Task not found" }));
    }
    let response = request(
        addr,
        "POST",
        &format!("/tasks/{}/cancel", taskflow::TaskId::new()),
        None,
    )
    .await;
    assert_eq!(response.status, 404);
    let response = request(
        addr,
        "POST",
        &format!("/tasks/{}/retry", taskflow::TaskId::new()),
        None,
    )
    .await;
    assert_eq!(response.status, 404);
}

#[tokio::test]
async fn list_filters_and_paginates_newest_first() {
    let (manager, addr) = app(false).await;
    let mut ids = Vec::new();
    for name in ["a", "fail", "b", "fail", "c"] {
        let id = manager
            .add(Greet { name: name.into() })
            .tags([("who", name)])
            .await
            .expect("enqueued");
        manager.wait(id).await.expect("finishes");
        ids.push(id.to_string());
    }
    let all = request(addr, "GET", "/tasks", None).await.json();
    let listed: Vec<&str> = all["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    assert_eq!(all["next_cursor"], Value::Null);

    let failed = request(addr, "GET", "/tasks?status=failed", None)
        .await
        .json();
    assert_eq!(failed["tasks"].as_array().map(Vec::len), Some(2));
    assert!(
        failed["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|t| t["status"] == "failed")
    );

    let tagged = request(addr, "GET", "/tasks?tag=who:b", None).await.json();
    assert_eq!(tagged["tasks"].as_array().map(Vec::len), Some(1));
    assert_eq!(tagged["tasks"][0]["task_id"], ids[2]);

    let named = request(addr, "GET", "/tasks?name=admin.greet&limit=2", None)
        .await
        .json();
    assert_eq!(named["tasks"].as_array().map(Vec::len), Some(2));
    let cursor = named["next_cursor"].as_str().expect("a next page");
    let next = request(
        addr,
        "GET",
        &format!("/tasks?name=admin.greet&limit=2&cursor={cursor}"),
        None,
    )
    .await
    .json();
    assert_eq!(next["tasks"][0]["task_id"], ids[2]);

    let none = request(addr, "GET", "/tasks?name=nope", None).await.json();
    assert_eq!(none["tasks"], json!([]));
}

#[tokio::test]
async fn bad_query_parameters_answer_400_with_detail() {
    let (_manager, addr) = app(false).await;
    for (path, expect) in [
        ("/tasks?status=done", "unknown status `done`"),
        ("/tasks?limit=0", "`limit` must be"),
        ("/tasks?limit=abc", "`limit` must be"),
        ("/tasks?colour=red", "unknown query parameter `colour`"),
    ] {
        let response = request(addr, "GET", path, None).await;
        assert_eq!(response.status, 400, "{path}");
        let detail = response.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(detail.contains(expect), "{path}: {detail}");
    }
}

#[tokio::test]
async fn metrics_count_by_status_and_name() {
    let (manager, addr) = app(false).await;
    for name in ["a", "b", "fail"] {
        let id = manager
            .add(Greet { name: name.into() })
            .await
            .expect("enqueued");
        manager.wait(id).await.expect("finishes");
    }
    let metrics = request(addr, "GET", "/tasks/metrics", None).await.json();
    assert_eq!(metrics["total"], 3);
    assert_eq!(metrics["by_status"]["success"], 2);
    assert_eq!(metrics["by_status"]["failed"], 1);
    assert_eq!(metrics["by_status"]["pending"], 0);
    let rate = metrics["success_rate"].as_f64().expect("a rate");
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{rate}");
    assert!(metrics["avg_duration"].is_number());
    assert!(metrics["p95_duration"].is_number());
    assert_eq!(metrics["by_name"]["admin.greet"]["total"], 3);
    assert_eq!(metrics["by_name"]["admin.greet"]["failed"], 1);
}

#[tokio::test]
async fn health_reports_instance() {
    let (manager, addr) = app(false).await;
    let health = request(addr, "GET", "/tasks/health", None).await.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store_connected"], true);
    assert_eq!(health["instance_id"], manager.instance_id());
    assert_eq!(health["is_leader"], false);
    assert!(
        health["started_at"]
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
    );
}

#[tokio::test]
async fn retry_and_cancel_codes() {
    let (manager, addr) = app(false).await;
    let failed = manager
        .add(Greet {
            name: "fail".into(),
        })
        .await
        .expect("enqueued");
    manager.wait(failed).await.expect("finishes");

    let response = request(addr, "POST", &format!("/tasks/{failed}/retry"), None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let body = response.json();
    assert_eq!(body["original_task_id"], failed.to_string());
    let new_id: taskflow::TaskId = body["new_task_id"]
        .as_str()
        .expect("new id")
        .parse()
        .expect("an id");
    let rerun = manager.wait(new_id).await.expect("rerun finishes");
    assert_eq!(rerun.retry_of, Some(failed));
    assert_eq!(rerun.source, "retry");
    assert_eq!(rerun.args, Some(json!({ "name": "fail" }).into()));

    // Running: retry is refused, cancel works; cancelled: cancel is refused.
    let running = manager.add(Sleepy {}).await.expect("enqueued");
    support::until_status(&manager, running, TaskStatus::Running).await;
    let response = request(addr, "POST", &format!("/tasks/{running}/retry"), None).await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        response.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("it is running"))
    );
    let response = request(addr, "POST", &format!("/tasks/{running}/cancel"), None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["status"], "cancelled");
    let response = request(addr, "POST", &format!("/tasks/{running}/cancel"), None).await;
    assert_eq!(response.status, 400);

    // A spawned future cannot be retried.
    let spawned = manager.spawn("adhoc", async {}).await.expect("spawned");
    manager.wait(spawned).await.expect("finishes");
    let response = request(addr, "POST", &format!("/tasks/{spawned}/retry"), None).await;
    assert_eq!(response.status, 400);
}

/// A task implemented by hand and never registered, so the registry cannot rebuild it by name.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Unregistered {
    n: u32,
}

impl taskflow::Task for Unregistered {
    const NAME: &'static str = "admin.unregistered";
    const OPTIONS: taskflow::TaskOptions = taskflow::TaskOptions::new();
    fn run(self) -> taskflow::TaskRun {
        taskflow::TaskRun::from_future(async move { Err::<(), _>(format!("fails {}", self.n)) })
    }
}

#[tokio::test]
async fn retry_of_an_unregistered_name_answers_409() {
    let (manager, addr) = app(false).await;
    let id = manager.add(Unregistered { n: 1 }).await.expect("enqueued");
    assert_eq!(
        manager.wait(id).await.expect("finishes").status,
        TaskStatus::Failed
    );
    let response = request(addr, "POST", &format!("/tasks/{id}/retry"), None).await;
    assert_eq!(response.status, 409, "{}", response.body);
    let detail = response.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        detail.contains("unknown task `admin.unregistered`; registered:"),
        "{detail}"
    );
    assert!(
        detail.contains("admin.greet"),
        "lists what is registered: {detail}"
    );
}

#[tokio::test]
async fn tasks_extractor_without_a_mounted_manager_answers_500() {
    async fn handler(tasks: Tasks) -> String {
        tasks.instance_id().to_owned()
    }
    let addr = serve(Router::new().route("/x", post(handler))).await;
    let response = request(addr, "POST", "/x", None).await;
    assert_eq!(response.status, 500);
    let detail = response.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        detail.contains("TaskAdmin::new(&manager).mount(router)"),
        "{detail}"
    );
}

#[tokio::test]
async fn custom_path_prefix() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let addr = serve(
        TaskAdmin::new(&manager)
            .path("/admin/jobs/")
            .mount(Router::new()),
    )
    .await;
    assert_eq!(request(addr, "GET", "/admin/jobs", None).await.status, 200);
    assert_eq!(
        request(addr, "GET", "/admin/jobs/metrics", None)
            .await
            .status,
        200
    );
    assert_eq!(request(addr, "GET", "/tasks", None).await.status, 404);
}
