//! A task's cell: its record and, while it is pending or running here, what running it needs,
//! behind a lock of its own. A task's own changes (its start, its outcome, its logs, waiting for
//! it) lock only its cell, so the manager's state lock guards little more than the indexes and
//! queues, and two threads working on different tasks seldom wait for each other.
//!
//! Lock order: the state lock may be held while a cell is locked, never the other way round; a
//! cell may be held while the store's queue of unsaved records is locked.
//!
//! A cell whose record left the window is kept for a later task ([`super::spare`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::spare;
use crate::context::TaskContext;
use crate::dispatch::QueueIndex;
use crate::few::Few;
use crate::history::Place;
use crate::json_text::JsonText;
use crate::registry::Decoder;
use crate::shared_str::SharedStr;
use crate::task::{TaskFailure, TaskId, TaskOptions, TaskRecord, TaskRun};

/// The shared handle on a task's cell: held by the window, by the queue while the task waits,
/// and by its running attempt.
pub(crate) type Cell = Arc<TaskCell>;

/// A task's record and live part behind their lock.
pub(crate) struct TaskCell(parking_lot::Mutex<Entry>);

impl TaskCell {
    /// A cell holding `record` and `live`.
    pub(crate) fn new(record: TaskRecord, live: Option<Live>) -> Cell {
        Arc::new(Self(parking_lot::Mutex::new(Entry { record, live })))
    }

    /// A cell holding the pending record [`TaskRecord::pending_at`] makes, with no live part: a
    /// spare cell, its record renewed in place, when there is one.
    pub(crate) fn pending(
        task_id: TaskId,
        func_name: SharedStr,
        instance_id: SharedStr,
        created_at: DateTime<Utc>,
    ) -> Cell {
        if let Some(mut cell) = spare::take()
            && let Some(unshared) = Arc::get_mut(&mut cell)
        {
            let entry = unshared.entry_mut();
            spare::renew(
                &mut entry.record,
                task_id,
                func_name,
                instance_id,
                created_at,
            );
            entry.live = None;
            return cell;
        }
        Self::new(
            TaskRecord::pending_at(task_id, func_name, instance_id, created_at),
            None,
        )
    }

    /// The entry of a cell no one else holds.
    pub(super) fn entry_mut(&mut self) -> &mut Entry {
        self.0.get_mut()
    }

    /// Locks the cell; never hold the guard across an `.await`, nor take the state lock under it.
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, Entry> {
        self.0.lock()
    }

    /// Runs `f` on the entry of a cell no one else holds yet (a task being enqueued) without
    /// locking it; locks it should it be shared after all.
    pub(crate) fn with_unshared<R>(cell: &mut Cell, f: impl FnOnce(&mut Entry) -> R) -> R {
        match Arc::get_mut(cell) {
            Some(unshared) => f(unshared.entry_mut()),
            None => f(&mut cell.lock()),
        }
    }
}

/// A record with, while its task is pending or running on this instance, its live part.
pub(crate) struct Entry {
    pub(crate) record: TaskRecord,
    /// `Some` while the task is pending or running on this instance.
    pub(crate) live: Option<Live>,
}

impl Entry {
    /// The record and live part of a task that is pending or running here.
    pub(crate) fn live_mut(&mut self) -> Option<(&mut TaskRecord, &mut Live)> {
        let Self { record, live } = self;
        Some((record, live.as_mut()?))
    }

    /// Forgets the live part, stopping the running attempt if there is one.
    pub(crate) fn take_live(&mut self) -> Option<Live> {
        let live = self.live.take()?;
        if let Some(attempt) = &live.attempt {
            attempt.stop();
        }
        Some(live)
    }
}

/// What a pending or running task needs beyond its record.
pub(crate) struct Live {
    pub(crate) queue: QueueIndex,
    /// Its declaration's options, shared by every run of the task.
    pub(crate) options: &'static TaskOptions,
    /// The next attempt's body; `None` before a typed task's first attempt, whose body the
    /// factory makes when the attempt starts ([`Factory::make_typed`]).
    pub(crate) next: Option<TaskRun>,
    pub(crate) factory: Factory,
    pub(crate) blocking: bool,
    /// The running attempt's context, through which it is stopped; `None` while pending.
    pub(crate) attempt: Option<TaskContext>,
    pub(crate) parent_span: tracing::Span,
    /// Callers of [`TaskManager::wait`](super::TaskManager::wait), woken when the task concludes
    /// (or when this live part is dropped unfinished) to read its record from this cell.
    pub(crate) waiters: Few<tokio::sync::oneshot::Sender<()>>,
    /// Its row was inserted as `running` (see `enqueue`): its first attempt starts without
    /// another write.
    pub(crate) written_running: bool,
    /// Where the window expects its record, set when it joins the window.
    pub(crate) place: Place,
}

/// How to make the next attempt of a task.
pub(crate) enum Factory {
    /// From a copy of the typed arguments, for each attempt.
    Typed(Box<dyn Fn() -> TaskRun + Send + Sync>),
    /// From the typed arguments themselves, moved into the one attempt of a task declared
    /// without retries (`None` once it has been made).
    TypedOnce(Option<Box<dyn FnOnce() -> TaskRun + Send + Sync>>),
    /// From stored JSON through the registry; the arguments are boxed so that every live part,
    /// most of which hold a typed factory, is not as large as they are.
    Stored(Decoder, Box<JsonText>),
    /// An ad-hoc future: one attempt only.
    Once,
}

impl Factory {
    /// A typed task's body, made now; `None` from the other factories, whose tasks are given
    /// their first body when they are enqueued.
    pub(crate) fn make_typed(&mut self) -> Option<TaskRun> {
        match self {
            Self::Typed(make) => Some(make()),
            Self::TypedOnce(make) => make.take().map(|make| make()),
            Self::Stored(..) | Self::Once => None,
        }
    }

    pub(crate) fn make(&self) -> std::result::Result<TaskRun, TaskFailure> {
        match self {
            Self::Typed(make) => Ok(make()),
            Self::Stored(decode, args) => decode(args)
                .map_err(|e| TaskFailure::permanent(format!("arguments no longer decode: {e}"))),
            Self::TypedOnce(_) => Err(TaskFailure::permanent(
                "a task declared without retries cannot run again",
            )),
            Self::Once => Err(TaskFailure::permanent("an ad-hoc task cannot run again")),
        }
    }
}
