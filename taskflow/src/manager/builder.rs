//! [`TaskManagerBuilder`]: limits, queues, registrations and the store.

use std::collections::HashMap;
#[cfg(feature = "sqlite")]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::storage::{self, StorageConfig};
use super::{Inner, Outbox, State, StateLock, TaskManager};
use crate::blocking::BlockingPool;
use crate::dispatch::{Dispatch, QueueConfig};
use crate::error::{Error, Result};
use crate::executor;
use crate::history::History;
use crate::registry::{Registration, Registry};
use crate::shared_str::SharedStr;
use crate::store::{Instance, Store};
use crate::task::Task;

/// Configures and builds a [`TaskManager`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use std::time::Duration;
/// use taskflow::{QueueConfig, TaskManager};
///
/// let manager = TaskManager::builder()
///     .max_concurrent_tasks(64)
///     .max_blocking_threads(8)
///     .queue("reports", QueueConfig::new().concurrency(2).max_size(100))
///     .shutdown_timeout(Duration::from_secs(10))
///     .build()
///     .await?;
/// # manager.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "call .build().await to create the manager"]
pub struct TaskManagerBuilder {
    max_concurrent_tasks: usize,
    max_blocking_threads: usize,
    max_history: usize,
    max_log_entries: usize,
    shutdown_timeout: Duration,
    queues: Vec<(String, QueueConfig)>,
    registrations: Vec<Registration>,
    instance_id: Option<String>,
    event_capacity: usize,
    store: StoreChoice,
    storage: StorageConfig,
    observers: crate::observe::ObserverSet,
}

/// Which store the manager will use.
enum StoreChoice {
    None,
    Given(Arc<dyn Store>),
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf, crate::store::SqliteOptions),
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("memory only"),
            Self::Given(_) => f.write_str("a given store"),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(path, _) => write!(f, "sqlite at {}", path.display()),
        }
    }
}

impl Default for TaskManagerBuilder {
    fn default() -> Self {
        Self {
            max_concurrent_tasks: 64,
            max_blocking_threads: 16,
            max_history: 10_000,
            max_log_entries: 1_000,
            shutdown_timeout: Duration::from_secs(30),
            queues: Vec::new(),
            registrations: Vec::new(),
            instance_id: None,
            event_capacity: 4_096,
            store: StoreChoice::None,
            storage: StorageConfig::default(),
            observers: Default::default(),
        }
    }
}

impl TaskManagerBuilder {
    /// At most this many async attempts run at once (default 64).
    ///
    /// # Examples
    ///
    /// See [`TaskManagerBuilder`].
    pub fn max_concurrent_tasks(mut self, n: usize) -> Self {
        self.max_concurrent_tasks = n;
        self
    }

    /// Threads of the dedicated pool for synchronous tasks (default 16).
    ///
    /// # Examples
    ///
    /// See [`TaskManagerBuilder`].
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = n;
        self
    }

    /// Finished records kept in memory (default 10,000); older ones are evicted first.
    ///
    /// A record takes about 700 bytes plus what its task logged, returned and was given. The
    /// memory of an evicted record, emptied of those, is kept for a task made later: at most 256
    /// records' worth per thread and 1,024 more shared by the process.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().max_history(500);
    /// ```
    pub fn max_history(mut self, n: usize) -> Self {
        self.max_history = n;
        self
    }

    /// Log entries kept per task (default 1,000).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().max_log_entries(100);
    /// ```
    pub fn max_log_entries(mut self, n: usize) -> Self {
        self.max_log_entries = n;
        self
    }

    /// How long shutdown lets running attempts finish before aborting them (default 30 s).
    ///
    /// # Examples
    ///
    /// See [`TaskManagerBuilder`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Configures a named queue.
    ///
    /// # Examples
    ///
    /// See [`TaskManagerBuilder`].
    pub fn queue(mut self, name: impl Into<String>, config: QueueConfig) -> Self {
        self.queues.push((name.into(), config));
        self
    }

    /// Registers task type `T` by hand, for platforms or tests without `inventory`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// #[taskflow::task(name = "mail.send")]
    /// async fn send(to: String) {}
    ///
    /// let manager = taskflow::TaskManager::builder().register::<Send>().build().await?;
    /// assert!(manager.registry().get("mail.send").is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn register<T: Task>(mut self) -> Self {
        self.registrations
            .push(Registration::of::<T>(module_path!(), file!(), line!()));
        self
    }

    /// Events the [`subscribe`](TaskManager::subscribe) feed buffers per subscriber before the
    /// slowest one starts missing events (default 4,096).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().event_capacity(16_384);
    /// ```
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Adds an observer of task events; several can be added. Each gets its own worker and
    /// queue (of [`event_capacity`](Self::event_capacity) events): a slow or panicking
    /// observer never delays a task or another observer.
    ///
    /// # Examples
    ///
    /// See [`TaskObserver`](crate::TaskObserver).
    pub fn observer(mut self, observer: impl crate::observe::TaskObserver) -> Self {
        self.observers.push(observer);
        self
    }

    /// Writes task events to the file at `path` with the defaults of
    /// [`FileLogger`](crate::FileLogger) (text lines, rotated at 10 MiB, 5 old files kept).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let err = taskflow::TaskManager::builder()
    ///     .log_file("/no/such/dir/tasks.log")
    ///     .build()
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("cannot open log file `/no/such/dir/tasks.log`"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn log_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.observers.log_file(path.into());
        self
    }

    /// Names this instance (default: process id plus a random suffix).
    ///
    /// # Examples
    ///
    /// See [`TaskManager::instance_id`].
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Persists tasks in the SQLite database at `path` (created if missing): the embedded
    /// default store.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("taskflow-builder-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let manager = taskflow::TaskManager::builder().sqlite(dir.join("tasks.db")).build().await?;
    /// manager.shutdown().await?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn sqlite(self, path: impl Into<PathBuf>) -> Self {
        self.sqlite_with(path, crate::store::SqliteOptions::new())
    }

    /// Persists tasks in the SQLite database at `path` with these options.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskflow::store::{SqliteOptions, Synchronous};
    /// let _ = taskflow::TaskManager::builder()
    ///     .sqlite_with("tasks.db", SqliteOptions::new().synchronous(Synchronous::Full));
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn sqlite_with(
        mut self,
        path: impl Into<PathBuf>,
        options: crate::store::SqliteOptions,
    ) -> Self {
        self.store = StoreChoice::Sqlite(path.into(), options);
        self
    }

    /// Persists tasks in `store` (any [`Store`]; pass an `Arc` to keep a handle).
    ///
    /// # Examples
    ///
    /// See [`Store`].
    pub fn store<S: Store>(mut self, store: S) -> Self {
        self.store = StoreChoice::Given(Arc::new(store));
        self
    }

    /// Saves pending tasks that are not `persist` at clean shutdown, so the next start runs them
    /// (default off: they are recorded as interrupted). Needs a store.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().sqlite("tasks.db").requeue_pending(true);
    /// ```
    pub fn requeue_pending(mut self, requeue: bool) -> Self {
        self.storage.requeue_pending = requeue;
        self
    }

    /// How often finished tasks that are not `persist` are written to the store (default 1 s).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().snapshot_interval(std::time::Duration::from_millis(200));
    /// ```
    pub fn snapshot_interval(mut self, interval: Duration) -> Self {
        self.storage.snapshot_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How often this instance refreshes its heartbeat and looks for orphaned work (default 2 s).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().heartbeat_interval(std::time::Duration::from_secs(1));
    /// ```
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.storage.heartbeat_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// An instance whose heartbeat is older than this is dead and its work is claimed (default
    /// 10 s). An instance on this host whose process is gone is dead at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().instance_expiry(std::time::Duration::from_secs(5));
    /// ```
    pub fn instance_expiry(mut self, expiry: Duration) -> Self {
        self.storage.instance_expiry = expiry;
        self
    }

    /// Keeps the idempotency key of a successful run for `ttl` only (default: as long as its
    /// record).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().idempotency_ttl(std::time::Duration::from_secs(86_400));
    /// ```
    pub fn idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.storage.key_ttl = Some(ttl);
        self
    }

    /// Deletes finished records older than `age` from the store (checked every minute).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().retention(std::time::Duration::from_secs(7 * 86_400));
    /// ```
    pub fn retention(mut self, age: Duration) -> Self {
        self.storage.retention = Some(age);
        self
    }

    /// Keeps at most `rows` finished records in the store, deleting the oldest (checked every
    /// minute).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::TaskManager::builder().max_stored_rows(1_000_000);
    /// ```
    pub fn max_stored_rows(mut self, rows: usize) -> Self {
        self.storage.max_rows = Some(rows);
        self
    }

    /// Builds the manager: collects the registry, opens the store, registers this instance,
    /// claims the unfinished work of stopped instances, and starts the background loops.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateTask`] when two declarations share a name; [`Error::Config`] for a
    /// zero limit or a [`log_file`](Self::log_file) that cannot be opened; [`Error::Store`] when the store cannot be opened (a bad path, a read-only,
    /// locked or foreign file, a newer schema).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// See [`TaskManagerBuilder`].
    pub async fn build(self) -> Result<TaskManager> {
        if self.max_concurrent_tasks == 0 || self.max_blocking_threads == 0 {
            return Err(Error::Config(
                "max_concurrent_tasks and max_blocking_threads must be at least 1".to_owned(),
            ));
        }
        if let Some((name, _)) = self.queues.iter().find(|(_, c)| c.concurrency == Some(0)) {
            return Err(Error::Config(format!(
                "queue `{name}` has a concurrency of 0"
            )));
        }
        let registry = Registry::collect(self.registrations)?;
        let mut storage = self.storage;
        #[cfg(feature = "sqlite")]
        {
            storage.owns_store = matches!(self.store, StoreChoice::Sqlite(..));
        }
        let store: Option<Arc<dyn Store>> = match self.store {
            StoreChoice::None => None,
            StoreChoice::Given(store) => Some(store),
            #[cfg(feature = "sqlite")]
            StoreChoice::Sqlite(path, options) => Some(Arc::new(
                crate::store::SqliteStore::open_with(path, options).await?,
            )),
        };
        executor::install_panic_hook();
        let instance_id = self
            .instance_id
            .unwrap_or_else(|| format!("{}-{:08x}", std::process::id(), fastrand::u32(..)));
        if let Some(store) = &store {
            store
                .register_instance(&Instance::current(instance_id.clone()))
                .await?;
        }
        let runtime = tokio::runtime::Handle::current();
        let events = crate::observe::EventFeed::new(self.event_capacity);
        let observers = crate::observe::Observers::start(self.observers, &events, &runtime)?;
        let inner = Arc::new(Inner {
            registry,
            state: StateLock::new(State {
                history: History::new(self.max_history),
                dispatch: Dispatch::new(
                    self.max_concurrent_tasks,
                    self.max_blocking_threads,
                    &self.queues,
                ),
                keys: HashMap::new(),
                seq: 0,
                accepting: true,
                outbox: Outbox::default(),
            }),
            unsaved: parking_lot::Mutex::new(super::unsaved::Unsaved::default()),
            blocking: BlockingPool::new(self.max_blocking_threads),
            runtime,
            tracker: TaskTracker::new(),
            stopping: CancellationToken::new(),
            events,
            instance_id: SharedStr::interned(&instance_id),
            started_at: Utc::now(),
            shutdown_timeout: self.shutdown_timeout,
            max_log_entries: self.max_log_entries,
            store,
            storage,
            flushed: tokio::sync::watch::Sender::new(0),
            flush_soon: Notify::new(),
            closed: CancellationToken::new(),
            loops: TaskTracker::new(),
            observers,
        });
        storage::recover(&inner).await?;
        storage::start_loops(&inner);
        tracing::debug!(target: "taskflow::executor", instance_id = %inner.instance_id, "task manager started");
        Ok(TaskManager { inner })
    }
}
