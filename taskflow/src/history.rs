//! The in-memory window of task records: every pending and running task plus the most recent
//! finished ones (at most `max_history`, oldest finished evicted first), with filtered, paginated
//! listing and metrics. The window indexes handles on the records (the manager's task cells),
//! not the records themselves.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

    /// Only tasks tagged `key` or `key:value` (`key=value` too). On the SQLite store a
    /// `key:value` filter reads only the runs holding that tag, through an index; a key alone
    /// does too when few runs hold it, and otherwise checks each run's tags in turn, newest
    /// first.
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

/// A finished record in the window's eviction queue: its id, when it ended (what purging goes
/// by) and the handle that finished, so that eviction neither reads the (by then cold) record
/// nor takes a replacement held under the same id.
struct Finished<C> {
    id: TaskId,
    /// Where the record was expected in the window when it finished.
    place: Place,
    ended_at: DateTime<Utc>,
    value: C,
}

/// Where a record is expected in the window's index: its place counted from the first record
/// the window ever held, so that evicting it finds it without a bisection. A place goes stale
/// when an older record is added before it or tombstones are compacted; a lookup then finds
/// another id there and bisects instead, so a stale place costs a probe, never a wrong record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place(u64);

impl Place {
    /// A place that is never found: the record is bisected for.
    pub(crate) const UNKNOWN: Self = Self(u64::MAX);
}

/// The bounded index of the records in memory: every pending and running task plus the most
/// recent finished ones (at most `max_history`, the oldest finished evicted first). It holds a
/// handle `C` per record (the manager's task cell, which holds the record behind a lock of its
/// own), so that lookups, eviction and listing never read a record.
///
/// Ids are made in time order, so the index is a deque kept ascending by id and bisected, not a
/// hash map: a new record goes at the back, the oldest finished one leaves from the front, and
/// a bisection's first steps read the same few entries every time, so that a lookup touches
/// little beyond them and its target, where a hash map touches a cold bucket at every insert and
/// eviction (a hash map here ran the in-memory benchmark 7–17% slower although it executed
/// fewer instructions; BENCHMARKS.md, session 9). A record removed elsewhere than at the front
/// leaves a tombstone (its id with no handle), dropped once it reaches the front, or when
/// tombstones outnumber records.
pub(crate) struct History<C> {
    /// Each record's id (as its [`TaskId::key`]) and handle, `None` for a tombstone.
    records: VecDeque<(u128, Option<C>)>,
    /// Entries ever removed from the front of `records`: the [`Place`] of `records[0]`.
    front: u64,
    /// Records held (`records` less its tombstones).
    held: usize,
    /// Finished records, in the order they finished.
    finished: VecDeque<Finished<C>>,
    max_history: usize,
}

impl<C> History<C> {
    /// Below this many tombstones `records` is never compacted.
    const MIN_COMPACTION: usize = 1_024;

    pub(crate) fn new(max_history: usize) -> Self {
        Self {
            records: VecDeque::new(),
            front: 0,
            held: 0,
            finished: VecDeque::new(),
            max_history,
        }
    }

    /// Where `id` is in `records`, or where it would go: a bisection of the one of the deque's
    /// two contiguous halves that can hold `id`, over plain slices (no index wrapping per
    /// step). A new task's id, the usual case, and the oldest record, the one eviction
    /// removes, are found without a search.
    fn position(&self, id: TaskId) -> Result<usize, usize> {
        let id = id.key();
        match (self.records.front(), self.records.back()) {
            (Some((first, _)), _) if *first == id => return Ok(0),
            (_, Some((last, _))) if *last < id => return Err(self.records.len()),
            (_, None) => return Err(0),
            _ => {}
        }
        let (front, back) = self.records.as_slices();
        let (slice, offset) = match back.first() {
            Some((first, _)) if *first <= id => (back, front.len()),
            _ => (front, 0),
        };
        let at = slice.partition_point(|(held, _)| *held < id);
        if slice.get(at).is_some_and(|(held, _)| *held == id) {
            Ok(offset + at)
        } else {
            Err(offset + at)
        }
    }

    /// Where `id`, if it is held, is expected: at its place when the entry there is `id`'s, else
    /// where a bisection finds it.
    fn find(&self, id: TaskId, place: Place) -> Option<usize> {
        // A place too far to index (`Place::UNKNOWN` where `usize` is 32 bits) holds no entry.
        let at = usize::try_from(place.0.wrapping_sub(self.front)).unwrap_or(usize::MAX);
        match self.records.get(at) {
            Some((held, _)) if *held == id.key() => Some(at),
            _ => self.position(id).ok(),
        }
    }

    /// The place of a record added now with an id newer than every one held, the usual case;
    /// pass it to [`Self::mark_finished`] when the record finishes.
    pub(crate) fn next_place(&self) -> Place {
        Place(self.front.wrapping_add(self.records.len() as u64))
    }

    /// Adds the record `id`, or replaces the one held (returned); a finished one must then be
    /// passed to [`Self::mark_finished`].
    pub(crate) fn insert(&mut self, id: TaskId, value: C) -> Option<C> {
        match self.position(id) {
            Ok(at) => {
                let replaced = self.records[at].1.replace(value);
                if replaced.is_none() {
                    // It took back its own tombstone.
                    self.held += 1;
                }
                replaced
            }
            Err(at) => {
                if at == self.records.len() {
                    self.records.push_back((id.key(), Some(value)));
                } else {
                    // Ids arrive almost in order: an older one (made just before another
                    // thread's, or recovered) goes to its place, near the back.
                    self.records.insert(at, (id.key(), Some(value)));
                }
                self.held += 1;
                None
            }
        }
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<&C> {
        let at = self.position(id).ok()?;
        self.records[at].1.as_ref()
    }

    /// Every handle, oldest first.
    pub(crate) fn values(&self) -> impl Iterator<Item = &C> {
        self.records.iter().filter_map(|(_, value)| value.as_ref())
    }

    /// The handles newest first, starting below `before` when given.
    pub(crate) fn newest_first(&self, before: Option<TaskId>) -> impl Iterator<Item = &C> {
        let end = before.map_or(self.records.len(), |before| {
            let before = before.key();
            self.records.partition_point(|(id, _)| *id < before)
        });
        self.records
            .range(..end)
            .rev()
            .filter_map(|(_, value)| value.as_ref())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held
    }

    /// The place record `id` is at now.
    #[cfg(test)]
    fn place_of(&self, id: TaskId) -> Place {
        let at = self.position(id).expect("held");
        Place(self.front + at as u64)
    }

    /// Removes record `id`, expected at `place`, if `is_held` says its handle is the one held.
    fn remove_if(
        &mut self,
        id: TaskId,
        place: Place,
        is_held: impl FnOnce(&C) -> bool,
    ) -> Option<C> {
        let at = self.find(id, place)?;
        let slot = &mut self.records[at].1;
        let value = slot.take_if(|held| is_held(held))?;
        self.held -= 1;
        // Tombstones that reached the front go, a few at a time, so that the compaction below
        // (a pass over the whole index under the manager's lock) is rare.
        while self
            .records
            .front()
            .is_some_and(|(_, value)| value.is_none())
        {
            self.records.pop_front();
            self.front = self.front.wrapping_add(1);
        }
        let tombstones = self.records.len() - self.held;
        if tombstones >= Self::MIN_COMPACTION && tombstones > self.held {
            self.records.retain(|(_, value)| value.is_some());
        }
        Some(value)
    }

    /// Notes that record `id`, held as `value` and expected at `place` (from
    /// [`Self::next_place`] when it was added, or [`Place::UNKNOWN`]), reached a final state at
    /// `ended_at`, and hands the oldest finished records beyond the bound to `evicted` (so the
    /// caller can free them after releasing its lock): each one's id, the handle that finished,
    /// and the handle the window held if it was that one (`same` tells whether two handles are
    /// one; a record replaced since it finished stays).
    pub(crate) fn mark_finished(
        &mut self,
        id: TaskId,
        place: Place,
        ended_at: DateTime<Utc>,
        value: C,
        same: impl Fn(&C, &C) -> bool,
        mut evicted: impl FnMut(TaskId, C, Option<C>),
    ) {
        self.finished.push_back(Finished {
            id,
            place,
            ended_at,
            value,
        });
        while self.finished.len() > self.max_history {
            let Some(oldest) = self.finished.pop_front() else {
                break;
            };
            let held = self.remove_if(oldest.id, oldest.place, |held| same(held, &oldest.value));
            evicted(oldest.id, oldest.value, held);
        }
    }

    /// Removes the finished records that ended before `cutoff`; returns their handles.
    pub(crate) fn purge(
        &mut self,
        cutoff: DateTime<Utc>,
        same: impl Fn(&C, &C) -> bool,
    ) -> Vec<(TaskId, C)> {
        let (old, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.finished)
            .into_iter()
            .partition(|f| f.ended_at < cutoff);
        self.finished = kept;
        old.into_iter()
            .filter_map(|f| {
                self.remove_if(f.id, f.place, |held| same(held, &f.value))
                    .map(|held| (f.id, held))
            })
            .collect()
    }
}

/// One page of `newest_first` records after the filter's cursor.
pub(crate) fn page_of<'a>(
    newest_first: impl Iterator<Item = &'a TaskRecord>,
    filter: &TaskFilter,
) -> ListPage {
    let mut page = PageFill::new(filter);
    for record in newest_first {
        if !page.offer(record) {
            break;
        }
    }
    page.page()
}

/// A page being filled with records offered newest first.
pub(crate) struct PageFill<'f> {
    filter: &'f TaskFilter,
    after: Option<TaskId>,
    limit: usize,
    tasks: Vec<TaskRecord>,
}

impl<'f> PageFill<'f> {
    pub(crate) fn new(filter: &'f TaskFilter) -> Self {
        Self {
            filter,
            after: filter
                .cursor
                .as_deref()
                .and_then(|c| c.parse::<TaskId>().ok()),
            limit: filter.limit.clamp(1, TaskFilter::MAX_LIMIT),
            tasks: Vec::new(),
        }
    }

    /// The cursor's id: only older records belong on the page.
    pub(crate) fn after(&self) -> Option<TaskId> {
        self.after
    }

    /// Takes `record` if it belongs on the page; `false` once the page is full (one record
    /// beyond the limit tells that another page follows).
    pub(crate) fn offer(&mut self, record: &TaskRecord) -> bool {
        if self.after.is_none_or(|a| record.task_id < a) && self.filter.matches(record) {
            self.tasks.push(record.clone());
        }
        self.tasks.len() <= self.limit
    }

    pub(crate) fn page(mut self) -> ListPage {
        let next_cursor = if self.tasks.len() > self.limit {
            self.tasks.truncate(self.limit);
            self.tasks.last().map(|r| r.task_id.to_string())
        } else {
            None
        };
        ListPage {
            tasks: self.tasks,
            next_cursor,
        }
    }
}

/// Counts, success rate and durations of `records`.
pub(crate) fn metrics_of<'a>(records: impl Iterator<Item = &'a TaskRecord>) -> Metrics {
    let mut tally = Tally::default();
    records.for_each(|record| tally.add(record));
    tally.metrics()
}

/// [`Metrics`] being counted, one record at a time.
#[derive(Default)]
pub(crate) struct Tally {
    total: usize,
    by_status: BTreeMap<String, usize>,
    all: Figures,
    per_name: BTreeMap<String, Figures>,
}

impl Tally {
    /// Counts `record`.
    pub(crate) fn add(&mut self, record: &TaskRecord) {
        self.total += 1;
        *self
            .by_status
            .entry(record.status.as_str().to_owned())
            .or_default() += 1;
        self.all.add(record);
        match self.per_name.get_mut(&*record.func_name) {
            Some(figures) => figures.add(record),
            None => {
                let mut figures = Figures::default();
                figures.add(record);
                self.per_name.insert(record.func_name.to_string(), figures);
            }
        }
    }

    /// The figures of every record counted.
    pub(crate) fn metrics(self) -> Metrics {
        let Self {
            total,
            mut by_status,
            all,
            per_name,
        } = self;
        for status in TaskStatus::ALL {
            by_status.entry(status.as_str().to_owned()).or_default();
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

    fn record(name: &str, status: TaskStatus) -> TaskRecord {
        let mut r = TaskRecord::pending(TaskId::new(), name, "test");
        r.status = status;
        r
    }

    /// Inserts `n` new records in `status`; returns their ids, oldest first.
    fn insert_new(h: &mut History<TaskRecord>, n: usize, status: TaskStatus) -> Vec<TaskId> {
        (0..n)
            .map(|_| {
                let r = record("a", status);
                let id = r.task_id;
                h.insert(id, r);
                id
            })
            .collect()
    }

    /// Marks record `id` finished; returns the ids of the records evicted.
    fn finish(h: &mut History<TaskRecord>, id: TaskId) -> Vec<TaskId> {
        finish_at(h, id, Utc::now())
    }

    fn finish_at(h: &mut History<TaskRecord>, id: TaskId, at: DateTime<Utc>) -> Vec<TaskId> {
        let mut record = h.get(id).cloned().expect("held");
        record.status = TaskStatus::Success;
        let mut evicted = Vec::new();
        let place = h.place_of(id);
        h.mark_finished(
            id,
            place,
            at,
            record,
            same,
            |id, _, held: Option<TaskRecord>| {
                if held.is_some() {
                    evicted.push(id);
                }
            },
        );
        evicted
    }

    /// Handles are the same when the records are of one run (the test's replacement changes
    /// the state).
    fn same(a: &TaskRecord, b: &TaskRecord) -> bool {
        a.task_id == b.task_id && a.created_at == b.created_at
    }

    fn listed(h: &History<TaskRecord>) -> Vec<TaskId> {
        let filter = TaskFilter::new().limit(TaskFilter::MAX_LIMIT);
        page_of(h.newest_first(None), &filter)
            .tasks
            .iter()
            .map(|r| r.task_id)
            .collect()
    }

    #[test]
    fn lists_newest_first_through_removals_and_late_inserts() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut h = History::<TaskRecord>::new(usize::MAX);
        let made: Vec<TaskRecord> = (0..3_000)
            .map(|_| record("a", TaskStatus::Success))
            .collect();
        // Each held id with the place it was given when added: late inserts and compactions
        // leave many of them stale.
        let mut held = std::collections::BTreeMap::new();
        let mut later = Vec::new();
        for r in made {
            // One in five arrives late, after newer ones (made on another thread, or recovered).
            if rng.u8(..5) == 0 {
                later.push(r);
            } else {
                held.insert(r.task_id, h.next_place());
                h.insert(r.task_id, r);
            }
            if rng.u8(..3) == 0
                && let Some((&gone, &place)) = held.iter().nth(rng.usize(..held.len()))
            {
                held.remove(&gone);
                assert_eq!(
                    h.remove_if(gone, place, |_| true).map(|r| r.task_id),
                    Some(gone)
                );
            }
            if rng.u8(..7) == 0
                && let Some(r) = later.pop()
            {
                held.insert(r.task_id, h.next_place());
                h.insert(r.task_id, r);
            }
        }
        let expected: Vec<TaskId> = held
            .keys()
            .rev()
            .take(TaskFilter::MAX_LIMIT)
            .copied()
            .collect();
        assert_eq!(listed(&h), expected);
        assert!(
            h.records.len() <= held.len() + History::<TaskRecord>::MIN_COMPACTION.max(held.len())
        );
        // Listing below an id starts right under it, tombstones and all.
        let below = expected[10];
        let under: Vec<TaskId> = h
            .newest_first(Some(below))
            .map(|r| r.task_id)
            .take(5)
            .collect();
        assert_eq!(under, expected[11..16]);
        // A removed record that comes back takes its old place once.
        let (&back, &place) = held.iter().next().expect("records held");
        let record = h.remove_if(back, place, |_| true).expect("held");
        h.insert(back, record);
        assert_eq!(
            h.records.iter().filter(|(id, _)| *id == back.key()).count(),
            1
        );
    }

    #[test]
    fn finds_every_place_as_a_bisection_does() {
        let mut rng = fastrand::Rng::with_seed(3);
        for len in [0, 1, 2, 3, 7, 64, 1_000] {
            let mut h = History::<()>::new(usize::MAX);
            let mut ids: Vec<TaskId> = (0..len).map(|_| TaskId::new()).collect();
            for id in &ids {
                h.insert(*id, ());
            }
            ids.sort();
            // Every held id, ids next to them on either side, and newer ones.
            let mut probes = ids.clone();
            for id in &ids {
                let bits = u128::from_be_bytes(id.to_bytes());
                let near = if rng.bool() { bits + 1 } else { bits - 1 };
                probes.push(TaskId::from_bytes(near.to_be_bytes()));
            }
            probes.extend((0..50).map(|_| TaskId::new()));
            for probe in probes {
                assert_eq!(
                    h.position(probe),
                    ids.binary_search(&probe),
                    "{probe} among {len}"
                );
            }
        }
    }

    #[test]
    fn a_record_is_found_at_its_place_and_through_a_stale_one() {
        let mut h = History::<TaskRecord>::new(usize::MAX);
        let late = record("late", TaskStatus::Success);
        let placed: Vec<(TaskId, Place)> = (0..3)
            .map(|_| {
                let r = record("a", TaskStatus::Success);
                let (id, place) = (r.task_id, h.next_place());
                h.insert(id, r);
                assert_eq!(
                    h.place_of(id),
                    place,
                    "a record added at the back takes its place"
                );
                (id, place)
            })
            .collect();
        // An older record added late goes before them: each of their places now names the
        // record before it.
        let late_id = late.task_id;
        h.insert(late_id, late);
        assert_eq!(h.place_of(late_id), placed[0].1);
        for (id, place) in placed {
            assert_ne!(h.place_of(id), place);
            let removed = h.remove_if(id, place, |_| true).map(|r| r.task_id);
            assert_eq!(
                removed,
                Some(id),
                "the record itself, not the one at its old place"
            );
        }
        assert_eq!(h.get(late_id).map(|r| r.task_id), Some(late_id));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn tasks_finishing_out_of_order_leave_no_tombstones_behind() {
        let mut h = History::<TaskRecord>::new(100);
        let ids = insert_new(&mut h, 5_000, TaskStatus::Running);
        // Each pair finishes in reverse order, as tasks running side by side do.
        for pair in ids.chunks(2) {
            for id in pair.iter().rev() {
                finish(&mut h, *id);
                assert!(
                    h.records.len() <= h.len() + 1,
                    "{} ids indexed for {} records",
                    h.records.len(),
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
        let mut h = History::<TaskRecord>::new(1);
        let id = insert_new(&mut h, 1, TaskStatus::Running)[0];
        finish(&mut h, id);
        let mut again = record("a", TaskStatus::Running);
        again.task_id = id;
        assert!(
            h.insert(id, again).is_some(),
            "the finished one is replaced"
        );
        for done in insert_new(&mut h, 3, TaskStatus::Running) {
            finish(&mut h, done);
        }
        assert_eq!(h.get(id).map(|r| r.status), Some(TaskStatus::Running));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn eviction_hands_over_every_handle_of_the_finished_record() {
        let mut h = History::<TaskRecord>::new(0);
        let id = insert_new(&mut h, 1, TaskStatus::Running)[0];
        let finished = h.get(id).cloned().expect("held");
        let mut evicted = Vec::new();
        let place = h.place_of(id);
        h.mark_finished(
            id,
            place,
            Utc::now(),
            finished,
            same,
            |id, finished, held| {
                evicted.push((id, finished.status, held.map(|held| held.status)));
            },
        );
        assert_eq!(
            evicted,
            [(id, TaskStatus::Running, Some(TaskStatus::Running))],
            "the finished queue's handle with the held one"
        );
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn evicts_oldest_finished_first_and_never_live_ones() {
        let mut h = History::<TaskRecord>::new(2);
        let live_id = insert_new(&mut h, 1, TaskStatus::Running)[0];
        let ids = insert_new(&mut h, 3, TaskStatus::Pending);
        let evicted: Vec<TaskId> = ids.iter().flat_map(|id| finish(&mut h, *id)).collect();
        assert_eq!(evicted, vec![ids[0]]);
        assert!(h.get(live_id).is_some());
        assert_eq!(h.len(), 3);
        assert_eq!(h.values().count(), 3);
    }

    #[test]
    fn purges_records_that_ended_before_the_cutoff() {
        let mut h = History::<TaskRecord>::new(100);
        let ids = insert_new(&mut h, 3, TaskStatus::Success);
        let cutoff = Utc::now();
        finish_at(&mut h, ids[0], cutoff - chrono::Duration::seconds(10));
        finish_at(&mut h, ids[1], cutoff);
        let purged: Vec<TaskId> = h
            .purge(cutoff, same)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(purged, [ids[0]]);
        assert!(h.get(ids[0]).is_none());
        assert!(
            h.get(ids[1]).is_some() && h.get(ids[2]).is_some(),
            "newer, and live"
        );
    }

    #[test]
    fn pages_newest_first_with_cursor() {
        let mut h = History::<TaskRecord>::new(100);
        let ids = insert_new(&mut h, 5, TaskStatus::Pending);
        let page = |filter: TaskFilter| page_of(h.newest_first(None), &filter);
        let first = page(TaskFilter::new().limit(2));
        assert_eq!(
            first.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>(),
            vec![ids[4], ids[3]]
        );
        let cursor = first.next_cursor.expect("more pages");
        let second = page(TaskFilter::new().limit(2).cursor(cursor));
        assert_eq!(
            second.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>(),
            vec![ids[2], ids[1]]
        );
        let third = page(
            TaskFilter::new()
                .limit(2)
                .cursor(second.next_cursor.expect("more")),
        );
        assert_eq!(third.tasks.len(), 1);
        assert_eq!(third.next_cursor, None);
    }

    #[test]
    fn p95_and_rates() {
        let mut h = History::<TaskRecord>::new(100);
        for i in 1..=20 {
            let mut r = record(
                "a",
                if i == 20 {
                    TaskStatus::Failed
                } else {
                    TaskStatus::Success
                },
            );
            r.duration = Some(f64::from(i));
            h.insert(r.task_id, r);
        }
        let m = metrics_of(h.values());
        assert_eq!(m.p95_duration, Some(19.0));
        assert_eq!(m.success_rate, Some(0.95));
        assert_eq!(m.by_name["a"].failed, 1);
        assert_eq!(m.by_status["rejected"], 0, "every state is counted");
    }
}
