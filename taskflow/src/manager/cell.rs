//! A task's cell: its record and, while it is pending or running here, what running it needs,
//! behind a lock of its own. A task's own changes (its start, its outcome, its logs, waiting for
//! it) lock only its cell, so the manager's state lock guards little more than the indexes and
//! queues, and two threads working on different tasks seldom wait for each other.
//!
//! Lock order: the state lock may be held while a cell is locked, never the other way round; a
//! cell may be held while the store's queue of unsaved records is locked.
//!
//! A cell whose record left the window is kept, on the thread that let it go, for the next task
//! made there ([`TaskCell::recycle`]). A burst of finished tasks evicts as many cells as the next
//! burst of new tasks allocates, far more than the few freed blocks of a size glibc keeps at hand
//! per thread: freeing them and allocating again went through its arena's bins, about 500
//! instructions and cold writes per task (BENCHMARKS.md, session 10).

use std::cell::RefCell;
use std::sync::Arc;

use serde_json::Value;

use crate::context::TaskContext;
use crate::dispatch::QueueIndex;
use crate::few::Few;
use crate::registry::Decoder;
use crate::task::{Tags, TaskFailure, TaskOptions, TaskRecord, TaskRun};

/// The shared handle on a task's cell: held by the window, by the queue while the task waits,
/// and by its running attempt.
pub(crate) type Cell = Arc<TaskCell>;

/// A task's record and live part behind their lock.
pub(crate) struct TaskCell(parking_lot::Mutex<Entry>);

/// Cells kept per thread for reuse, at most (about 190 KiB); beyond it a recycled cell is
/// freed. 1,024 ran the in-memory benchmark 1–2% faster but held 4 MiB more in the memory run.
const MAX_SPARE: usize = 256;

thread_local! {
    /// Cells no one holds any more, most recent last; each keeps the fixed-size part of the
    /// record it last held (see [`shed`]), dropped when the cell is reused.
    static SPARE: RefCell<Vec<Cell>> = const { RefCell::new(Vec::new()) };
}

impl TaskCell {
    /// A cell holding `record` and `live`: one recycled on this thread when there is one.
    pub(crate) fn new(record: TaskRecord, live: Option<Live>) -> Cell {
        let entry = Entry { record, live };
        let spare = SPARE
            .try_with(|spare| spare.borrow_mut().pop())
            .ok()
            .flatten();
        if let Some(mut cell) = spare
            && let Some(unshared) = Arc::get_mut(&mut cell)
        {
            *unshared.0.get_mut() = entry;
            return cell;
        }
        Arc::new(Self(parking_lot::Mutex::new(entry)))
    }

    /// Lets go of a handle on a cell whose record has left the window. The last handle's cell is
    /// kept on this thread for a task made here later, while this thread keeps fewer than
    /// [`MAX_SPARE`]; what its record holds on the heap is dropped now, so a spare cell holds
    /// a few hundred bytes, whatever its task logged or returned.
    pub(crate) fn recycle(mut cell: Cell) {
        // On a thread being torn down the cell is simply freed.
        let _ = SPARE.try_with(move |spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < MAX_SPARE
                && let Some(unshared) = Arc::get_mut(&mut cell)
            {
                shed(unshared.0.get_mut());
                spare.push(cell);
            }
        });
    }

    /// Locks the cell; never hold the guard across an `.await`, nor take the state lock under it.
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, Entry> {
        self.0.lock()
    }

    /// Runs `f` on the entry of a cell no one else holds yet (a task being enqueued) without
    /// locking it; locks it should it be shared after all.
    pub(crate) fn with_unshared<R>(cell: &mut Cell, f: impl FnOnce(&mut Entry) -> R) -> R {
        match Arc::get_mut(cell) {
            Some(unshared) => f(unshared.0.get_mut()),
            None => f(&mut cell.lock()),
        }
    }
}

/// Drops what an entry holds beyond its fixed size: its live part and its record's logs, tags,
/// messages, arguments and result. Every field is named, so that a new one is not forgotten.
fn shed(entry: &mut Entry) {
    let TaskRecord {
        task_id: _,
        func_name: _,
        status: _,
        created_at: _,
        start_time: _,
        end_time: _,
        duration: _,
        retries_used: _,
        error,
        stacktrace,
        logs,
        tags,
        source: _,
        priority: _,
        queue: _,
        executor: _,
        attempt: _,
        idempotency_key,
        instance_id: _,
        result,
        args,
        retry_of: _,
        run_at: _,
        persist: _,
        trace_parent,
    } = &mut entry.record;
    // A record leaves the window finished, without a live part; were one left, its waiters
    // hear of it now, not when the cell is reused.
    entry.live = None;
    *error = None;
    *stacktrace = None;
    *idempotency_key = None;
    *trace_parent = None;
    *result = None;
    *args = None;
    *logs = Vec::new();
    *tags = Tags::new();
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
    pub(crate) options: TaskOptions,
    pub(crate) next: Option<TaskRun>,
    pub(crate) factory: Factory,
    pub(crate) blocking: bool,
    /// The running attempt's context, through which it is stopped; `None` while pending.
    pub(crate) attempt: Option<TaskContext>,
    pub(crate) parent_span: tracing::Span,
    /// Callers of [`TaskManager::wait`](super::TaskManager::wait), sent the final record when
    /// the task concludes.
    pub(crate) waiters: Few<tokio::sync::oneshot::Sender<TaskRecord>>,
    /// Its row was inserted as `running` (see `enqueue`): its first attempt starts without
    /// another write.
    pub(crate) written_running: bool,
}

/// How to make the next attempt of a task.
pub(crate) enum Factory {
    /// From the typed arguments.
    Typed(Box<dyn Fn() -> TaskRun + Send + Sync>),
    /// From stored JSON through the registry.
    Stored(Decoder, Value),
    /// An ad-hoc future: one attempt only.
    Once,
}

impl Factory {
    pub(crate) fn make(&self) -> std::result::Result<TaskRun, TaskFailure> {
        match self {
            Self::Typed(make) => Ok(make()),
            Self::Stored(decode, args) => decode(args.clone())
                .map_err(|e| TaskFailure::permanent(format!("arguments no longer decode: {e}"))),
            Self::Once => Err(TaskFailure::permanent("an ad-hoc task cannot run again")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskId;

    fn record(name: &'static str) -> TaskRecord {
        TaskRecord::pending(TaskId::new(), name, "test")
    }

    fn spare_len() -> usize {
        SPARE.with(|spare| spare.borrow().len())
    }

    #[test]
    fn a_recycled_cell_holds_the_next_task_made_on_its_thread() {
        let first = TaskCell::new(record("first"), None);
        let at = Arc::as_ptr(&first);
        TaskCell::recycle(first);
        assert_eq!(spare_len(), 1);
        let next = record("next");
        let id = next.task_id;
        let reused = TaskCell::new(next, None);
        assert_eq!(Arc::as_ptr(&reused), at, "the spare cell is reused");
        assert_eq!(spare_len(), 0);
        let entry = reused.lock();
        assert_eq!(entry.record.task_id, id);
        assert_eq!(entry.record.func_name.as_str(), "next");
    }

    #[test]
    fn a_kept_cell_holds_nothing_its_task_logged_or_returned() {
        let mut finished = record("heavy");
        finished.logs.push(crate::task::LogEntry::new(
            crate::task::LogLevel::Info,
            "x".repeat(10_000),
        ));
        finished.tags.insert("user".to_owned(), "7".to_owned());
        finished.error = Some("boom".to_owned());
        finished.result = Some(serde_json::json!({ "rows": [1, 2, 3] }));
        finished.args = Some(serde_json::json!({ "user_id": 7 }));
        finished.idempotency_key = Some("welcome-7".to_owned());
        TaskCell::recycle(TaskCell::new(finished, None));
        SPARE.with(|spare| {
            let spare = spare.borrow();
            let kept = spare.last().expect("the cell is kept");
            let record = &kept.lock().record;
            assert!(record.logs.is_empty() && record.logs.capacity() == 0);
            assert!(record.tags.is_empty());
            assert_eq!(record.error, None);
            assert_eq!(record.result, None);
            assert_eq!(record.args, None);
            assert_eq!(record.idempotency_key, None);
        });
    }

    #[test]
    fn a_cell_still_held_elsewhere_is_not_kept() {
        let cell = TaskCell::new(record("held"), None);
        let elsewhere = Arc::clone(&cell);
        TaskCell::recycle(cell);
        assert_eq!(spare_len(), 0);
        assert_eq!(elsewhere.lock().record.func_name.as_str(), "held");
        // The last handle is kept.
        TaskCell::recycle(elsewhere);
        assert_eq!(spare_len(), 1);
    }

    #[test]
    fn a_thread_keeps_at_most_max_spare_cells() {
        let cells: Vec<Cell> = (0..MAX_SPARE + 3)
            .map(|_| TaskCell::new(record("many"), None))
            .collect();
        for cell in cells {
            TaskCell::recycle(cell);
        }
        assert_eq!(spare_len(), MAX_SPARE);
    }

    #[test]
    fn a_live_part_left_in_a_recycled_cell_is_dropped_at_once() {
        let (waiter, mut waiting) = tokio::sync::oneshot::channel();
        let live = Live {
            queue: QueueIndex::DEFAULT,
            options: TaskOptions::new(),
            next: None,
            factory: Factory::Once,
            blocking: false,
            attempt: None,
            parent_span: tracing::Span::none(),
            waiters: Few::one(waiter),
            written_running: false,
        };
        TaskCell::recycle(TaskCell::new(record("live"), Some(live)));
        assert_eq!(spare_len(), 1);
        assert!(
            matches!(
                waiting.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed)
            ),
            "the waiter is let go when the cell is recycled, not when it is reused"
        );
    }
}
