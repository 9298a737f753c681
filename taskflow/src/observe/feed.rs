//! [`EventFeed`]: the bounded broadcast of task events, which builds no event while nobody has
//! subscribed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::broadcast;

use super::TaskEvent;

/// The manager's event feed: observers and dashboard streams subscribe to it; every state
/// change and log entry is published to it.
pub(crate) struct EventFeed {
    sender: broadcast::Sender<Arc<TaskEvent>>,
    /// Set by the first subscription. Until then publishing is one load of this flag instead of
    /// the channel's receiver count, which takes a lock shared by every thread that publishes.
    subscribed: AtomicBool,
}

impl EventFeed {
    /// A feed whose subscribers each lag by at most `capacity` events.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
            subscribed: AtomicBool::new(false),
        }
    }

    /// A new subscriber, receiving the events published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<TaskEvent>> {
        self.subscribed.store(true, Ordering::Relaxed);
        self.sender.subscribe()
    }

    /// Publishes the event `event` builds, when anyone listens; never waits.
    pub(crate) fn publish(&self, event: impl FnOnce() -> TaskEvent) {
        if self.subscribed.load(Ordering::Relaxed) && self.sender.receiver_count() > 0 {
            // Every receiver may have gone since the count: then nobody misses the event.
            let _ = self.sender.send(Arc::new(event()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::LifecycleEvent;
    use crate::task::{TaskId, TaskRecord};

    fn event() -> TaskEvent {
        TaskEvent::Lifecycle(LifecycleEvent::of(&TaskRecord::pending(
            TaskId::new(),
            "a",
            "test",
        )))
    }

    #[test]
    fn builds_events_only_for_subscribers() {
        let feed = EventFeed::new(8);
        let mut built = 0;
        feed.publish(|| {
            built += 1;
            event()
        });
        assert_eq!(built, 0, "nobody subscribed");
        let mut receiver = feed.subscribe();
        feed.publish(|| {
            built += 1;
            event()
        });
        assert_eq!(built, 1);
        assert!(receiver.try_recv().is_ok());
        drop(receiver);
        feed.publish(|| {
            built += 1;
            event()
        });
        assert_eq!(built, 1, "the only subscriber left");
    }
}
