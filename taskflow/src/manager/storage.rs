//! The manager's side of persistence: which records are written when, flushing, read-through
//! queries, the hand-off of unfinished work at shutdown, recovery of orphaned work, and the
//! background loops (flusher, heartbeat and recovery, retention).
//!
//! Writes: a `persist` task is inserted before `add` returns (see `enqueue`; as `running` when it
//! starts at once), and each of its state changes is queued and flushed at once; any other task
//! is written once, when it finishes, in batches every `snapshot_interval`. Reads go to memory
//! for live and recent tasks and to the store for the rest, after a flush, so a query never
//! misses a finished task.

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::unsaved::Unsaved;
use super::{Cell, Entry, Factory, Inner, Live, Settle, State, TaskCell};
use crate::error::Result;
use crate::executor;
use crate::few::Few;
use crate::history::{ListPage, Metrics, PageFill, Place, Tally, TaskFilter};
use crate::shared_str::SharedStr;
use crate::store::Instance;
use crate::task::{LogEntry, LogLevel, TaskRecord, TaskStatus};

/// Persistence settings of a manager.
#[derive(Debug, Clone)]
pub(crate) struct StorageConfig {
    /// Save pending tasks that are not `persist` at clean shutdown, for the next start.
    pub(crate) requeue_pending: bool,
    /// How long the key of a successful run stays held.
    pub(crate) key_ttl: Option<Duration>,
    /// How often finished tasks that are not `persist` are written.
    pub(crate) snapshot_interval: Duration,
    /// How often this instance proves it is alive and looks for orphaned work.
    pub(crate) heartbeat_interval: Duration,
    /// An instance silent for this long is dead and its work is claimed.
    pub(crate) instance_expiry: Duration,
    /// Finished records older than this are deleted.
    pub(crate) retention: Option<Duration>,
    /// At most this many finished records are kept.
    pub(crate) max_rows: Option<usize>,
    /// The manager opened the store itself, so it closes it at shutdown.
    pub(crate) owns_store: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            requeue_pending: false,
            key_ttl: None,
            snapshot_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(2),
            instance_expiry: Duration::from_secs(10),
            retention: None,
            max_rows: None,
            owns_store: false,
        }
    }
}

/// Records not committed yet beyond which `add` first waits for a flush: what bounds the memory
/// held by history waiting for the store.
pub(crate) const MAX_UNSAVED: usize = 8_192;

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Claimed records adopted per lock acquisition.
const ADOPT_CHUNK: usize = 1_024;

/// Cells read per lock acquisition when listing the window.
const LIST_CHUNK: usize = 256;

/// A claimed record made ready to run here (or concluded), before it joins the window.
struct Adopted {
    cell: Cell,
    then: Then,
}

/// What becomes of an adopted record.
enum Then {
    /// It concluded (it cannot run here).
    Settle(Settle),
    /// It waits in its queue, from `run_at` on.
    Queue {
        queue: SharedStr,
        priority: i32,
        blocking: bool,
        run_at: Option<chrono::DateTime<Utc>>,
    },
}

impl Inner {
    /// Queues `record` for the store when it is a state to write: every state of a `persist`
    /// task, and the final state of any other. Call under the record's cell lock, so that a
    /// task's states are queued in the order they were reached.
    pub(crate) fn queue_save(&self, record: &TaskRecord) -> Option<u64> {
        self.store.as_ref()?;
        let persist = record.persist;
        if !(persist || record.status.is_finished()) {
            return None;
        }
        let seq = self.unsaved.lock().push(record.clone());
        if persist {
            self.flush_soon.notify_one();
        }
        Some(seq)
    }

    /// Writes every queued record to the store. On failure the records stay queued.
    pub(crate) async fn flush(&self) -> Result<()> {
        let queued = self.unsaved.lock().queued();
        self.flush_until(|unsaved| unsaved.committed_through() >= queued)
            .await
    }

    /// Returns once the record queued as number `seq` is committed; older records of other
    /// tasks may still be in flight.
    pub(crate) async fn flush_record(&self, seq: u64) -> Result<()> {
        self.flush_until(|unsaved| unsaved.is_committed(seq)).await
    }

    /// Returns once `written` holds of the unsaved records. Each caller writes whatever is queued
    /// when it comes (group commit: concurrent callers share one write, and the store's writer
    /// batches concurrent writes into one transaction); a caller whose records another caller is
    /// writing waits for that write's outcome.
    async fn flush_until(&self, written: impl Fn(&Unsaved) -> bool) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut flushed = self.flushed.subscribe();
        loop {
            flushed.borrow_and_update();
            let batch = {
                let mut unsaved = self.unsaved.lock();
                if written(&unsaved) {
                    return Ok(());
                }
                unsaved.take()
            };
            if batch.is_empty() {
                // Other callers are writing the rest: wait for one of them to finish (after a
                // failure, the records are queued again and this caller retries them).
                if flushed.changed().await.is_err() {
                    return Err(crate::error::Error::ShuttingDown);
                }
                continue;
            }
            let saved = store.save(batch.records()).await;
            {
                let mut unsaved = self.unsaved.lock();
                match saved {
                    Ok(()) => unsaved.committed(batch),
                    Err(_) => unsaved.failed(batch),
                }
            }
            self.flushed.send_modify(|finished| *finished += 1);
            if let Err(error) = saved {
                self.observers.store_error();
                return Err(error.into());
            }
        }
    }

    /// Records not committed yet (queued or being written).
    pub(crate) fn unsaved_len(&self) -> usize {
        self.unsaved.lock().outstanding()
    }

    /// One page of the records in memory, newest first; the cells are read a chunk at a time,
    /// outside the state lock.
    fn list_local(&self, filter: &TaskFilter) -> ListPage {
        let mut page = PageFill::new(filter);
        let mut before = page.after();
        loop {
            let chunk: Vec<Cell> = {
                let state = self.state.lock();
                state
                    .history
                    .newest_first(before)
                    .take(LIST_CHUNK)
                    .cloned()
                    .collect()
            };
            for cell in &chunk {
                let entry = cell.lock();
                before = Some(entry.record.task_id);
                if !page.offer(&entry.record) {
                    return page.page();
                }
            }
            if chunk.len() < LIST_CHUNK {
                return page.page();
            }
        }
    }

    /// The figures of the records in memory that pass `filter` and `count`.
    fn tally_local(&self, filter: &TaskFilter, count: impl Fn(&Entry) -> bool) -> Tally {
        let cells: Vec<Cell> = self.state.lock().history.values().cloned().collect();
        let mut tally = Tally::default();
        for cell in &cells {
            let entry = cell.lock();
            if count(&entry) && filter.matches(&entry.record) {
                tally.add(&entry.record);
            }
        }
        tally
    }

    pub(crate) async fn list(&self, filter: &TaskFilter) -> Result<ListPage> {
        let Some(store) = &self.store else {
            return Ok(self.list_local(filter));
        };
        self.flush().await?;
        let stored = store
            .list(filter)
            .await
            .inspect_err(|_| self.observers.store_error())?;
        let local = self.list_local(filter);
        let limit = filter.limit.clamp(1, TaskFilter::MAX_LIMIT);
        let more = stored.next_cursor.is_some() || local.next_cursor.is_some();
        let held: Vec<Option<Cell>> = {
            let state = self.state.lock();
            stored
                .tasks
                .iter()
                .map(|record| state.history.get(record.task_id).cloned())
                .collect()
        };
        // Memory holds the freshest state of what it holds; the store the rest.
        let mut tasks: Vec<TaskRecord> = stored
            .tasks
            .into_iter()
            .zip(held)
            .filter_map(|(record, cell)| match cell {
                Some(cell) => {
                    let fresh = cell.lock().record.clone();
                    filter.matches(&fresh).then_some(fresh)
                }
                None => Some(record),
            })
            .chain(local.tasks)
            .collect();
        tasks.sort_unstable_by_key(|r| std::cmp::Reverse(r.task_id));
        tasks.dedup_by_key(|r| r.task_id);
        let more = more || tasks.len() > limit;
        tasks.truncate(limit);
        let next_cursor = if more {
            tasks.last().map(|r| r.task_id.to_string())
        } else {
            None
        };
        Ok(ListPage { tasks, next_cursor })
    }

    pub(crate) async fn metrics(&self, filter: &TaskFilter) -> Result<Metrics> {
        let Some(store) = &self.store else {
            return Ok(self.tally_local(filter, |_| true).metrics());
        };
        self.flush().await?;
        let mut metrics = store
            .metrics(filter)
            .await
            .inspect_err(|_| self.observers.store_error())?;
        // Live tasks that are not `persist` reach the store only when they finish.
        let cells: Vec<Cell> = self.state.lock().history.values().cloned().collect();
        for cell in &cells {
            let entry = cell.lock();
            if entry.live.is_some() && !entry.record.persist && filter.matches(&entry.record) {
                metrics.count_live(&entry.record);
            }
        }
        Ok(metrics)
    }

    /// Whether an unfinished task can be kept in the store for the next start.
    fn can_keep(&self, record: &TaskRecord) -> bool {
        self.store.is_some()
            && record.args.is_some()
            && (record.persist || self.storage.requeue_pending)
    }

    /// At shutdown, a task that has not started: kept pending in the store for the next start
    /// when it is `persist` (or `requeue_pending` is on), else recorded as interrupted. Returns
    /// what to settle in the window when it concluded.
    pub(crate) fn stop_pending(&self, cell: &Cell) -> Option<Settle> {
        let concluded = {
            let mut entry = cell.lock();
            if entry.live.is_none() || entry.record.status != TaskStatus::Pending {
                return None;
            }
            if !self.can_keep(&entry.record) {
                self.conclude(&mut entry, TaskStatus::Interrupted, Utc::now(), |r| {
                    r.error = Some("not started before shutdown".to_owned());
                })
            } else {
                entry.take_live();
                let record = &mut entry.record;
                record.persist = true;
                self.push_log(
                    record,
                    LogEntry::new(LogLevel::Info, "kept pending for the next start"),
                );
                self.queue_save(record);
                return None;
            }
        };
        Some(concluded.wake())
    }

    /// At shutdown, an attempt cut off after the grace period: with `requeue_on_interrupt` and a
    /// store, kept pending for the next start; else recorded as interrupted. Returns what to
    /// settle in the window when it concluded.
    pub(crate) fn stop_running(&self, cell: &Cell, message: &str) -> Option<Settle> {
        let concluded = {
            let mut entry = cell.lock();
            let requeue = entry.live.as_ref()?.options.requeue_on_interrupt;
            if !(requeue && self.can_keep(&entry.record)) {
                self.conclude(&mut entry, TaskStatus::Interrupted, Utc::now(), |r| {
                    r.error = Some(message.to_owned());
                })
            } else {
                entry.take_live();
                let record = &mut entry.record;
                record.status = TaskStatus::Pending;
                record.persist = true;
                self.push_log(
                    record,
                    LogEntry::new(
                        LogLevel::Warn,
                        format!("{message}; requeued for the next start"),
                    ),
                );
                self.publish_state(record);
                self.queue_save(record);
                return None;
            }
        };
        Some(concluded.wake())
    }

    /// The end of shutdown: the last flush, then this instance leaves, so that what it kept is
    /// claimed at once by the next start or another instance.
    pub(crate) async fn finish_storage(&self) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        self.flush().await?;
        store.deregister_instance(&self.instance_id).await?;
        if self.storage.owns_store {
            store.close().await?;
        }
        Ok(())
    }

    /// Refreshes this instance's heartbeat, registering it again if the store forgot it.
    async fn beat(&self) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if let Err(error) = store.heartbeat(&self.instance_id).await {
            tracing::warn!(target: "taskflow::store", %error, "heartbeat failed; registering again");
            store
                .register_instance(&Instance::current(self.instance_id.clone()))
                .await?;
        }
        Ok(())
    }

    /// Takes over a claimed record: readies it to run here, or records why it cannot run. No
    /// lock: its cell is not shared yet.
    fn adopt(&self, mut record: TaskRecord) -> Adopted {
        let was_running = record.status == TaskStatus::Running;
        record.instance_id = self.instance_id.clone();
        record.persist = true;
        record.status = TaskStatus::Pending;
        let registration = self.registry.get(&record.func_name).copied();
        let prepared = match (registration, record.args.clone()) {
            (None, _) => Err(self.registry.unknown(&record.func_name).to_string()),
            (Some(_), None) => Err("it has no stored arguments to run it again".to_owned()),
            (Some(registration), Some(args)) => registration
                .decode(&args)
                .map(|run| (registration, args, run))
                .map_err(|e| format!("its stored arguments no longer decode: {e}")),
        };
        let mut cell = TaskCell::new(record, None);
        let then = TaskCell::with_unshared(&mut cell, |entry| {
            let conclude = |entry: &mut Entry, status, error: String| {
                let concluded = self.conclude(entry, status, Utc::now(), |r| r.error = Some(error));
                Then::Settle(concluded.wake())
            };
            let (registration, args, run) = match prepared {
                Err(error) => return conclude(entry, TaskStatus::Failed, error),
                Ok(ready) => ready,
            };
            if was_running && !registration.options().requeue_on_interrupt {
                let error = "interrupted: the instance running it stopped".to_owned();
                return conclude(entry, TaskStatus::Interrupted, error);
            }
            let blocking = run.is_blocking();
            let record = &mut entry.record;
            if was_running {
                let message = "interrupted: the instance running it stopped; running it again";
                self.push_log(record, LogEntry::new(LogLevel::Warn, message));
            }
            self.publish_state(record);
            // A claimed pending row already says all this (the claim moved its owner); only a
            // requeued running one has news (its log line) to write.
            if was_running {
                self.queue_save(record);
            }
            let then = Then::Queue {
                queue: record.queue.clone(),
                priority: record.priority,
                blocking,
                run_at: record.run_at,
            };
            entry.live = Some(Live {
                // Resolved when the task is queued.
                queue: crate::dispatch::QueueIndex::DEFAULT,
                options: registration.options(),
                next: Some(run),
                factory: Factory::Stored(registration.decoder(), Box::new(args)),
                blocking,
                attempt: None,
                parent_span: tracing::Span::none(),
                waiters: Few::new(),
                written_running: false,
                place: Place::UNKNOWN,
            });
            then
        });
        Adopted { cell, then }
    }

    /// Puts an adopted record in the window, and in its queue when it is to run.
    fn place(self: &Arc<Self>, state: &mut State, adopted: Adopted) {
        let Adopted { mut cell, then } = adopted;
        let (id, queued) = TaskCell::with_unshared(&mut cell, |entry| {
            let id = entry.record.task_id;
            let Then::Queue {
                queue,
                priority,
                blocking,
                run_at,
            } = &then
            else {
                return (id, None);
            };
            let index = state.dispatch.index_of(queue);
            if let Some(live) = &mut entry.live {
                live.queue = index;
                live.place = state.history.next_place();
            }
            (id, Some((index, *priority, *blocking, *run_at)))
        });
        state.history.insert(id, Arc::clone(&cell));
        let Some((queue, priority, blocking, run_at)) = queued else {
            if let Then::Settle(settle) = then {
                self.settle(state, &cell, settle);
            }
            return;
        };
        let waiting = state.waiting(priority, id, blocking, cell);
        match run_at.and_then(|at| (at - Utc::now()).to_std().ok()) {
            Some(wait) if !wait.is_zero() => executor::schedule(self, queue, waiting, wait),
            _ => state.dispatch.push_accepted(queue, waiting),
        }
    }
}

/// Claims the work of dead instances (and of instances the store no longer knows) and runs it
/// here. Returns how many tasks were claimed.
pub(crate) async fn recover(inner: &Arc<Inner>) -> Result<usize> {
    let Some(store) = &inner.store else {
        return Ok(0);
    };
    let dead: Vec<String> = store
        .instances()
        .await?
        .into_iter()
        .filter(|i| i.id != inner.instance_id && i.is_dead(inner.storage.instance_expiry))
        .map(|i| i.id)
        .collect();
    let claimed = store.claim(dead, &inner.instance_id).await?;
    let count = claimed.len();
    let mut claimed = claimed.into_iter().peekable();
    while claimed.peek().is_some() {
        let adopted: Vec<Adopted> = claimed
            .by_ref()
            .take(ADOPT_CHUNK)
            .map(|record| inner.adopt(record))
            .collect();
        let picked = {
            let mut state = inner.state.lock();
            for adopted in adopted {
                inner.place(&mut state, adopted);
            }
            inner.pump(&mut state)
        };
        let starts = inner.begin(picked, Utc::now());
        executor::launch(inner, starts);
    }
    if count > 0 {
        tracing::info!(target: "taskflow::store", count, "claimed the unfinished tasks of stopped instances");
        inner.flush_soon.notify_one();
    }
    Ok(count)
}

/// Starts the flusher and the heartbeat, recovery and retention loop. They hold the manager
/// weakly, so dropping every handle also ends them.
pub(crate) fn start_loops(inner: &Arc<Inner>) {
    if inner.store.is_none() {
        return;
    }
    let weak = Arc::downgrade(inner);
    let closed = inner.closed.clone();
    inner
        .loops
        .spawn_on(flusher(weak.clone(), closed.clone()), &inner.runtime);
    inner
        .loops
        .spawn_on(maintenance(weak, closed), &inner.runtime);
}

async fn flusher(weak: Weak<Inner>, closed: CancellationToken) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let interval = inner.storage.snapshot_interval;
        let woken = async {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = inner.flush_soon.notified() => {}
            }
        };
        tokio::select! {
            () = closed.cancelled() => return,
            () = woken => {}
        }
        if let Err(error) = inner.flush().await {
            tracing::warn!(target: "taskflow::store", %error, "writing task records failed; they stay queued");
        }
    }
}

async fn maintenance(weak: Weak<Inner>, closed: CancellationToken) {
    let mut last_retention = tokio::time::Instant::now();
    loop {
        let Some(interval) = weak.upgrade().map(|inner| inner.storage.heartbeat_interval) else {
            return;
        };
        tokio::select! {
            () = closed.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        if let Err(error) = inner.beat().await {
            inner.observers.store_error();
            tracing::warn!(target: "taskflow::store", %error, "heartbeat failed");
        }
        if let Err(error) = recover(&inner).await {
            inner.observers.store_error();
            tracing::warn!(target: "taskflow::store", %error, "looking for orphaned tasks failed");
        }
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = tokio::time::Instant::now();
            if let Err(error) = apply_retention(&inner).await {
                inner.observers.store_error();
                tracing::warn!(target: "taskflow::store", %error, "retention failed");
            }
        }
    }
}

/// Deletes finished records beyond the configured age and row count.
pub(crate) async fn apply_retention(inner: &Inner) -> Result<usize> {
    let Some(store) = &inner.store else {
        return Ok(0);
    };
    let mut deleted = 0;
    if let Some(age) = inner.storage.retention {
        let before = Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        deleted += store.purge(before).await?;
    }
    if let Some(max_rows) = inner.storage.max_rows {
        deleted += store.trim(max_rows).await?;
    }
    if deleted > 0 {
        tracing::debug!(target: "taskflow::store", deleted, "retention deleted old task records");
    }
    Ok(deleted)
}
