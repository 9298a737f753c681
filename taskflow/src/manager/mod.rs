//! [`TaskManager`]: enqueue, query, cancel, retry and shut down. Its builder, the enqueue path and
//! the store integration live in the submodules.

mod builder;
mod cell;
mod enqueue;
mod lock;
mod spare;
mod storage;
mod unsaved;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocking::BlockingPool;
use crate::dispatch::{Dispatch, QueueConfig, QueueStats, Waiting};
use crate::error::{Error, Result};
use crate::executor;
use crate::few::Few;
use crate::history::{History, ListPage, Metrics, Place, TaskFilter};
use crate::json_text::JsonText;
use crate::observe::{LifecycleEvent, LogEvent, TaskEvent};
use crate::registry::Registry;
use crate::shared_str::SharedStr;
use crate::store::Store;
use crate::task::{LogEntry, Task, TaskId, TaskOptions, TaskRecord, TaskRun, TaskStatus};

pub use builder::TaskManagerBuilder;
pub(crate) use cell::{Cell, Entry, Factory, Live, TaskCell};
use enqueue::First;
pub use enqueue::{AddBuilder, AddFuture};
pub(crate) use lock::{Outbox, StateLock, Waiters};
pub(crate) use storage::StorageConfig;

/// The options of an ad-hoc future ([`TaskManager::spawn`]): one attempt, no timeout.
const SPAWNED: TaskOptions = TaskOptions::new();

/// Runs and tracks background tasks. Cheap to clone: clones share one manager.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use taskflow::{TaskManager, TaskStatus};
///
/// let manager = TaskManager::builder().max_concurrent_tasks(8).build().await?;
/// let id = manager.spawn("greet", async { println!("hello") }).await?;
/// assert_eq!(manager.wait(id).await?.status, TaskStatus::Success);
/// manager.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TaskManager {
    pub(crate) inner: Arc<Inner>,
}

/// Everything behind the manager handle.
pub(crate) struct Inner {
    pub(crate) registry: Registry,
    pub(crate) state: StateLock,
    /// Records to write to the store, and those being written (locked on its own, possibly
    /// under a task's cell).
    pub(crate) unsaved: parking_lot::Mutex<unsaved::Unsaved>,
    pub(crate) blocking: BlockingPool,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) tracker: TaskTracker,
    pub(crate) stopping: CancellationToken,
    pub(crate) events: crate::observe::EventFeed,
    pub(crate) instance_id: SharedStr,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_log_entries: usize,
    /// Where records, keys and instances persist (`None`: memory only).
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) storage: StorageConfig,
    /// Counts finished flushes, waking callers waiting for records another flush is writing.
    pub(crate) flushed: tokio::sync::watch::Sender<u64>,
    /// Wakes the flusher at once (a persisted task changed state).
    pub(crate) flush_soon: Notify,
    /// Stops the background loops (flusher, heartbeat, recovery) at the very end of shutdown.
    pub(crate) closed: CancellationToken,
    pub(crate) loops: TaskTracker,
    pub(crate) observers: crate::observe::Observers,
}

/// The shared indexes and queues, behind one lock that is never held across an `.await`. The
/// records themselves are in the tasks' cells.
pub(crate) struct State {
    /// The cell of every record in memory.
    pub(crate) history: History<Cell>,
    pub(crate) dispatch: Dispatch<Cell>,
    pub(crate) keys: HashMap<SharedStr, TaskId>,
    pub(crate) seq: u64,
    pub(crate) accepting: bool,
    /// What to do once the lock is released.
    pub(crate) outbox: Outbox,
}

impl State {
    /// A task's place in its queue, taking the next arrival number so that equal priorities
    /// run first in, first out.
    pub(crate) fn waiting(
        &mut self,
        priority: i32,
        id: TaskId,
        blocking: bool,
        cell: Cell,
    ) -> Waiting<Cell> {
        self.seq += 1;
        Waiting {
            priority,
            seq: self.seq,
            id,
            blocking,
            payload: cell,
        }
    }
}

/// Frees idempotency key `key` in `keys` if run `id` holds it.
fn release_key(keys: &mut HashMap<SharedStr, TaskId>, key: Option<&str>, id: TaskId) {
    if let Some(key) = key
        && let Some((key, holder)) = keys.remove_entry(key)
        && holder != id
    {
        // Another run holds it (this one was refused, or released it before): put it back.
        keys.insert(key, holder);
    }
}

/// What concluding a task under its cell's lock leaves to do: the callers of `wait` to wake once
/// the cell is unlocked, and the window's part, under the state lock ([`Inner::settle`]).
pub(crate) struct Concluded {
    waiters: Waiters,
    settle: Settle,
}

impl Concluded {
    /// Wakes the callers of `wait` (call it once the cell is unlocked) and returns the window's
    /// part, to settle under the state lock.
    pub(crate) fn wake(self) -> Settle {
        let Self { waiters, settle } = self;
        drop(waiters);
        settle
    }
}

/// The window's part of concluding a task: it is finished (and may be evicted) and, when its
/// state releases it, its idempotency key is free.
#[must_use = "a concluded task is settled in the window under the state lock"]
pub(crate) struct Settle {
    id: TaskId,
    /// Where the window expects it.
    place: Place,
    ended_at: DateTime<Utc>,
    key: Option<SharedStr>,
}

impl TaskManager {
    /// A builder with the defaults: 64 concurrent async attempts, 16 blocking threads, 10,000
    /// finished records kept in memory, a 30 s shutdown grace period.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = taskflow::TaskManager::builder().max_history(1_000);
    /// ```
    pub fn builder() -> TaskManagerBuilder {
        TaskManagerBuilder::default()
    }

    /// Enqueues a declared task; await the returned builder for its id.
    ///
    /// # Errors
    ///
    /// When awaited: [`Error::QueueFull`] (the task is recorded as `rejected`),
    /// [`Error::ShuttingDown`], or [`Error::Arguments`] when the arguments do not serialize.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// #[taskflow::task(retries = 2)]
    /// async fn resize(image: String, width: u32) -> Result<u32, String> {
    ///     Ok(width)
    /// }
    ///
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let id = manager
    ///     .add(Resize { image: "a.png".into(), width: 64 })
    ///     .tags([("user", "7")])
    ///     .await?;
    /// assert_eq!(manager.wait(id).await?.result, Some(serde_json::json!(64).into()));
    /// # manager.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn add<T: Task>(&self, args: T) -> AddBuilder {
        let task = JsonText::encode(&args)
            .map_err(|source| Error::Arguments {
                name: T::NAME.to_owned(),
                source,
            })
            .map(|json| {
                self.inner.new_task(
                    SharedStr::from_static(T::NAME),
                    &T::OPTIONS,
                    Some(json),
                    First::Later {
                        blocking: T::BLOCKING,
                    },
                    if T::OPTIONS.retries == 0 {
                        Factory::TypedOnce(Some(Box::new(move || args.run())))
                    } else {
                        Factory::Typed(Box::new(move || args.clone().run()))
                    },
                    "task",
                )
            });
        AddBuilder::new(self.clone(), task)
    }

    /// Tracks an ad-hoc future under `name`: it gets an id, a status, logs and a place in the
    /// dashboard, but no persistence and no retries.
    ///
    /// # Errors
    ///
    /// When awaited: [`Error::QueueFull`] or [`Error::ShuttingDown`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let id = manager.spawn("warm-cache", async { Ok::<_, std::io::Error>(3) }).await?;
    /// assert_eq!(manager.wait(id).await?.result, Some(serde_json::json!(3).into()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn<F>(&self, name: impl Into<String>, future: F) -> AddBuilder
    where
        F: Future + Send + 'static,
        F::Output: crate::task::IntoTaskResult,
    {
        let task = self.inner.new_task(
            SharedStr::from(name.into()),
            &SPAWNED,
            None,
            First::Made(TaskRun::from_future(future)),
            Factory::Once,
            "spawn",
        );
        AddBuilder::new(self.clone(), Ok(task))
    }

    /// The record of task `id`: from memory while it is pending, running or recent, else from
    /// the store.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// assert!(manager.get(taskflow::TaskId::new()).await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        if let Some(cell) = self.inner.cell(id) {
            return Ok(Some(cell.lock().record.clone()));
        }
        match &self.inner.store {
            Some(store) => Ok(store
                .get(id)
                .await
                .inspect_err(|_| self.inner.observers.store_error())?),
            None => Ok(None),
        }
    }

    /// Lists records newest first, filtered and paginated: live and recent tasks from memory,
    /// the rest of the history from the store.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store cannot be read or written.
    ///
    /// # Examples
    ///
    /// See [`ListPage`].
    pub async fn list(&self, filter: &TaskFilter) -> Result<ListPage> {
        self.inner.list(filter).await
    }

    /// Counts, success rate and durations of every task known (memory and store).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store cannot be read or written.
    ///
    /// # Examples
    ///
    /// See [`Metrics`].
    pub async fn metrics(&self) -> Result<Metrics> {
        self.inner.metrics(&TaskFilter::new()).await
    }

    /// Waits until task `id` reaches a final state and returns its record. After shutdown a
    /// task kept for the next start is returned as it is (pending).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the task is unknown; [`Error::Store`] when the store cannot be
    /// read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops waiting.
    ///
    /// # Examples
    ///
    /// See [`TaskManager`].
    pub async fn wait(&self, id: TaskId) -> Result<TaskRecord> {
        loop {
            let (cell, accepting) = {
                let state = self.inner.state.lock();
                (state.history.get(id).cloned(), state.accepting)
            };
            let Some(cell) = cell else {
                return self.get(id).await?.ok_or(Error::NotFound(id));
            };
            let woken = {
                let mut entry = cell.lock();
                let Entry { record, live } = &mut *entry;
                if record.status.is_finished() {
                    return Ok(record.clone());
                }
                match live {
                    Some(live) => {
                        let (sender, woken) = tokio::sync::oneshot::channel();
                        live.waiters.push(sender);
                        Some(woken)
                    }
                    None if !accepting => return Ok(record.clone()),
                    None => None,
                }
            };
            let Some(woken) = woken else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            // Woken when the task concluded, or when it left this instance unfinished (kept
            // for the next start at shutdown): then look again.
            let _ = woken.await;
            let entry = cell.lock();
            if entry.record.status.is_finished() {
                return Ok(entry.record.clone());
            }
        }
    }
    /// Cancels a task: a pending task never runs; a running async task is aborted. Both end
    /// `cancelled`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; [`Error::InvalidState`] when it already finished;
    /// [`Error::CannotCancelBlocking`] when it is running on the blocking pool;
    /// [`Error::NotOwned`] when another instance runs it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// use std::time::Duration;
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let id = manager.spawn("later", async {}).delay(Duration::from_secs(60)).await?;
    /// assert_eq!(manager.cancel(id).await?.status, taskflow::TaskStatus::Cancelled);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cancel(&self, id: TaskId) -> Result<TaskRecord> {
        if let Some(result) = self.cancel_local(id) {
            return result;
        }
        match self.get(id).await? {
            None => Err(Error::NotFound(id)),
            Some(record) if record.status.is_finished() => Err(Error::InvalidState {
                id,
                status: record.status,
                action: "cancel",
            }),
            Some(record) => Err(Error::NotOwned {
                id,
                instance: record.instance_id.into(),
            }),
        }
    }

    /// Cancels a task this instance holds in memory; `None` when it holds none with this id.
    fn cancel_local(&self, id: TaskId) -> Option<Result<TaskRecord>> {
        let inner = &self.inner;
        let cell = inner.cell(id)?;
        let mut record = None;
        let (concluded, waiting_in) = {
            let mut entry = cell.lock();
            let status = entry.record.status;
            let live = entry.live.as_ref().map(|live| (live.queue, live.blocking));
            let refusal = match (status, live) {
                (status, _) if status.is_finished() => Some(Error::InvalidState {
                    id,
                    status,
                    action: "cancel",
                }),
                (_, None) => Some(Error::ShuttingDown),
                (TaskStatus::Running, Some((_, true))) => Some(Error::CannotCancelBlocking(id)),
                _ => None,
            };
            if let Some(error) = refusal {
                return Some(Err(error));
            }
            let waiting_in = live
                .filter(|_| status == TaskStatus::Pending)
                .map(|(queue, _)| queue);
            let concluded = inner.conclude(&mut entry, TaskStatus::Cancelled, Utc::now(), |r| {
                r.error = Some("cancelled".to_owned());
                record = Some(r.clone());
            });
            (concluded, waiting_in)
        };
        let settle = concluded.wake();
        {
            // Concluded first, so that whoever takes it from its queue meanwhile finds it no
            // longer startable.
            let mut state = inner.state.lock();
            if let Some(queue) = waiting_in {
                state.dispatch.remove(queue, id);
            }
            inner.settle(&mut state, &cell, settle);
        }
        Some(record.ok_or(Error::NotFound(id)))
    }

    /// Runs a finished task again with the same arguments; the new run links to the original
    /// through `retry_of`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; [`Error::InvalidState`] while it is pending or running;
    /// [`Error::NotRetryable`] for an ad-hoc `spawn`; [`Error::UnknownTask`] when its name is no
    /// longer registered; [`Error::Arguments`] when its arguments no longer decode; and the
    /// errors of enqueueing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// #[taskflow::task]
    /// async fn flaky(n: u32) -> Result<(), String> { Err(format!("failed {n}")) }
    ///
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let first = manager.add(Flaky { n: 1 }).await?;
    /// manager.wait(first).await?;
    /// let second = manager.retry(first).await?;
    /// assert_eq!(manager.wait(second).await?.retry_of, Some(first));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn retry(&self, id: TaskId) -> Result<TaskId> {
        let record = self.get(id).await?.ok_or(Error::NotFound(id))?;
        if !record.status.is_finished() {
            return Err(Error::InvalidState {
                id,
                status: record.status,
                action: "retry",
            });
        }
        let Some(args) = record.args else {
            return Err(Error::NotRetryable(id));
        };
        let mut builder = self
            .add_args(&record.func_name, args)
            .queue(record.queue)
            .priority(record.priority);
        if let Ok(task) = &mut builder.task {
            task.with_entry(|entry| {
                entry.record.tags = record.tags;
                entry.record.source = SharedStr::from_static("retry");
                entry.record.retry_of = Some(id);
            });
        }
        builder.await
    }

    /// Enqueues a registered task by name with JSON arguments, as a stored task is run again.
    ///
    /// # Errors
    ///
    /// When awaited: [`Error::UnknownTask`] when no task has this name, [`Error::Arguments`] when
    /// the arguments do not decode, and the errors of [`add`](Self::add).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// #[taskflow::task(name = "math.square")]
    /// fn square(n: i64) -> Result<i64, String> { Ok(n * n) }
    ///
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let id = manager.add_named("math.square", serde_json::json!({ "n": 12 })).await?;
    /// assert_eq!(manager.wait(id).await?.result, Some(serde_json::json!(144).into()));
    /// assert!(manager.add_named("math.cube", serde_json::json!({})).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_named(&self, name: &str, args: Value) -> AddBuilder {
        self.add_args(name, JsonText::from(args))
    }

    /// [`add_named`](Self::add_named) with the arguments' JSON text.
    fn add_args(&self, name: &str, args: JsonText) -> AddBuilder {
        let task = match self.inner.registry.get(name) {
            None => Err(self.inner.registry.unknown(name)),
            Some(registration) => registration
                .decode(&args)
                .map_err(|source| Error::Arguments {
                    name: name.to_owned(),
                    source,
                })
                .map(|first| {
                    self.inner.new_task(
                        SharedStr::from_static(registration.name()),
                        registration.options(),
                        Some(args.clone()),
                        First::Made(first),
                        Factory::Stored(registration.decoder(), Box::new(args)),
                        "task",
                    )
                }),
        };
        AddBuilder::new(self.clone(), task)
    }

    /// Deletes finished records that ended more than `older_than` ago; returns how many.
    /// Pending and running tasks are never deleted.
    ///
    /// # Errors
    ///
    /// Reserved for stores that can fail.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// use std::time::Duration;
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let id = manager.spawn("old", async {}).await?;
    /// manager.wait(id).await?;
    /// assert_eq!(manager.purge_history(Duration::ZERO).await?, 1);
    /// assert!(manager.get(id).await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn purge_history(&self, older_than: Duration) -> Result<usize> {
        let cutoff =
            Utc::now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let stored = match &self.inner.store {
            Some(store) => {
                self.inner.flush().await?;
                Some(store.purge(cutoff).await?)
            }
            None => None,
        };
        let purged = {
            let mut state = self.inner.state.lock();
            let purged = state.history.purge(cutoff, Arc::ptr_eq);
            if !state.keys.is_empty() {
                for (id, cell) in &purged {
                    let held = cell.lock();
                    release_key(&mut state.keys, held.record.idempotency_key.as_deref(), *id);
                }
            }
            purged
        };
        Ok(stored.unwrap_or(purged.len()))
    }

    /// Applies the store retention settings now ([`TaskManagerBuilder::retention`] and
    /// [`TaskManagerBuilder::max_stored_rows`]); the manager also does so every minute. Returns
    /// how many records were deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// assert_eq!(manager.apply_retention().await?, 0); // no store, nothing to delete
    /// # Ok(())
    /// # }
    /// ```
    pub async fn apply_retention(&self) -> Result<usize> {
        self.inner.flush().await?;
        storage::apply_retention(&self.inner).await
    }

    /// Subscribes to the feed of lifecycle and log events of every task.
    ///
    /// The feed is bounded (see [`TaskManagerBuilder::event_capacity`]): publishing never waits,
    /// and a subscriber that falls behind receives `RecvError::Lagged(n)` and then the newest
    /// events.
    ///
    /// # Examples
    ///
    /// See [`TaskEvent`].
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<TaskEvent>> {
        self.inner.events.subscribe()
    }

    /// A snapshot of every queue.
    ///
    /// # Examples
    ///
    /// See [`QueueStats`].
    pub fn queues(&self) -> Vec<QueueStats> {
        self.inner.state.lock().dispatch.stats()
    }

    /// Changes a queue's limits at run time; tasks waiting in it start at once if the new limit
    /// allows.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// manager.resize_queue("reports", taskflow::QueueConfig::new().concurrency(2));
    /// let stats = manager.queues();
    /// assert_eq!(stats.iter().find(|q| q.name == "reports").unwrap().concurrency, Some(2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn resize_queue(&self, name: &str, config: QueueConfig) {
        let picked = {
            let mut state = self.inner.state.lock();
            state.dispatch.resize(name, config);
            self.inner.pump(&mut state)
        };
        let starts = self.inner.begin(picked, Utc::now());
        executor::launch(&self.inner, starts);
    }

    /// The registered tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let _names: Vec<&str> = manager.registry().names().collect();
    /// # Ok(())
    /// # }
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// This manager's instance id.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().instance_id("web-1").build().await?;
    /// assert_eq!(manager.instance_id(), "web-1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// When this manager was built.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// assert!(manager.started_at() <= chrono::Utc::now());
    /// # Ok(())
    /// # }
    /// ```
    pub fn started_at(&self) -> DateTime<Utc> {
        self.inner.started_at
    }

    /// Whether shutdown has begun.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// assert!(!manager.is_shutting_down());
    /// manager.shutdown().await?;
    /// assert!(manager.is_shutting_down());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.inner.stopping.is_cancelled()
    }

    /// Resolves on Ctrl-C, on SIGTERM (Unix), or when [`shutdown`](Self::shutdown) begins: pass
    /// it to `axum::serve(..).with_graceful_shutdown`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(manager: taskflow::TaskManager, app: axum::Router) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    /// axum::serve(listener, app).with_graceful_shutdown(manager.shutdown_signal()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let stopping = self.inner.stopping.clone();
        async move {
            #[cfg(unix)]
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let terminate = std::future::pending::<()>();
            tokio::select! {
                () = stopping.cancelled() => {}
                _ = tokio::signal::ctrl_c() => {}
                () = terminate => {}
            }
        }
    }

    /// Stops accepting tasks, records every task that has not started as `interrupted` ("not
    /// started before shutdown"), lets running attempts finish within the shutdown timeout, then
    /// aborts the rest and records them as `interrupted`. Calling it again does nothing.
    ///
    /// # Errors
    ///
    /// Reserved for stores that fail their final flush.
    ///
    /// # Examples
    ///
    /// See [`TaskManager`].
    pub async fn shutdown(&self) -> Result<()> {
        let inner = &self.inner;
        let live: Vec<Cell> = {
            let mut state = inner.state.lock();
            if !state.accepting {
                return Ok(());
            }
            state.accepting = false;
            state.dispatch.clear_waiting();
            state.history.values().cloned().collect()
        };
        // Nothing is queued or picked from now on; a task picked before may still start, and is
        // then left to the running attempts' grace period.
        inner.settle_all(&live, |cell| inner.stop_pending(cell));
        inner.stopping.cancel();
        inner.tracker.close();
        if tokio::time::timeout(inner.shutdown_timeout, inner.tracker.wait())
            .await
            .is_err()
        {
            let message = format!(
                "aborted after the shutdown grace period of {:?}",
                inner.shutdown_timeout
            );
            let running: Vec<Cell> = inner.state.lock().history.values().cloned().collect();
            inner.settle_all(&running, |cell| inner.stop_running(cell, &message));
        }
        // Aborted async attempts end at their next poll; blocking threads cannot be stopped and
        // are left to finish on their own.
        let _ = tokio::time::timeout(Duration::from_secs(1), inner.tracker.wait()).await;
        inner.blocking.close();
        inner.observers.close().await;
        inner.closed.cancel();
        inner.loops.close();
        inner.loops.wait().await;
        inner.finish_storage().await
    }
}

impl std::fmt::Debug for TaskManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskManager")
            .field("instance_id", &self.inner.instance_id)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Appends a log entry to a live task's record (bounded by `max_log_entries`).
    pub(crate) fn append_log(&self, id: TaskId, entry: LogEntry) {
        let Some(cell) = self.cell(id) else {
            return;
        };
        let mut guard = cell.lock();
        let record = &mut guard.record;
        let entry = match record.logs.len() {
            n if n < self.max_log_entries => entry,
            n if n == self.max_log_entries => LogEntry::new(
                crate::task::LogLevel::Warn,
                format!(
                    "log limit of {} entries reached; later entries are dropped",
                    self.max_log_entries
                ),
            ),
            _ => return,
        };
        self.push_log(record, entry);
    }

    /// Appends `entry` to `record`'s log and publishes it.
    pub(crate) fn push_log(&self, record: &mut TaskRecord, entry: LogEntry) {
        self.events
            .publish(|| TaskEvent::Log(LogEvent::of(record, &entry)));
        record.logs.push(entry);
    }

    /// Publishes a state change of `record`.
    pub(crate) fn publish_state(&self, record: &TaskRecord) {
        self.events
            .publish(|| TaskEvent::Lifecycle(LifecycleEvent::of(record)));
    }

    /// The cell of record `id`, if memory holds it.
    pub(crate) fn cell(&self, id: TaskId) -> Option<Cell> {
        self.state.lock().history.get(id).cloned()
    }

    /// Moves a live task to a final state at `now`, under its cell's lock: updates its record,
    /// forgets its live entry (which stops a running attempt) and queues the record for the
    /// store. The caller wakes the callers of `wait` once the cell is unlocked and settles the
    /// rest under the state lock.
    pub(crate) fn conclude(
        &self,
        entry: &mut Entry,
        status: TaskStatus,
        now: DateTime<Utc>,
        update: impl FnOnce(&mut TaskRecord),
    ) -> Concluded {
        let (waiters, place) = entry
            .take_live()
            .map_or((Few::new(), Place::UNKNOWN), |live| {
                (live.waiters, live.place)
            });
        let waiters = Waiters::new(waiters);
        let record = &mut entry.record;
        record.status = status;
        record.end_time = Some(now);
        record.duration = record
            .start_time
            .map(|start| crate::clock::seconds_between(start, now).max(0.0));
        update(record);
        self.publish_state(record);
        self.queue_save(record);
        // Keys are held here only without a store (the store holds them otherwise).
        let key = record
            .idempotency_key
            .as_ref()
            .filter(|_| self.store.is_none() && !status.holds_idempotency_key())
            .cloned();
        Concluded {
            waiters,
            settle: Settle {
                id: record.task_id,
                place,
                ended_at: now,
                key,
            },
        }
    }

    /// Settles concluded task `cell` in the window: releases its key if its state released it,
    /// and marks it finished; records evicted beyond the bound release their keys and are freed
    /// once the lock is released.
    pub(crate) fn settle(&self, state: &mut State, cell: &Cell, settle: Settle) {
        let State {
            history,
            keys,
            outbox,
            ..
        } = state;
        release_key(keys, settle.key.as_deref(), settle.id);
        history.mark_finished(
            settle.id,
            settle.place,
            settle.ended_at,
            Arc::clone(cell),
            Arc::ptr_eq,
            |id, finished, held| {
                // Without keys held, the evicted record (cold in the cache by now) is not read.
                if let Some(held) = &held
                    && !keys.is_empty()
                {
                    let held = held.lock();
                    release_key(keys, held.record.idempotency_key.as_deref(), id);
                }
                outbox.free(finished, held);
            },
        );
    }

    /// Runs `stop` on each cell (at shutdown) and settles those it concluded, in one section
    /// under the state lock.
    fn settle_all(&self, cells: &[Cell], mut stop: impl FnMut(&Cell) -> Option<Settle>) {
        let settled: Vec<(&Cell, Settle)> = cells
            .iter()
            .filter_map(|cell| stop(cell).map(|settle| (cell, settle)))
            .collect();
        if settled.is_empty() {
            return;
        }
        let mut state = self.state.lock();
        for (cell, settle) in settled {
            self.settle(&mut state, cell, settle);
        }
    }
}
