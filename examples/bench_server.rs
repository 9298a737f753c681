//! The load-test server of `BENCHMARKS.md`: the same tiny route three ways, so `wrk` can
//! compare taskflow's enqueue with the bare `tokio::spawn` it replaces, and a fourth that
//! calibrates what a route's own work costs on the machine.
//!
//! - `POST /enqueue`: enqueues one no-op task through the `Tasks` extractor, returns its id;
//! - `POST /enqueue_persist`: the same with a `persist` task through a second manager on a
//!   file-backed SQLite store (`TASKFLOW_BENCH_DB`, default `$TMPDIR/taskflow-bench-server.db`,
//!   deleted at start): its row is committed before the response;
//! - `POST /spawn`: a bare `tokio::spawn` of the same no-op, returns a counter as its "id";
//! - `POST /spin`: `/spawn` after a busy wait of `TASKFLOW_BENCH_SPIN_NS` nanoseconds (default
//!   1,000) in the handler: a calibration, how many req/s a route loses on this machine to a
//!   given amount of work of its own, to set beside what `/enqueue` loses to taskflow's.
//!
//! ```text
//! cargo run --release -p taskflow-examples --example bench_server
//! wrk -t2 -c64 -d20s --latency -s benches/wrk/post.lua http://127.0.0.1:8001/enqueue
//! wrk -t2 -c64 -d20s --latency -s benches/wrk/post.lua http://127.0.0.1:8001/spawn
//! wrk -t2 -c64 -d20s --latency -s benches/wrk/post.lua http://127.0.0.1:8001/enqueue_persist
//! ```
//!
//! `/enqueue` and `/spawn` stay on an in-memory manager, so their figures do not move with the
//! store.
//!
//! `TASKFLOW_ADDR` overrides the listen address (default `127.0.0.1:8001`);
//! `TASKFLOW_BENCH_HISTORY` sets the `/enqueue` manager's `max_history` (default 10,000), e.g. 100
//! to measure with its window of finished records in cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use taskflow::{TaskAdmin, TaskManager, Tasks};

/// Does nothing: the unit of work of the load test.
#[taskflow::task(name = "bench_server.noop")]
async fn noop() {}

/// Does nothing, persisted before `add` returns once a store is configured.
#[taskflow::task(name = "bench_server.noop_persist", persist)]
async fn noop_persist() {}

async fn enqueue(tasks: Tasks) -> Result<Json<Value>, taskflow::Error> {
    let id = tasks.add(Noop {}).await?;
    Ok(Json(json!({ "task_id": id })))
}

async fn enqueue_persist(
    State(persisted): State<TaskManager>,
) -> Result<Json<Value>, taskflow::Error> {
    let id = persisted.add(NoopPersist {}).await?;
    Ok(Json(json!({ "task_id": id })))
}

async fn spawn() -> Json<Value> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    tokio::spawn(async {});
    Json(json!({ "task_id": NEXT.fetch_add(1, Ordering::Relaxed) }))
}

async fn spin(State(work): State<Spin>) -> Json<Value> {
    let start = Instant::now();
    while start.elapsed() < work.0 {
        std::hint::spin_loop();
    }
    spawn().await
}

/// How long `/spin` busy-waits before doing what `/spawn` does.
#[derive(Clone, Copy)]
struct Spin(Duration);

impl Spin {
    fn from_env() -> anyhow::Result<Self> {
        let nanos = match std::env::var("TASKFLOW_BENCH_SPIN_NS") {
            Ok(nanos) => nanos
                .parse()
                .context("TASKFLOW_BENCH_SPIN_NS is not a number of nanoseconds")?,
            Err(std::env::VarError::NotPresent) => 1_000,
            Err(error) => return Err(error).context("TASKFLOW_BENCH_SPIN_NS"),
        };
        Ok(Self(Duration::from_nanos(nanos)))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut builder = TaskManager::builder();
    if let Ok(history) = std::env::var("TASKFLOW_BENCH_HISTORY") {
        let history = history
            .parse()
            .context("TASKFLOW_BENCH_HISTORY is not a number of records")?;
        builder = builder.max_history(history);
    }
    let manager = builder.build().await?;
    let db = std::env::var_os("TASKFLOW_BENCH_DB").map_or_else(
        || std::env::temp_dir().join("taskflow-bench-server.db"),
        std::path::PathBuf::from,
    );
    for suffix in ["", "-wal", "-shm"] {
        let mut file = db.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    let persisted = TaskManager::builder().sqlite(&db).build().await?;
    println!("persisted tasks in {}", db.display());
    let app = Router::new()
        .route("/enqueue", post(enqueue))
        .route("/enqueue_persist", post(enqueue_persist))
        .route("/spawn", post(spawn))
        .with_state(persisted.clone())
        .route("/spin", post(spin).with_state(Spin::from_env()?));
    let app = TaskAdmin::new(&manager).mount(app);

    let addr = std::env::var("TASKFLOW_ADDR").unwrap_or_else(|_| "127.0.0.1:8001".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(manager.shutdown_signal())
        .await?;
    manager.shutdown().await?;
    persisted.shutdown().await?;
    Ok(())
}
