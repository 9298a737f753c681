//! What a manager writes for a persisted task, and when: a task that starts at once (async or
//! sync) is inserted as `running` and written once more when it ends; a delayed one, or one that
//! waits for a slot, is inserted as `pending`; one inserted as `running` that loses its slot is
//! written back as `pending` before `add` returns.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use support::eventually;
use taskflow::store::{Inserted, Instance, MemoryStore, Store, StoreFuture};
use taskflow::{
    ListPage, Metrics, QueueConfig, TaskFilter, TaskId, TaskManager, TaskRecord, TaskStatus,
};
use tokio::sync::Semaphore;

/// A persisted no-op.
#[taskflow::task(name = "wa.durable", persist)]
async fn durable(n: u64) -> Result<u64, String> {
    Ok(n)
}

/// A persisted task that runs on the blocking pool.
#[taskflow::task(name = "wa.sync_durable", persist)]
fn sync_durable(n: u64) -> Result<u64, String> {
    Ok(n)
}

/// Holds its queue until released.
static HOLD: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// A persisted task of queue `held` (one at a time), which waits for [`HOLD`].
#[taskflow::task(name = "wa.holder", persist, queue = "held")]
async fn holder() {
    HOLD.notified().await;
}

/// A persisted no-op of queue `held`.
#[taskflow::task(name = "wa.after", persist, queue = "held")]
async fn after() {}

/// Holds the slot [`squatter`] takes until released.
static SQUAT: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// A task that is not persisted and waits for [`SQUAT`].
#[taskflow::task(name = "wa.squatter")]
async fn squatter() {
    SQUAT.notified().await;
}

/// One write of a task's record: `true` for an insert, with the state written.
type Write = (bool, TaskStatus, u32, Option<DateTime<Utc>>);

/// A [`MemoryStore`] that records every write of a task record, and can hold inserts back.
struct Recording {
    inner: MemoryStore,
    writes: Mutex<Vec<(TaskId, Write)>>,
    /// Inserts wait for a permit while `held`.
    gate: Semaphore,
    held: std::sync::atomic::AtomicBool,
}

impl Recording {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(),
            writes: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            held: false.into(),
        })
    }

    fn record(&self, insert: bool, record: &TaskRecord) {
        self.writes.lock().expect("not poisoned").push((
            record.task_id,
            (insert, record.status, record.attempt, record.start_time),
        ));
    }

    /// The writes of task `id`, oldest first.
    fn of(&self, id: TaskId) -> Vec<Write> {
        self.writes
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(of, _)| *of == id)
            .map(|(_, write)| *write)
            .collect()
    }

    /// Inserts received so far (held or not).
    fn inserts(&self) -> usize {
        self.writes
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, (insert, ..))| *insert)
            .count()
    }
}

impl Store for Recording {
    fn register_instance(&self, instance: &Instance) -> StoreFuture<'_, ()> {
        self.inner.register_instance(instance)
    }
    fn heartbeat(&self, instance_id: &str) -> StoreFuture<'_, ()> {
        self.inner.heartbeat(instance_id)
    }
    fn deregister_instance(&self, instance_id: &str) -> StoreFuture<'_, ()> {
        self.inner.deregister_instance(instance_id)
    }
    fn instances(&self) -> StoreFuture<'_, Vec<Instance>> {
        self.inner.instances()
    }
    fn insert(&self, record: TaskRecord, key_ttl: Option<Duration>) -> StoreFuture<'_, Inserted> {
        self.record(true, &record);
        Box::pin(async move {
            if self.held.load(std::sync::atomic::Ordering::SeqCst) {
                self.gate.acquire().await.expect("never closed").forget();
            }
            self.inner.insert(record, key_ttl).await
        })
    }
    fn reserve_key(
        &self,
        key: &str,
        id: TaskId,
        key_ttl: Option<Duration>,
    ) -> StoreFuture<'_, Inserted> {
        self.inner.reserve_key(key, id, key_ttl)
    }
    fn save<'a>(&'a self, records: &'a [TaskRecord]) -> StoreFuture<'a, ()> {
        records.iter().for_each(|record| self.record(false, record));
        self.inner.save(records)
    }
    fn get(&self, id: TaskId) -> StoreFuture<'_, Option<TaskRecord>> {
        self.inner.get(id)
    }
    fn list(&self, filter: &TaskFilter) -> StoreFuture<'_, ListPage> {
        self.inner.list(filter)
    }
    fn metrics(&self, filter: &TaskFilter) -> StoreFuture<'_, Metrics> {
        self.inner.metrics(filter)
    }
    fn claim(&self, dead: Vec<String>, claimer: &str) -> StoreFuture<'_, Vec<TaskRecord>> {
        self.inner.claim(dead, claimer)
    }
    fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> StoreFuture<'_, bool> {
        self.inner.try_lock(name, owner, ttl)
    }
    fn unlock(&self, name: &str, owner: &str) -> StoreFuture<'_, ()> {
        self.inner.unlock(name, owner)
    }
    fn purge(&self, before: DateTime<Utc>) -> StoreFuture<'_, usize> {
        self.inner.purge(before)
    }
    fn trim(&self, max_rows: usize) -> StoreFuture<'_, usize> {
        self.inner.trim(max_rows)
    }
}

async fn manager(store: &Arc<Recording>, max_concurrent_tasks: usize) -> TaskManager {
    TaskManager::builder()
        .store(Arc::clone(store))
        .max_concurrent_tasks(max_concurrent_tasks)
        .queue("held", QueueConfig::new().concurrency(1))
        .build()
        .await
        .expect("the manager builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_starts_at_once_is_inserted_running_and_written_once_more_when_it_ends() {
    let store = Recording::new();
    let manager = manager(&store, 4).await;
    let id = manager.add(Durable { n: 7 }).await.expect("accepted");
    let done = manager.wait(id).await.expect("finishes");
    assert_eq!(done.status, TaskStatus::Success);
    let start = done.start_time;
    assert!(start.is_some());
    // Shutdown writes what is still queued.
    manager.shutdown().await.expect("shuts down");
    assert_eq!(
        store.of(id),
        [
            (true, TaskStatus::Running, 1, start),
            (false, TaskStatus::Success, 1, start)
        ],
        "the insert holds the start the record keeps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_task_that_starts_at_once_is_inserted_running_too() {
    let store = Recording::new();
    let manager = manager(&store, 4).await;
    let id = manager.add(SyncDurable { n: 3 }).await.expect("accepted");
    let done = manager.wait(id).await.expect("finishes");
    assert_eq!(
        (done.status, done.result),
        (TaskStatus::Success, Some(serde_json::json!(3).into()))
    );
    manager.shutdown().await.expect("shuts down");
    assert_eq!(
        store.of(id),
        [
            (true, TaskStatus::Running, 1, done.start_time),
            (false, TaskStatus::Success, 1, done.start_time)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_task_is_inserted_pending() {
    let store = Recording::new();
    let manager = manager(&store, 4).await;
    let id = manager
        .add(Durable { n: 5 })
        .delay(Duration::from_millis(20))
        .await
        .expect("accepted");
    assert_eq!(store.of(id)[0], (true, TaskStatus::Pending, 0, None));
    let done = manager.wait(id).await.expect("finishes");
    manager.shutdown().await.expect("shuts down");
    assert_eq!(
        store.of(id)[1..],
        [
            (false, TaskStatus::Running, 1, done.start_time),
            (false, TaskStatus::Success, 1, done.start_time)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_waits_for_a_slot_is_inserted_pending() {
    let store = Recording::new();
    let manager = manager(&store, 4).await;
    let first = manager.add(Holder {}).await.expect("accepted");
    let second = manager.add(After {}).await.expect("accepted");
    assert_eq!(
        store.of(second),
        [(true, TaskStatus::Pending, 0, None)],
        "queue `held` is busy: the second task is written as waiting"
    );
    HOLD.notify_one();
    let done = manager.wait(second).await.expect("finishes");
    let start = done.start_time;
    assert_eq!(
        manager.wait(first).await.expect("finishes").status,
        TaskStatus::Success
    );
    manager.shutdown().await.expect("shuts down");
    assert_eq!(
        store.of(second),
        [
            (true, TaskStatus::Pending, 0, None),
            (false, TaskStatus::Running, 1, start),
            (false, TaskStatus::Success, 1, start)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_inserted_running_that_loses_its_slot_is_written_back_pending_before_add_returns() {
    let store = Recording::new();
    let manager = manager(&store, 1).await;
    store.held.store(true, std::sync::atomic::Ordering::SeqCst);
    let adding = tokio::spawn({
        let manager = manager.clone();
        async move { manager.add(Durable { n: 1 }).await }
    });
    eventually(
        "the insert to reach the store",
        Duration::from_secs(5),
        async || store.inserts() == 1,
    )
    .await;
    // The only slot was free when the row was written; a task that needs no write takes it
    // while the insert is held.
    let squatter = manager.add(Squatter {}).await.expect("accepted");
    store.gate.add_permits(1);
    let id = adding
        .await
        .expect("the producer finished")
        .expect("accepted");
    let written = store.of(id);
    let inserted_start = written[0].3;
    assert!(inserted_start.is_some(), "inserted with its start");
    assert_eq!(
        written,
        [
            (true, TaskStatus::Running, 1, inserted_start),
            (false, TaskStatus::Pending, 0, None)
        ],
        "written back as waiting before `add` returned"
    );
    let record = manager.get(id).await.expect("readable").expect("known");
    assert_eq!(
        (record.status, record.start_time),
        (TaskStatus::Pending, None)
    );

    SQUAT.notify_one();
    let done = manager.wait(id).await.expect("finishes");
    assert_eq!(done.status, TaskStatus::Success);
    manager.wait(squatter).await.expect("finishes");
    manager.shutdown().await.expect("shuts down");
    let writes = store.of(id);
    assert_eq!(
        writes[2..],
        [
            (false, TaskStatus::Running, 1, done.start_time),
            (false, TaskStatus::Success, 1, done.start_time)
        ]
    );
    assert!(
        done.start_time > inserted_start,
        "it started when it got the slot"
    );
}
