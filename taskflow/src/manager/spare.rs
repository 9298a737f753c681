//! Spare task cells. A cell whose record leaves the window is not freed: once no one else holds
//! it, what its record holds on the heap is dropped ([`shed`]) and the cell is kept for a task
//! made later, first on the thread that let it go, then, past [`MAX_SPARE`] there, in a depot
//! every thread draws from when its own run out. The new task's record is written over the shed
//! one in place ([`renew`]), not built apart and moved in.
//!
//! A burst of finished tasks evicts as many cells as the next burst of new tasks allocates, far
//! more than the few freed blocks of a size glibc keeps at hand per thread: freeing them and
//! allocating again went through its arena's bins, about 500 instructions and cold writes per
//! task, and, where one thread enqueues and another finishes, through the lock of the enqueuing
//! thread's arena (BENCHMARKS.md, session 10).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};

use super::cell::{Cell, Entry};
use crate::shared_str::SharedStr;
use crate::tags::Tags;
use crate::task::{TaskId, TaskRecord, TaskStatus};

/// Cells kept per thread, at most (about 160 KiB).
const MAX_SPARE: usize = 256;

/// Cells a thread hands to the depot at once, the oldest it keeps, when it has [`MAX_SPARE`].
const BATCH: usize = MAX_SPARE / 2;

/// Batches the depot keeps, at most (about 640 KiB for the process); beyond it a batch handed
/// over is freed.
const MAX_BATCHES: usize = 8;

thread_local! {
    /// This thread's spare cells, most recent last.
    static SPARE: RefCell<Vec<Cell>> = const { RefCell::new(Vec::new()) };
}

/// Batches of spare cells handed over by threads that had more than they made tasks for.
static DEPOT: parking_lot::Mutex<Vec<Vec<Cell>>> = parking_lot::Mutex::new(Vec::new());

/// How many batches the depot holds, changed under its lock: read without it, so that a thread
/// with no spares does not take the lock for every task it makes while the depot is empty.
static DEPOT_BATCHES: AtomicUsize = AtomicUsize::new(0);

/// A spare cell: this thread's most recent, else one of a batch taken from the depot.
pub(super) fn take() -> Option<Cell> {
    SPARE
        .try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.is_empty() && DEPOT_BATCHES.load(Ordering::Relaxed) > 0 {
                let batch = {
                    let mut depot = DEPOT.lock();
                    let batch = depot.pop();
                    DEPOT_BATCHES.store(depot.len(), Ordering::Relaxed);
                    batch
                };
                if let Some(mut batch) = batch {
                    spare.append(&mut batch);
                }
            }
            spare.pop()
        })
        .ok()
        .flatten()
}

/// Lets go of a handle on a cell whose record has left the window; the last handle's cell is
/// shed and kept.
pub(super) fn keep(mut cell: Cell) {
    let Some(unshared) = Arc::get_mut(&mut cell) else {
        return;
    };
    shed(unshared.entry_mut());
    // On a thread being torn down the cell is simply freed.
    let _ = SPARE.try_with(move |spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() >= MAX_SPARE {
            let batch: Vec<Cell> = spare.drain(..BATCH).collect();
            let mut depot = DEPOT.lock();
            if depot.len() < MAX_BATCHES {
                depot.push(batch);
                DEPOT_BATCHES.store(depot.len(), Ordering::Relaxed);
            } else {
                drop(depot);
                drop(batch);
            }
        }
        spare.push(cell);
    });
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

/// Makes `record`, in place, the pending record [`TaskRecord::pending_at`] makes. Every field is
/// named, so that a new one is not forgotten.
pub(super) fn renew(
    record: &mut TaskRecord,
    task_id: TaskId,
    func_name: SharedStr,
    instance_id: SharedStr,
    created_at: DateTime<Utc>,
) {
    let TaskRecord {
        task_id: id,
        func_name: name,
        status,
        created_at: created,
        start_time,
        end_time,
        duration,
        retries_used,
        error,
        stacktrace,
        logs,
        tags,
        source,
        priority,
        queue,
        executor,
        attempt,
        idempotency_key,
        instance_id: instance,
        result,
        args,
        retry_of,
        run_at,
        persist,
        trace_parent,
    } = record;
    *id = task_id;
    *name = func_name;
    *status = TaskStatus::Pending;
    *created = created_at;
    *start_time = None;
    *end_time = None;
    *duration = None;
    *retries_used = 0;
    *error = None;
    *stacktrace = None;
    *logs = Vec::new();
    *tags = Tags::new();
    *source = SharedStr::default();
    *priority = 0;
    *queue = SharedStr::default();
    *executor = SharedStr::default();
    *attempt = 0;
    *idempotency_key = None;
    *instance = instance_id;
    *result = None;
    *args = None;
    *retry_of = None;
    *run_at = None;
    *persist = false;
    *trace_parent = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::QueueIndex;
    use crate::few::Few;
    use crate::manager::cell::{Factory, Live, TaskCell};
    use crate::task::TaskOptions;

    fn record(name: &'static str) -> TaskRecord {
        TaskRecord::pending(TaskId::new(), name, "test")
    }

    fn spare_len() -> usize {
        SPARE.with(|spare| spare.borrow().len())
    }

    #[test]
    fn a_kept_cell_holds_the_next_task_made_on_its_thread() {
        let first = TaskCell::new(record("first"), None);
        let at = Arc::as_ptr(&first);
        keep(first);
        assert_eq!(spare_len(), 1);
        let id = TaskId::new();
        let now = Utc::now();
        let reused = TaskCell::pending(id, "next".into(), "test".into(), now);
        assert_eq!(Arc::as_ptr(&reused), at, "the spare cell is reused");
        assert_eq!(spare_len(), 0);
        let entry = reused.lock();
        assert_eq!(
            entry.record,
            TaskRecord::pending_at(id, "next", "test", now),
            "the reused cell holds the new task's record"
        );
        assert!(entry.live.is_none());
    }

    #[test]
    fn a_renewed_record_is_the_pending_record_of_a_new_task() {
        let mut renewed = record("old");
        renewed.status = TaskStatus::Failed;
        renewed.start_time = Some(Utc::now());
        renewed.end_time = Some(Utc::now());
        renewed.duration = Some(1.5);
        renewed.retries_used = 2;
        renewed.error = Some("boom".to_owned());
        renewed.stacktrace = Some("at x".to_owned());
        renewed.logs.push(crate::task::LogEntry::new(
            crate::task::LogLevel::Info,
            "hi",
        ));
        renewed.tags.insert("user", "7");
        renewed.source = "api".into();
        renewed.priority = 5;
        renewed.queue = "reports".into();
        renewed.executor = "async".into();
        renewed.attempt = 3;
        renewed.idempotency_key = Some("k".into());
        renewed.result = Some(serde_json::json!(1).into());
        renewed.args = Some(serde_json::json!({ "a": 1 }).into());
        renewed.retry_of = Some(TaskId::new());
        renewed.run_at = Some(Utc::now());
        renewed.persist = true;
        renewed.trace_parent = Some("00-ab-cd-01".to_owned());
        let id = TaskId::new();
        let now = Utc::now();
        renew(&mut renewed, id, "new".into(), "instance".into(), now);
        assert_eq!(
            renewed,
            TaskRecord::pending_at(id, "new", "instance", now),
            "a record renewed unshed is the new record too"
        );
        assert_eq!(renewed.logs.capacity(), 0, "its old logs are freed");
        let mut shed_first = Entry {
            record: record("old"),
            live: None,
        };
        shed_first.record.tags.insert("user", "7");
        shed(&mut shed_first);
        renew(
            &mut shed_first.record,
            id,
            "new".into(),
            "instance".into(),
            now,
        );
        assert_eq!(
            shed_first.record,
            TaskRecord::pending_at(id, "new", "instance", now)
        );
    }

    #[test]
    fn a_kept_cell_holds_nothing_its_task_logged_or_returned() {
        let mut finished = record("heavy");
        finished.logs.push(crate::task::LogEntry::new(
            crate::task::LogLevel::Info,
            "x".repeat(10_000),
        ));
        finished.tags.insert("user", "7");
        finished.error = Some("boom".to_owned());
        finished.result = Some(serde_json::json!({ "rows": [1, 2, 3] }).into());
        finished.args = Some(serde_json::json!({ "user_id": 7 }).into());
        finished.idempotency_key = Some("welcome-7".into());
        keep(TaskCell::new(finished, None));
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
        keep(cell);
        assert_eq!(spare_len(), 0);
        assert_eq!(elsewhere.lock().record.func_name.as_str(), "held");
        // The last handle is kept.
        keep(elsewhere);
        assert_eq!(spare_len(), 1);
    }

    #[test]
    fn a_thread_hands_its_oldest_spares_to_the_depot_and_another_takes_them() {
        let cells: Vec<Cell> = (0..MAX_SPARE + 1)
            .map(|_| TaskCell::new(record("many"), None))
            .collect();
        // A shed record keeps its id: it tells the cells apart.
        let handed = cells[BATCH - 1].lock().record.task_id;
        for cell in cells {
            keep(cell);
        }
        assert_eq!(spare_len(), MAX_SPARE + 1 - BATCH);
        // Other tests of this binary may take or add batches meanwhile: look for this one.
        let taken = std::thread::spawn(move || {
            (0..MAX_BATCHES * BATCH).find_map(|_| {
                let cell = take()?;
                (cell.lock().record.task_id == handed).then_some(())
            })
        })
        .join()
        .expect("the other thread finishes");
        assert_eq!(taken, Some(()), "another thread takes the handed batch");
    }

    #[test]
    fn a_live_part_left_in_a_kept_cell_is_dropped_at_once() {
        let (waiter, mut waiting) = tokio::sync::oneshot::channel();
        let live = Live {
            queue: QueueIndex::DEFAULT,
            options: &const { TaskOptions::new() },
            next: None,
            factory: Factory::Once,
            blocking: false,
            attempt: None,
            parent_span: tracing::Span::none(),
            waiters: Few::one(waiter),
            written_running: false,
            place: crate::history::Place::UNKNOWN,
        };
        keep(TaskCell::new(record("live"), Some(live)));
        assert_eq!(spare_len(), 1);
        assert!(
            matches!(
                waiting.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed)
            ),
            "the waiter is let go when the cell is kept, not when it is reused"
        );
    }
}
