//! One workload for a profiler, or for a quick ratio: `profile
//! <taskflow|welcome|signup|design|receipt|retry|floor|ledger[N]|compact> [tasks] [producers]
//! [rounds]`
//! (defaults: `taskflow 100000 8 1`). Runs `rounds` batches of `tasks` one after another on one
//! manager and prints the median, fastest and 90th percentile batch. `taskflow` runs no-op tasks
//! without arguments, `welcome` tasks with two (a number and a 15-byte address) that return a
//! number, as a typical mail task does, `signup` the same tasks given two tags at enqueue
//! (`user_id` and `source`), `design` the same tasks enqueued as the sign-up handler of the
//! design does (a new user each time, whose id is the key's and a tag's), and `receipt` tasks with
//! the same arguments that return a struct (a URL and a number). `ledger` is the least
//! bookkeeping of tracked tasks (see `taskflow_benches::Ledger`); `ledger8` splits it over 8
//! locks; `compact` keeps only each record's id, state and times.
//!
//! With `TASKFLOW_BENCH_EVERY=1` it also prints, to standard error, one line per batch: its time
//! and the CPU time the runtime's threads took during it (`taskflow_benches::thread_cpu`, `?`
//! where Linux's `/proc` is not there), which shows the modes a median hides: runs of batches at
//! one speed, then at another, and whether both workers were busy in them.
//!
//! ```text
//! cargo build --release -p taskflow-benches --example profile
//! valgrind --tool=callgrind target/release/examples/profile taskflow 20000 8
//! perf record -e cpu-clock -g target/release/examples/profile taskflow 1000000 8
//! target/release/examples/profile floor 1000 8 500; target/release/examples/profile taskflow 1000 8 500
//! TASKFLOW_BENCH_EVERY=1 target/release/examples/profile taskflow 1000 1 600 2>batches.txt
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use taskflow::AddBuilder;

use taskflow_benches::{
    FailOnce, Ledger, SendReceipt, Welcome, floor_noop, ledger_noop, manager, max_history,
    taskflow_noop, taskflow_run, taskflow_run_with, thread_cpu,
};

/// The arguments of a typical mail task.
fn welcome() -> Welcome {
    Welcome {
        user_id: 42,
        email: "ada@example.com".to_owned(),
    }
}

/// The options of the sign-up handler of the design: an idempotency key and two tags naming
/// the user (a new one each time) and the source.
fn sign_up(add: AddBuilder) -> AddBuilder {
    static USER: AtomicU64 = AtomicU64::new(0);
    let user = USER.fetch_add(1, Ordering::Relaxed);
    add.idempotency_key(format!("welcome-{user}"))
        .tags([("user_id", user.to_string()), ("source", "signup".into())])
}

/// The arguments of a task that returns a struct.
fn send_receipt() -> SendReceipt {
    SendReceipt {
        user_id: 42,
        email: "ada@example.com".to_owned(),
    }
}

/// The name Linux shows for the threads of the benchmarks' tokio runtime (tokio's default).
const RUNTIME_THREADS: &str = "tokio-rt-worker";

fn main() {
    let mut args = std::env::args().skip(1);
    let system = args.next().unwrap_or_else(|| "taskflow".to_owned());
    let mut number = |what: &str, default: usize| {
        args.next().map_or(default, |a| {
            a.parse()
                .unwrap_or_else(|_| panic!("{what}: a number, not `{a}`"))
        })
    };
    let n = number("tasks", 100_000);
    let producers = number("producers", 8);
    let rounds = number("rounds", 1).max(1);
    let shards = match system.strip_prefix("ledger") {
        Some("") => Some(1),
        Some(n) => Some(
            n.parse()
                .unwrap_or_else(|_| panic!("ledger shards: a number, not `{n}`")),
        ),
        None => None,
    };
    let rt = taskflow_benches::runtime();
    let mut took: Vec<Duration> = rt.block_on(async {
        let manager = manager().await;
        let ledger = match (system.as_str(), shards) {
            ("compact", _) => Some(Ledger::compact(&manager, max_history()).await),
            (_, Some(shards)) => Some(Ledger::new(&manager, max_history(), shards).await),
            (_, None) => None,
        };
        let every = std::env::var_os("TASKFLOW_BENCH_EVERY").is_some_and(|v| v == "1");
        let mut took = Vec::with_capacity(rounds);
        for batch in 0..rounds {
            let cpu_before = every.then(|| thread_cpu(RUNTIME_THREADS)).flatten();
            took.push(match (&ledger, system.as_str()) {
                (Some(ledger), _) => ledger_noop(ledger, n, producers).await,
                (None, "floor") => floor_noop(n, producers).await,
                (None, "retry") => taskflow_run(&manager, n, producers, || FailOnce {}).await,
                (None, "welcome") => taskflow_run(&manager, n, producers, welcome).await,
                (None, "receipt") => taskflow_run(&manager, n, producers, send_receipt).await,
                (None, "signup") => {
                    let tags =
                        |add: AddBuilder| add.tags([("user_id", "42"), ("source", "signup")]);
                    taskflow_run_with(&manager, n, producers, welcome, tags).await
                }
                (None, "design") => {
                    taskflow_run_with(&manager, n, producers, welcome, sign_up).await
                }
                (None, _) => taskflow_noop(&manager, n, producers).await,
            });
            if every {
                let cpu = match (cpu_before, thread_cpu(RUNTIME_THREADS)) {
                    (Some(before), Some(after)) => {
                        format!("{:.6}", after.saturating_sub(before).as_secs_f64())
                    }
                    _ => "?".to_owned(),
                };
                let secs = took.last().map_or(0.0, Duration::as_secs_f64);
                eprintln!("batch={batch} secs={secs:.6} runtime_cpu_secs={cpu}");
            }
        }
        manager.shutdown().await.expect("shuts down");
        took
    });
    took.sort();
    let median = took[took.len() / 2];
    let p90 = took[took.len() * 9 / 10];
    println!(
        "system={system} producers={producers} tasks={n} rounds={rounds} median_secs={:.6} fastest_secs={:.6} p90_secs={:.6} per_sec={:.0}",
        median.as_secs_f64(),
        took[0].as_secs_f64(),
        p90.as_secs_f64(),
        n as f64 / median.as_secs_f64()
    );
}
