//! The in-memory window of task records: every pending and running task plus the most recent
//! finished ones (at most `max_history`, oldest finished evicted first), with filtered, paginated
//! listing and metrics. A pending or running task's record shares its allocation with what the
//! manager needs to run it ([`Entry`]), so one lookup finds both.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::IdMap;
use crate::task::{TaskId, TaskRecord, TaskStatus};

/// Which records to list: filters, page size and cursor.
///
/// # Examples
///
/// ```
/// use taskflow::{TaskFilter, TaskStatus};
/// let filter = TaskFilter::new().status(TaskStatus::Failed).name("send_welcome").limit(20);
/// assert_eq!(filter.limit, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskFilter {
    /// Only this state.
    pub status: Option<TaskStatus>,
    /// Only this task name.
    pub name: Option<String>,
    /// Only tasks with this tag: `key` (any value) or `key:value`.
    pub tag: Option<String>,
    /// Text search (case-insensitive) in the id, name, error, tags and idempotency key.
    pub q: Option<String>,
    /// Only tasks created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only tasks created before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many records (1 to 1000).
    pub limit: usize,
    /// Continue after this cursor (from [`ListPage::next_cursor`]).
    pub cursor: Option<String>,
}

impl TaskFilter {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest page size.
    pub const MAX_LIMIT: usize = 1000;

    /// No filter, 50 records.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskFilter::new().limit, 50);
    /// ```
    pub fn new() -> Self {
        Self {
            status: None,
            name: None,
            tag: None,
            q: None,
            since: None,
            until: None,
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
        }
    }

    /// Only tasks in `status`.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = taskflow::TaskFilter::new().status(taskflow::TaskStatus::Running);
    /// assert_eq!(f.status, Some(taskflow::TaskStatus::Running));
    /// ```
    pub fn status(mut self, status: TaskStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only tasks named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskFilter::new().name("x").name.as_deref(), Some("x"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only tasks tagged `key` or `key:value`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskFilter::new().tag("user:7").tag.as_deref(), Some("user:7"));
    /// ```
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only tasks whose id, name, error, tag keys or values, or idempotency key contain `text`
    /// (ignoring case).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskFilter::new().q("smtp").q.as_deref(), Some("smtp"));
    /// ```
    pub fn q(mut self, text: impl Into<String>) -> Self {
        self.q = Some(text.into());
        self
    }

    /// Only tasks created at or after `since`.
    ///
    /// # Examples
    ///
    /// ```
    /// let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    /// assert_eq!(taskflow::TaskFilter::new().since(hour_ago).since, Some(hour_ago));
    /// ```
    pub fn since(mut self, since: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self
    }

    /// Only tasks created before `until`.
    ///
    /// # Examples
    ///
    /// ```
    /// let now = chrono::Utc::now();
    /// assert_eq!(taskflow::TaskFilter::new().until(now).until, Some(now));
    /// ```
    pub fn until(mut self, until: DateTime<Utc>) -> Self {
        self.until = Some(until);
        self
    }

    /// At most `limit` records, clamped to 1..=1000.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskFilter::new().limit(5000).limit, 1000);
    /// ```
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, Self::MAX_LIMIT);
        self
    }

    /// Continue after `cursor`.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = taskflow::TaskFilter::new().cursor("abc");
    /// assert_eq!(f.cursor.as_deref(), Some("abc"));
    /// ```
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Whether `record` passes every filter (the cursor and limit aside).
    pub fn matches(&self, record: &TaskRecord) -> bool {
        self.status.is_none_or(|s| s == record.status)
            && self.name.as_deref().is_none_or(|n| n == record.func_name)
            && self.since.is_none_or(|t| record.created_at >= t)
            && self.until.is_none_or(|t| record.created_at < t)
            && self
                .tag
                .as_deref()
                .is_none_or(|tag| match tag.split_once([':', '=']) {
                    Some((key, value)) => record.tags.get(key).is_some_and(|v| v == value),
                    None => record.tags.contains_key(tag),
                })
            && self
                .q
                .as_deref()
                .is_none_or(|q| text_matches(record, &q.to_lowercase()))
    }
}

fn text_matches(record: &TaskRecord, needle: &str) -> bool {
    let has = |text: &str| text.to_lowercase().contains(needle);
    has(&record.task_id.to_string())
        || has(&record.func_name)
        || record.error.as_deref().is_some_and(has)
        || record.idempotency_key.as_deref().is_some_and(has)
        || record.tags.iter().any(|(k, v)| has(k) || has(v))
}

impl Default for TaskFilter {
    fn default() -> Self {
        Self::new()
    }
}

/// One page of records, newest first.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// let manager = taskflow::TaskManager::builder().build().await?;
/// let page = manager.list(&taskflow::TaskFilter::new()).await?;
/// assert!(page.tasks.is_empty());
/// assert_eq!(page.next_cursor, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListPage {
    /// The records.
    pub tasks: Vec<TaskRecord>,
    /// Pass to [`TaskFilter::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Counts, success rate and durations over the records in view.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// let manager = taskflow::TaskManager::builder().build().await?;
/// let metrics = manager.metrics().await?;
/// assert_eq!(metrics.total, 0);
/// assert_eq!(metrics.by_status["pending"], 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metrics {
    /// Records counted.
    pub total: usize,
    /// Records by state (every state present, zero included).
    pub by_status: BTreeMap<String, usize>,
    /// `success / (success + failed)`, `None` before any finished.
    pub success_rate: Option<f64>,
    /// Mean duration of finished runs, seconds.
    pub avg_duration: Option<f64>,
    /// 95th percentile duration of finished runs, seconds.
    pub p95_duration: Option<f64>,
    /// The same per task name.
    pub by_name: BTreeMap<String, NameStats>,
}

impl Metrics {
    /// Counts a live task that the figures do not hold yet.
    pub(crate) fn count_live(&mut self, record: &TaskRecord) {
        self.total += 1;
        *self
            .by_status
            .entry(record.status.as_str().to_owned())
            .or_default() += 1;
        self.by_name
            .entry(record.func_name.to_string())
            .or_default()
            .total += 1;
    }
}

/// Per-task-name figures inside [`Metrics`].
///
/// # Examples
///
/// ```
/// let stats = taskflow::NameStats::default();
/// assert_eq!(stats.total, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NameStats {
    /// Records of this name.
    pub total: usize,
    /// Of which succeeded.
    pub success: usize,
    /// Of which failed.
    pub failed: usize,
    /// `success / (success + failed)`.
    pub success_rate: Option<f64>,
    /// Mean duration, seconds.
    pub avg_duration: Option<f64>,
    /// 95th percentile duration, seconds.
    pub p95_duration: Option<f64>,
}

/// A record in the window with `L`, what its task needs beyond the record while it is pending
/// or running (the manager's live entry): one allocation and one lookup for both.
pub(crate) struct Entry<L> {
    pub(crate) record: TaskRecord,
    /// `Some` while the task is pending or running on this instance.
    pub(crate) live: Option<L>,
}

impl<L> Entry<L> {
    pub(crate) fn new(record: TaskRecord, live: Option<L>) -> Box<Self> {
        Box::new(Self { record, live })
    }
}

/// The bounded record window.
///
/// Records are found by id through a hash map; `order` keeps their ids ascending for listing
/// newest first. Removing the oldest record (the usual case: the oldest finished record goes
/// first) pops its id; removing another leaves its id in `order` as a tombstone, skipped when
/// read and dropped once it reaches the front (or when tombstones outnumber live ids), so a
/// removal never shifts the index.
pub(crate) struct History<L> {
    /// Boxed so that an entry is written once and then moved as a pointer.
    records: IdMap<Box<Entry<L>>>,
    order: VecDeque<TaskId>,
    tombstones: usize,
    finished: VecDeque<TaskId>,
    max_history: usize,
}

impl<L> History<L> {
    /// Below this many tombstones `order` is never compacted.
    const MIN_COMPACTION: usize = 1_024;

    pub(crate) fn new(max_history: usize) -> Self {
        Self {
            records: IdMap::default(),
            order: VecDeque::new(),
            tombstones: 0,
            finished: VecDeque::new(),
            max_history,
        }
    }

    /// Adds or replaces an entry; a finished one must then be passed to
    /// [`Self::mark_finished`].
    pub(crate) fn insert(&mut self, entry: Box<Entry<L>>) {
        let id = entry.record.task_id;
        if self.records.insert(id, entry).is_some() {
            // A replaced record (a recovered run this window already held: rare) leaves the
            // finished queue, so that every id there names a finished record and eviction never
            // reads the record it evicts. A finished replacement is marked again by the caller.
            self.finished.retain(|other| *other != id);
            return;
        }
        // Ids arrive almost in order: a new one goes last; an older one (recovered, or made
        // just before another thread's) goes to its place, or takes back its own tombstone.
        if self.order.back().is_none_or(|last| *last < id) {
            self.order.push_back(id);
            return;
        }
        let at = self.order.partition_point(|other| *other < id);
        if self.order.get(at) == Some(&id) {
            self.tombstones -= 1;
        } else {
            self.order.insert(at, id);
        }
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<&TaskRecord> {
        self.records.get(&id).map(|e| &e.record)
    }

    pub(crate) fn get_mut(&mut self, id: TaskId) -> Option<&mut TaskRecord> {
        self.records.get_mut(&id).map(|e| &mut e.record)
    }

    pub(crate) fn entry(&self, id: TaskId) -> Option<&Entry<L>> {
        self.records.get(&id).map(|e| &**e)
    }

    pub(crate) fn entry_mut(&mut self, id: TaskId) -> Option<&mut Entry<L>> {
        self.records.get_mut(&id).map(|e| &mut **e)
    }

    /// The records of the tasks that are pending or running here (those with a live entry).
    pub(crate) fn live_records(&self) -> impl Iterator<Item = &TaskRecord> {
        self.records
            .values()
            .filter(|e| e.live.is_some())
            .map(|e| &e.record)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    fn remove(&mut self, id: TaskId) -> Option<Box<Entry<L>>> {
        let record = self.records.remove(&id)?;
        if self.order.front() == Some(&id) {
            self.order.pop_front();
            // Tombstones that reached the front go with it, a few at a time, so that the
            // compaction below (a pass over the whole index under the manager's lock) is rare.
            while self.tombstones > 0
                && let Some(front) = self.order.front()
                && !self.records.contains_key(front)
            {
                self.order.pop_front();
                self.tombstones -= 1;
            }
        } else {
            self.tombstones += 1;
        }
        if self.tombstones >= Self::MIN_COMPACTION && self.tombstones > self.records.len() {
            let records = &self.records;
            self.order.retain(|id| records.contains_key(id));
            self.tombstones = 0;
        }
        Some(record)
    }

    /// Notes that `id` reached a final state, and hands the oldest finished records beyond the
    /// bound to `evicted` (so the caller can free them after releasing its lock).
    pub(crate) fn mark_finished(&mut self, id: TaskId, mut evicted: impl FnMut(Box<Entry<L>>)) {
        self.finished.push_back(id);
        while self.finished.len() > self.max_history {
            let Some(oldest) = self.finished.pop_front() else {
                break;
            };
            // One lookup of a record that is cold by now, and no read of the record itself:
            // only finished records are queued here (see `insert`).
            if let Some(entry) = self.remove(oldest) {
                evicted(entry);
            }
        }
    }

    /// Removes finished records that ended before `cutoff`; returns them.
    #[allow(
        clippy::vec_box,
        reason = "entries live boxed in the window; moving the box avoids copying the record"
    )]
    pub(crate) fn purge(&mut self, cutoff: DateTime<Utc>) -> Vec<Box<Entry<L>>> {
        let old: std::collections::HashSet<TaskId> = self
            .records
            .values()
            .map(|e| &e.record)
            .filter(|r| r.status.is_finished() && r.end_time.unwrap_or(r.created_at) < cutoff)
            .map(|r| r.task_id)
            .collect();
        self.finished.retain(|id| !old.contains(id));
        old.iter().filter_map(|id| self.remove(*id)).collect()
    }

    /// Records newest first.
    fn newest_first(&self) -> impl Iterator<Item = &TaskRecord> {
        self.order.iter().rev().filter_map(|id| self.get(*id))
    }

    pub(crate) fn list(&self, filter: &TaskFilter) -> ListPage {
        page_of(self.newest_first(), filter)
    }

    pub(crate) fn metrics(&self, filter: &TaskFilter) -> Metrics {
        metrics_of(
            self.records
                .values()
                .map(|e| &e.record)
                .filter(|r| filter.matches(r)),
        )
    }
}

/// One page of `newest_first` records after the filter's cursor.
pub(crate) fn page_of<'a>(
    newest_first: impl Iterator<Item = &'a TaskRecord>,
    filter: &TaskFilter,
) -> ListPage {
    let after = filter
        .cursor
        .as_deref()
        .and_then(|c| c.parse::<TaskId>().ok());
    let limit = filter.limit.clamp(1, TaskFilter::MAX_LIMIT);
    let mut tasks: Vec<TaskRecord> = newest_first
        .filter(|r| after.is_none_or(|a| r.task_id < a) && filter.matches(r))
        .take(limit + 1)
        .cloned()
        .collect();
    let next_cursor = if tasks.len() > limit {
        tasks.truncate(limit);
        tasks.last().map(|r| r.task_id.to_string())
    } else {
        None
    };
    ListPage { tasks, next_cursor }
}

/// Counts, success rate and durations of `records`.
pub(crate) fn metrics_of<'a>(records: impl Iterator<Item = &'a TaskRecord>) -> Metrics {
    let mut by_status: BTreeMap<String, usize> = TaskStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    let mut all = Figures::default();
    let mut per_name: BTreeMap<String, Figures> = BTreeMap::new();
    let mut total = 0;
    for record in records {
        total += 1;
        *by_status
            .entry(record.status.as_str().to_owned())
            .or_default() += 1;
        all.add(record);
        per_name
            .entry(record.func_name.to_string())
            .or_default()
            .add(record);
    }
    let (success_rate, avg_duration, p95_duration) = all.summary();
    let by_name = per_name
        .into_iter()
        .map(|(name, figures)| {
            let (total, success, failed) = (figures.total, figures.success, figures.failed);
            let (success_rate, avg_duration, p95_duration) = figures.summary();
            let stats = NameStats {
                total,
                success,
                failed,
                success_rate,
                avg_duration,
                p95_duration,
            };
            (name, stats)
        })
        .collect();
    Metrics {
        total,
        by_status,
        success_rate,
        avg_duration,
        p95_duration,
        by_name,
    }
}

#[derive(Default)]
struct Figures {
    total: usize,
    success: usize,
    failed: usize,
    durations: Vec<f64>,
}

impl Figures {
    fn add(&mut self, record: &TaskRecord) {
        self.total += 1;
        match record.status {
            TaskStatus::Success => self.success += 1,
            TaskStatus::Failed => self.failed += 1,
            _ => {}
        }
        if record.status.is_finished()
            && let Some(duration) = record.duration
        {
            self.durations.push(duration);
        }
    }

    fn summary(mut self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let decided = self.success + self.failed;
        let rate = (decided > 0).then(|| self.success as f64 / decided as f64);
        if self.durations.is_empty() {
            return (rate, None, None);
        }
        self.durations.sort_by(f64::total_cmp);
        let avg = self.durations.iter().sum::<f64>() / self.durations.len() as f64;
        let rank = ((self.durations.len() as f64) * 0.95).ceil() as usize;
        let p95 = self.durations[rank.clamp(1, self.durations.len()) - 1];
        (rate, Some(avg), Some(p95))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, status: TaskStatus) -> Box<Entry<()>> {
        let mut r = TaskRecord::pending(TaskId::new(), name, "test");
        r.status = status;
        Entry::new(r, None)
    }

    /// Inserts `n` new records in `status`; returns their ids, oldest first.
    fn insert_new(h: &mut History<()>, n: usize, status: TaskStatus) -> Vec<TaskId> {
        (0..n)
            .map(|_| {
                let r = record("a", status);
                let id = r.record.task_id;
                h.insert(r);
                id
            })
            .collect()
    }

    fn listed(h: &History<()>) -> Vec<TaskId> {
        h.list(&TaskFilter::new().limit(TaskFilter::MAX_LIMIT))
            .tasks
            .iter()
            .map(|r| r.task_id)
            .collect()
    }

    #[test]
    fn lists_newest_first_through_removals_and_late_inserts() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut h = History::<()>::new(usize::MAX);
        let made: Vec<Box<Entry<()>>> = (0..3_000)
            .map(|_| record("a", TaskStatus::Success))
            .collect();
        let mut held = std::collections::BTreeSet::new();
        let mut later = Vec::new();
        for r in made {
            // One in five arrives late, after newer ones (made on another thread, or recovered).
            if rng.u8(..5) == 0 {
                later.push(r);
            } else {
                held.insert(r.record.task_id);
                h.insert(r);
            }
            if rng.u8(..3) == 0
                && let Some(&gone) = held.iter().nth(rng.usize(..held.len()))
            {
                held.remove(&gone);
                assert!(h.remove(gone).is_some());
            }
            if rng.u8(..7) == 0
                && let Some(r) = later.pop()
            {
                held.insert(r.record.task_id);
                h.insert(r);
            }
        }
        let expected: Vec<TaskId> = held
            .iter()
            .rev()
            .take(TaskFilter::MAX_LIMIT)
            .copied()
            .collect();
        assert_eq!(listed(&h), expected);
        assert!(h.order.len() <= held.len() + History::<()>::MIN_COMPACTION.max(held.len()));
        // A removed record that comes back takes its old place once.
        let back = *held.iter().next().expect("records held");
        let record = h.remove(back).expect("held");
        h.insert(record);
        assert_eq!(h.order.iter().filter(|id| **id == back).count(), 1);
    }

    #[test]
    fn tasks_finishing_out_of_order_leave_no_tombstones_behind() {
        let mut h = History::<()>::new(100);
        let ids = insert_new(&mut h, 5_000, TaskStatus::Running);
        // Each pair finishes in reverse order, as tasks running side by side do.
        for pair in ids.chunks(2) {
            for id in pair.iter().rev() {
                if let Some(r) = h.get_mut(*id) {
                    r.status = TaskStatus::Success;
                }
                h.mark_finished(*id, drop);
                assert!(
                    h.order.len() <= h.len() + 1,
                    "{} ids indexed for {} records",
                    h.order.len(),
                    h.len()
                );
            }
        }
        assert_eq!(h.len(), 100);
        assert_eq!(
            listed(&h),
            ids.iter().rev().take(100).copied().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_finished_record_replaced_by_a_running_one_is_not_evicted() {
        let mut h = History::<()>::new(1);
        let id = insert_new(&mut h, 1, TaskStatus::Success)[0];
        h.mark_finished(id, drop);
        let mut again = record("a", TaskStatus::Running);
        again.record.task_id = id;
        h.insert(again);
        for done in insert_new(&mut h, 3, TaskStatus::Success) {
            h.mark_finished(done, drop);
        }
        assert_eq!(h.get(id).map(|r| r.status), Some(TaskStatus::Running));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn evicts_oldest_finished_first_and_never_live_ones() {
        let mut h = History::<()>::new(2);
        let live = record("a", TaskStatus::Running);
        let live_id = live.record.task_id;
        h.insert(live);
        let mut ids = Vec::new();
        for _ in 0..3 {
            let r = record("a", TaskStatus::Pending);
            ids.push(r.record.task_id);
            h.insert(r);
        }
        let mut evicted = Vec::new();
        for id in &ids {
            if let Some(r) = h.get_mut(*id) {
                r.status = TaskStatus::Success;
            }
            h.mark_finished(*id, |r| evicted.push(r));
        }
        assert_eq!(
            evicted.iter().map(|r| r.record.task_id).collect::<Vec<_>>(),
            vec![ids[0]]
        );
        assert!(h.get(live_id).is_some());
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn pages_newest_first_with_cursor() {
        let mut h = History::<()>::new(100);
        let ids = insert_new(&mut h, 5, TaskStatus::Pending);
        let first = h.list(&TaskFilter::new().limit(2));
        assert_eq!(
            first.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>(),
            vec![ids[4], ids[3]]
        );
        let cursor = first.next_cursor.expect("more pages");
        let second = h.list(&TaskFilter::new().limit(2).cursor(cursor));
        assert_eq!(
            second.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>(),
            vec![ids[2], ids[1]]
        );
        let third = h.list(
            &TaskFilter::new()
                .limit(2)
                .cursor(second.next_cursor.expect("more")),
        );
        assert_eq!(third.tasks.len(), 1);
        assert_eq!(third.next_cursor, None);
    }

    #[test]
    fn p95_and_rates() {
        let mut h = History::<()>::new(100);
        for i in 1..=20 {
            let mut r = record(
                "a",
                if i == 20 {
                    TaskStatus::Failed
                } else {
                    TaskStatus::Success
                },
            );
            r.record.duration = Some(f64::from(i));
            h.insert(r);
        }
        let m = h.metrics(&TaskFilter::new());
        assert_eq!(m.p95_duration, Some(19.0));
        assert_eq!(m.success_rate, Some(0.95));
        assert_eq!(m.by_name["a"].failed, 1);
    }
}
