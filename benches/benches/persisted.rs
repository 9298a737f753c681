//! Persisted criterion benches: enqueue → success of `persist` no-op tasks on a file-backed
//! SQLite store (each `add` returns once its row is committed: group commit on the writer
//! thread), with 1, 8 and 64 producers. A fresh database in the temp directory per benchmark.
//! Run with `cargo bench -p taskflow-benches --bench persisted`. The `add` latency quantiles are
//! printed by the `persisted` example (criterion measures batches, not single calls).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use taskflow_benches::{TempDb, persisted_run, sqlite_manager};

/// Tasks per measured iteration.
const BATCH: usize = 1_000;

fn persisted(c: &mut Criterion) {
    let rt = taskflow_benches::runtime();
    let mut group = c.benchmark_group("persisted_enqueue_to_success");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    for producers in [1, 8, 64] {
        let db = TempDb::new("criterion");
        let manager = rt.block_on(sqlite_manager(&db.path()));
        group.bench_function(format!("producers_{producers}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += persisted_run(&manager, BATCH, producers).await.elapsed;
                    }
                    total
                })
            });
        });
        rt.block_on(manager.shutdown()).expect("shuts down");
        drop(db);
    }
    group.finish();
}

criterion_group!(benches, persisted);
criterion_main!(benches);
