//! One workload, once, for a profiler: `profile <taskflow|retry|floor> [tasks] [producers]`
//! (defaults: `taskflow 100000 8`). Prints the time taken.
//!
//! ```text
//! cargo build --release -p taskflow-benches --example profile
//! valgrind --tool=callgrind target/release/examples/profile taskflow 20000 8
//! perf record -e cpu-clock -g target/release/examples/profile taskflow 1000000 8
//! ```

use taskflow_benches::{FailOnce, floor_noop, manager, taskflow_noop, taskflow_run};

fn main() {
    let mut args = std::env::args().skip(1);
    let system = args.next().unwrap_or_else(|| "taskflow".to_owned());
    let n: usize = args
        .next()
        .map_or(100_000, |a| a.parse().expect("tasks: a number"));
    let producers: usize = args
        .next()
        .map_or(8, |a| a.parse().expect("producers: a number"));
    let rt = taskflow_benches::runtime();
    let took = rt.block_on(async {
        let manager = manager().await;
        let took = match system.as_str() {
            "floor" => floor_noop(n, producers).await,
            "retry" => taskflow_run(&manager, n, producers, || FailOnce {}).await,
            _ => taskflow_noop(&manager, n, producers).await,
        };
        manager.shutdown().await.expect("shuts down");
        took
    });
    println!(
        "system={system} producers={producers} tasks={n} secs={:.4} per_sec={:.0}",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}
