//! A small app with background tasks: a signup route that enqueues a welcome mail with retries,
//! a report route that runs a synchronous task on the blocking pool, and a flaky task that fails
//! and retries. The task API is mounted at `/tasks`.
//!
//! ```text
//! cargo run -p taskflow-examples --example basic
//! curl -X POST localhost:8000/signup -H 'content-type: application/json' -d '{"id":1,"email":"ada@example.com"}'
//! curl -X POST localhost:8000/reports/7
//! curl -X POST localhost:8000/flaky
//! curl localhost:8000/tasks
//! ```
//!
//! Tasks persist in the SQLite file `tasks.db` (override with `TASKFLOW_DB`): the welcome mail is
//! a `persist` task, written before the handler answers, so it survives a crash; the history of
//! every task is listed again after a restart.
//!
//! The live dashboard is at <http://127.0.0.1:8000/tasks/dashboard>.
//!
//! `TASKFLOW_ADDR` overrides the listen address (default `127.0.0.1:8000`). With
//! `TASKFLOW_ADMIN_USER` and `TASKFLOW_ADMIN_PASSWORD` set, the dashboard and the task API require
//! that login. `POST /echo` with `{"text": "…", "fail": true}` enqueues a task whose argument, log
//! line and error carry the text (handy to see how the dashboard shows odd input).

use std::time::Duration;

use axum::extract::Path;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use taskflow::admin::Auth;
use taskflow::{Permanent, TaskAdmin, TaskLogLayer, TaskManager, Tasks, task_log};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Sends the welcome mail to a new user.
#[taskflow::task(retries = 3, delay = "500ms", backoff = 2.0, jitter, persist)]
async fn send_welcome(user_id: u64, email: String) -> Result<(), Permanent> {
    if !email.contains('@') {
        return Err(Permanent::new(format!("`{email}` is not a mail address")));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    task_log!(info, user_id = user_id; "welcome mail sent to {email}");
    Ok(())
}

/// Renders a report; synchronous, so it runs on the dedicated blocking pool.
#[taskflow::task(name = "reports.render", timeout = "30s", queue = "reports")]
fn render_report(report_id: u64) -> Result<Value, String> {
    std::thread::sleep(Duration::from_millis(300));
    tracing::info!(report_id, "report rendered");
    Ok(json!({ "report_id": report_id, "pages": 3 }))
}

/// Syncs with the CRM; fails on its first two attempts, then succeeds.
#[taskflow::task(retries = 4, delay = "1s")]
async fn sync_crm() -> Result<&'static str, String> {
    let attempt = taskflow::TaskContext::current().map_or(1, |ctx| ctx.attempt());
    if attempt < 3 {
        return Err(format!("upstream unavailable (attempt {attempt})"));
    }
    Ok("synced")
}

/// Logs its text, then fails with it when asked to.
#[taskflow::task(name = "demo.echo")]
async fn echo(text: String, fail: bool) -> Result<String, String> {
    task_log!(info, text = text.as_str(); "echo: {text}");
    if fail {
        return Err(format!("echo failed: {text}"));
    }
    Ok(text)
}

#[derive(Deserialize)]
struct Signup {
    id: u64,
    email: String,
}

async fn signup(tasks: Tasks, Json(form): Json<Signup>) -> Result<Json<Value>, taskflow::Error> {
    let id = tasks
        .add(SendWelcome {
            user_id: form.id,
            email: form.email,
        })
        .idempotency_key(format!("welcome-{}", form.id))
        .tags([
            ("user_id", form.id.to_string()),
            ("source", "signup".to_owned()),
        ])
        .await?;
    Ok(Json(json!({ "task_id": id })))
}

async fn report(tasks: Tasks, Path(report_id): Path<u64>) -> Result<Json<Value>, taskflow::Error> {
    let id = tasks.add(RenderReport { report_id }).await?;
    Ok(Json(json!({ "task_id": id })))
}

async fn flaky(tasks: Tasks) -> Result<Json<Value>, taskflow::Error> {
    let id = tasks.add(SyncCrm {}).await?;
    Ok(Json(json!({ "task_id": id })))
}

#[derive(Deserialize)]
struct EchoForm {
    text: String,
    #[serde(default)]
    fail: bool,
}

async fn echo_route(
    tasks: Tasks,
    Json(form): Json<EchoForm>,
) -> Result<Json<Value>, taskflow::Error> {
    let id = tasks
        .add(Echo {
            text: form.text.clone(),
            fail: form.fail,
        })
        .tags([("text", form.text)])
        .await?;
    Ok(Json(json!({ "task_id": id })))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with(tracing_subscriber::fmt::layer())
        .with(TaskLogLayer::new())
        .init();

    let db = std::env::var("TASKFLOW_DB").unwrap_or_else(|_| "tasks.db".to_owned());
    let manager = TaskManager::builder()
        .sqlite(&db)
        .requeue_pending(true)
        .max_concurrent_tasks(64)
        .queue(
            "reports",
            taskflow::QueueConfig::new().concurrency(2).max_size(100),
        )
        .build()
        .await?;
    let app = Router::new()
        .route("/signup", post(signup))
        .route("/reports/{id}", post(report))
        .route("/flaky", post(flaky))
        .route("/echo", post(echo_route));
    let mut admin = TaskAdmin::new(&manager)
        .title("taskflow example")
        .display_args(true);
    if let (Ok(user), Ok(password)) = (
        std::env::var("TASKFLOW_ADMIN_USER"),
        std::env::var("TASKFLOW_ADMIN_PASSWORD"),
    ) {
        admin = admin.auth(Auth::users([(user, password)]));
    }
    let app = admin.mount(app);

    let addr = std::env::var("TASKFLOW_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(
        "listening on http://{}; task API at /tasks, dashboard at /tasks/dashboard",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(manager.shutdown_signal())
        .await?;
    manager.shutdown().await?;
    Ok(())
}
