//! taskflow beside its peers on one workload: `n` no-op jobs enqueued by 1, 8 and 64 concurrent
//! producers, each enqueue awaited, until every job is done. taskflow runs twice: on a
//! file-backed SQLite store with `persist` tasks (`taskflow-sqlite`, each `add` committed before
//! it returns, a fresh database per run) and in memory (`taskflow-memory`, for scale). `apalis` runs on file-backed SQLite
//! (`apalis-sqlite`, its event-driven "hooked" setup); effectum runs as a separate process
//! (`benches/peers/effectum`, see `benches/run-peers.sh`).
//!
//! Prints one `system=… producers=… tasks=… secs=… per_sec=…` line per run (the median of
//! `TASKFLOW_BENCH_REPEAT` runs, default 3), or `system=… producers=… tasks=… failed=…` when a
//! peer refused a job. `TASKFLOW_BENCH_TASKS` sets `n` (default 10,000);
//! `TASKFLOW_BENCH_SYSTEMS` (a comma-separated list) runs only the systems named.
//!
//! ```text
//! cargo bench -p taskflow-benches --features peers --bench peers
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, TaskSink, WorkerBuilder};
use apalis_sqlite::{Config, SqliteStorage};
use taskflow_benches::{TempDb, manager, persisted_run, share, sqlite_manager, taskflow_noop};
use tokio::sync::Notify;

static DONE: AtomicUsize = AtomicUsize::new(0);
static TARGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static ALL_DONE: Notify = Notify::const_new();

/// The apalis job: counts itself and wakes the bench after the last one.
async fn apalis_noop(_job: u64) -> Result<(), BoxDynError> {
    if DONE.fetch_add(1, Ordering::SeqCst) + 1 == TARGET.load(Ordering::SeqCst) {
        ALL_DONE.notify_one();
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

fn db_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("taskflow-bench-{name}-{}.db", std::process::id()))
}

/// One apalis run; `Err` when apalis refused a push, which is reported instead of a time with
/// how long that push waited: `database is locked` after about 5 s is the busy timeout of its
/// pool's connections (sqlx's default) running out while other connections write.
async fn apalis_run(n: usize, producers: usize) -> Result<Duration, String> {
    let path = db_path("apalis");
    remove_db(&path);
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let (pool, listener) = SqliteStorage::connect_with_callback(&url).expect("apalis pool");
    SqliteStorage::setup(&pool)
        .await
        .expect("apalis migrations");
    let storage: SqliteStorage<u64> =
        SqliteStorage::new(&pool).with_config(Config::default().queue("bench"));
    DONE.store(0, Ordering::SeqCst);
    TARGET.store(n, Ordering::SeqCst);
    let mut all_done = Box::pin(ALL_DONE.notified());
    all_done.as_mut().enable();

    let worker = WorkerBuilder::new("bench-worker")
        .backend(storage.clone().with_callback(listener))
        .build(apalis_noop);
    let start = Instant::now();
    let worker = tokio::spawn(worker.run_until(async move {
        all_done.await;
        Ok::<_, std::io::Error>(())
    }));
    let handles: Vec<_> = (0..producers)
        .map(|p| {
            let mut storage = storage.clone();
            tokio::spawn(async move {
                for i in 0..share(n, producers, p) {
                    let at = Instant::now();
                    storage
                        .push(i as u64)
                        .await
                        .map_err(|e| {
                            format!(
                                "apalis refused push {i} of producer {p} after it waited {:.2?}, {:.1?} into the run: {e:?}",
                                at.elapsed(),
                                start.elapsed()
                            )
                        })?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    let mut refused = None;
    for handle in handles {
        if let Err(e) = handle.await.expect("producer finished") {
            refused.get_or_insert(e);
        }
    }
    if let Some(e) = refused {
        worker.abort();
        pool.close().await;
        remove_db(&path);
        return Err(e);
    }
    worker
        .await
        .expect("worker task")
        .expect("worker ran until done");
    let took = start.elapsed();
    pool.close().await;
    remove_db(&path);
    Ok(took)
}

/// taskflow on a fresh file-backed database: `persist` no-op tasks, each `add` committed before
/// it returns. Opening the store and recovery (`build`) are outside the clock, as apalis's setup.
async fn taskflow_sqlite_run(n: usize, producers: usize) -> Duration {
    let db = TempDb::new("peers");
    let manager = sqlite_manager(&db.path()).await;
    let took = persisted_run(&manager, n, producers).await.elapsed;
    manager.shutdown().await.expect("shuts down");
    took
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort_unstable();
    runs[runs.len() / 2]
}

fn report(system: &str, producers: usize, n: usize, took: Duration) {
    println!(
        "system={system} producers={producers} tasks={n} secs={:.4} per_sec={:.0}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes its settings from the environment.
    let n = env_usize("TASKFLOW_BENCH_TASKS", 10_000);
    let repeat = env_usize("TASKFLOW_BENCH_REPEAT", 3).max(1);
    // `TASKFLOW_BENCH_SYSTEMS=taskflow-sqlite,apalis-sqlite` runs only those (default: all).
    let systems = std::env::var("TASKFLOW_BENCH_SYSTEMS").unwrap_or_default();
    let runs = |system: &str| systems.is_empty() || systems.split(',').any(|s| s == system);
    let rt = taskflow_benches::runtime();
    rt.block_on(async {
        let manager = manager().await;
        for producers in [1, 8, 64] {
            let mut memory = Vec::new();
            let mut sqlite = Vec::new();
            let mut apalis = Vec::new();
            let mut apalis_failed = None;
            for _ in 0..repeat {
                if runs("taskflow-memory") {
                    memory.push(taskflow_noop(&manager, n, producers).await);
                }
                if runs("taskflow-sqlite") {
                    sqlite.push(taskflow_sqlite_run(n, producers).await);
                }
                if runs("apalis-sqlite") && apalis_failed.is_none() {
                    match apalis_run(n, producers).await {
                        Ok(took) => apalis.push(took),
                        Err(e) => apalis_failed = Some(e),
                    }
                }
            }
            // A peer that refused part of the workload gets no time, only its error.
            if apalis_failed.is_some() {
                apalis.clear();
            }
            for (system, times) in [
                ("taskflow-memory", memory),
                ("taskflow-sqlite", sqlite),
                ("apalis-sqlite", apalis),
            ] {
                if !times.is_empty() {
                    report(system, producers, n, median(times));
                }
            }
            if let Some(e) = apalis_failed {
                println!("system=apalis-sqlite producers={producers} tasks={n} failed={e:?}");
            }
        }
        manager.shutdown().await.expect("shuts down");
    });
}
