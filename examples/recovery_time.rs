//! The recovery figure of `BENCHMARKS.md`: how long a new process's `build()` takes to claim and
//! requeue 100,000 persisted pending tasks left by a process killed with SIGKILL.
//!
//! - `recovery_time fill <db> [tasks]`: declares queue `recovery` with a concurrency of 1, starts
//!   a task there that never ends (not `persist`), then enqueues `tasks` (default 100,000)
//!   `persist` no-op tasks into it from 64 concurrent producers (each committed before `add`
//!   returns), prints `READY` and waits to be killed.
//! - `recovery_time recover <db>`: configures `recovery` with a concurrency of 1,024, times
//!   `TaskManager::builder().sqlite(db)….build()` (which claims the dead instance's work and
//!   requeues it before returning), checks with `queues()` how many tasks are pending or running,
//!   then lets them run and times the drain.
//! - `recovery_time measure <db> [tasks]`: both, in two processes: runs `fill` as a child,
//!   waits for `READY`, kills it with SIGKILL, reaps it, then runs `recover` as a second child.
//!
//! ```text
//! cargo build --release -p taskflow-examples --example recovery_time
//! rm -f /tmp/recovery.db*; target/release/examples/recovery_time measure /tmp/recovery.db 100000
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use taskflow::{QueueConfig, TaskManager};
use tokio::sync::Notify;

const QUEUE: &str = "recovery";
const PRODUCERS: usize = 64;

/// Set in the `recover` process once the recovered tasks have been counted.
static OPEN: AtomicBool = AtomicBool::new(false);
static OPENED: Notify = Notify::const_new();

/// Occupies the queue's only slot in the `fill` process, forever.
#[taskflow::task(name = "recovery.block", queue = "recovery")]
async fn block() {
    std::future::pending::<()>().await;
}

/// The persisted work: waits for the count in the `recover` process, then does nothing.
#[taskflow::task(name = "recovery.noop", queue = "recovery", persist)]
async fn noop() {
    loop {
        let opened = OPENED.notified();
        if OPEN.load(Ordering::Acquire) {
            return;
        }
        opened.await;
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn fill(db: &str, tasks: usize) -> anyhow::Result<()> {
    let manager = TaskManager::builder()
        .sqlite(db)
        .queue(
            QUEUE,
            QueueConfig::new().concurrency(1).max_size(tasks + 16),
        )
        .build()
        .await?;
    manager.add(Block {}).await?;
    let start = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let manager = manager.clone();
            let count = tasks / PRODUCERS + usize::from(p < tasks % PRODUCERS);
            tokio::spawn(async move {
                for _ in 0..count {
                    manager.add(Noop {}).await?;
                }
                Ok::<_, taskflow::Error>(())
            })
        })
        .collect();
    for producer in producers {
        producer.await??;
    }
    let took = start.elapsed();
    let queue = manager.queues().into_iter().find(|q| q.name == QUEUE);
    let (pending, running) = queue.map_or((0, 0), |q| (q.pending, q.running));
    eprintln!(
        "fill: {tasks} persisted tasks committed in {:.3} s ({:.0}/s, {PRODUCERS} producers); pending={pending} running={running}; load {}",
        took.as_secs_f64(),
        tasks as f64 / took.as_secs_f64(),
        load()
    );
    println!("READY");
    std::future::pending::<()>().await;
    Ok(())
}

async fn recover(db: &str) -> anyhow::Result<()> {
    let load_before = load();
    let start = Instant::now();
    let manager = TaskManager::builder()
        .sqlite(db)
        .queue(
            QUEUE,
            QueueConfig::new().concurrency(1_024).max_size(1_000_000),
        )
        .build()
        .await?;
    let built = start.elapsed();
    let queue = manager
        .queues()
        .into_iter()
        .find(|q| q.name == QUEUE)
        .context("the recovery queue exists")?;
    let recovered = queue.pending + queue.running;
    println!(
        "recover: build() took {:.3} s; queue `{QUEUE}`: pending={} running={} (total {recovered}); load before {load_before}",
        built.as_secs_f64(),
        queue.pending,
        queue.running
    );
    let start = Instant::now();
    OPEN.store(true, Ordering::Release);
    OPENED.notify_waiters();
    loop {
        let left: usize = manager
            .queues()
            .iter()
            .filter(|q| q.name == QUEUE)
            .map(|q| q.pending + q.running)
            .sum();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained = start.elapsed();
    manager.shutdown().await?;
    println!(
        "recover: the {recovered} recovered tasks ran in {:.3} s ({:.0}/s, every transition persisted); load after {}",
        drained.as_secs_f64(),
        recovered as f64 / drained.as_secs_f64(),
        load()
    );
    Ok(())
}

fn measure(db: &str, tasks: usize) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db}{suffix}"));
    }
    let exe = std::env::current_exe()?;
    let mut child = Command::new(&exe)
        .args(["fill", db, &tasks.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line == "READY" => {}
        other => bail!("fill did not print READY: {other:?}"),
    }
    child.kill()?; // SIGKILL on Unix
    let status = child.wait()?; // reaped: its pid is gone from /proc
    eprintln!("measure: fill killed ({status})");
    let status = Command::new(&exe).args(["recover", db]).status()?;
    if !status.success() {
        bail!("recover failed: {status}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("measure", String::as_str);
    let db = args
        .get(1)
        .map_or("/tmp/taskflow-recovery.db", String::as_str);
    let tasks: usize = match args.get(2) {
        Some(n) => n.parse().context("tasks: a number")?,
        None => 100_000,
    };
    if mode == "measure" {
        return measure(db, tasks);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match mode {
        "fill" => rt.block_on(fill(db, tasks)),
        "recover" => rt.block_on(recover(db)),
        other => bail!("unknown mode `{other}`: fill, recover or measure"),
    }
}
