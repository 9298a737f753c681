//! [`InMemoryLogger`]: keeps the latest events in memory, with helpers to assert on them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::event::{LifecycleEvent, LogEvent, TaskEvent};
use super::observer::{ObserverFuture, TaskObserver};
use crate::task::{LogLevel, TaskId, TaskStatus};

/// Keeps the latest task events in memory (bounded), for tests and debugging.
///
/// Cheap to clone: clones share the events, so keep one clone and register the other.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use std::time::Duration;
/// use taskflow::{InMemoryLogger, TaskManager, TaskStatus};
///
/// let logger = InMemoryLogger::new();
/// let manager = TaskManager::builder().observer(logger.clone()).build().await?;
/// let id = manager
///     .spawn("remembered", async { taskflow::task_log!(warn, "careful") })
///     .await?;
/// let done = logger
///     .wait_for_status(id, TaskStatus::Success, Duration::from_secs(5))
///     .await
///     .expect("finishes in time");
/// assert_eq!(done.attempt, 1);
/// assert_eq!(
///     logger.statuses_for(id),
///     [TaskStatus::Pending, TaskStatus::Running, TaskStatus::Success]
/// );
/// assert_eq!(logger.logs_for(id)[0].message, "careful");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct InMemoryLogger {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    events: parking_lot::Mutex<VecDeque<Arc<TaskEvent>>>,
    capacity: usize,
    min_level: LogLevel,
    added: Notify,
}

impl Default for InMemoryLogger {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryLogger {
    /// A logger keeping the latest 10,000 events of every level.
    ///
    /// # Examples
    ///
    /// See [`InMemoryLogger`].
    pub fn new() -> Self {
        Self::with_capacity(10_000)
    }

    /// A logger keeping the latest `capacity` events (at least 1); older ones are forgotten.
    ///
    /// # Examples
    ///
    /// ```
    /// let logger = taskflow::InMemoryLogger::with_capacity(100);
    /// assert!(logger.is_empty());
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self::build(capacity, LogLevel::Trace)
    }

    /// Ignores task log entries below `level`.
    ///
    /// # Examples
    ///
    /// ```
    /// let logger = taskflow::InMemoryLogger::new().min_level(taskflow::LogLevel::Warn);
    /// ```
    pub fn min_level(self, level: LogLevel) -> Self {
        Self::build(self.shared.capacity, level)
    }

    fn build(capacity: usize, min_level: LogLevel) -> Self {
        let capacity = capacity.max(1);
        Self {
            shared: Arc::new(Shared {
                events: parking_lot::Mutex::new(VecDeque::with_capacity(capacity.min(1_024))),
                capacity,
                min_level,
                added: Notify::new(),
            }),
        }
    }

    /// Every event kept, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(taskflow::InMemoryLogger::new().events().is_empty());
    /// ```
    pub fn events(&self) -> Vec<TaskEvent> {
        self.select(|_| true)
    }

    /// The events of task `id`, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// let logger = taskflow::InMemoryLogger::new();
    /// assert!(logger.events_for(taskflow::TaskId::new()).is_empty());
    /// ```
    pub fn events_for(&self, id: TaskId) -> Vec<TaskEvent> {
        self.select(|e| e.task_id() == id)
    }

    /// The state changes of task `id`, oldest first.
    ///
    /// # Examples
    ///
    /// See [`InMemoryLogger`].
    pub fn lifecycle_for(&self, id: TaskId) -> Vec<LifecycleEvent> {
        self.select(|e| e.task_id() == id)
            .into_iter()
            .filter_map(|e| match e {
                TaskEvent::Lifecycle(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// The states task `id` went through, oldest first.
    ///
    /// # Examples
    ///
    /// See [`InMemoryLogger`].
    pub fn statuses_for(&self, id: TaskId) -> Vec<TaskStatus> {
        self.lifecycle_for(id)
            .into_iter()
            .map(|e| e.status)
            .collect()
    }

    /// The log entries of task `id`, oldest first.
    ///
    /// # Examples
    ///
    /// See [`InMemoryLogger`].
    pub fn logs_for(&self, id: TaskId) -> Vec<LogEvent> {
        self.select(|e| e.task_id() == id)
            .into_iter()
            .filter_map(|e| match e {
                TaskEvent::Log(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// Waits until an event matching `predicate` has been received (already or within
    /// `timeout`) and returns the first such event; `None` when the time runs out.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// use std::time::Duration;
    /// use taskflow::TaskEvent;
    ///
    /// let logger = taskflow::InMemoryLogger::new();
    /// let manager = taskflow::TaskManager::builder().observer(logger.clone()).build().await?;
    /// manager.spawn("awaited", async { taskflow::task_log!("step 1") }).await?;
    /// let step = logger
    ///     .wait_for(
    ///         |e| matches!(e, TaskEvent::Log(log) if log.message == "step 1"),
    ///         Duration::from_secs(5),
    ///     )
    ///     .await;
    /// assert!(step.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for(
        &self,
        predicate: impl Fn(&TaskEvent) -> bool,
        timeout: Duration,
    ) -> Option<TaskEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let added = self.shared.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(found) = self.find(&predicate) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return self.find(&predicate);
            }
        }
    }

    /// Waits until task `id` reaches `status` (already or within `timeout`); returns that
    /// event, `None` when the time runs out.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops waiting.
    ///
    /// # Examples
    ///
    /// See [`InMemoryLogger`].
    pub async fn wait_for_status(
        &self,
        id: TaskId,
        status: TaskStatus,
        timeout: Duration,
    ) -> Option<LifecycleEvent> {
        let found = self
            .wait_for(
                |e| matches!(e, TaskEvent::Lifecycle(l) if l.task_id == id && l.status == status),
                timeout,
            )
            .await;
        match found {
            Some(TaskEvent::Lifecycle(event)) => Some(event),
            _ => None,
        }
    }

    /// How many events are kept.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::InMemoryLogger::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.shared.events.lock().len()
    }

    /// Whether no event is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(taskflow::InMemoryLogger::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every event kept.
    ///
    /// # Examples
    ///
    /// ```
    /// let logger = taskflow::InMemoryLogger::new();
    /// logger.clear();
    /// assert!(logger.is_empty());
    /// ```
    pub fn clear(&self) {
        self.shared.events.lock().clear();
    }

    fn select(&self, keep: impl Fn(&TaskEvent) -> bool) -> Vec<TaskEvent> {
        self.shared
            .events
            .lock()
            .iter()
            .filter(|e| keep(e))
            .map(|e| TaskEvent::clone(e))
            .collect()
    }

    fn find(&self, predicate: impl Fn(&TaskEvent) -> bool) -> Option<TaskEvent> {
        self.shared
            .events
            .lock()
            .iter()
            .find(|e| predicate(e))
            .map(|e| TaskEvent::clone(e))
    }
}

impl TaskObserver for InMemoryLogger {
    fn on_event(&self, event: Arc<TaskEvent>) -> ObserverFuture<'_> {
        {
            let mut events = self.shared.events.lock();
            if events.len() == self.shared.capacity {
                events.pop_front();
            }
            events.push_back(event);
        }
        self.shared.added.notify_waiters();
        Box::pin(std::future::ready(()))
    }

    fn min_level(&self) -> LogLevel {
        self.shared.min_level
    }
}
