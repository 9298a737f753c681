//! The least bookkeeping a runner of tracked tasks does on top of a bare `tokio::spawn`, as a
//! second floor for the in-memory benchmark: what any design pays that keeps taskflow's promises
//! for an in-memory task (a record per task found by its id, its states timestamped, the last
//! 10,000 finished records kept, and `wait` answering with the final record), and nothing else.
//!
//! [`ledger_noop`] runs the in-memory workload through a [`Ledger`]: each task's record (a clone
//! of a real [`TaskRecord`], so that it has taskflow's size) is boxed and inserted under one lock
//! before its `tokio::spawn`, updated under that lock when it finishes (evicting the oldest
//! finished record beyond the bound), and cloned under it again for the waiting producer after
//! the join. Three lock acquisitions per task, as in taskflow; no queue, concurrency limit, task
//! context, span, event feed or store. With more than one shard, records are split by id over
//! that many locks, each keeping its share of the window: what sharding taskflow's state could
//! buy at best.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use taskflow::{TaskId, TaskRecord, TaskStatus};

use crate::fan_out;

/// Hashes a task id's 16 bytes by folding them into one word (ids carry 62 random bits).
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

struct Records {
    by_id: HashMap<[u8; 16], Box<TaskRecord>, BuildHasherDefault<FoldHasher>>,
    finished: VecDeque<[u8; 16]>,
    max_history: usize,
}

/// Task records behind one lock per shard, each shard with its share of a bounded window of
/// finished ones.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let manager = taskflow_benches::manager().await;
/// let ledger = taskflow_benches::Ledger::new(&manager, 10_000, 1).await;
/// let took = taskflow_benches::ledger_noop(&ledger, 100, 4).await;
/// assert!(took > std::time::Duration::ZERO);
/// # }
/// ```
#[derive(Clone)]
pub struct Ledger {
    shards: Arc<[Mutex<Records>]>,
    /// A finished record of taskflow's no-op task: what every record starts as.
    template: Arc<TaskRecord>,
}

impl Ledger {
    /// An empty ledger of `shards` locks (at least one) keeping `max_history` finished records
    /// in all, whose records are copies of a no-op task's record run through `manager`.
    ///
    /// # Panics
    ///
    /// When the manager cannot run the no-op task.
    pub async fn new(manager: &taskflow::TaskManager, max_history: usize, shards: usize) -> Self {
        let id = manager.add(crate::Noop {}).await.expect("enqueue accepted");
        let template = manager.wait(id).await.expect("the no-op task finishes");
        let shards = shards.max(1);
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Records {
                        by_id: HashMap::default(),
                        finished: VecDeque::new(),
                        max_history: max_history.div_ceil(shards),
                    })
                })
                .collect(),
            template: Arc::new(template),
        }
    }

    /// Locks the shard of `key` (chosen by a random byte of the id).
    fn lock(&self, key: &[u8; 16]) -> MutexGuard<'_, Records> {
        self.shards[usize::from(key[15]) % self.shards.len()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a new running task and spawns its no-op body, which records its success.
    fn spawn(&self) -> ([u8; 16], tokio::task::JoinHandle<()>) {
        let now = Utc::now();
        let mut record = Box::new((*self.template).clone());
        record.task_id = TaskId::new();
        record.status = TaskStatus::Running;
        record.created_at = now;
        record.start_time = Some(now);
        record.end_time = None;
        let key = record.task_id.to_bytes();
        self.lock(&key).by_id.insert(key, record);
        let ledger = self.clone();
        let join = tokio::spawn(async move {
            std::hint::black_box(async {}).await;
            ledger.finish(key);
        });
        (key, join)
    }

    fn finish(&self, key: [u8; 16]) {
        let now = Utc::now();
        let evicted = {
            let mut records = self.lock(&key);
            if let Some(record) = records.by_id.get_mut(&key) {
                record.status = TaskStatus::Success;
                record.end_time = Some(now);
                record.duration = record
                    .start_time
                    .map(|start| (now - start).as_seconds_f64());
            }
            records.finished.push_back(key);
            let evicted = (records.finished.len() > records.max_history)
                .then(|| records.finished.pop_front())
                .flatten();
            evicted.and_then(|old| records.by_id.remove(&old))
        };
        // Freed after the lock is released, as taskflow does.
        drop(evicted);
    }

    /// The record of task `key`, if still in the window.
    fn record(&self, key: [u8; 16]) -> Option<TaskRecord> {
        self.lock(&key)
            .by_id
            .get(&key)
            .map(|record| (**record).clone())
    }
}

/// [`crate::taskflow_noop`]'s workload through a [`Ledger`]: `n` no-op tasks from `producers`
/// concurrent producers, each producer joining its own tasks and then reading each final record;
/// returns the time from the first spawn to the last record read.
///
/// # Examples
///
/// See [`Ledger`].
///
/// # Panics
///
/// When a spawned task panics (it cannot: it is empty).
pub async fn ledger_noop(ledger: &Ledger, n: usize, producers: usize) -> Duration {
    let start = Instant::now();
    fan_out(n, producers, |count| {
        let ledger = ledger.clone();
        async move {
            let mut tasks = Vec::with_capacity(count);
            for _ in 0..count {
                tasks.push(ledger.spawn());
            }
            for (key, join) in tasks {
                join.await.expect("empty future");
                std::hint::black_box(ledger.record(key));
            }
        }
    })
    .await;
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_bound_and_records_every_success() {
        let manager = crate::manager().await;
        for shards in [1, 4] {
            let ledger = Ledger::new(&manager, 48, shards).await;
            ledger_noop(&ledger, 400, 4).await;
            for shard in ledger.shards.iter() {
                let records = shard.lock().expect("not poisoned");
                assert_eq!(records.by_id.len(), 48 / shards);
                assert_eq!(records.finished.len(), 48 / shards);
                assert!(
                    records
                        .by_id
                        .values()
                        .all(|r| r.status == TaskStatus::Success
                            && r.end_time >= r.start_time
                            && r.duration.is_some())
                );
            }
        }
    }
}
