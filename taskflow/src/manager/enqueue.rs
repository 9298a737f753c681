//! The enqueue path: [`AddBuilder`], and how a new task is accepted: a write-ahead insert (or
//! an idempotency reservation) in the store first, then its queue.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::storage::MAX_UNSAVED;
use super::{Factory, Inner, Live, State, TaskManager};
use crate::dispatch::Waiting;
use crate::error::{Error, Result};
use crate::executor;
use crate::few::Few;
use crate::history::Entry;
use crate::shared_str::SharedStr;
use crate::store::Inserted;
use crate::task::{Tags, TaskId, TaskOptions, TaskRecord, TaskRun, TaskStatus};

/// What a new task needs besides its record, carried from `prepare` to `commit`.
struct Runnable {
    options: TaskOptions,
    first: TaskRun,
    factory: Factory,
    wait: Option<Duration>,
    parent_span: tracing::Span,
}

impl Inner {
    /// Whether accepting this task waits for the store: a `persist` task is written first, a key
    /// is reserved there, and a full backlog of unsaved records is flushed first.
    fn accept_waits(&self, new: &NewTask, opts: Option<&AddOptions>) -> bool {
        self.store.is_some()
            && (new.options.persist
                || opts.is_some_and(|opts| opts.idempotency_key.is_some())
                || self.unsaved_len() > MAX_UNSAVED)
    }

    /// Accepts a task that does not wait for the store: prepared and queued at once.
    fn accept_now(self: &Arc<Self>, new: NewTask, opts: Option<Box<AddOptions>>) -> Result<TaskId> {
        let (record, runnable) = self.prepare(new, opts);
        self.enqueue(record, runnable, false)
    }

    /// Accepts a task: stored first when it is `persist` (or its key reserved when it has one),
    /// then queued. `Ok` for a `persist` task means committed.
    async fn accept(
        self: Arc<Self>,
        new: NewTask,
        opts: Option<Box<AddOptions>>,
    ) -> Result<TaskId> {
        if !self.state.lock().accepting {
            return Err(Error::ShuttingDown);
        }
        let (entry, runnable) = self.prepare(new, opts);
        let record = &entry.record;
        let mut stored = false;
        if let Some(store) = &self.store {
            if self.unsaved_len() > MAX_UNSAVED {
                self.flush().await?;
            }
            let inserted = if record.persist {
                stored = true;
                store
                    .insert(record.clone(), self.storage.key_ttl)
                    .await
                    .inspect_err(|_| self.observers.store_error())?
            } else if let Some(key) = &record.idempotency_key {
                stored = true;
                store
                    .reserve_key(key, record.task_id, self.storage.key_ttl)
                    .await
                    .inspect_err(|_| self.observers.store_error())?
            } else {
                Inserted::New
            };
            if let Inserted::Duplicate(holder) = inserted {
                return Ok(holder);
            }
        }
        self.enqueue(entry, runnable, stored)
    }

    /// Queues a prepared task and starts what can start. `stored`: its row or key is already in
    /// the store.
    fn enqueue(
        self: &Arc<Self>,
        entry: Box<Entry<Live>>,
        runnable: Runnable,
        stored: bool,
    ) -> Result<TaskId> {
        // The task was made a moment ago: its creation time stands for the clock reading.
        let now = entry.record.created_at;
        let (accepted, starts) = {
            let mut state = self.state.lock();
            let accepted = self.commit(&mut state, entry, runnable, stored);
            (accepted, self.pump(&mut state, now))
        };
        executor::launch(self, starts);
        accepted
    }

    /// Builds the record of a new task, in the allocation the history keeps; no lock, no I/O.
    fn prepare(&self, new: NewTask, opts: Option<Box<AddOptions>>) -> (Box<Entry<Live>>, Runnable) {
        let now = std::time::SystemTime::now();
        let mut entry = Entry::new(
            TaskRecord::pending_at(
                TaskId::at(now),
                new.name,
                self.instance_id.clone(),
                DateTime::<Utc>::from(now),
            ),
            None,
        );
        let record = &mut entry.record;
        record.queue = SharedStr::from_static(new.options.queue);
        record.priority = new.options.priority;
        record.args = new.args;
        record.source = SharedStr::from_static(new.source);
        record.retry_of = new.retry_of;
        record.executor = SharedStr::from_static(if new.first.is_blocking() {
            "blocking"
        } else {
            "async"
        });
        record.persist = new.options.persist && self.store.is_some();
        record.trace_parent = crate::observe::trace_parent();
        let mut wait = None;
        // Most tasks set no option: their record keeps the defaults it was made with.
        if let Some(opts) = opts {
            let AddOptions {
                idempotency_key,
                tags,
                priority,
                queue,
                run_at,
            } = *opts;
            if let Some(queue) = queue {
                record.queue = queue;
            }
            if let Some(priority) = priority {
                record.priority = priority;
            }
            record.tags = tags;
            record.idempotency_key = idempotency_key;
            if let Some((delay, at)) = run_at {
                record.run_at = Some(at);
                wait = Some(delay);
            }
        }
        let runnable = Runnable {
            options: new.options,
            first: new.first,
            factory: new.factory,
            wait,
            parent_span: tracing::Span::current(),
        };
        (entry, runnable)
    }

    /// Queues a prepared task under the lock. `stored`: its row or key is already in the store.
    fn commit(
        self: &Arc<Self>,
        state: &mut State,
        mut entry: Box<Entry<Live>>,
        runnable: Runnable,
        stored: bool,
    ) -> Result<TaskId> {
        let record = &entry.record;
        let id = record.task_id;
        if !state.accepting {
            if stored {
                self.reject(
                    state,
                    entry,
                    "the manager shut down before the task was queued".to_owned(),
                );
            }
            return Err(Error::ShuttingDown);
        }
        if self.store.is_none()
            && let Some(key) = &record.idempotency_key
            && let Some(&holder) = state.keys.get(key)
        {
            return Ok(holder);
        }
        let blocking = runnable.first.is_blocking();
        let queue = state.dispatch.index_of(&record.queue);
        state.seq += 1;
        let waiting = Waiting {
            priority: record.priority,
            seq: state.seq,
            id,
            blocking,
        };
        if runnable.wait.is_none()
            && let Err(max_size) = state.dispatch.push(queue, waiting)
        {
            let queue = record.queue.clone();
            self.reject(
                state,
                entry,
                format!("queue `{queue}` is full ({max_size} pending tasks)"),
            );
            return Err(Error::QueueFull {
                queue: queue.into(),
                max_size,
            });
        }
        if self.store.is_none()
            && let Some(key) = &record.idempotency_key
        {
            state.keys.insert(key.clone(), id);
        }
        self.publish_state(record);
        entry.live = Some(Live {
            queue,
            options: runnable.options,
            next: Some(runnable.first),
            factory: runnable.factory,
            blocking,
            attempt: None,
            parent_span: runnable.parent_span,
            waiters: Few::new(),
        });
        state.history.insert(entry);
        if let Some(wait) = runnable.wait {
            executor::schedule(self, id, waiting, wait);
        }
        Ok(id)
    }

    /// Records a task that was not accepted as `rejected` (releasing its key in the store).
    fn reject(&self, state: &mut State, mut entry: Box<Entry<Live>>, reason: String) {
        let record = &mut entry.record;
        let id = record.task_id;
        record.status = TaskStatus::Rejected;
        record.end_time = Some(Utc::now());
        record.error = Some(reason);
        self.publish_state(record);
        state.history.insert(entry);
        self.queue_save(state, id);
        self.evict(state, id);
    }
}

/// A task about to be enqueued.
pub(crate) struct NewTask {
    pub(crate) name: SharedStr,
    pub(crate) options: TaskOptions,
    pub(crate) args: Option<Value>,
    pub(crate) first: TaskRun,
    pub(crate) factory: Factory,
    pub(crate) source: &'static str,
    pub(crate) retry_of: Option<TaskId>,
}

#[derive(Default)]
struct AddOptions {
    idempotency_key: Option<String>,
    tags: Tags,
    priority: Option<i32>,
    queue: Option<SharedStr>,
    run_at: Option<(Duration, DateTime<Utc>)>,
}

/// Enqueue options for one task; `.await` it for the task's id.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use std::time::Duration;
/// let manager = taskflow::TaskManager::builder().build().await?;
/// let first = manager
///     .spawn("nightly", async {})
///     .idempotency_key("nightly-2026-11-22")
///     .tags([("kind", "report")])
///     .priority(5)
///     .queue("reports")
///     .delay(Duration::from_millis(10))
///     .await?;
/// let again = manager.spawn("nightly", async {}).idempotency_key("nightly-2026-11-22").await?;
/// assert_eq!(first, again);
/// # Ok(())
/// # }
/// ```
#[must_use = "an AddBuilder does nothing until it is awaited"]
pub struct AddBuilder {
    manager: TaskManager,
    pub(super) task: Result<NewTask>,
    /// Boxed once an option is set: most tasks set none, and the builder moves a few times.
    options: Option<Box<AddOptions>>,
}

impl AddBuilder {
    pub(super) fn new(manager: TaskManager, task: Result<NewTask>) -> Self {
        Self {
            manager,
            task,
            options: None,
        }
    }

    fn options(&mut self) -> &mut AddOptions {
        self.options.get_or_insert_default()
    }

    /// A second `add` with the same key, while a run holding it is pending, running or
    /// succeeded, returns that run's id and starts nothing.
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.options().idempotency_key = Some(key.into());
        self
    }

    /// Adds key/value tags (filterable in the API and dashboard).
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn tags<K: Into<String>, V: Into<String>>(
        mut self,
        tags: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.options()
            .tags
            .extend(tags.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Overrides the task's priority within its queue.
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn priority(mut self, priority: i32) -> Self {
        self.options().priority = Some(priority);
        self
    }

    /// Overrides the task's queue.
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn queue(mut self, queue: impl Into<SharedStr>) -> Self {
        self.options().queue = Some(queue.into());
        self
    }

    /// Starts the task no sooner than `delay` from now.
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn delay(mut self, delay: Duration) -> Self {
        let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.options().run_at = Some((delay, at));
        self
    }

    /// Starts the task no sooner than `at`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let at = chrono::Utc::now() + chrono::Duration::minutes(5);
    /// let id = manager.spawn("later", async {}).run_at(at).await?;
    /// assert_eq!(manager.get(id).await?.unwrap().run_at, Some(at));
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        self.options().run_at = Some((wait, at));
        self
    }
}

impl IntoFuture for AddBuilder {
    type Output = Result<TaskId>;
    type IntoFuture = AddFuture;

    fn into_future(self) -> AddFuture {
        AddFuture(AddState::Start(Some(self)))
    }
}

/// The future of an awaited [`AddBuilder`]: resolves to the new task's id.
///
/// A task that waits for nothing (no store, or neither `persist` nor an idempotency key) is
/// accepted in its first poll without allocating; one that waits for the store is accepted by a
/// boxed future.
///
/// # Cancel safety
///
/// Dropping it before it resolves may or may not have enqueued the task (a `persist` task may
/// already be committed).
///
/// # Panics
///
/// When polled again after it resolved, like any future that completed.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use std::future::IntoFuture;
/// let manager = taskflow::TaskManager::builder().build().await?;
/// let adding: taskflow::AddFuture = manager.spawn("later", async {}).into_future();
/// let id = adding.await?;
/// manager.wait(id).await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct AddFuture(AddState);

#[allow(
    clippy::large_enum_variant,
    reason = "the builder is taken on the first poll; boxing it would cost the allocation per \
              task that this future exists to avoid"
)]
enum AddState {
    Start(Option<AddBuilder>),
    Storing(Pin<Box<dyn Future<Output = Result<TaskId>> + Send>>),
}

impl Future for AddFuture {
    type Output = Result<TaskId>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<TaskId>> {
        loop {
            match &mut self.0 {
                AddState::Storing(accepting) => return accepting.as_mut().poll(cx),
                AddState::Start(builder) => {
                    let AddBuilder {
                        manager,
                        task,
                        options,
                    } = builder
                        .take()
                        .expect("`AddFuture` polled after it resolved");
                    let task = match task {
                        Ok(task) => task,
                        Err(error) => return Poll::Ready(Err(error)),
                    };
                    let inner = manager.inner;
                    if !inner.accept_waits(&task, options.as_deref()) {
                        return Poll::Ready(inner.accept_now(task, options));
                    }
                    self.0 = AddState::Storing(Box::pin(inner.accept(task, options)));
                }
            }
        }
    }
}

impl std::fmt::Debug for AddFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddFuture").finish_non_exhaustive()
    }
}
