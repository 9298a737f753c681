//! Persisted enqueue → success on a file-backed SQLite store, with the latency of every `add`
//! (each returns only once its row is committed): `persisted [tasks] [producers,…] [rounds]`
//! (defaults: `20000 1,8,64 1`). A fresh database in the temp directory per round; one line per
//! round with tasks/s, the p50/p99/max `add` latency, the share of the round the store's one
//! writer thread was on a CPU (`writer_busy`, from Linux's `/proc`, `?` elsewhere; near 1.00 when
//! that thread bounds the round) and the load average, and one line with the SQLite floor of the
//! same tasks in groups of as many tasks as there are producers
//! (`taskflow_benches::sqlite_floor_run`): what one writer commits on this disk with nothing else
//! to do.
//!
//! ```text
//! cargo build --release -p taskflow-benches --example persisted
//! target/release/examples/persisted 20000 1,8,64 3
//! perf record -e cpu-clock -g target/release/examples/persisted 50000 64
//! ```

use taskflow_benches::{
    TempDb, load_average, persisted_run, sqlite_floor_run, sqlite_manager, thread_cpu,
};

/// The store's writer thread, whose CPU time over a round's time is its `writer_busy`.
const WRITER: &str = "taskflow-sqlite";

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(20_000, |a| a.parse().expect("tasks: a number"));
    let producers: Vec<usize> = args.next().map_or_else(
        || vec![1, 8, 64],
        |a| {
            a.split(',')
                .map(|p| p.parse().expect("producers: numbers separated by commas"))
                .collect()
        },
    );
    let rounds: usize = args
        .next()
        .map_or(1, |a| a.parse().expect("rounds: a number"));
    let rt = taskflow_benches::runtime();
    rt.block_on(async {
        for round in 1..=rounds {
            for &p in &producers {
                let db = TempDb::new("persisted");
                let manager = sqlite_manager(&db.path()).await;
                let load = load_average();
                let writer_before = thread_cpu(WRITER);
                let timed = persisted_run(&manager, n, p).await;
                let writer = match (writer_before, thread_cpu(WRITER)) {
                    (Some(before), Some(after)) => after.checked_sub(before).map_or_else(
                        || "?".to_owned(),
                        |busy| format!("{:.2}", busy.as_secs_f64() / timed.elapsed.as_secs_f64()),
                    ),
                    _ => "?".to_owned(),
                };
                manager.shutdown().await.expect("shuts down");
                let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
                println!(
                    "round={round} producers={p} tasks={n} secs={:.3} per_sec={:.0} add_p50_us={:.0} add_p99_us={:.0} add_max_us={:.0} writer_busy={writer} load=\"{load}\"",
                    timed.elapsed.as_secs_f64(),
                    n as f64 / timed.elapsed.as_secs_f64(),
                    us(timed.add_quantile(0.5)),
                    us(timed.add_quantile(0.99)),
                    us(timed.add_quantile(1.0)),
                );
                let db = TempDb::new("sqlite-floor");
                let floor = sqlite_floor_run(&db.path(), n, p).await;
                println!(
                    "round={round} system=sqlite_floor group={p} tasks={n} secs={:.3} per_sec={:.0} taskflow_of_floor={:.2}",
                    floor.as_secs_f64(),
                    n as f64 / floor.as_secs_f64(),
                    floor.as_secs_f64() / timed.elapsed.as_secs_f64(),
                );
            }
        }
    });
}
