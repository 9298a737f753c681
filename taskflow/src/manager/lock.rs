//! The lock around the manager's [`State`], and what is done after a lock is released: letting
//! go of the cells evicted from the window happens outside the state lock, and waking callers of
//! `wait` outside the cell their record came from, so the threads finishing and enqueueing tasks
//! hold locks for less time.

use std::ops::{Deref, DerefMut};

use tokio::sync::oneshot;

use super::State;
use super::cell::Cell;
use super::spare;
use crate::few::Few;

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

/// What a section under the state lock leaves to do once the lock is released: letting go of the
/// cells evicted from the window (their records are cold by then), each kept for reuse when no
/// one else holds it ([`spare::keep`]). Done when dropped.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Each evicted record's handles: the eviction queue's and, unless the record was replaced
    /// since it finished, the window's (most often the same cell).
    evicted: Few<(Cell, Option<Cell>)>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.evicted.is_empty()
    }

    /// Lets go of the handles `finished` and `held` of an evicted record once the lock is
    /// released.
    pub(crate) fn free(&mut self, finished: Cell, held: Option<Cell>) {
        self.evicted.push((finished, held));
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        for (finished, held) in std::mem::take(&mut self.evicted) {
            match held {
                // Most often the same cell: only the last handle let go can keep it.
                Some(held) => {
                    drop(finished);
                    spare::keep(held);
                }
                None => spare::keep(finished),
            }
        }
    }
}

/// Callers of `wait` to wake, woken when dropped: drop it after unlocking the cell their task
/// concluded in, so that a woken caller, which reads the final record from that cell, does not
/// wait for the lock.
#[must_use = "callers of `wait` are woken when dropped, after the cell is unlocked"]
pub(crate) struct Waiters(Few<oneshot::Sender<()>>);

impl Waiters {
    /// Wakes each of `waiters` when dropped.
    pub(crate) fn new(waiters: Few<oneshot::Sender<()>>) -> Self {
        Self(waiters)
    }
}

impl Drop for Waiters {
    fn drop(&mut self) {
        for waiter in std::mem::take(&mut self.0) {
            // An error means the caller stopped waiting: nothing to do.
            let _ = waiter.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_are_woken_when_dropped() {
        let (sender, mut receiver) = oneshot::channel();
        let waiters = Waiters::new(Few::one(sender));
        assert!(
            receiver.try_recv().is_err(),
            "no one is woken before the drop"
        );
        drop(waiters);
        assert_eq!(receiver.try_recv().ok(), Some(()));
    }
}
