//! The lock around the manager's [`State`], and what is done after it is released: waking
//! callers of `wait` and freeing records evicted from the window happen outside the lock, so
//! the threads finishing and enqueueing tasks hold it for less time.

use std::ops::{Deref, DerefMut};

use tokio::sync::oneshot;

use super::{Live, State};
use crate::few::Few;
use crate::history::Entry;
use crate::task::TaskRecord;

/// A mutex around [`State`] whose guard delivers the state's [`Outbox`] once it unlocks.
///
/// The standard library's futex-based mutex: under the contention of two threads enqueueing and
/// finishing tasks it ran the in-memory benchmark 10–20% faster than `parking_lot`'s, which
/// spins through `sched_yield` before it parks (BENCHMARKS.md).
pub(crate) struct StateLock(std::sync::Mutex<State>);

impl StateLock {
    pub(crate) fn new(state: State) -> Self {
        Self(std::sync::Mutex::new(state))
    }

    /// Locks the state; never hold the guard across an `.await`. A panic while the lock was
    /// held (a bug in taskflow) does not poison it for every later call: the state is used as
    /// that panic left it, as with `parking_lot`.
    pub(crate) fn lock(&self) -> StateGuard<'_> {
        StateGuard {
            state: self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            outbox: None,
        }
    }
}

/// The locked state. On drop it takes the state's outbox, releases the lock, then delivers it.
pub(crate) struct StateGuard<'a> {
    state: std::sync::MutexGuard<'a, State>,
    /// Declared after `state`, so dropped (delivered) after the lock is released.
    outbox: Option<Outbox>,
}

impl Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        if !self.state.outbox.is_empty() {
            self.outbox = Some(std::mem::take(&mut self.state.outbox));
        }
    }
}

/// What a locked section leaves to do once the lock is released. Delivered when dropped.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Final records for callers of `wait` (in a `Vec`, so that the outbox, taken out of the
    /// state at every unlock, stays small).
    replies: Vec<(oneshot::Sender<TaskRecord>, TaskRecord)>,
    /// Records evicted from the window, freed here.
    evicted: Few<Box<Entry<Live>>>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.replies.is_empty() && self.evicted.is_empty()
    }

    /// Sends `record` to `waiter` once the lock is released.
    pub(crate) fn reply(&mut self, waiter: oneshot::Sender<TaskRecord>, record: TaskRecord) {
        self.replies.push((waiter, record));
    }

    /// Frees `record` once the lock is released.
    pub(crate) fn free(&mut self, entry: Box<Entry<Live>>) {
        self.evicted.push(entry);
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.replies.is_empty() {
            return;
        }
        for (waiter, record) in std::mem::take(&mut self.replies) {
            // An error means the caller stopped waiting: nothing to do.
            let _ = waiter.send(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskId;

    #[test]
    fn an_outbox_delivers_when_dropped() {
        let (sender, mut receiver) = oneshot::channel();
        let record = TaskRecord::pending(TaskId::new(), "a", "test");
        let mut outbox = Outbox::default();
        outbox.reply(sender, record.clone());
        outbox.free(Entry::new(record.clone(), None));
        assert!(
            receiver.try_recv().is_err(),
            "nothing is sent before the drop"
        );
        drop(outbox);
        assert_eq!(receiver.try_recv().ok(), Some(record));
    }
}
