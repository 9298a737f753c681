//! effectum on taskflow's peer workload: `n` no-op jobs enqueued by 1, 8 and 64 concurrent
//! producers, each `add_to` awaited, until every job is done, on a file-backed queue. Prints the
//! same `system=… producers=… tasks=… secs=… per_sec=…` lines as taskflow's `peers` bench
//! (median of `TASKFLOW_BENCH_REPEAT` runs, default 3; `TASKFLOW_BENCH_TASKS`, default 10,000).
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/effectum/Cargo.toml
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use effectum::{Job, JobRunner, Queue, RunningJob, Worker};
use tokio::sync::Notify;

/// Counts finished jobs and wakes the bench after the last one.
#[derive(Debug)]
struct Progress {
    done: AtomicUsize,
    target: usize,
    all_done: Notify,
}

async fn noop_job(_job: RunningJob, progress: Arc<Progress>) -> Result<(), String> {
    if progress.done.fetch_add(1, Ordering::SeqCst) + 1 == progress.target {
        progress.all_done.notify_one();
    }
    Ok(())
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

fn share(n: usize, producers: usize, p: usize) -> usize {
    n / producers + usize::from(p < n % producers)
}

async fn effectum_run(n: usize, producers: usize) -> Duration {
    let path: PathBuf =
        std::env::temp_dir().join(format!("taskflow-bench-effectum-{}.db", std::process::id()));
    remove_db(&path);
    let queue = Arc::new(Queue::new(&path).await.expect("effectum queue"));
    let progress = Arc::new(Progress {
        done: AtomicUsize::new(0),
        target: n,
        all_done: Notify::new(),
    });
    let all_done = progress.all_done.notified();
    tokio::pin!(all_done);
    all_done.as_mut().enable();
    let runner = JobRunner::builder("noop", noop_job).build();
    // 64 concurrent jobs, as taskflow's default `max_concurrent_tasks`.
    let worker = Worker::builder(&queue, progress.clone())
        .max_concurrency(64)
        .jobs([runner])
        .build()
        .await
        .expect("effectum worker");
    let start = Instant::now();
    let handles: Vec<_> = (0..producers)
        .map(|p| {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                for _ in 0..share(n, producers, p) {
                    Job::builder("noop")
                        .add_to(&queue)
                        .await
                        .expect("effectum add");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("producer finished");
    }
    all_done.await;
    let took = start.elapsed();
    worker.unregister(None).await.expect("worker stops");
    queue
        .close(Duration::from_secs(5))
        .await
        .expect("queue closes");
    remove_db(&path);
    took
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_usize("TASKFLOW_BENCH_TASKS", 10_000);
    let repeat = env_usize("TASKFLOW_BENCH_REPEAT", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        for producers in [1, 8, 64] {
            let mut runs = Vec::new();
            for _ in 0..repeat {
                runs.push(effectum_run(n, producers).await);
            }
            runs.sort_unstable();
            let took = runs[runs.len() / 2];
            println!(
                "system=effectum-sqlite producers={producers} tasks={n} secs={:.4} per_sec={:.0}",
                took.as_secs_f64(),
                n as f64 / took.as_secs_f64()
            );
        }
    });
}
