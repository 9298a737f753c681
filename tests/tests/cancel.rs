//! Cancel: a pending task never runs, a running async task is aborted, a running blocking task
//! cannot be stopped, a finished task cannot be cancelled.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use support::eventually;
use taskflow::{Error, QueueConfig, TaskManager, TaskStatus};

static PENDING_RAN: AtomicU32 = AtomicU32::new(0);

/// Counts its runs.
#[taskflow::task(queue = "one-at-a-time")]
async fn counted() {
    PENDING_RAN.fetch_add(1, Ordering::SeqCst);
}

/// Holds its queue's only slot until released.
#[taskflow::task(queue = "one-at-a-time")]
async fn holder(millis: u64) {
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

#[tokio::test]
async fn cancelled_pending_task_never_runs_even_later() {
    let manager = TaskManager::builder()
        .queue("one-at-a-time", QueueConfig::new().concurrency(1))
        .build()
        .await
        .expect("builds");
    let blocker = manager.add(Holder { millis: 100 }).await.expect("enqueued");
    let waiting = manager.add(Counted {}).await.expect("enqueued");
    assert_eq!(
        manager
            .get(waiting)
            .await
            .expect("readable")
            .map(|r| r.status),
        Some(TaskStatus::Pending)
    );
    let record = manager
        .cancel(waiting)
        .await
        .expect("a pending task can be cancelled");
    assert_eq!(record.status, TaskStatus::Cancelled);

    manager.wait(blocker).await.expect("blocker finishes");
    // The slot is free again; run something after it and give the cancelled task every chance.
    let after = manager.add(Counted {}).await.expect("enqueued");
    manager.wait(after).await.expect("finishes");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        PENDING_RAN.load(Ordering::SeqCst),
        1,
        "only the later task ran"
    );
    assert_eq!(
        manager
            .get(waiting)
            .await
            .expect("readable")
            .map(|r| r.status),
        Some(TaskStatus::Cancelled)
    );
    assert_eq!(
        manager
            .get(waiting)
            .await
            .expect("readable")
            .map(|r| r.attempt),
        Some(0)
    );
}

#[tokio::test]
async fn cancelled_delayed_task_never_runs() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let id = manager
        .spawn("delayed", async move { flag.store(true, Ordering::SeqCst) })
        .delay(Duration::from_millis(50))
        .await
        .expect("enqueued");
    manager.cancel(id).await.expect("cancel");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(
        manager.get(id).await.expect("readable").map(|r| r.status),
        Some(TaskStatus::Cancelled)
    );
}

#[tokio::test]
async fn running_async_task_is_aborted() {
    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let manager = TaskManager::builder()
        .max_concurrent_tasks(1)
        .build()
        .await
        .expect("builds");
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (flag, done) = (DropFlag(Arc::clone(&dropped)), Arc::clone(&finished));
    let id = manager
        .spawn("long", async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            done.store(true, Ordering::SeqCst);
        })
        .await
        .expect("spawned");
    support::until_status(&manager, id, TaskStatus::Running).await;
    let record = manager.cancel(id).await.expect("cancel");
    assert_eq!(record.status, TaskStatus::Cancelled);
    eventually(
        "the future is dropped",
        Duration::from_secs(5),
        async || dropped.load(Ordering::SeqCst),
    )
    .await;
    assert!(!finished.load(Ordering::SeqCst));
    assert_eq!(
        manager.get(id).await.expect("readable").map(|r| r.status),
        Some(TaskStatus::Cancelled)
    );
    // The slot was released: with one slot, another task still runs.
    let next = manager.spawn("next", async {}).await.expect("spawned");
    assert_eq!(
        manager.wait(next).await.expect("finishes").status,
        TaskStatus::Success
    );
}

/// Blocks its thread for a while.
#[taskflow::task]
fn blocking_work(millis: u64) {
    std::thread::sleep(Duration::from_millis(millis));
}

#[tokio::test]
async fn running_blocking_task_cannot_be_cancelled_and_finished_cannot_either() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager
        .add(BlockingWork { millis: 300 })
        .await
        .expect("enqueued");
    support::until_status(&manager, id, TaskStatus::Running).await;
    let error = manager
        .cancel(id)
        .await
        .expect_err("blocking tasks cannot be stopped");
    assert!(
        matches!(error, Error::CannotCancelBlocking(e) if e == id),
        "{error}"
    );
    assert!(error.to_string().contains("cannot be stopped"));
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(record.status, TaskStatus::Success);
    let error = manager.cancel(id).await.expect_err("finished");
    assert!(
        matches!(
            error,
            Error::InvalidState {
                status: TaskStatus::Success,
                ..
            }
        ),
        "{error}"
    );
    let missing = taskflow::TaskId::new();
    assert!(matches!(manager.cancel(missing).await, Err(Error::NotFound(m)) if m == missing));
}
