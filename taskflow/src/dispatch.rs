//! Named queues: per-queue concurrency and size limits, priority then FIFO order, and the
//! choice of which pending task starts next across queues.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::task::TaskId;

/// Limits of one named queue.
///
/// # Examples
///
/// ```
/// let config = taskflow::QueueConfig::new().concurrency(4).max_size(1_000);
/// assert_eq!(config.concurrency, Some(4));
/// assert_eq!(config.max_size, 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueConfig {
    /// At most this many of the queue's tasks run at once (`None`: only the manager's limits).
    pub concurrency: Option<usize>,
    /// At most this many of the queue's tasks wait to start; more are rejected.
    pub max_size: usize,
}

impl QueueConfig {
    /// The default pending-task bound of a queue.
    pub const DEFAULT_MAX_SIZE: usize = 100_000;

    /// No concurrency limit of its own, at most 100,000 pending tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::QueueConfig::new().concurrency, None);
    /// ```
    pub const fn new() -> Self {
        Self {
            concurrency: None,
            max_size: Self::DEFAULT_MAX_SIZE,
        }
    }

    /// Sets how many of the queue's tasks may run at once.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::QueueConfig::new().concurrency(2).concurrency, Some(2));
    /// ```
    pub const fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// Sets how many of the queue's tasks may wait to start.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::QueueConfig::new().max_size(10).max_size, 10);
    /// ```
    pub const fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A snapshot of one queue.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// let manager = taskflow::TaskManager::builder().build().await?;
/// let stats = manager.queues();
/// assert!(stats.iter().any(|q| q.name == "default"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Its concurrency limit.
    pub concurrency: Option<usize>,
    /// Its pending-task bound.
    pub max_size: usize,
    /// Tasks waiting for a slot.
    pub pending: usize,
    /// Tasks running now.
    pub running: usize,
    /// Tasks rejected because the queue was full, since start.
    pub rejected: u64,
    /// Attempts started, since start.
    pub started: u64,
}

/// A waiting task in a queue: higher priority first, then lower sequence (FIFO). `P` is what
/// the one who starts it needs (the manager's handle on the task), carried so that starting it
/// needs no lookup.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiting<P = ()> {
    pub(crate) priority: i32,
    pub(crate) seq: u64,
    pub(crate) id: TaskId,
    pub(crate) blocking: bool,
    pub(crate) payload: P,
}

impl<P> PartialEq for Waiting<P> {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq, self.id) == (other.priority, other.seq, other.id)
    }
}

impl<P> Eq for Waiting<P> {}

impl<P> Ord for Waiting<P> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl<P> PartialOrd for Waiting<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The waiting tasks of one queue: a FIFO lane per priority, each sorted by sequence, so the
/// common push (newest sequence) and pop are O(1) where a binary heap pays O(log n) with a
/// cache miss per level on a long backlog. Takes tasks in the order of [`Waiting`]'s `Ord`.
///
/// The lanes are few (one per distinct priority in use), kept in a vector sorted by priority:
/// the highest is last, so the common case of one priority never searches.
#[derive(Debug)]
struct Lanes<P> {
    /// Ascending by priority. Only a sole lane is ever empty (see `pop`).
    lanes: Vec<(i32, VecDeque<Waiting<P>>)>,
    len: usize,
}

impl<P> Default for Lanes<P> {
    fn default() -> Self {
        Self {
            lanes: Vec::new(),
            len: 0,
        }
    }
}

impl<P> Lanes<P> {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, waiting: Waiting<P>) {
        let at = match self.lanes.last() {
            Some((top, _)) if *top == waiting.priority => self.lanes.len() - 1,
            _ => match self
                .lanes
                .binary_search_by_key(&waiting.priority, |(priority, _)| *priority)
            {
                Ok(at) => at,
                Err(at) => {
                    // The lane `pop` keeps when it empties goes when another priority arrives.
                    if let [(_, only)] = self.lanes.as_slice()
                        && only.is_empty()
                    {
                        self.lanes.clear();
                        self.lanes.push((waiting.priority, VecDeque::new()));
                        0
                    } else {
                        self.lanes.insert(at, (waiting.priority, VecDeque::new()));
                        at
                    }
                }
            },
        };
        let lane = &mut self.lanes[at].1;
        // A new task has the newest sequence and goes last; a delayed start or a retry wait that
        // ends comes back with an older one and goes to its place.
        if lane.back().is_none_or(|last| last.seq < waiting.seq) {
            lane.push_back(waiting);
        } else {
            let at = lane.partition_point(|w| w.seq < waiting.seq);
            lane.insert(at, waiting);
        }
        self.len += 1;
    }

    fn peek(&self) -> Option<&Waiting<P>> {
        self.lanes.last().and_then(|(_, lane)| lane.front())
    }

    fn pop(&mut self) -> Option<Waiting<P>> {
        let (_, lane) = self.lanes.last_mut()?;
        let waiting = lane.pop_front()?;
        // Keep one lane (with its buffer) for the common single-priority case; drop the others
        // when they empty so distinct priorities do not pile up.
        if lane.is_empty() && self.lanes.len() > 1 {
            self.lanes.pop();
        }
        self.len -= 1;
        Some(waiting)
    }

    fn remove(&mut self, id: TaskId) {
        for (_, lane) in &mut self.lanes {
            lane.retain(|w| w.id != id);
        }
        self.lanes.retain(|(_, lane)| !lane.is_empty());
        self.len = self.lanes.iter().map(|(_, lane)| lane.len()).sum();
    }

    fn clear(&mut self) {
        self.lanes.clear();
        self.len = 0;
    }
}

#[derive(Debug)]
struct Queue<P> {
    name: String,
    config: QueueConfig,
    waiting: Lanes<P>,
    running: usize,
    rejected: u64,
    started: u64,
}

impl<P> Queue<P> {
    fn has_room_to_run(&self) -> bool {
        self.config
            .concurrency
            .is_none_or(|limit| self.running < limit)
    }
}

/// Which queue a started attempt belongs to; used to release its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueIndex(usize);

impl QueueIndex {
    /// The `default` queue, the first one every [`Dispatch`] makes.
    pub(crate) const DEFAULT: Self = Self(0);
}

/// Every queue plus the manager-wide limits on running async and blocking attempts; each waiting
/// task carries a `P`.
#[derive(Debug)]
pub(crate) struct Dispatch<P = ()> {
    queues: Vec<Queue<P>>,
    by_name: HashMap<String, usize>,
    max_async: usize,
    max_blocking: usize,
    running_async: usize,
    running_blocking: usize,
    /// Tasks waiting in every queue: with none, [`Self::best`] answers without looking at the
    /// queues, as it does for every task that starts at once and every attempt that ends.
    waiting: usize,
}

impl<P> Dispatch<P> {
    pub(crate) fn new(
        max_async: usize,
        max_blocking: usize,
        configs: &[(String, QueueConfig)],
    ) -> Self {
        let mut dispatch = Self {
            queues: Vec::new(),
            by_name: HashMap::new(),
            max_async,
            max_blocking,
            running_async: 0,
            running_blocking: 0,
            waiting: 0,
        };
        dispatch.index_of("default");
        for (name, config) in configs {
            let index = dispatch.index_of(name);
            dispatch.queues[index.0].config = *config;
        }
        dispatch
    }

    /// The queue named `name`, created with the default config on first use.
    pub(crate) fn index_of(&mut self, name: &str) -> QueueIndex {
        // Applications have a handful of queues: comparing the first few names is cheaper than
        // hashing the name, on the path of every enqueue.
        if let Some(index) = self.queues.iter().take(8).position(|q| q.name == name) {
            return QueueIndex(index);
        }
        if let Some(&index) = self.by_name.get(name) {
            return QueueIndex(index);
        }
        let index = self.queues.len();
        self.queues.push(Queue {
            name: name.to_owned(),
            config: QueueConfig::new(),
            waiting: Lanes::default(),
            running: 0,
            rejected: 0,
            started: 0,
        });
        self.by_name.insert(name.to_owned(), index);
        QueueIndex(index)
    }

    /// Adds a waiting task, or returns the queue's bound when it is full.
    #[cfg(test)]
    pub(crate) fn push(&mut self, queue: QueueIndex, waiting: Waiting<P>) -> Result<(), usize> {
        self.make_room(queue)?;
        self.push_accepted(queue, waiting);
        Ok(())
    }

    /// Whether `queue` can take one more waiting task; when full, counts a rejection and
    /// returns the queue's bound.
    pub(crate) fn make_room(&mut self, queue: QueueIndex) -> Result<(), usize> {
        let q = &mut self.queues[queue.0];
        if q.waiting.len() >= q.config.max_size {
            q.rejected += 1;
            return Err(q.config.max_size);
        }
        Ok(())
    }

    /// Adds a waiting task that already held a place (a retry or a delayed start), ignoring the
    /// size bound so that accepted work is never dropped.
    pub(crate) fn push_accepted(&mut self, queue: QueueIndex, waiting: Waiting<P>) {
        self.queues[queue.0].waiting.push(waiting);
        self.waiting += 1;
    }

    /// Removes a waiting task (cancelled or interrupted before it started).
    pub(crate) fn remove(&mut self, queue: QueueIndex, id: TaskId) {
        let lanes = &mut self.queues[queue.0].waiting;
        let before = lanes.len();
        lanes.remove(id);
        self.waiting -= before - lanes.len();
    }

    /// Takes the next task to start, if any queue has one and there is room for it, and counts
    /// it as running.
    pub(crate) fn next(&mut self) -> Option<(QueueIndex, Waiting<P>)> {
        let index = self.best()?;
        let waiting = self.queues[index].waiting.pop()?;
        self.waiting -= 1;
        Some(self.start(QueueIndex(index), waiting))
    }

    /// Counts `waiting`, taken from `queue` or never put in it (a new task when
    /// [`Self::starts_at_once`]), as running.
    #[inline]
    pub(crate) fn start(
        &mut self,
        queue: QueueIndex,
        waiting: Waiting<P>,
    ) -> (QueueIndex, Waiting<P>) {
        let q = &mut self.queues[queue.0];
        q.running += 1;
        q.started += 1;
        if waiting.blocking {
            self.running_blocking += 1;
        } else {
            self.running_async += 1;
        }
        (queue, waiting)
    }

    /// Whether a new task of `queue` would start as soon as it is queued: there is room for it
    /// and no waiting task, in any queue, that could take the room first.
    pub(crate) fn starts_at_once(&self, queue: QueueIndex, blocking: bool) -> bool {
        let q = &self.queues[queue.0];
        self.has_room(blocking)
            && q.has_room_to_run()
            && q.waiting.len() == 0
            && self.best().is_none()
    }

    fn has_room(&self, blocking: bool) -> bool {
        if blocking {
            self.running_blocking < self.max_blocking
        } else {
            self.running_async < self.max_async
        }
    }

    /// The queue whose head starts next: the first in [`Waiting`]'s order among the heads that
    /// have room to run.
    fn best(&self) -> Option<usize> {
        debug_assert_eq!(
            self.waiting,
            self.queues.iter().map(|q| q.waiting.len()).sum::<usize>(),
            "the count of waiting tasks is the queues' total"
        );
        if self.waiting == 0 || (!self.has_room(false) && !self.has_room(true)) {
            return None;
        }
        let mut best: Option<(usize, &Waiting<P>)> = None;
        for (index, queue) in self.queues.iter().enumerate() {
            if !queue.has_room_to_run() {
                continue;
            }
            let Some(head) = queue.waiting.peek() else {
                continue;
            };
            if self.has_room(head.blocking) && best.is_none_or(|(_, b)| head > b) {
                best = Some((index, head));
            }
        }
        best.map(|(index, _)| index)
    }

    /// Frees the slot of a finished attempt.
    pub(crate) fn release(&mut self, queue: QueueIndex, blocking: bool) {
        let q = &mut self.queues[queue.0];
        q.running = q.running.saturating_sub(1);
        if blocking {
            self.running_blocking = self.running_blocking.saturating_sub(1);
        } else {
            self.running_async = self.running_async.saturating_sub(1);
        }
    }

    /// Changes a queue's limits at run time (creating it if needed).
    pub(crate) fn resize(&mut self, name: &str, config: QueueConfig) {
        let index = self.index_of(name);
        self.queues[index.0].config = config;
    }

    /// Empties every queue (at shutdown; the tasks' records are concluded by the caller).
    pub(crate) fn clear_waiting(&mut self) {
        self.queues.iter_mut().for_each(|q| q.waiting.clear());
        self.waiting = 0;
    }

    pub(crate) fn stats(&self) -> Vec<QueueStats> {
        let mut stats: Vec<_> = self
            .queues
            .iter()
            .map(|q| QueueStats {
                name: q.name.clone(),
                concurrency: q.config.concurrency,
                max_size: q.config.max_size,
                pending: q.waiting.len(),
                running: q.running,
                rejected: q.rejected,
                started: q.started,
            })
            .collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(priority: i32, seq: u64, blocking: bool) -> Waiting {
        Waiting {
            priority,
            seq,
            id: TaskId::new(),
            blocking,
            payload: (),
        }
    }

    #[test]
    fn priority_then_fifo_across_queues() {
        let mut d = Dispatch::<()>::new(10, 10, &[]);
        let a = d.index_of("a");
        let b = d.index_of("b");
        let first = waiting(0, 1, false);
        let urgent = waiting(5, 3, false);
        let second = waiting(0, 2, false);
        d.push(a, first).unwrap();
        d.push(b, urgent).unwrap();
        d.push(a, second).unwrap();
        let order: Vec<_> = std::iter::from_fn(|| d.next().map(|(_, w)| w.id)).collect();
        assert_eq!(order, vec![urgent.id, first.id, second.id]);
    }

    #[test]
    fn limits_running_per_queue_and_kind() {
        let mut d =
            Dispatch::<()>::new(1, 1, &[("q".to_owned(), QueueConfig::new().concurrency(1))]);
        let q = d.index_of("q");
        let other = d.index_of("other");
        d.push(q, waiting(0, 1, true)).unwrap();
        d.push(q, waiting(0, 2, true)).unwrap();
        d.push(other, waiting(0, 3, false)).unwrap();
        d.push(other, waiting(0, 4, false)).unwrap();
        assert!(d.next().is_some());
        assert!(d.next().is_some());
        assert!(d.next().is_none(), "queue q allows one, async allows one");
        d.release(q, true);
        assert!(d.next().is_some_and(|(i, w)| i == q && w.blocking));
    }

    #[test]
    fn a_new_task_starts_at_once_only_when_nothing_waiting_could_take_its_room() {
        let mut d =
            Dispatch::<()>::new(2, 1, &[("q".to_owned(), QueueConfig::new().concurrency(1))]);
        let q = d.index_of("q");
        let other = d.index_of("other");
        assert!(d.starts_at_once(q, false));
        assert!(d.starts_at_once(q, true));

        // A task waiting in the same queue goes first.
        d.push(q, waiting(0, 1, false)).unwrap();
        assert!(!d.starts_at_once(q, false));
        // A startable task waiting in another queue goes first too.
        assert!(!d.starts_at_once(other, false));

        // Once it runs, its queue is at its limit; the other queue still has room.
        assert!(d.next().is_some());
        assert!(!d.starts_at_once(q, false), "queue q runs one at a time");
        assert!(d.starts_at_once(other, false));

        // A waiting task that cannot run (its queue is full) does not hold others back.
        d.push(q, waiting(0, 2, false)).unwrap();
        assert!(d.starts_at_once(other, false));

        // The manager-wide limit of async attempts is reached; blocking ones still have room.
        d.push(other, waiting(0, 3, false)).unwrap();
        assert!(d.next().is_some_and(|(i, _)| i == other));
        assert!(!d.starts_at_once(other, false));
        assert!(d.starts_at_once(other, true));
    }

    #[test]
    fn the_count_of_waiting_tasks_follows_every_change_to_the_queues() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut d = Dispatch::<()>::new(4, 1, &[]);
        let queues = [d.index_of("a"), d.index_of("b"), d.index_of("c")];
        let mut held: Vec<(QueueIndex, TaskId)> = Vec::new();
        let mut running: Vec<(QueueIndex, bool)> = Vec::new();
        for seq in 0..3_000u64 {
            match rng.u8(..10) {
                0..=3 => {
                    let queue = queues[rng.usize(..queues.len())];
                    let w = waiting(rng.i32(-1..=1), seq, false);
                    d.push(queue, w).unwrap();
                    held.push((queue, w.id));
                }
                4..=5 => match d.next() {
                    Some((queue, w)) => {
                        held.retain(|&(_, id)| id != w.id);
                        running.push((queue, w.blocking));
                    }
                    None => assert!(
                        held.is_empty() || d.running_async == 4,
                        "nothing starts only when nothing waits or there is no room"
                    ),
                },
                6..=7 => {
                    if !running.is_empty() {
                        let (queue, blocking) = running.swap_remove(rng.usize(..running.len()));
                        d.release(queue, blocking);
                    }
                }
                8 => {
                    if !held.is_empty() {
                        let (queue, id) = held.swap_remove(rng.usize(..held.len()));
                        d.remove(queue, id);
                    }
                }
                _ => {
                    if rng.u8(..20) == 0 {
                        d.clear_waiting();
                        held.clear();
                    }
                }
            }
            assert_eq!(d.waiting, held.len());
            assert_eq!(
                d.stats().iter().map(|s| s.pending).sum::<usize>(),
                held.len()
            );
        }
    }

    #[test]
    fn lanes_take_tasks_in_heap_order() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut lanes = Lanes::default();
        let mut heap = std::collections::BinaryHeap::new();
        for seq in 0..2_000u64 {
            match rng.u8(..10) {
                // Mostly new tasks, some with an older sequence (a delayed start coming back).
                0..=5 => {
                    let seq = if rng.bool() {
                        seq
                    } else {
                        rng.u64(..=seq) * 10_000 + seq
                    };
                    let w = waiting(rng.i32(-2..=2), seq, false);
                    lanes.push(w);
                    heap.push(w);
                }
                6..=8 => assert_eq!(lanes.pop(), heap.pop()),
                _ => {
                    if let Some(&w) = heap.iter().nth(rng.usize(..heap.len().max(1))) {
                        lanes.remove(w.id);
                        heap.retain(|h| h.id != w.id);
                    }
                }
            }
            assert_eq!(lanes.len(), heap.len());
            assert_eq!(lanes.peek(), heap.peek());
        }
        while let Some(w) = heap.pop() {
            assert_eq!(lanes.pop(), Some(w));
        }
        assert_eq!(lanes.pop(), None);
        assert_eq!(lanes.len(), 0);
    }

    #[test]
    fn full_queue_rejects() {
        let mut d = Dispatch::<()>::new(1, 1, &[("q".to_owned(), QueueConfig::new().max_size(1))]);
        let q = d.index_of("q");
        d.push(q, waiting(0, 1, false)).unwrap();
        assert_eq!(d.push(q, waiting(0, 2, false)), Err(1));
        assert_eq!(
            d.stats().iter().find(|s| s.name == "q").map(|s| s.rejected),
            Some(1)
        );
    }
}
