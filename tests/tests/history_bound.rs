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

/// Tasks from several producers finish out of the order they were added in, on two workers:
/// the window still holds exactly `max_history` finished records, each found by its id, the
/// last to finish kept and the first evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_finishing_out_of_order_keep_the_bound() {
    const PRODUCERS: usize = 4;
    const EACH: usize = 250;
    const KEPT: usize = 100;
    let manager = TaskManager::builder()
        .max_history(KEPT)
        .build()
        .await
        .expect("builds");
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let manager = manager.clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(EACH);
                for i in 0..EACH {
                    // Pauses of 0 to 1.5 ms, different for each producer.
                    let pause = Duration::from_micros(((i * 7_919 + p * 104_729) % 1_500) as u64);
                    let id = manager
                        .spawn(format!("p{p}-{i}"), tokio::time::sleep(pause))
                        .await
                        .expect("spawned");
                    let record = manager.wait(id).await.expect("finishes");
                    assert_eq!(record.status, TaskStatus::Success);
                    ids.push((record.end_time.expect("ended"), id));
                }
                ids
            })
        })
        .collect();
    let mut all = Vec::new();
    for producer in producers {
        all.extend(producer.await.expect("producer"));
    }
    all.sort();
    let page = manager
        .list(&TaskFilter::new().limit(1_000))
        .await
        .expect("list");
    let kept: std::collections::HashSet<_> = page.tasks.iter().map(|r| r.task_id).collect();
    assert_eq!(
        kept.len(),
        KEPT,
        "the window holds its bound of finished records"
    );
    let (first, last) = (all[0].1, all[all.len() - 1].1);
    assert!(kept.contains(&last), "the last to finish is kept");
    assert!(!kept.contains(&first), "the first to finish is evicted");
    for (_, id) in &all {
        let held = manager.get(*id).await.expect("readable").is_some();
        assert_eq!(held, kept.contains(id), "listing and lookup agree on {id}");
    }
}
