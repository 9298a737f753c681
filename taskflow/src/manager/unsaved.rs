//! The records waiting for the store: queued in the order their states were reached, taken in
//! batches by concurrent flushes, and tracked until committed.
//!
//! Flushes may overlap (each caller writes what is queued when it comes, so a task waiting for
//! its `running` state to be committed never waits behind an unrelated write), but two states of
//! one task are never written at once: a record whose task already has a write in flight stays
//! queued until that write ends. So overlapping writes touch different tasks, and an older state
//! can never land after a newer one, whatever order the store applies them in.

use std::collections::VecDeque;

use crate::id::IdSet;
use crate::task::TaskRecord;

/// The queue; lives in the manager's state, under its lock.
#[derive(Debug, Default)]
pub(crate) struct Unsaved {
    /// Queued records with their numbers, oldest first.
    queue: Vec<(u64, TaskRecord)>,
    /// Tasks with a write in flight.
    in_flight: IdSet,
    /// Numbers of the records queued or in flight, not yet committed.
    outstanding: Outstanding,
    /// How many records were ever queued.
    queued: u64,
}

/// Numbers handed out in increasing order and removed in about that order: a window from the
/// oldest one not removed, with a flag per number, so that each step is O(1) amortized. The
/// window spans every number since the oldest outstanding one (a byte each): a record whose
/// write keeps failing holds it open while later ones are committed.
#[derive(Debug, Default)]
struct Outstanding {
    /// Whether number `first + i` is still outstanding; the front is always `true`.
    flags: VecDeque<bool>,
    /// The number of `flags[0]`.
    first: u64,
    len: usize,
}

impl Outstanding {
    /// Adds `seq`, the number right after the last one added.
    fn push(&mut self, seq: u64) {
        if self.flags.is_empty() {
            self.first = seq;
        }
        self.flags.push_back(true);
        self.len += 1;
    }

    /// Removes `seq`, if outstanding.
    fn remove(&mut self, seq: u64) {
        let Some(flag) = self
            .index(seq)
            .and_then(|at| self.flags.get_mut(at))
            .filter(|flag| **flag)
        else {
            return;
        };
        *flag = false;
        self.len -= 1;
        while self.flags.front() == Some(&false) {
            self.flags.pop_front();
            self.first += 1;
        }
    }

    /// Whether `seq` is outstanding.
    fn contains(&self, seq: u64) -> bool {
        self.index(seq)
            .and_then(|at| self.flags.get(at))
            .is_some_and(|flag| *flag)
    }

    /// Where `seq`'s flag would be in `flags`, if not before the window.
    fn index(&self, seq: u64) -> Option<usize> {
        seq.checked_sub(self.first)
            .and_then(|at| usize::try_from(at).ok())
    }

    /// The oldest outstanding number.
    fn first(&self) -> Option<u64> {
        (!self.flags.is_empty()).then_some(self.first)
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Records taken by one flush.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    seqs: Vec<u64>,
    records: Vec<TaskRecord>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub(crate) fn records(&self) -> &[TaskRecord] {
        &self.records
    }
}

impl Unsaved {
    /// Queues a record; returns its number.
    pub(crate) fn push(&mut self, record: TaskRecord) -> u64 {
        self.queued += 1;
        self.outstanding.push(self.queued);
        self.queue.push((self.queued, record));
        self.queued
    }

    /// Records not committed yet, queued or being written: what bounds the memory they hold.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// The number of the last record queued.
    pub(crate) fn queued(&self) -> u64 {
        self.queued
    }

    /// Every record numbered up to this is committed.
    pub(crate) fn committed_through(&self) -> u64 {
        self.outstanding
            .first()
            .map_or(self.queued, |first| first - 1)
    }

    /// Whether record number `seq` was queued and is committed.
    pub(crate) fn is_committed(&self, seq: u64) -> bool {
        seq <= self.queued && !self.outstanding.contains(seq)
    }

    /// Takes every queued record whose task has no write in flight.
    pub(crate) fn take(&mut self) -> Batch {
        if self.queue.is_empty() {
            return Batch::default();
        }
        let mut batch = Batch {
            seqs: Vec::with_capacity(self.queue.len()),
            records: Vec::with_capacity(self.queue.len()),
        };
        let mut held = Vec::new();
        let mut taken_ids = IdSet::with_capacity_and_hasher(self.queue.len(), Default::default());
        for (seq, record) in std::mem::take(&mut self.queue) {
            let id = record.task_id;
            if self.in_flight.contains(&id) {
                held.push((seq, record));
            } else {
                taken_ids.insert(id);
                batch.seqs.push(seq);
                batch.records.push(record);
            }
        }
        self.in_flight.extend(taken_ids);
        self.queue = held;
        batch
    }

    /// A batch was committed.
    pub(crate) fn committed(&mut self, batch: Batch) {
        for seq in &batch.seqs {
            self.outstanding.remove(*seq);
        }
        for record in &batch.records {
            self.in_flight.remove(&record.task_id);
        }
    }

    /// A batch failed: its records go back to the front of the queue, in order.
    pub(crate) fn failed(&mut self, batch: Batch) {
        for record in &batch.records {
            self.in_flight.remove(&record.task_id);
        }
        let newer = std::mem::take(&mut self.queue);
        self.queue = batch.seqs.into_iter().zip(batch.records).collect();
        self.queue.extend(newer);
        self.queue.sort_by_key(|(seq, _)| *seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{TaskId, TaskStatus};

    fn record(id: TaskId, status: TaskStatus) -> TaskRecord {
        let mut record = TaskRecord::pending(id, "t", "me");
        record.status = status;
        record
    }

    #[test]
    fn a_task_never_has_two_writes_in_flight() {
        let (a, b) = (TaskId::new(), TaskId::new());
        let mut unsaved = Unsaved::default();
        unsaved.push(record(a, TaskStatus::Pending));
        let first = unsaved.take();
        unsaved.push(record(a, TaskStatus::Running));
        unsaved.push(record(b, TaskStatus::Running));
        let second = unsaved.take();
        assert_eq!(unsaved.outstanding(), 3, "in flight still counts");
        assert_eq!(
            second
                .records()
                .iter()
                .map(|r| r.task_id)
                .collect::<Vec<_>>(),
            [b],
            "a's newer state waits for its older one"
        );
        assert_eq!(unsaved.committed_through(), 0);
        unsaved.committed(second);
        assert_eq!(
            unsaved.committed_through(),
            0,
            "record 1 is still in flight"
        );
        unsaved.committed(first);
        assert_eq!(unsaved.committed_through(), 1);
        let third = unsaved.take();
        assert_eq!(third.records()[0].status, TaskStatus::Running);
        unsaved.committed(third);
        assert_eq!(unsaved.committed_through(), 3);
        assert_eq!(unsaved.outstanding(), 0);
    }

    #[test]
    fn a_record_is_committed_before_older_ones_in_flight() {
        let (a, b) = (TaskId::new(), TaskId::new());
        let mut unsaved = Unsaved::default();
        unsaved.push(record(a, TaskStatus::Pending));
        let first = unsaved.take();
        unsaved.push(record(b, TaskStatus::Running));
        let second = unsaved.take();
        unsaved.committed(second);
        assert!(unsaved.is_committed(2));
        assert!(!unsaved.is_committed(1), "still in flight");
        assert!(!unsaved.is_committed(3), "never queued");
        assert_eq!(unsaved.committed_through(), 0);
        unsaved.committed(first);
        assert!(unsaved.is_committed(1));
    }

    #[test]
    fn outstanding_numbers_leave_in_any_order() {
        let mut outstanding = Outstanding::default();
        assert_eq!(outstanding.first(), None);
        for seq in 1..=5 {
            outstanding.push(seq);
        }
        outstanding.remove(3);
        outstanding.remove(3);
        outstanding.remove(9);
        assert_eq!((outstanding.first(), outstanding.len()), (Some(1), 4));
        outstanding.remove(1);
        outstanding.remove(2);
        assert_eq!((outstanding.first(), outstanding.len()), (Some(4), 2));
        outstanding.remove(5);
        outstanding.remove(4);
        assert_eq!((outstanding.first(), outstanding.len()), (None, 0));
        outstanding.push(6);
        assert_eq!((outstanding.first(), outstanding.len()), (Some(6), 1));
    }

    #[test]
    fn a_failed_batch_goes_back_in_order() {
        let (a, b) = (TaskId::new(), TaskId::new());
        let mut unsaved = Unsaved::default();
        unsaved.push(record(a, TaskStatus::Running));
        let batch = unsaved.take();
        unsaved.push(record(b, TaskStatus::Running));
        unsaved.failed(batch);
        let retry = unsaved.take();
        assert_eq!(
            retry
                .records()
                .iter()
                .map(|r| r.task_id)
                .collect::<Vec<_>>(),
            [a, b]
        );
        assert_eq!(unsaved.committed_through(), 0);
        unsaved.committed(retry);
        assert_eq!(unsaved.committed_through(), 2);
    }
}
