//! In-memory criterion benches: enqueue → success through the manager beside the floor (bare
//! `tokio::spawn` + join) and the least bookkeeping of tracked tasks (`ledger`, and
//! `ledger_compact` with compact records) with 1, 8 and 64 producers; decode-and-run from a
//! stored JSON payload; the retry path. Run with `cargo bench -p taskflow-benches --bench
//! inmemory`.

use std::future::Future;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use taskflow::{JsonText, Registry, Task, TaskRun};
use taskflow_benches::{
    FailOnce, Ledger, Noop, Welcome, floor_noop, ledger_noop, manager, max_history, runtime,
    taskflow_run,
};

/// Tasks per measured iteration.
const BATCH: usize = 1_000;

/// The total time of `iters` batches, each timed by `batch` itself.
fn batches<F, B>(rt: &tokio::runtime::Runtime, iters: u64, mut batch: F) -> Duration
where
    F: FnMut() -> B,
    B: Future<Output = Duration>,
{
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            total += batch().await;
        }
        total
    })
}

fn enqueue_to_success(c: &mut Criterion) {
    let rt = runtime();
    let manager = rt.block_on(manager());
    let ledger = rt.block_on(Ledger::new(&manager, max_history(), 1));
    let compact = rt.block_on(Ledger::compact(&manager, max_history()));
    for producers in [1, 8, 64] {
        let mut group = c.benchmark_group(format!("enqueue_to_success/producers_{producers}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function("floor_tokio_spawn", |b| {
            b.iter_custom(|iters| batches(&rt, iters, || floor_noop(BATCH, producers)));
        });
        group.bench_function("ledger", |b| {
            b.iter_custom(|iters| batches(&rt, iters, || ledger_noop(&ledger, BATCH, producers)));
        });
        group.bench_function("ledger_compact", |b| {
            b.iter_custom(|iters| batches(&rt, iters, || ledger_noop(&compact, BATCH, producers)));
        });
        group.bench_function("taskflow", |b| {
            b.iter_custom(|iters| {
                batches(&rt, iters, || {
                    taskflow_run(&manager, BATCH, producers, || Noop {})
                })
            });
        });
        group.finish();
    }
    rt.block_on(manager.shutdown()).expect("shuts down");
}

fn retry_path(c: &mut Criterion) {
    let rt = runtime();
    let manager = rt.block_on(manager());
    let mut group = c.benchmark_group("retry_path/producers_8");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("succeeds_first_attempt", |b| {
        b.iter_custom(|iters| batches(&rt, iters, || taskflow_run(&manager, BATCH, 8, || Noop {})));
    });
    group.bench_function("fails_once_then_succeeds", |b| {
        b.iter_custom(|iters| {
            batches(&rt, iters, || {
                taskflow_run(&manager, BATCH, 8, || FailOnce {})
            })
        });
    });
    group.finish();
    rt.block_on(manager.shutdown()).expect("shuts down");
}

async fn run(run: TaskRun) {
    match run {
        TaskRun::Async(future) => {
            future.await.expect("the task succeeds");
        }
        TaskRun::Blocking(f) => {
            f().expect("the task succeeds");
        }
    }
}

fn decode_and_run(c: &mut Criterion) {
    let rt = runtime();
    let registry = Registry::collect(Vec::new()).expect("no duplicate task names");
    let registration = *registry.get("bench.welcome").expect("registered");
    let payload = JsonText::from(serde_json::json!({ "user_id": 42, "email": "ada@example.com" }));
    let mut group = c.benchmark_group("decode_and_run");
    group.bench_function(BenchmarkId::new("typed", "welcome"), |b| {
        b.to_async(&rt).iter(|| {
            run(Welcome {
                user_id: 42,
                email: "ada@example.com".to_owned(),
            }
            .run())
        });
    });
    group.bench_function(BenchmarkId::new("from_json", "welcome"), |b| {
        b.to_async(&rt)
            .iter(|| run(registration.decode(&payload).expect("the payload decodes")));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = enqueue_to_success, retry_path, decode_and_run
}
criterion_main!(benches);
