//! Persistence: the [`Store`] trait and its implementations, [`MemoryStore`] and (feature
//! `sqlite`) [`SqliteStore`].
//!
//! A store keeps task records beyond the manager's in-memory window, reserves idempotency keys
//! across instances, tracks instances by heartbeat, hands the work of dead instances to exactly
//! one live one, and holds named locks. Every method is async and object safe, so a manager holds
//! an `Arc<dyn Store>` and a user can bring their own implementation.

mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::history::{ListPage, Metrics, TaskFilter};
use crate::task::{TaskId, TaskRecord};

pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// The future every [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What can go wrong in a store.
///
/// # Examples
///
/// ```
/// let err = taskflow::store::StoreError::Backend("disk full".into());
/// assert_eq!(err.to_string(), "store error: disk full");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store's file or server could not be opened or used.
    #[error("cannot open the task store at {path}: {reason}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is a database, but not a taskflow one; it was left untouched.
    #[error("{path} is not a taskflow database ({reason}); it was left untouched")]
    NotTaskflow {
        /// Where.
        path: String,
        /// What was found.
        reason: String,
    },
    /// The file was written by a newer taskflow; it was left untouched.
    #[error(
        "{path} has schema version {found}, newer than the {supported} this taskflow knows; upgrade taskflow (the file was left untouched)"
    )]
    NewerSchema {
        /// Where.
        path: String,
        /// The file's version.
        found: i64,
        /// The newest this code knows.
        supported: i64,
    },
    /// The store is closed (the manager shut down).
    #[error("the task store is closed")]
    Closed,
    /// Any other failure of the backend.
    #[error("store error: {0}")]
    Backend(String),
}

/// The outcome of [`Store::insert`] and [`Store::reserve_key`].
///
/// # Examples
///
/// ```
/// use taskflow::store::Inserted;
/// assert_eq!(Inserted::New, Inserted::New);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The run was stored (and its key, if any, reserved for it).
    New,
    /// The idempotency key is held by this other run; nothing was stored.
    Duplicate(TaskId),
}

/// A manager instance as the store knows it.
///
/// # Examples
///
/// ```
/// let me = taskflow::store::Instance::current("web-1");
/// assert_eq!(me.pid, std::process::id());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Instance {
    /// Its id.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id on that host.
    pub pid: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

impl Instance {
    /// This process, as instance `id`, with a heartbeat now.
    ///
    /// # Examples
    ///
    /// See [`Instance`].
    pub fn current(id: impl Into<String>) -> Self {
        let now = Utc::now();
        Self {
            id: id.into(),
            host: host_name(),
            pid: std::process::id(),
            started_at: now,
            heartbeat_at: now,
        }
    }

    /// Whether the instance is gone: its heartbeat is older than `expiry`, or it ran on this
    /// host and its process no longer exists.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let me = taskflow::store::Instance::current("me");
    /// assert!(!me.is_dead(Duration::from_secs(10)));
    /// ```
    pub fn is_dead(&self, expiry: Duration) -> bool {
        let expired = Utc::now() - self.heartbeat_at
            > chrono::Duration::from_std(expiry).unwrap_or(chrono::Duration::MAX);
        expired
            || (self.host == host_name()
                && self.pid != std::process::id()
                && !process_alive(self.pid))
    }
}

/// This machine's host name (empty when it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Whether process `pid` exists on this host. Where that cannot be known, assume it does and
/// rely on the heartbeat.
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Persistence for task records, idempotency keys, instances and locks.
///
/// Implementations must make [`insert`](Store::insert), [`reserve_key`](Store::reserve_key) and
/// [`claim`](Store::claim) atomic across every manager sharing the store: that is what makes a
/// key run once and orphaned work run exactly once.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use std::sync::Arc;
/// use taskflow::store::{MemoryStore, Store};
///
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let manager = taskflow::TaskManager::builder().store(Arc::clone(&store)).build().await?;
/// let id = manager.spawn("hello", async {}).await?;
/// manager.wait(id).await?;
/// manager.shutdown().await?; // flushes the finished record to the store
/// assert!(store.get(id).await?.is_some());
/// # Ok(())
/// # }
/// ```
pub trait Store: Send + Sync + 'static {
    /// Records a live instance (or refreshes it).
    fn register_instance(&self, instance: &Instance) -> StoreFuture<'_, ()>;

    /// Refreshes an instance's heartbeat.
    fn heartbeat(&self, instance_id: &str) -> StoreFuture<'_, ()>;

    /// Forgets an instance (at clean shutdown); its remaining work becomes claimable.
    fn deregister_instance(&self, instance_id: &str) -> StoreFuture<'_, ()>;

    /// Every known instance.
    fn instances(&self) -> StoreFuture<'_, Vec<Instance>>;

    /// Stores a new run before it starts (write-ahead) and, when it has an idempotency key,
    /// reserves the key for it in the same atomic step. The run is `pending`, or `running` in its
    /// first attempt when it holds a slot and starts as soon as the insert returns. `key_ttl` is
    /// how long the key stays held after the run succeeds (`None`: until the record is deleted).
    fn insert(&self, record: TaskRecord, key_ttl: Option<Duration>) -> StoreFuture<'_, Inserted>;

    /// Reserves idempotency key `key` for run `id`, which is not itself stored yet.
    fn reserve_key(
        &self,
        key: &str,
        id: TaskId,
        key_ttl: Option<Duration>,
    ) -> StoreFuture<'_, Inserted>;

    /// Inserts or replaces these records (state changes and finished history). A record in a
    /// state that releases keys (failed, cancelled, interrupted, rejected) releases its key; a
    /// successful one starts its key's time to live.
    ///
    /// A manager may have several calls in flight at once, but never two that hold the same
    /// task: the states of one task are saved one call after another, so an implementation
    /// need not order concurrent calls.
    fn save<'a>(&'a self, records: &'a [TaskRecord]) -> StoreFuture<'a, ()>;

    /// One record.
    fn get(&self, id: TaskId) -> StoreFuture<'_, Option<TaskRecord>>;

    /// Records newest first, filtered and paginated (the cursor is a task id).
    fn list(&self, filter: &TaskFilter) -> StoreFuture<'_, ListPage>;

    /// Counts, success rate and durations of the records matching `filter` (cursor and limit
    /// ignored).
    fn metrics(&self, filter: &TaskFilter) -> StoreFuture<'_, Metrics>;

    /// Atomically moves the pending and running runs owned by any of `dead`, or by an instance
    /// the store does not know, to `claimer`; forgets those instances; returns the claimed
    /// records. Two claimers never get the same run.
    fn claim(&self, dead: Vec<String>, claimer: &str) -> StoreFuture<'_, Vec<TaskRecord>>;

    /// Takes (or renews) lock `name` for `owner` for `ttl`; `false` when another owner holds it.
    fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> StoreFuture<'_, bool>;

    /// Releases lock `name` if `owner` holds it.
    fn unlock(&self, name: &str, owner: &str) -> StoreFuture<'_, ()>;

    /// Deletes finished records that ended before `before`; returns how many.
    fn purge(&self, before: DateTime<Utc>) -> StoreFuture<'_, usize>;

    /// Deletes the oldest finished records beyond `max_rows` finished records; returns how many.
    fn trim(&self, max_rows: usize) -> StoreFuture<'_, usize>;

    /// Finishes pending writes and releases the store's resources; later calls fail with
    /// [`StoreError::Closed`]. A manager closes the store it opened itself at the end of
    /// shutdown, never one it was given. The default does nothing.
    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A shared store is a store: `builder.store(Arc::clone(&store))` keeps a handle for yourself.
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn register_instance(&self, instance: &Instance) -> StoreFuture<'_, ()> {
        (**self).register_instance(instance)
    }
    fn heartbeat(&self, instance_id: &str) -> StoreFuture<'_, ()> {
        (**self).heartbeat(instance_id)
    }
    fn deregister_instance(&self, instance_id: &str) -> StoreFuture<'_, ()> {
        (**self).deregister_instance(instance_id)
    }
    fn instances(&self) -> StoreFuture<'_, Vec<Instance>> {
        (**self).instances()
    }
    fn insert(&self, record: TaskRecord, key_ttl: Option<Duration>) -> StoreFuture<'_, Inserted> {
        (**self).insert(record, key_ttl)
    }
    fn reserve_key(
        &self,
        key: &str,
        id: TaskId,
        key_ttl: Option<Duration>,
    ) -> StoreFuture<'_, Inserted> {
        (**self).reserve_key(key, id, key_ttl)
    }
    fn save<'a>(&'a self, records: &'a [TaskRecord]) -> StoreFuture<'a, ()> {
        (**self).save(records)
    }
    fn get(&self, id: TaskId) -> StoreFuture<'_, Option<TaskRecord>> {
        (**self).get(id)
    }
    fn list(&self, filter: &TaskFilter) -> StoreFuture<'_, ListPage> {
        (**self).list(filter)
    }
    fn metrics(&self, filter: &TaskFilter) -> StoreFuture<'_, Metrics> {
        (**self).metrics(filter)
    }
    fn claim(&self, dead: Vec<String>, claimer: &str) -> StoreFuture<'_, Vec<TaskRecord>> {
        (**self).claim(dead, claimer)
    }
    fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> StoreFuture<'_, bool> {
        (**self).try_lock(name, owner, ttl)
    }
    fn unlock(&self, name: &str, owner: &str) -> StoreFuture<'_, ()> {
        (**self).unlock(name, owner)
    }
    fn purge(&self, before: DateTime<Utc>) -> StoreFuture<'_, usize> {
        (**self).purge(before)
    }
    fn trim(&self, max_rows: usize) -> StoreFuture<'_, usize> {
        (**self).trim(max_rows)
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        (**self).close()
    }
}
