//! The least bookkeeping a runner of tracked tasks does on top of a bare `tokio::spawn`, as a
//! second floor for the in-memory benchmark: what any design pays that keeps taskflow's promises
//! for an in-memory task (a record per task found by its id, its states timestamped, the last
//! 10,000 finished records kept, and `wait` answering with the final record), and nothing else.
//!
//! [`ledger_noop`] runs the in-memory workload through a [`Ledger`]: each task's record is
//! inserted under one lock before its `tokio::spawn`, updated under that lock when it finishes
//! (evicting the oldest finished record beyond the bound), and read under it again, as a whole
//! [`TaskRecord`], for the waiting producer after the join. Three lock acquisitions per task, as
//! in taskflow; no queue, concurrency limit, task context, span, event feed or store.
//!
//! The record kept is either a boxed clone of a real [`TaskRecord`], so that it has taskflow's
//! size ([`Ledger::new`]), or only what differs from one no-op run to the next, its id, state
//! and times, in the map's own slot ([`Ledger::compact`]): what a window of compact records
//! would cost. With more than one shard, records are split by id over that many locks, each
//! keeping its share of the window: what sharding taskflow's state could buy at best.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
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

/// How a ledger keeps a record in its window.
trait Kept: Send + 'static {
    /// The record of task `id`, started at `now`, made from the no-op task's finished record.
    fn running(template: &TaskRecord, id: TaskId, now: DateTime<Utc>) -> Self;
    /// Marks it succeeded at `now`.
    fn succeed(&mut self, now: DateTime<Utc>);
    /// The whole record, as a reader gets it.
    fn read(&self, template: &TaskRecord) -> TaskRecord;
}

/// Taskflow's own record, boxed.
impl Kept for Box<TaskRecord> {
    fn running(template: &TaskRecord, id: TaskId, now: DateTime<Utc>) -> Self {
        let mut record = Box::new(template.clone());
        record.task_id = id;
        record.status = TaskStatus::Running;
        record.created_at = now;
        record.start_time = Some(now);
        record.end_time = None;
        record
    }

    fn succeed(&mut self, now: DateTime<Utc>) {
        self.status = TaskStatus::Success;
        self.end_time = Some(now);
        self.duration = self.start_time.map(|start| (now - start).as_seconds_f64());
    }

    fn read(&self, _template: &TaskRecord) -> TaskRecord {
        (**self).clone()
    }
}

/// Only what differs between the records of two no-op runs, kept in the map's own slot (under a
/// seventh of a `TaskRecord`); the rest comes from the template when the record is read.
struct Compact {
    id: TaskId,
    status: TaskStatus,
    created_at: DateTime<Utc>,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
}

impl Kept for Compact {
    fn running(_template: &TaskRecord, id: TaskId, now: DateTime<Utc>) -> Self {
        Self {
            id,
            status: TaskStatus::Running,
            created_at: now,
            start_time: now,
            end_time: None,
        }
    }

    fn succeed(&mut self, now: DateTime<Utc>) {
        self.status = TaskStatus::Success;
        self.end_time = Some(now);
    }

    fn read(&self, template: &TaskRecord) -> TaskRecord {
        let mut record = template.clone();
        record.task_id = self.id;
        record.status = self.status;
        record.created_at = self.created_at;
        record.start_time = Some(self.start_time);
        record.end_time = self.end_time;
        record.duration = self
            .end_time
            .map(|end| (end - self.start_time).as_seconds_f64());
        record
    }
}

struct Records<R> {
    by_id: HashMap<[u8; 16], R, BuildHasherDefault<FoldHasher>>,
    finished: VecDeque<[u8; 16]>,
    max_history: usize,
}

/// The shards of one ledger, keeping records as `R`.
struct Shards<R> {
    shards: Box<[Mutex<Records<R>>]>,
    template: TaskRecord,
}

/// Task records behind one lock per shard, each shard with its share of a bounded window of
/// finished ones; each record either a boxed `TaskRecord` ([`Ledger::new`]) or only what
/// differs from run to run ([`Ledger::compact`]).
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
pub struct Ledger(Form);

#[derive(Clone)]
enum Form {
    Full(Arc<Shards<Box<TaskRecord>>>),
    Compact(Arc<Shards<Compact>>),
}

impl Ledger {
    /// An empty ledger of `shards` locks (at least one) keeping `max_history` finished records
    /// in all, each a boxed copy of a no-op task's record run through `manager`.
    ///
    /// # Panics
    ///
    /// When the manager cannot run the no-op task.
    pub async fn new(manager: &taskflow::TaskManager, max_history: usize, shards: usize) -> Self {
        Self(Form::Full(Arc::new(
            Shards::new(manager, max_history, shards).await,
        )))
    }

    /// An empty ledger of one lock keeping `max_history` finished records, each only its id,
    /// state and times in the map's slot; a reader gets the whole record, made from a no-op
    /// task's record run through `manager`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let manager = taskflow_benches::manager().await;
    /// let ledger = taskflow_benches::Ledger::compact(&manager, 10_000).await;
    /// let took = taskflow_benches::ledger_noop(&ledger, 100, 4).await;
    /// assert!(took > std::time::Duration::ZERO);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When the manager cannot run the no-op task.
    pub async fn compact(manager: &taskflow::TaskManager, max_history: usize) -> Self {
        Self(Form::Compact(Arc::new(
            Shards::new(manager, max_history, 1).await,
        )))
    }
}

impl<R: Kept> Shards<R> {
    async fn new(manager: &taskflow::TaskManager, max_history: usize, shards: usize) -> Self {
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
            template,
        }
    }

    /// Locks the shard of `key` (chosen by a random byte of the id).
    fn lock(&self, key: &[u8; 16]) -> MutexGuard<'_, Records<R>> {
        self.shards[usize::from(key[15]) % self.shards.len()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a new running task and spawns its no-op body, which records its success.
    fn spawn(self: &Arc<Self>) -> ([u8; 16], tokio::task::JoinHandle<()>) {
        let id = TaskId::new();
        let record = R::running(&self.template, id, Utc::now());
        let key = id.to_bytes();
        self.lock(&key).by_id.insert(key, record);
        let ledger = Arc::clone(self);
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
                record.succeed(now);
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
            .map(|record| record.read(&self.template))
    }

    /// `count` tasks spawned, then joined and read in turn.
    async fn produce(self: Arc<Self>, count: usize) {
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            tasks.push(self.spawn());
        }
        for (key, join) in tasks {
            join.await.expect("empty future");
            std::hint::black_box(self.record(key));
        }
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
    match &ledger.0 {
        Form::Full(shards) => {
            fan_out(n, producers, |count| Arc::clone(shards).produce(count)).await
        }
        Form::Compact(shards) => {
            fan_out(n, producers, |count| Arc::clone(shards).produce(count)).await
        }
    };
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shard holds its share of the bound, and every record read from it succeeded.
    fn check<R: Kept>(shards: &Shards<R>, bound: usize) {
        let per_shard = bound / shards.shards.len();
        for shard in shards.shards.iter() {
            let records = shard.lock().expect("not poisoned");
            assert_eq!(records.by_id.len(), per_shard);
            assert_eq!(records.finished.len(), per_shard);
            for record in records.by_id.values() {
                let record = record.read(&shards.template);
                assert_eq!(record.status, TaskStatus::Success);
                assert!(record.end_time >= record.start_time && record.start_time.is_some());
                assert!(record.duration.is_some_and(|d| d >= 0.0));
            }
        }
    }

    #[tokio::test]
    async fn keeps_the_bound_and_records_every_success() {
        let manager = crate::manager().await;
        let ledgers = [
            Ledger::new(&manager, 48, 1).await,
            Ledger::new(&manager, 48, 4).await,
            Ledger::compact(&manager, 48).await,
        ];
        for ledger in &ledgers {
            ledger_noop(ledger, 400, 4).await;
            match &ledger.0 {
                Form::Full(shards) => check(shards, 48),
                Form::Compact(shards) => check(shards, 48),
            }
        }
    }

    #[test]
    fn a_compact_record_is_under_a_seventh_of_a_task_record() {
        assert!(std::mem::size_of::<Compact>() * 7 < std::mem::size_of::<TaskRecord>());
    }
}
