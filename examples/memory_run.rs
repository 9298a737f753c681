//! The memory run of `BENCHMARKS.md`: streams no-op tasks (10,000,000 by default, or the first
//! argument) through a manager with the default history bound (10,000 finished records) and
//! prints the resident set size after the first 100,000 tasks, at every millionth, and at the
//! end, with the peak (`VmHWM`).
//!
//! ```text
//! cargo build --release -p taskflow-examples --example memory_run
//! /usr/bin/time -v target/release/examples/memory_run 10000000
//! ```

use std::time::Instant;

use taskflow::{Error, TaskManager};

/// Does nothing: the unit of work of the memory run.
#[taskflow::task(name = "memory_run.noop")]
async fn noop() {}

/// Producers enqueueing at once.
const PRODUCERS: usize = 4;
/// Tasks a producer enqueues before waiting for them, bounding the tasks in flight.
const WINDOW: usize = 1_000;

/// `VmRSS` and `VmHWM` from `/proc/self/status`, in MiB (0 where unavailable).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let total: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 10_000_000,
    };
    let manager = TaskManager::builder().build().await?;
    let start = Instant::now();
    let (rss, peak) = rss_mib();
    println!("tasks=0 rss_mib={rss:.1} peak_mib={peak:.1} secs=0.0");
    let mut done = 0;
    let mut next_checkpoint = 100_000.min(total);
    while done < total {
        let round = (PRODUCERS * WINDOW).min(total - done);
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let manager = manager.clone();
                let count = round / PRODUCERS + usize::from(p < round % PRODUCERS);
                tokio::spawn(async move {
                    let mut ids = Vec::with_capacity(count);
                    for _ in 0..count {
                        ids.push(manager.add(Noop {}).await?);
                    }
                    for id in ids {
                        match manager.wait(id).await {
                            // Evicted from the bounded history: it finished long ago.
                            Ok(_) | Err(Error::NotFound(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok::<_, Error>(())
                })
            })
            .collect();
        for producer in producers {
            producer.await??;
        }
        done += round;
        if done >= next_checkpoint {
            let (rss, peak) = rss_mib();
            println!(
                "tasks={done} rss_mib={rss:.1} peak_mib={peak:.1} secs={:.1}",
                start.elapsed().as_secs_f64()
            );
            next_checkpoint = if next_checkpoint < 1_000_000 {
                1_000_000
            } else {
                next_checkpoint + 1_000_000
            };
        }
    }
    manager.shutdown().await?;
    let (rss, peak) = rss_mib();
    println!(
        "done tasks={done} rss_mib={rss:.1} peak_mib={peak:.1} secs={:.1} per_sec={:.0}",
        start.elapsed().as_secs_f64(),
        done as f64 / start.elapsed().as_secs_f64()
    );
    Ok(())
}
