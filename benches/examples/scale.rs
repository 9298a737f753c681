//! The admin queries over a large history: `scale [rows] [db]` (defaults: `1000000` and a fresh
//! file in the temp directory). Fills a SQLite file with `rows` finished tasks (two task names,
//! one in five failed, 100 `tenant` tags that every producer cycles through, so that each holds
//! 1% of every stretch of the history, and an `audit` tag on one in 10,000) by running them
//! through a manager, then opens the file in a new manager (so nothing is in memory) and times
//! the calls the admin API and the dashboard's first snapshot make: `list` (limit 50) 500 times
//! per filter (none, a status, a name, a tag's value alone and with a status, a tag's key that
//! every row holds and one that few hold, a tag and a key no row holds) and `metrics` 10 times.
//! Prints p50/p99/max per call, nearest rank.
//!
//! ```text
//! cargo build --release -p taskflow-benches --example scale
//! target/release/examples/scale 1000000
//! ```

use std::time::{Duration, Instant};

use taskflow::{TaskFilter, TaskManager, TaskStatus};
use taskflow_benches::{TempDb, load_average};

/// Succeeds: most of the history.
#[taskflow::task(name = "scale.ok")]
async fn succeed(n: u64) -> Result<u64, String> {
    Ok(n)
}

/// Fails: the dead letters the status filter looks for.
#[taskflow::task(name = "scale.fail")]
async fn fail(n: u64) -> Result<(), String> {
    Err(format!("task {n} failed on purpose"))
}

const PRODUCERS: u64 = 8;
const CHUNK: u64 = 1_000;

async fn fill(manager: &TaskManager, rows: u64) {
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let manager = manager.clone();
            tokio::spawn(async move {
                let mut n = p;
                let mut last = None;
                while n < rows {
                    let mut tags = vec![("tenant", taskflow_benches::tenant(n, PRODUCERS))];
                    // A key few runs hold: one in 10,000.
                    if n.is_multiple_of(10_000) {
                        tags.push(("audit", "yes".to_owned()));
                    }
                    let added = if n.is_multiple_of(5) {
                        manager.add(Fail { n }).tags(tags).await
                    } else {
                        manager.add(Succeed { n }).tags(tags).await
                    };
                    last = Some(added.expect("enqueued"));
                    n += PRODUCERS;
                    if (n / PRODUCERS).is_multiple_of(CHUNK)
                        && let Some(id) = last.take()
                    {
                        taskflow_benches::wait_done(&manager, id).await;
                    }
                }
                if let Some(id) = last {
                    taskflow_benches::wait_done(&manager, id).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("producer finished");
    }
}

/// `VmHWM` of `/proc/self/status` (the peak resident set so far), or `?`.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .map(|line| line.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn quantiles(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
        times[rank - 1].as_secs_f64() * 1e3
    };
    format!(
        "p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("rows: a number"));
    let temp = TempDb::new("scale");
    let db = args
        .next()
        .map_or_else(|| temp.path(), std::path::PathBuf::from);
    let rt = taskflow_benches::runtime();
    rt.block_on(async {
        let started = Instant::now();
        let manager = TaskManager::builder()
            .sqlite(&db)
            .build()
            .await
            .expect("builds");
        fill(&manager, rows).await;
        manager.shutdown().await.expect("shuts down");
        println!(
            "filled {rows} rows in {:.1} s; peak RSS {} ; load {}",
            started.elapsed().as_secs_f64(),
            peak_rss(),
            load_average()
        );

        let manager = TaskManager::builder()
            .sqlite(&db)
            .build()
            .await
            .expect("builds again");
        // Each filter with the rows its page holds: a full page, or none for a tag or a key no
        // row holds (which read every row before the tags table).
        let filters = [
            ("list", TaskFilter::new(), 50),
            (
                "list status=failed",
                TaskFilter::new().status(TaskStatus::Failed),
                50,
            ),
            (
                "list name=scale.fail",
                TaskFilter::new().name("scale.fail"),
                50,
            ),
            ("list tag=tenant:t7", TaskFilter::new().tag("tenant:t7"), 50),
            (
                "list tag=tenant:t7 status=failed",
                TaskFilter::new()
                    .tag("tenant:t7")
                    .status(TaskStatus::Failed),
                50,
            ),
            ("list tag=tenant", TaskFilter::new().tag("tenant"), 50),
            (
                "list tag=tenant:none",
                TaskFilter::new().tag("tenant:none"),
                0,
            ),
            ("list tag=audit", TaskFilter::new().tag("audit"), 50),
            ("list tag=region", TaskFilter::new().tag("region"), 0),
        ];
        for (label, filter, rows) in filters {
            let filter = filter.limit(50);
            let mut times = Vec::with_capacity(500);
            for _ in 0..500 {
                let at = Instant::now();
                let page = manager.list(&filter).await.expect("lists");
                times.push(at.elapsed());
                assert_eq!(page.tasks.len(), rows, "{label}");
            }
            println!("{label}: {}", quantiles(times));
        }
        let mut times = Vec::with_capacity(10);
        for _ in 0..10 {
            let at = Instant::now();
            let metrics = manager.metrics().await.expect("metrics");
            times.push(at.elapsed());
            assert_eq!(metrics.total as u64, rows);
        }
        println!("metrics: {}; load {}", quantiles(times), load_average());
        manager.shutdown().await.expect("shuts down");
    });
}
