//! A panicking or a stuck observer never delays a task or starves another observer: each has its
//! own queue, drops are counted, panics are caught and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use taskflow::{InMemoryLogger, ObserverFuture, TaskEvent, TaskManager, TaskObserver, TaskStatus};
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(10);

/// Panics on every event.
struct Panicker;

impl TaskObserver for Panicker {
    fn on_event(&self, event: Arc<TaskEvent>) -> ObserverFuture<'_> {
        panic!("observer bug on an event of {}", event.task_id());
    }

    fn name(&self) -> String {
        "panicker".to_owned()
    }
}

/// Panics inside the future, after an await.
struct LatePanicker;

impl TaskObserver for LatePanicker {
    fn on_event(&self, _event: Arc<TaskEvent>) -> ObserverFuture<'_> {
        Box::pin(async {
            tokio::task::yield_now().await;
            panic!("observer bug after an await");
        })
    }

    fn name(&self) -> String {
        "late-panicker".to_owned()
    }
}

/// Stuck on its first event until released.
struct Stuck {
    released: Arc<AtomicBool>,
    release: Arc<Notify>,
}

impl TaskObserver for Stuck {
    fn on_event(&self, _event: Arc<TaskEvent>) -> ObserverFuture<'_> {
        Box::pin(async move {
            loop {
                let notified = self.release.notified();
                if self.released.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        })
    }

    fn name(&self) -> String {
        "stuck".to_owned()
    }
}

#[tokio::test]
async fn panicking_and_stuck_observers_do_not_delay_tasks_or_other_observers() {
    let logger = InMemoryLogger::new();
    let released = Arc::new(AtomicBool::new(false));
    let release = Arc::new(Notify::new());
    let manager = TaskManager::builder()
        .event_capacity(16)
        .observer(Panicker)
        .observer(Stuck {
            released: released.clone(),
            release: release.clone(),
        })
        .observer(LatePanicker)
        .observer(logger.clone())
        .build()
        .await
        .expect("builds");

    let rounds = 10;
    let mut ids = Vec::new();
    for round in 0..rounds {
        let batch = [
            manager
                .spawn("obs.iso.quick", async move { Ok::<_, String>(round) })
                .await
                .expect("enqueued"),
            manager
                .spawn("obs.iso.logging", async move {
                    taskflow::task_log!("round {round}");
                })
                .await
                .expect("enqueued"),
        ];
        for id in batch {
            // The task finishes promptly although one observer is stuck and two panic.
            let record = tokio::time::timeout(WAIT, manager.wait(id))
                .await
                .expect("the task is not delayed by its observers")
                .expect("finishes");
            assert_eq!(record.status, TaskStatus::Success);
            // The healthy observer keeps up (its queue is its own).
            logger
                .wait_for_status(id, TaskStatus::Success, WAIT)
                .await
                .expect("the in-memory logger sees the task finish");
            ids.push(id);
        }
    }

    released.store(true, Ordering::Release);
    release.notify_waiters();
    manager.shutdown().await.expect("shuts down");

    // Every event reached the healthy observer: 3 lifecycle events per task and 1 log entry
    // for each logging task.
    let expected = ids.len() as u64 * 3 + rounds as u64;
    assert_eq!(logger.len() as u64, expected);
    for id in &ids {
        assert_eq!(
            logger.statuses_for(*id),
            [
                TaskStatus::Pending,
                TaskStatus::Running,
                TaskStatus::Success
            ]
        );
    }

    let stats = manager.observer_stats();
    let by_name = |name: &str| {
        stats
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no stats for {name}: {stats:?}"))
            .clone()
    };
    let memory = by_name("InMemoryLogger");
    assert_eq!(
        (memory.delivered, memory.dropped, memory.panics),
        (expected, 0, 0)
    );
    for name in ["panicker", "late-panicker"] {
        let panicker = by_name(name);
        assert!(panicker.panics > 0, "{panicker:?}");
        assert_eq!(panicker.panics, panicker.delivered, "{panicker:?}");
        assert_eq!(
            panicker.delivered + panicker.dropped,
            expected,
            "each event was delivered or counted as dropped: {panicker:?}"
        );
    }
    let stuck = by_name("stuck");
    assert!(
        stuck.dropped > 0,
        "a stuck observer overflows its own queue: {stuck:?}"
    );
    assert_eq!(stuck.delivered + stuck.dropped, expected, "{stuck:?}");
    assert_eq!(stuck.panics, 0);
}
