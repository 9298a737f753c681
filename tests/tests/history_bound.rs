//! The in-memory history is bounded: the oldest finished records are evicted first, pending and
//! running tasks never are.

use std::time::Duration;

use taskflow::{TaskFilter, TaskManager, TaskStatus};

#[tokio::test]
async fn oldest_finished_records_are_evicted_first() {
    let manager = TaskManager::builder()
        .max_history(5)
        .build()
        .await
        .expect("builds");
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let waiter = std::sync::Arc::clone(&gate);
    let running = manager
        .spawn("long", async move { waiter.notified().await })
        .await
        .expect("spawned");
    let pending = manager
        .spawn("later", async {})
        .delay(Duration::from_secs(3600))
        .await
        .expect("spawned");
    let mut finished = Vec::new();
    for i in 0..12 {
        let id = manager
            .spawn(format!("quick-{i}"), async {})
            .await
            .expect("spawned");
        manager.wait(id).await.expect("finishes");
        finished.push(id);
    }
    let page = manager
        .list(&TaskFilter::new().limit(100))
        .await
        .expect("list");
    let kept: Vec<_> = page
        .tasks
        .iter()
        .filter(|r| r.status.is_finished())
        .map(|r| r.task_id)
        .collect();
    let newest_five: Vec<_> = finished.iter().rev().take(5).copied().collect();
    assert_eq!(kept, newest_five);
    assert!(
        manager.get(finished[0]).await.expect("readable").is_none(),
        "the oldest was evicted"
    );
    assert_eq!(
        manager
            .get(running)
            .await
            .expect("readable")
            .map(|r| r.status),
        Some(TaskStatus::Running)
    );
    assert_eq!(
        manager
            .get(pending)
            .await
            .expect("readable")
            .map(|r| r.status),
        Some(TaskStatus::Pending)
    );
    assert!(matches!(
        manager.wait(finished[0]).await,
        Err(taskflow::Error::NotFound(_))
    ));
    gate.notify_one();
    manager.wait(running).await.expect("finishes");
}
