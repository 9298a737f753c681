//! Graceful shutdown: running attempts finish within the grace period, the rest are aborted and
//! marked `interrupted`, tasks not started are kept as `interrupted`, and nothing new is accepted.

mod support;

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::eventually;
use taskflow::{Error, QueueConfig, TaskManager, TaskStatus};

#[tokio::test]
async fn running_tasks_finish_within_the_grace_period() {
    let manager = TaskManager::builder()
        .shutdown_timeout(Duration::from_secs(10))
        .build()
        .await
        .expect("builds");
    let id = manager
        .spawn("short", async {
            tokio::time::sleep(Duration::from_millis(100)).await
        })
        .await
        .expect("spawned");
    support::until_status(&manager, id, TaskStatus::Running).await;
    manager.shutdown().await.expect("shuts down");
    assert_eq!(
        manager.get(id).await.expect("readable").map(|r| r.status),
        Some(TaskStatus::Success)
    );
}

#[tokio::test]
async fn attempts_past_the_grace_period_are_aborted_and_interrupted() {
    let manager = TaskManager::builder()
        .shutdown_timeout(Duration::from_millis(100))
        .queue("serial", QueueConfig::new().concurrency(1))
        .build()
        .await
        .expect("builds");
    let finished = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&finished);
    let stuck = manager
        .spawn("stuck", async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            done.store(true, Ordering::SeqCst);
        })
        .queue("serial")
        .await
        .expect("spawned");
    let waiting = manager
        .spawn("waiting", async {})
        .queue("serial")
        .await
        .expect("spawned");
    support::until_status(&manager, stuck, TaskStatus::Running).await;
    let started = std::time::Instant::now();
    manager.shutdown().await.expect("shuts down");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown is bounded: {:?}",
        started.elapsed()
    );

    let record = manager.get(stuck).await.expect("readable").expect("kept");
    assert_eq!(record.status, TaskStatus::Interrupted);
    assert!(
        record
            .error
            .as_deref()
            .is_some_and(|e| e.contains("shutdown grace period")),
        "{record:?}"
    );
    assert!(!finished.load(Ordering::SeqCst));

    let record = manager
        .get(waiting)
        .await
        .expect("readable")
        .expect("kept, never dropped");
    assert_eq!(record.status, TaskStatus::Interrupted);
    assert_eq!(record.error.as_deref(), Some("not started before shutdown"));
    assert_eq!(record.attempt, 0);
}

#[tokio::test]
async fn shutdown_refuses_new_work_and_is_idempotent() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let delayed = manager
        .spawn("later", async {})
        .delay(Duration::from_secs(3600))
        .await
        .expect("spawned");
    manager.shutdown().await.expect("shuts down");
    manager
        .shutdown()
        .await
        .expect("a second call does nothing");
    assert!(manager.is_shutting_down());
    assert!(matches!(
        manager.spawn("late", async {}).await,
        Err(Error::ShuttingDown)
    ));
    assert_eq!(
        manager
            .get(delayed)
            .await
            .expect("readable")
            .map(|r| r.status),
        Some(TaskStatus::Interrupted)
    );
}

#[tokio::test]
async fn shutdown_signal_resolves_when_shutdown_begins() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let signal = tokio::spawn(manager.shutdown_signal());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!signal.is_finished());
    manager.shutdown().await.expect("shuts down");
    tokio::time::timeout(Duration::from_secs(5), signal)
        .await
        .expect("resolved")
        .expect("joined");
}

#[tokio::test]
async fn serve_with_graceful_shutdown_stops_on_the_signal() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let app = taskflow::TaskAdmin::new(&manager).mount(axum::Router::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(manager.shutdown_signal())
            .into_future(),
    );
    manager.shutdown().await.expect("shuts down");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops")
        .expect("joined")
        .expect("served");
}

/// Fails, and would retry after a while.
#[taskflow::task(retries = 3, delay = "1h")]
async fn retry_later() -> Result<(), String> {
    Err("down".to_owned())
}

#[tokio::test]
async fn a_task_waiting_for_its_retry_is_interrupted_at_shutdown() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(RetryLater {}).await.expect("enqueued");
    eventually(
        "the first attempt failed",
        Duration::from_secs(5),
        async || {
            manager
                .get(id)
                .await
                .expect("readable")
                .is_some_and(|r| r.retries_used == 1)
        },
    )
    .await;
    assert_eq!(
        manager.get(id).await.expect("readable").map(|r| r.status),
        Some(TaskStatus::Pending)
    );
    manager.shutdown().await.expect("shuts down");
    let record = manager.get(id).await.expect("readable").expect("kept");
    assert_eq!(record.status, TaskStatus::Interrupted);
}
