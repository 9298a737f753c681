//! Dropping the runtime with many queued tasks (returning from `main` without `shutdown`) must
//! end quietly: dropped attempts must not start the next task from inside the drop.

use std::time::Duration;

use taskflow::{QueueConfig, TaskManager};

#[test]
fn dropping_the_runtime_with_queued_tasks_does_not_overflow_the_stack() {
    // A small stack makes unbounded recursion fail fast and visibly.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let manager = TaskManager::builder()
                    .queue("narrow", QueueConfig::new().concurrency(4))
                    .build()
                    .await
                    .expect("builds");
                for _ in 0..20_000 {
                    manager
                        .spawn("sleeper", async {
                            tokio::time::sleep(Duration::from_secs(3600)).await
                        })
                        .queue("narrow")
                        .await
                        .expect("queued");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
            drop(runtime);
        })
        .expect("thread");
    assert!(handle.join().is_ok(), "the runtime dropped cleanly");
}
