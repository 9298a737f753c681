//! The enqueue path: [`AddBuilder`], and how a new task is accepted: a write-ahead insert (or
//! an idempotency reservation) in the store first, then its queue.

use std::collections::hash_map;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use super::storage::MAX_UNSAVED;
use super::{Cell, Entry, Factory, Inner, Live, Settle, State, TaskCell, TaskManager};
use crate::dispatch::{QueueIndex, Waiting};
use crate::error::{Error, Result};
use crate::executor::{self, Picked};
use crate::few::Few;
use crate::history::Place;
use crate::json_text::JsonText;
use crate::shared_str::SharedStr;
use crate::store::Inserted;
use crate::task::{TaskId, TaskOptions, TaskRecord, TaskRun, TaskStatus};

/// A task about to be enqueued: its record and live entry, made once in the cell the window
/// keeps (so that enqueueing moves a pointer, not the record), and when it may start.
pub(crate) struct NewTask {
    cell: Cell,
    /// How long to wait before its first attempt (`delay` or `run_at`).
    wait: Option<Duration>,
    /// When its row was inserted as `running` (see [`Inner::write_ahead_row`]): the start the row
    /// holds.
    written_start: Option<DateTime<Utc>>,
}

impl NewTask {
    /// Runs `f` on the task's entry (the cell is not shared yet, so this takes no lock).
    pub(crate) fn with_entry<R>(&mut self, f: impl FnOnce(&mut Entry) -> R) -> R {
        TaskCell::with_unshared(&mut self.cell, f)
    }
}

/// A task's id and creation time, given when it is submitted (its builder awaited), from one
/// reading of the clock, which is also when it starts if it starts at once.
#[derive(Clone, Copy)]
struct Stamp {
    id: TaskId,
    at: DateTime<Utc>,
}

impl Stamp {
    fn now() -> Self {
        let now = SystemTime::now();
        let since_epoch = crate::clock::since_epoch(now);
        Self {
            id: TaskId::at(since_epoch),
            at: crate::clock::utc_since_epoch(now, since_epoch),
        }
    }

    fn apply(self, record: &mut TaskRecord) {
        record.task_id = self.id;
        record.created_at = self.at;
    }
}

/// A new task's first attempt body.
pub(crate) enum First {
    /// Made at enqueue: an ad-hoc future.
    Made(TaskRun),
    /// Made by the task's typed factory when the attempt starts: for a task that waited for its
    /// slot, in the finish of the attempt before it, on the runner that then runs it, so that the
    /// body is allocated and freed on one thread; of the kind `blocking` says ([`Task::BLOCKING`](crate::Task::BLOCKING)).
    Later { blocking: bool },
}

/// Why a task was not queued.
enum Refused {
    /// Its idempotency key is held by this run.
    Duplicate(TaskId),
    /// Its queue is full.
    Full { queue: SharedStr, max_size: usize },
}

/// Where a task accepted under the state lock waits.
struct Queued {
    id: TaskId,
    queue: QueueIndex,
    priority: i32,
    seq: u64,
    blocking: bool,
}

impl Inner {
    /// Makes the record and live entry of a new task with the defaults of its declaration; no
    /// lock, no I/O, no clock: its id and creation time are given when it is submitted
    /// ([`Stamp`]).
    pub(crate) fn new_task(
        &self,
        name: SharedStr,
        options: &'static TaskOptions,
        args: Option<JsonText>,
        first: First,
        factory: Factory,
        source: &'static str,
    ) -> NewTask {
        let (blocking, next) = match first {
            First::Made(run) => (run.is_blocking(), Some(run)),
            First::Later { blocking } => (blocking, None),
        };
        // Stamped with its id and creation time when it is submitted.
        let mut cell = TaskCell::pending(
            TaskId::from_bytes([0; 16]),
            name,
            self.instance_id.clone(),
            DateTime::UNIX_EPOCH,
        );
        TaskCell::with_unshared(&mut cell, |entry| {
            let record = &mut entry.record;
            record.queue = SharedStr::from_static(options.queue);
            record.priority = options.priority;
            record.args = args;
            record.source = SharedStr::from_static(source);
            record.executor = executor::executor_name(blocking);
            record.persist = options.persist && self.store.is_some();
            record.trace_parent = crate::observe::trace_parent();
            entry.live = Some(Live {
                // Resolved from the record's queue name when the task is queued.
                queue: QueueIndex::DEFAULT,
                options,
                next,
                factory,
                blocking,
                attempt: None,
                parent_span: tracing::Span::current(),
                waiters: Few::new(),
                written_running: false,
                place: Place::UNKNOWN,
            });
        });
        NewTask {
            cell,
            wait: None,
            written_start: None,
        }
    }

    /// Whether accepting this task waits for the store: a `persist` task is written first, a key
    /// is reserved there, and a full backlog of unsaved records is flushed first.
    fn accept_waits(&self, task: &mut NewTask) -> bool {
        self.store.is_some()
            && (task
                .with_entry(|entry| entry.record.persist || entry.record.idempotency_key.is_some())
                || self.unsaved_len() > MAX_UNSAVED)
    }

    /// Accepts a task: stored first when it is `persist` (or its key reserved when it has one),
    /// then queued. `Ok` for a `persist` task means committed.
    async fn accept(self: Arc<Self>, mut task: NewTask) -> Result<TaskId> {
        if !self.state.lock().accepting {
            return Err(Error::ShuttingDown);
        }
        let mut stored = false;
        if let Some(store) = &self.store {
            if self.unsaved_len() > MAX_UNSAVED {
                self.flush().await?;
            }
            let row = task
                .with_entry(|entry| entry.record.persist)
                .then(|| self.write_ahead_row(&mut task));
            let (id, key) = task
                .with_entry(|entry| (entry.record.task_id, entry.record.idempotency_key.clone()));
            let inserted = if let Some(row) = row {
                stored = true;
                store
                    .insert(row, self.storage.key_ttl)
                    .await
                    .inspect_err(|_| self.observers.store_error())?
            } else if let Some(key) = &key {
                stored = true;
                store
                    .reserve_key(key, id, self.storage.key_ttl)
                    .await
                    .inspect_err(|_| self.observers.store_error())?
            } else {
                Inserted::New
            };
            if let Inserted::Duplicate(holder) = inserted {
                return Ok(holder);
            }
        }
        // Stamped before the store took its while: a task starting now reads the clock again.
        let (accepted, written_back) = self.enqueue(task, stored, None);
        if let Some(seq) = written_back
            && let Err(error) = self.flush_record(seq).await
        {
            tracing::warn!(target: "taskflow::store", %error, "could not write back as pending a persisted task that did not start at once; it stays queued");
        }
        accepted
    }

    /// The row a `persist` task is inserted with. A task that will start as soon as it is queued
    /// (a slot is free and nothing waits for one) is written as `running`, in its first attempt,
    /// started now, so that its attempt starts without a second write; [`Self::enqueue`] writes
    /// it back as `pending` if another task took the slot first. Any other task is written as
    /// `pending`.
    fn write_ahead_row(&self, task: &mut NewTask) -> TaskRecord {
        let (mut row, blocking) = task.with_entry(|entry| {
            let blocking = entry.live.as_ref().is_some_and(|live| live.blocking);
            (entry.record.clone(), blocking)
        });
        if task.wait.is_some() {
            return row;
        }
        let mut state = self.state.lock();
        let queue = state.dispatch.index_of(&row.queue);
        if state.accepting && state.dispatch.starts_at_once(queue, blocking) {
            let now = crate::clock::now();
            row.status = TaskStatus::Running;
            row.attempt = 1;
            row.start_time = Some(now);
            task.written_start = Some(now);
        }
        row
    }

    /// Queues a new task and starts what can start. `stamp`: the task's id and creation time,
    /// then also the start of what starts, unless it was stamped before it waited for the store
    /// (`stored`: its row or key is already in the store). Returns its id and, for a task
    /// inserted as `running` that did not start (another task took the slot first), the store
    /// number of the write that sets it back to `pending`.
    fn enqueue(
        self: &Arc<Self>,
        task: NewTask,
        stored: bool,
        stamp: Option<Stamp>,
    ) -> (Result<TaskId>, Option<u64>) {
        let written_running = task.written_start.is_some().then(|| Arc::clone(&task.cell));
        let (accepted, picked) = {
            let mut state = self.state.lock();
            let (accepted, started) = self.commit(&mut state, task, stored, stamp);
            // A task that started at once was the only one that could.
            let picked = match started {
                Some(started) => Picked::one(started),
                None => self.pump(&mut state),
            };
            (accepted, picked)
        };
        // Without a stamp, the clock is read only when something starts (most tasks of a burst
        // wait for a slot).
        let starts = if picked.is_empty() {
            executor::Starts::new()
        } else {
            self.begin(
                picked,
                stamp.map_or_else(crate::clock::now, |stamp| stamp.at),
            )
        };
        let written_back = match (&accepted, written_running) {
            (Ok(_), Some(cell)) => self.write_back_pending(&cell),
            _ => None,
        };
        executor::launch(self, starts);
        (accepted, written_back)
    }

    /// Queues the write that sets a task back to `pending` when its row says `running` but it
    /// is still waiting for a slot; returns the write's store number.
    fn write_back_pending(&self, cell: &Cell) -> Option<u64> {
        let mut entry = cell.lock();
        let (record, live) = entry.live_mut()?;
        if !std::mem::take(&mut live.written_running) {
            return None;
        }
        record.start_time = None;
        self.queue_save(record)
    }

    /// Queues a new task under the lock, or takes its slot at once when it is the next to start
    /// (then also returned, to begin). `stored`: its row or key is already in the store.
    fn commit(
        self: &Arc<Self>,
        state: &mut State,
        task: NewTask,
        stored: bool,
        stamp: Option<Stamp>,
    ) -> (Result<TaskId>, Option<(QueueIndex, Waiting<Cell>)>) {
        let NewTask {
            mut cell,
            wait,
            written_start,
        } = task;
        if !state.accepting {
            if stored {
                self.reject(
                    state,
                    cell,
                    "the manager shut down before the task was queued".to_owned(),
                );
            }
            return (Err(Error::ShuttingDown), None);
        }
        // Everything the entry needs is written while the cell is not shared: no lock.
        let queued = TaskCell::with_unshared(&mut cell, |entry| {
            if let Some(stamp) = stamp {
                stamp.apply(&mut entry.record);
            }
            self.prepare(state, entry, wait.is_none(), written_start)
        });
        let Queued {
            id,
            queue,
            priority,
            seq,
            blocking,
        } = match queued {
            Ok(queued) => queued,
            Err(Refused::Duplicate(holder)) => return (Ok(holder), None),
            Err(Refused::Full { queue, max_size }) => {
                self.reject(
                    state,
                    cell,
                    format!("queue `{queue}` is full ({max_size} pending tasks)"),
                );
                let full = Error::QueueFull {
                    queue: queue.into(),
                    max_size,
                };
                return (Err(full), None);
            }
        };
        let waiting = Waiting {
            priority,
            seq,
            id,
            blocking,
            payload: Arc::clone(&cell),
        };
        let started = match wait {
            // Nothing else can start then: the caller need not look for more.
            None if state.dispatch.starts_at_once(queue, blocking) => {
                Some(state.dispatch.start(queue, waiting))
            }
            None => {
                state.dispatch.push_accepted(queue, waiting);
                None
            }
            Some(wait) => {
                executor::schedule(self, queue, waiting, wait);
                None
            }
        };
        state.history.insert(id, cell);
        (Ok(id), started)
    }

    /// Takes a place in the task's queue (unless it starts later) and its key, and readies its
    /// entry to be queued.
    fn prepare(
        &self,
        state: &mut State,
        entry: &mut Entry,
        queued_now: bool,
        written_start: Option<DateTime<Utc>>,
    ) -> std::result::Result<Queued, Refused> {
        let Entry { record, live } = entry;
        let id = record.task_id;
        let State {
            history,
            dispatch,
            keys,
            seq,
            ..
        } = state;
        // Keys are held here only without a store (the store holds them otherwise); the key is
        // taken once the task has its place.
        let key = match &record.idempotency_key {
            Some(key) if self.store.is_none() => match keys.entry(key.clone()) {
                hash_map::Entry::Occupied(held) => return Err(Refused::Duplicate(*held.get())),
                hash_map::Entry::Vacant(free) => Some(free),
            },
            _ => None,
        };
        let queue = dispatch.index_of(&record.queue);
        if queued_now {
            dispatch
                .make_room(queue)
                .map_err(|max_size| Refused::Full {
                    queue: record.queue.clone(),
                    max_size,
                })?;
        }
        let mut blocking = false;
        if let Some(live) = live.as_mut() {
            live.queue = queue;
            // Its record joins the window's back when `commit` is done with it.
            live.place = history.next_place();
            blocking = live.blocking;
        }
        if let Some(key) = key {
            key.insert(id);
        }
        self.publish_state(record);
        // Its row says `running` since `written_start`: the start its first attempt records.
        if let (Some(start), Some(live)) = (written_start, live) {
            record.start_time = Some(start);
            live.written_running = true;
        }
        *seq += 1;
        Ok(Queued {
            id,
            queue,
            priority: record.priority,
            seq: *seq,
            blocking,
        })
    }

    /// Records a task that was not accepted as `rejected` (releasing its key in the store).
    fn reject(&self, state: &mut State, mut cell: Cell, reason: String) {
        let now = Utc::now();
        let id = TaskCell::with_unshared(&mut cell, |entry| {
            entry.live = None;
            let record = &mut entry.record;
            record.status = TaskStatus::Rejected;
            record.end_time = Some(now);
            record.error = Some(reason);
            self.publish_state(record);
            self.queue_save(record);
            record.task_id
        });
        let place = state.history.next_place();
        state.history.insert(id, Arc::clone(&cell));
        let settle = Settle {
            id,
            place,
            ended_at: now,
            key: None,
        };
        self.settle(state, &cell, settle);
    }
}

/// Enqueue options for one task; `.await` it for the task's id.
///
/// The task is enqueued when the builder is awaited: that is when it gets its id and its
/// `created_at`, so ids follow the order tasks were enqueued in, not the order their builders
/// were made in.
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
    /// The task, whose record each option sets directly; or why it cannot be enqueued.
    pub(super) task: Result<NewTask>,
}

impl AddBuilder {
    pub(super) fn new(manager: TaskManager, task: Result<NewTask>) -> Self {
        Self { manager, task }
    }

    /// Applies `set` to the task, unless it already failed to be made.
    fn set(mut self, set: impl FnOnce(&mut NewTask)) -> Self {
        if let Ok(task) = &mut self.task {
            set(task);
        }
        self
    }

    /// Applies `set` to the task's record.
    fn set_record(self, set: impl FnOnce(&mut TaskRecord)) -> Self {
        self.set(|task| task.with_entry(|entry| set(&mut entry.record)))
    }

    /// Starts the task no sooner than `at`, `wait` from now.
    fn start_at(self, wait: Duration, at: DateTime<Utc>) -> Self {
        self.set(|task| {
            task.with_entry(|entry| entry.record.run_at = Some(at));
            task.wait = Some(wait);
        })
    }

    /// A second `add` with the same key, while a run holding it is pending, running or
    /// succeeded, returns that run's id and starts nothing.
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn idempotency_key(self, key: impl Into<SharedStr>) -> Self {
        let key = key.into();
        self.set_record(|record| record.idempotency_key = Some(key))
    }

    /// Adds key/value tags (filterable in the API and dashboard). Keys and values are any
    /// strings (`&str`, `String`, ...); a key given twice keeps the last value given.
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn tags<K: AsRef<str>, V: AsRef<str>>(
        self,
        tags: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.set_record(|record| record.tags.extend(tags))
    }

    /// Overrides the task's priority within its queue.
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn priority(self, priority: i32) -> Self {
        self.set_record(|record| record.priority = priority)
    }

    /// Overrides the task's queue.
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn queue(self, queue: impl Into<SharedStr>) -> Self {
        let queue = queue.into();
        self.set_record(|record| record.queue = queue)
    }

    /// Starts the task no sooner than `delay` from now.
    ///
    /// # Examples
    ///
    /// See [`AddBuilder`].
    pub fn delay(self, delay: Duration) -> Self {
        let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.start_at(delay, at)
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
    pub fn run_at(self, at: DateTime<Utc>) -> Self {
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        self.start_at(wait, at)
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
/// accepted in its first poll; one that waits for the store is accepted by a boxed future.
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
                    let AddBuilder { manager, task } = builder
                        .take()
                        .expect("`AddFuture` polled after it resolved");
                    let mut task = match task {
                        Ok(task) => task,
                        Err(error) => return Poll::Ready(Err(error)),
                    };
                    let inner = manager.inner;
                    let stamp = Stamp::now();
                    if !inner.accept_waits(&mut task) {
                        return Poll::Ready(inner.enqueue(task, false, Some(stamp)).0);
                    }
                    task.with_entry(|entry| stamp.apply(&mut entry.record));
                    self.0 = AddState::Storing(Box::pin(inner.accept(task)));
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
