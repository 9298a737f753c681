//! Running attempts: starting what the queues allow, timeouts, panics, cancellation, retries
//! with backoff, and the blocking pool hand-off.
//!
//! Attempts are spawned only after the state lock is released ([`launch`]), so a runtime that
//! drops a future at spawn time can never re-enter the lock. An async attempt runs in a tokio
//! task that goes on to run the next async attempt its finish starts ([`run_attempts`]), so a
//! backlog drains without a spawn per task.

use std::any::Any;
use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::{Arc, Once};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::Either;
use tracing::Instrument;

use crate::context::TaskContext;
use crate::dispatch::{QueueIndex, Waiting};
use crate::few::Few;
use crate::manager::{Cell, Concluded, Entry, Inner, Settle, State};
use crate::shared_str::SharedStr;
use crate::task::{LogEntry, LogLevel, TaskFailure, TaskId, TaskResult, TaskRun, TaskStatus};

/// An attempt chosen to start, carried out of the lock to [`launch`].
pub(crate) struct Start {
    attempt: Attempt,
    run: TaskRun,
}

/// Everything about a starting attempt but its body (its limits and parent span are in its
/// context).
struct Attempt {
    cell: Cell,
    context: TaskContext,
    queue: QueueIndex,
    blocking: bool,
    /// For a persisted task, the store number of its `running` record, committed before the
    /// attempt's body starts; `None` when its insert already wrote it as `running`.
    running_seq: Option<u64>,
}

impl Attempt {
    /// Takes the attempt's place in its queue and in the manager's limits (counted since it was
    /// chosen; freed when the attempt ends or is dropped), and what running it needs.
    fn begin(self) -> Begun {
        Begun {
            slot: Slot {
                context: self.context.clone(),
                queue: self.queue,
                blocking: self.blocking,
                armed: true,
            },
            cell: self.cell,
            context: self.context,
            running_seq: self.running_seq,
        }
    }
}

/// An attempt that holds its slot: what running it needs.
struct Begun {
    slot: Slot,
    cell: Cell,
    context: TaskContext,
    running_seq: Option<u64>,
}

/// Waits until a persisted task's `running` record (store number `seq`) is committed. Boxed:
/// only persisted tasks wait here, and every other attempt's future stays small.
fn running_committed(context: &TaskContext, seq: u64) -> impl Future<Output = ()> + Send + '_ {
    Box::pin(context.manager().commit_running(context.id(), seq))
}

/// The attempts one call to [`Inner::begin`] started: usually none or one.
pub(crate) type Starts = Few<Start>;

/// The tasks one call to [`Inner::pump`] took from the queues, each counted in its queue's
/// limits, for [`Inner::begin`] to start once the state lock is released: usually none or one.
pub(crate) type Picked = Few<(QueueIndex, Waiting<Cell>)>;

/// What an attempt's outcome, recorded under its cell's lock, leaves to do under the state lock.
enum After {
    /// Nothing (the attempt was no longer the task's current one).
    Nothing,
    /// The task concluded.
    Settle(Settle),
    /// The task waits for its next attempt.
    Requeue {
        id: TaskId,
        queue: QueueIndex,
        priority: i32,
        blocking: bool,
        wait: Duration,
    },
}

/// A running attempt's place in its queue and in the manager's limits. Freed by
/// [`Inner::finish`], or on drop if the attempt is dropped without finishing.
struct Slot {
    context: TaskContext,
    queue: QueueIndex,
    blocking: bool,
    armed: bool,
}

impl Slot {
    fn release(&mut self, state: &mut State) {
        if std::mem::replace(&mut self.armed, false) {
            state.dispatch.release(self.queue, self.blocking);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let inner = Arc::clone(self.context.manager());
        self.release(&mut inner.state.lock());
        // The attempt was dropped without finishing (cancelled, aborted, or its runtime is
        // closing). Start what can start next from a task of its own: starting it from inside
        // this drop could recurse through every queued task while a closing runtime drops each
        // new attempt at once.
        let runtime = inner.runtime.clone();
        runtime.spawn(async move {
            let picked = inner.pump(&mut inner.state.lock());
            let starts = inner.begin(picked, Utc::now());
            launch(&inner, starts);
        });
    }
}

impl Inner {
    /// Takes every waiting task that may start now, counting it in its queue's limits; call
    /// [`Self::begin`] with them once the state lock is released.
    pub(crate) fn pump(&self, state: &mut State) -> Picked {
        let mut picked = Picked::new();
        if !state.accepting {
            return picked;
        }
        while let Some(next) = state.dispatch.next() {
            picked.push(next);
        }
        picked
    }

    /// Starts the attempts of the tasks `pump` picked (outside the state lock), marking each
    /// running; a first attempt records `now` (read by the caller, outside the lock) as its
    /// start. A picked task that can no longer start (cancelled or stopped since it was queued)
    /// gives its slot back, which may let others start.
    pub(crate) fn begin(self: &Arc<Self>, mut picked: Picked, now: DateTime<Utc>) -> Starts {
        let mut starts = Starts::new();
        loop {
            let mut freed = Few::new();
            for (queue, waiting) in picked {
                let blocking = waiting.blocking;
                match self.begin_attempt(queue, waiting, now) {
                    Some(start) => starts.push(start),
                    None => freed.push((queue, blocking)),
                }
            }
            if freed.is_empty() {
                return starts;
            }
            let mut state = self.state.lock();
            for (queue, blocking) in freed {
                state.dispatch.release(queue, blocking);
            }
            picked = self.pump(&mut state);
        }
    }

    /// Marks a picked task running under its cell's lock and makes its attempt; `None` when it
    /// is no longer waiting to run.
    fn begin_attempt(
        self: &Arc<Self>,
        queue: QueueIndex,
        waiting: Waiting<Cell>,
        now: DateTime<Utc>,
    ) -> Option<Start> {
        let cell = waiting.payload;
        let mut entry = cell.lock();
        let (record, live) = entry.live_mut()?;
        let run = match live.next.take() {
            Some(run) => run,
            // A typed task's first body is made when its attempt starts (see `First::Later`).
            None if record.attempt == 0 => live.factory.make_typed()?,
            None => return None,
        };
        if run.is_blocking() != live.blocking {
            // `Task::BLOCKING` said the other kind: the attempt runs where `run` says, and is
            // cancelled (or not) as that kind; its slot stays the declared kind's.
            live.blocking = run.is_blocking();
            record.executor = executor_name(live.blocking);
        }
        record.status = TaskStatus::Running;
        record.attempt += 1;
        record.start_time.get_or_insert(now);
        if record.attempt > 1 {
            let mut log = LogEntry::new(
                LogLevel::Info,
                format!(
                    "--- attempt {} (retry {} of {}) ---",
                    record.attempt, record.retries_used, live.options.retries
                ),
            );
            log.fields
                .insert("attempt".to_owned(), record.attempt.into());
            self.push_log(record, log);
        }
        self.publish_state(record);
        let context = TaskContext::new(
            waiting.id,
            record.func_name.clone(),
            record.attempt,
            &record.tags,
            Arc::clone(self),
            live.options.timeout,
            live.parent_span.clone(),
        );
        live.attempt = Some(context.clone());
        let running_seq = if std::mem::take(&mut live.written_running) {
            None
        } else {
            let persist = record.persist;
            self.queue_save(record).filter(|_| persist)
        };
        drop(entry);
        let attempt = Attempt {
            cell,
            context,
            queue,
            blocking: waiting.blocking,
            running_seq,
        };
        Some(Start { attempt, run })
    }

    /// Ends an attempt: records its outcome (`None` when it was stopped from outside, which
    /// already recorded the state), frees its slot, and returns what can start next.
    #[must_use = "the attempts that may start next must be launched"]
    fn finish(
        self: &Arc<Self>,
        cell: &Cell,
        attempt: u32,
        outcome: Option<TaskResult>,
        slot: Option<Slot>,
    ) -> Starts {
        // Read before locking: the end of this attempt and the start of the next one.
        let now = crate::clock::now();
        let after = outcome.map(|outcome| self.record_outcome(cell, attempt, outcome, now));
        let picked = {
            let mut state = self.state.lock();
            if let Some(mut slot) = slot {
                slot.release(&mut state);
            }
            if let Some(after) = after {
                self.after_outcome(&mut state, cell, after);
            }
            self.pump(&mut state)
        };
        self.begin(picked, now)
    }

    /// Records an attempt's outcome under its cell's lock: the task concludes, or waits for its
    /// next attempt.
    fn record_outcome(
        &self,
        cell: &Cell,
        attempt: u32,
        outcome: TaskResult,
        now: DateTime<Utc>,
    ) -> After {
        let mut entry = cell.lock();
        let current = entry.live.is_some()
            && entry.record.status == TaskStatus::Running
            && entry.record.attempt == attempt;
        if !current {
            return After::Nothing;
        }
        let failure = match outcome {
            Ok(value) => {
                let concluded = self.conclude(&mut entry, TaskStatus::Success, now, |r| {
                    r.result = Some(value);
                    r.error = None;
                    r.stacktrace = None;
                });
                return settled(entry, concluded);
            }
            Err(failure) => failure,
        };
        let Some((record, live)) = entry.live_mut() else {
            return After::Nothing;
        };
        let id = record.task_id;
        tracing::debug!(target: "taskflow::executor", task_id = %id, attempt, error = %failure, "attempt failed");
        let retries_used = record.retries_used;
        let wait = if failure.is_permanent() {
            None
        } else {
            live.options.retry_wait(retries_used + 1)
        };
        let Some(wait) = wait else {
            return self.fail(entry, &failure, now);
        };
        let next = match live.factory.make() {
            Ok(next) => next,
            Err(cannot) => return self.fail(entry, &cannot, now),
        };
        let wait = if live.options.jitter {
            wait.mul_f64(0.5 + fastrand::f64())
        } else {
            wait
        };
        let blocking = next.is_blocking();
        live.next = Some(next);
        live.blocking = blocking;
        let queue = live.queue;
        record.status = TaskStatus::Pending;
        record.retries_used = retries_used + 1;
        record.error = Some(failure.message().to_owned());
        record.stacktrace = failure.stacktrace().map(str::to_owned);
        let mut log = LogEntry::new(
            LogLevel::Warn,
            format!("attempt {attempt} failed: {failure}; retrying in {wait:?}"),
        );
        log.fields.insert("attempt".to_owned(), attempt.into());
        log.fields
            .insert("retry_in_seconds".to_owned(), wait.as_secs_f64().into());
        self.push_log(record, log);
        self.publish_state(record);
        self.queue_save(record);
        After::Requeue {
            id,
            queue,
            priority: record.priority,
            blocking,
            wait,
        }
    }

    /// Does under the state lock what an outcome left to do: settles a concluded task, or queues
    /// a task for its next attempt (now, or after its retry wait).
    fn after_outcome(self: &Arc<Self>, state: &mut State, cell: &Cell, after: After) {
        match after {
            After::Nothing => {}
            After::Settle(settle) => self.settle(state, cell, settle),
            After::Requeue {
                id,
                queue,
                priority,
                blocking,
                wait,
            } => {
                if !state.accepting {
                    if let Some(settle) = self.stop_pending(cell) {
                        self.settle(state, cell, settle);
                    }
                    return;
                }
                let waiting = state.waiting(priority, id, blocking, Arc::clone(cell));
                if wait.is_zero() {
                    state.dispatch.push_accepted(queue, waiting);
                } else {
                    schedule(self, queue, waiting, wait);
                }
            }
        }
    }

    /// Waits until the `running` state of persisted task `id` is committed, so that after a
    /// crash the store never shows as pending a task that had started.
    async fn commit_running(&self, id: TaskId, seq: u64) {
        if let Err(error) = self.flush_record(seq).await {
            tracing::warn!(target: "taskflow::store", task_id = %id, %error, "could not record the start of a persisted task; running it anyway");
        }
    }

    fn fail(
        &self,
        mut entry: parking_lot::MutexGuard<'_, Entry>,
        failure: &TaskFailure,
        now: DateTime<Utc>,
    ) -> After {
        let concluded = self.conclude(&mut entry, TaskStatus::Failed, now, |r| {
            r.error = Some(failure.message().to_owned());
            r.stacktrace = failure.stacktrace().map(str::to_owned);
        });
        settled(entry, concluded)
    }
}

/// Unlocks a concluded task's cell, then wakes its callers of `wait`; the rest is settled under
/// the state lock.
fn settled(entry: parking_lot::MutexGuard<'_, Entry>, concluded: Concluded) -> After {
    drop(entry);
    After::Settle(concluded.wake())
}

/// Puts a waiting task back in its queue after `wait` (a delayed start or a retry wait).
pub(crate) fn schedule(
    inner: &Arc<Inner>,
    queue: QueueIndex,
    waiting: Waiting<Cell>,
    wait: Duration,
) {
    let inner = Arc::clone(inner);
    let runtime = inner.runtime.clone();
    inner.tracker.clone().spawn_on(
        async move {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = inner.stopping.cancelled() => return,
            }
            let still_waiting = {
                let entry = waiting.payload.lock();
                entry.live.is_some() && entry.record.status == TaskStatus::Pending
            };
            if !still_waiting {
                return;
            }
            let picked = {
                let mut state = inner.state.lock();
                state.dispatch.push_accepted(queue, waiting);
                inner.pump(&mut state)
            };
            let starts = inner.begin(picked, Utc::now());
            launch(&inner, starts);
        },
        &runtime,
    );
}

/// The record's `executor` for an attempt of the kind `blocking` says.
pub(crate) fn executor_name(blocking: bool) -> SharedStr {
    SharedStr::from_static(if blocking { "blocking" } else { "async" })
}

/// Spawns the attempts chosen by [`Inner::pump`]. Call with the state lock released.
pub(crate) fn launch(inner: &Arc<Inner>, starts: Starts) {
    for Start { attempt, run } in starts {
        match run {
            TaskRun::Async(future) => {
                let runner = run_attempts(attempt, future);
                inner.tracker.spawn_on(runner, &inner.runtime);
            }
            TaskRun::Blocking(f) => launch_blocking(inner, attempt, f),
        }
    }
}

type AsyncBody = std::pin::Pin<Box<dyn Future<Output = TaskResult> + Send>>;
type BlockingBody = Box<dyn FnOnce() -> TaskResult + Send>;

/// The span of one attempt: a root span (not a child of whatever span launches it: a request,
/// or the attempt that freed the slot) that follows from the span that enqueued the task.
fn attempt_span(attempt: &Attempt) -> tracing::Span {
    let context = &attempt.context;
    let span = tracing::info_span!(
        target: "taskflow::executor",
        parent: None,
        "taskflow.task",
        task_id = %context.id(),
        name = %context.name(),
        attempt = context.attempt(),
    );
    span.follows_from(context.parent_span());
    crate::observe::continue_trace(&span, context.manager(), context.id());
    span
}

/// Runs async attempts one after another in one tokio task: the first, then each async attempt
/// that a finish lets start, until a finish starts none. Running the next attempt here saves
/// spawning a task for each; the tokio budget makes the loop yield to the rest of the runtime
/// as often as a task polling that many other futures would.
async fn run_attempts(mut attempt: Attempt, mut body: AsyncBody) {
    loop {
        let starts = traced_attempt(attempt, body).await;
        let mut next = None;
        for Start { attempt, run } in starts {
            match run {
                TaskRun::Async(future) if next.is_none() => next = Some((attempt, future)),
                run => {
                    let inner = Arc::clone(attempt.context.manager());
                    launch(&inner, Starts::one(Start { attempt, run }));
                }
            }
        }
        match next {
            Some(found) => (attempt, body) = found,
            None => return,
        }
    }
}

/// Runs one async attempt in its span, unless no subscriber wants the span: then it is neither
/// entered at every poll nor kept in the future.
fn traced_attempt(attempt: Attempt, body: AsyncBody) -> impl Future<Output = Starts> {
    let span = attempt_span(&attempt);
    if span.is_disabled() {
        Either::Left(run_async_attempt(attempt, body))
    } else {
        Either::Right(run_async_attempt(attempt, body).instrument(span))
    }
}

/// Runs one async attempt and finishes it; returns what its finish lets start.
async fn run_async_attempt(attempt: Attempt, body: AsyncBody) -> Starts {
    let Begun {
        slot,
        cell,
        context,
        running_seq,
    } = attempt.begin();
    let run = async {
        // Yields when this task used up its budget (see `run_attempts`).
        tokio::task::consume_budget().await;
        if let Some(seq) = running_seq {
            running_committed(&context, seq).await;
        }
        run_async(body, context.clone()).await
    };
    let outcome = {
        let mut run = pin!(run);
        poll_fn(|cx| context.poll_unless_stopped(run.as_mut(), cx)).await
    };
    context.mark_ended();
    let starts = context
        .manager()
        .finish(&cell, context.attempt(), outcome, Some(slot));
    context.recycle();
    starts
}

/// Runs a blocking attempt on the blocking pool, coordinated by a task of its own that applies
/// the timeout and records the outcome.
fn launch_blocking(inner: &Arc<Inner>, attempt: Attempt, body: BlockingBody) {
    let span = attempt_span(&attempt);
    let Begun {
        slot,
        cell,
        context,
        running_seq,
    } = attempt.begin();
    let number = context.attempt();
    let timeout = context.timeout();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let job_span = span.clone();
    let job_context = context.clone();
    let job = Box::new(move || {
        let _slot = slot;
        let outcome = job_span.in_scope(|| {
            job_context
                .clone()
                .enter_blocking(|| run_blocking(body, &job_context))
        });
        let _ = sender.send(outcome);
    });
    let coordinator = async move {
        let inner = context.manager();
        let received = async {
            if let Some(seq) = running_seq {
                running_committed(&context, seq).await;
            }
            if let Err(job) = inner.blocking.execute(job) {
                drop(job);
            }
            match timeout {
                Some(limit) => tokio::time::timeout(limit, receiver)
                    .await
                    .unwrap_or_else(|_| Ok(Err(timed_out(limit)))),
                None => receiver.await,
            }
        };
        let mut received = pin!(received);
        let outcome = poll_fn(|cx| context.poll_unless_stopped(received.as_mut(), cx))
            .await
            .map(|received| {
                received.unwrap_or_else(|_| {
                    Err(TaskFailure::new(
                        "the blocking pool is closed; the attempt did not run",
                    ))
                })
            });
        context.mark_ended();
        let starts = inner.finish(&cell, number, outcome, None);
        launch(inner, starts);
    };
    inner
        .tracker
        .spawn_on(coordinator.instrument(span), &inner.runtime);
}

async fn run_async(future: AsyncBody, context: TaskContext) -> TaskResult {
    let guarded = context
        .clone()
        .scope(AssertUnwindSafe(future).catch_unwind());
    let caught = match context.timeout() {
        // Boxed so that attempts without a timeout do not carry a timer in their future.
        Some(limit) => match Box::pin(tokio::time::timeout(limit, guarded)).await {
            Ok(caught) => caught,
            Err(_) => return Err(timed_out(limit)),
        },
        None => guarded.await,
    };
    caught.unwrap_or_else(|panic| Err(panic_failure(panic.as_ref(), &context)))
}

fn run_blocking(f: BlockingBody, context: &TaskContext) -> TaskResult {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(panic_failure(panic.as_ref(), context)))
}

fn timed_out(limit: Duration) -> TaskFailure {
    TaskFailure::new(format!("timed out after {limit:?}"))
}

fn panic_failure(panic: &(dyn Any + Send), context: &TaskContext) -> TaskFailure {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned());
    let failure = TaskFailure::new(format!("panicked: {message}"));
    match context.take_panic_trace() {
        Some(trace) => failure.with_stacktrace(trace),
        None => failure,
    }
}

/// Installs (once per process) a panic hook that keeps the stack trace of a panic inside a task
/// for its record, then calls the hook that was there before.
pub(crate) fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(context) = TaskContext::current() {
                context.set_panic_trace(std::backtrace::Backtrace::force_capture().to_string());
            }
            previous(info);
        }));
    });
}
