//! `wait`: every caller waiting for a task is woken with its final record, a caller waiting for
//! a task kept for the next start at shutdown gets it as kept, and an unknown task is not found.

mod support;

use std::time::Duration;

use taskflow::{Error, QueueConfig, TaskId, TaskManager, TaskStatus};

/// Kept in the store at shutdown when it has not started.
#[taskflow::task(name = "wait.kept", persist, queue = "serial")]
async fn kept() {}

#[tokio::test]
async fn every_caller_waiting_for_a_running_task_gets_its_final_record() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let id = manager
        .spawn("gated", async move {
            let _ = released.await;
        })
        .await
        .expect("spawned");
    support::until_status(&manager, id, TaskStatus::Running).await;
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.wait(id).await })
        })
        .collect();
    // On this single-threaded runtime each waiter runs up to its wait once this test yields.
    tokio::task::yield_now().await;
    assert!(
        waiters.iter().all(|waiter| !waiter.is_finished()),
        "the task is still running"
    );
    release.send(()).expect("the task is running");
    for waiter in waiters {
        let record = waiter
            .await
            .expect("the waiter finishes")
            .expect("the task is found");
        assert_eq!(record.task_id, id);
        assert_eq!(record.status, TaskStatus::Success);
        assert!(record.end_time.is_some(), "the final record has its end");
    }
}

#[tokio::test]
async fn a_caller_waiting_for_a_task_kept_at_shutdown_gets_it_pending() {
    let dir = support::TempDir::new("wait-kept");
    let manager = TaskManager::builder()
        .sqlite(dir.join("tasks.db"))
        .queue("serial", QueueConfig::new().concurrency(1))
        .shutdown_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("builds");
    let stuck = manager
        .spawn("stuck", tokio::time::sleep(Duration::from_secs(3600)))
        .queue("serial")
        .await
        .expect("spawned");
    support::until_status(&manager, stuck, TaskStatus::Running).await;
    let id = manager.add(Kept {}).await.expect("enqueued");
    let waiter = {
        let manager = manager.clone();
        tokio::spawn(async move { manager.wait(id).await })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "the task has not started");
    manager.shutdown().await.expect("shuts down");
    let record = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter is woken at shutdown")
        .expect("the waiter finishes")
        .expect("the task is found");
    assert_eq!(record.task_id, id);
    assert_eq!(record.status, TaskStatus::Pending);
}

#[tokio::test]
async fn waiting_for_an_unknown_task_is_not_found() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let unknown = TaskId::new();
    assert!(matches!(
        manager.wait(unknown).await,
        Err(Error::NotFound(id)) if id == unknown
    ));
}
