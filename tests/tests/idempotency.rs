//! Idempotency keys: reserved at enqueue, the same id for every `add` with the key while the run
//! holding it is pending, running or succeeded; released by failure, cancel and interruption.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use taskflow::{TaskManager, TaskStatus};

static CHARGES: AtomicU32 = AtomicU32::new(0);

/// Charges a card once.
#[taskflow::task]
async fn charge(order: u64) {
    CHARGES.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = order;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_adds_with_one_key_run_once() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let mut handles = Vec::new();
    for _ in 0..100 {
        let manager = manager.clone();
        handles.push(tokio::spawn(async move {
            manager
                .add(Charge { order: 1 })
                .idempotency_key("order-1")
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for handle in handles {
        ids.insert(handle.await.expect("joined").expect("accepted"));
    }
    assert_eq!(ids.len(), 1, "every add got the same id");
    let id = ids.into_iter().next().expect("one id");
    assert_eq!(
        manager.wait(id).await.expect("finishes").status,
        TaskStatus::Success
    );
    // After success the key still answers with the same run.
    let again = manager
        .add(Charge { order: 1 })
        .idempotency_key("order-1")
        .await
        .expect("accepted");
    assert_eq!(again, id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(CHARGES.load(Ordering::SeqCst), 1);
    assert_eq!(
        manager
            .get(id)
            .await
            .expect("readable")
            .and_then(|r| r.idempotency_key)
            .as_deref(),
        Some("order-1")
    );
}

/// Always fails.
#[taskflow::task]
async fn doomed() -> Result<(), String> {
    Err("declined".to_owned())
}

#[tokio::test]
async fn failed_and_cancelled_runs_release_their_key() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let first = manager
        .add(Doomed {})
        .idempotency_key("k")
        .await
        .expect("accepted");
    assert_eq!(
        manager.wait(first).await.expect("finishes").status,
        TaskStatus::Failed
    );
    let second = manager
        .add(Doomed {})
        .idempotency_key("k")
        .await
        .expect("accepted");
    assert_ne!(second, first, "a failed run released the key");
    manager.wait(second).await.expect("finishes");

    let delayed = manager
        .spawn("later", async {})
        .idempotency_key("c")
        .delay(Duration::from_secs(3600))
        .await
        .expect("accepted");
    assert_eq!(
        manager
            .spawn("later", async {})
            .idempotency_key("c")
            .await
            .expect("same"),
        delayed
    );
    manager.cancel(delayed).await.expect("cancel");
    let fresh = manager
        .spawn("later", async {})
        .idempotency_key("c")
        .await
        .expect("accepted");
    assert_ne!(fresh, delayed, "a cancelled run released the key");
}

#[tokio::test]
async fn interrupted_runs_release_their_key() {
    let manager = TaskManager::builder()
        .shutdown_timeout(Duration::from_millis(50))
        .build()
        .await
        .expect("builds");
    let id = manager
        .spawn("stuck", async {
            tokio::time::sleep(Duration::from_secs(3600)).await
        })
        .idempotency_key("s")
        .await
        .expect("accepted");
    manager.shutdown().await.expect("shuts down");
    let record = manager.get(id).await.expect("readable").expect("kept");
    assert_eq!(record.status, TaskStatus::Interrupted);
    // The key is free again, although this manager no longer accepts work.
    assert!(matches!(
        manager.spawn("stuck", async {}).idempotency_key("s").await,
        Err(taskflow::Error::ShuttingDown)
    ));
}

#[tokio::test]
async fn evicting_a_run_that_released_its_key_keeps_the_later_holder() {
    let manager = TaskManager::builder()
        .max_history(2)
        .build()
        .await
        .expect("builds");
    let failed = manager
        .add(Doomed {})
        .idempotency_key("k")
        .await
        .expect("accepted");
    manager.wait(failed).await.expect("finishes");
    let holder = manager
        .spawn("holder", async {})
        .idempotency_key("k")
        .await
        .expect("accepted");
    assert_ne!(holder, failed, "the failed run released the key");
    manager.wait(holder).await.expect("finishes");
    // One more finished record pushes the failed run out of the window of two.
    let filler = manager.spawn("filler", async {}).await.expect("accepted");
    manager.wait(filler).await.expect("finishes");
    assert_eq!(
        manager.get(failed).await.expect("readable"),
        None,
        "evicted"
    );
    assert!(
        manager.get(holder).await.expect("readable").is_some(),
        "kept"
    );
    let again = manager
        .spawn("holder", async {})
        .idempotency_key("k")
        .await
        .expect("accepted");
    assert_eq!(again, holder, "the succeeded run still holds the key");
}
