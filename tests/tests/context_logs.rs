//! `TaskContext::current()` inside and outside tasks, `task_log!` levels and fields, and
//! `tracing` events captured into the task's log by `TaskLogLayer`.

use std::time::Duration;

use taskflow::{LogLevel, TaskContext, TaskLogLayer, TaskManager, task_log};
use tracing_subscriber::layer::SubscriberExt;

/// Reports its own context.
#[taskflow::task(name = "ctx.report")]
async fn report_context() -> Result<serde_json::Value, String> {
    let ctx = TaskContext::current().ok_or("no context")?;
    tokio::task::yield_now().await;
    Ok(serde_json::json!({
        "id": ctx.id().to_string(),
        "name": ctx.name(),
        "attempt": ctx.attempt(),
        "tags": ctx.tags(),
    }))
}

/// Reports its own context from the blocking pool.
#[taskflow::task(name = "ctx.blocking")]
fn report_context_blocking() -> Result<serde_json::Value, String> {
    let ctx = TaskContext::current().ok_or("no context")?;
    task_log!(debug, "on thread {:?}", std::thread::current().name());
    Ok(serde_json::json!({ "id": ctx.id().to_string(), "name": ctx.name() }))
}

#[tokio::test]
async fn context_is_available_inside_tasks_and_absent_outside() {
    assert!(TaskContext::current().is_none());
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager
        .add(ReportContext {})
        .tags([("tenant", "acme")])
        .await
        .expect("enqueued");
    let result = manager
        .wait(id)
        .await
        .expect("finishes")
        .result
        .expect("a result")
        .decode::<serde_json::Value>()
        .expect("JSON");
    assert_eq!(result["id"], id.to_string());
    assert_eq!(result["name"], "ctx.report");
    assert_eq!(result["attempt"], 1);
    assert_eq!(result["tags"]["tenant"], "acme");

    let id = manager.add(ReportContext {}).await.expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(
        record
            .result
            .and_then(|result| result.decode::<serde_json::Value>().ok())
            .map(|result| result["tags"].clone()),
        Some(serde_json::json!({})),
        "a task enqueued without tags sees none"
    );

    let id = manager
        .add(ReportContextBlocking {})
        .await
        .expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(
        record
            .result
            .and_then(|result| result.decode::<serde_json::Value>().ok())
            .map(|result| result["id"].clone()),
        Some(id.to_string().into())
    );
    assert!(
        record.logs[0].message.contains("taskflow-blocking-"),
        "{:?}",
        record.logs
    );
    assert!(
        TaskContext::current().is_none(),
        "nothing leaks into the caller"
    );
}

/// Logs at every level, with fields.
#[taskflow::task]
async fn chatty(user: u64) {
    task_log!("starting for {user}");
    task_log!(debug, "details");
    task_log!(warn, attempt = 2, user = user, reason = "slow"; "took {} ms", 1500);
    task_log!(error, "gave up on {}", user);
    task_log!(trace, items = vec![1, 2, 3]; "dump");
}

#[tokio::test]
async fn task_log_records_levels_messages_and_fields() {
    assert!(TaskContext::current().is_none());
    task_log!("outside a task: ignored");
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(Chatty { user: 9 }).await.expect("enqueued");
    let logs = manager.wait(id).await.expect("finishes").logs;
    let summary: Vec<(LogLevel, &str)> =
        logs.iter().map(|l| (l.level, l.message.as_str())).collect();
    assert_eq!(
        summary,
        [
            (LogLevel::Info, "starting for 9"),
            (LogLevel::Debug, "details"),
            (LogLevel::Warn, "took 1500 ms"),
            (LogLevel::Error, "gave up on 9"),
            (LogLevel::Trace, "dump"),
        ]
    );
    assert_eq!(logs[2].fields["attempt"], 2);
    assert_eq!(logs[2].fields["user"], 9);
    assert_eq!(logs[2].fields["reason"], "slow");
    assert_eq!(logs[4].fields["items"], serde_json::json!([1, 2, 3]));
    let json = serde_json::to_value(&logs[2]).expect("serializes");
    for key in ["timestamp", "level", "message", "fields"] {
        assert!(json.get(key).is_some(), "{json}");
    }
    assert_eq!(json["level"], "warn");
}

/// Emits ordinary tracing events.
#[taskflow::task]
async fn traced(order: u64) {
    tracing::info!(order, "processing order");
    tokio::time::sleep(Duration::from_millis(1)).await;
    tracing::warn!(retry = true, "inventory low");
}

#[test]
fn tracing_events_inside_a_task_are_captured() {
    let subscriber = tracing_subscriber::registry().with(TaskLogLayer::new());
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        tracing::info!("outside any task");
        let manager = TaskManager::builder().build().await.expect("builds");
        let id = manager.add(Traced { order: 77 }).await.expect("enqueued");
        let logs = manager.wait(id).await.expect("finishes").logs;
        assert_eq!(logs.len(), 2, "{logs:#?}");
        assert_eq!(
            (logs[0].level, logs[0].message.as_str()),
            (LogLevel::Info, "processing order")
        );
        assert_eq!(logs[0].fields["order"], 77);
        assert_eq!(
            (logs[1].level, logs[1].message.as_str()),
            (LogLevel::Warn, "inventory low")
        );
        assert_eq!(logs[1].fields["retry"], true);
    });
}

#[tokio::test]
async fn log_entries_per_task_are_bounded() {
    let manager = TaskManager::builder()
        .max_log_entries(10)
        .build()
        .await
        .expect("builds");
    let id = manager
        .spawn("noisy", async {
            for i in 0..100 {
                task_log!("line {i}");
            }
        })
        .await
        .expect("spawned");
    let logs = manager.wait(id).await.expect("finishes").logs;
    assert_eq!(logs.len(), 11);
    assert!(logs[10].message.contains("log limit of 10 entries reached"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_context_kept_past_its_attempt_is_not_reused() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let kept = manager
        .spawn("keeps.context", async move {
            let _ = sender.send(TaskContext::current().expect("inside a task"));
        })
        .await
        .expect("enqueued");
    manager.wait(kept).await.expect("finishes");
    let context = receiver.await.expect("the task ran");
    // Later attempts on this thread start while the kept context is still held.
    for _ in 0..20 {
        let id = manager.spawn("later", async {}).await.expect("enqueued");
        manager.wait(id).await.expect("finishes");
    }
    assert_eq!(context.id(), kept);
    assert_eq!(context.name(), "keeps.context");
    assert_eq!(context.attempt(), 1);
    manager.shutdown().await.expect("shuts down");
}
