//! The events: a [`LifecycleEvent`] for every state change and a [`LogEvent`] for every task log
//! entry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::shared_str::SharedStr;
use crate::tags::Tags;
use crate::task::{LogEntry, LogLevel, TaskId, TaskRecord, TaskStatus};

/// One event of the feed.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use taskflow::{TaskEvent, TaskStatus};
/// let manager = taskflow::TaskManager::builder().build().await?;
/// let mut events = manager.subscribe();
/// let id = manager.spawn("hello", async {}).await?;
/// manager.wait(id).await?;
/// let mut seen = Vec::new();
/// while let Ok(event) = events.try_recv() {
///     if let TaskEvent::Lifecycle(e) = event.as_ref() {
///         seen.push(e.status);
///     }
/// }
/// assert_eq!(seen, [TaskStatus::Pending, TaskStatus::Running, TaskStatus::Success]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum TaskEvent {
    /// A task changed state.
    Lifecycle(LifecycleEvent),
    /// A task wrote a log entry.
    Log(LogEvent),
}

impl TaskEvent {
    /// The task the event is about.
    ///
    /// # Examples
    ///
    /// See [`TaskEvent`].
    pub fn task_id(&self) -> TaskId {
        match self {
            Self::Lifecycle(e) => e.task_id,
            Self::Log(e) => e.task_id,
        }
    }
}

/// A task's state change.
///
/// # Examples
///
/// See [`TaskEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LifecycleEvent {
    /// The task.
    pub task_id: TaskId,
    /// Its name.
    pub name: SharedStr,
    /// Its new state.
    pub status: TaskStatus,
    /// When it changed.
    pub time: DateTime<Utc>,
    /// The attempt (0 before the first).
    pub attempt: u32,
    /// Retries used so far.
    pub retries_used: u32,
    /// Seconds from first start to finish, once finished.
    pub duration: Option<f64>,
    /// The last error.
    pub error: Option<String>,
    /// The last panic's stack trace.
    pub stacktrace: Option<String>,
    /// Its tags.
    pub tags: Tags,
    /// Its queue.
    pub queue: SharedStr,
}

impl LifecycleEvent {
    pub(crate) fn of(record: &TaskRecord) -> Self {
        Self {
            task_id: record.task_id,
            name: record.func_name.clone(),
            status: record.status,
            time: Utc::now(),
            attempt: record.attempt,
            retries_used: record.retries_used,
            duration: record.duration,
            error: record.error.clone(),
            stacktrace: record.stacktrace.clone(),
            tags: record.tags.clone(),
            queue: record.queue.clone(),
        }
    }
}

/// A task's log entry.
///
/// # Examples
///
/// See [`TaskEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogEvent {
    /// The task.
    pub task_id: TaskId,
    /// Its name.
    pub name: SharedStr,
    /// The entry's level.
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// Key/value fields.
    pub fields: Map<String, Value>,
    /// The attempt that wrote it.
    pub attempt: u32,
    /// The task's tags.
    pub tags: Tags,
    /// When it was written.
    pub time: DateTime<Utc>,
}

impl LogEvent {
    pub(crate) fn of(record: &TaskRecord, entry: &LogEntry) -> Self {
        Self {
            task_id: record.task_id,
            name: record.func_name.clone(),
            level: entry.level,
            message: entry.message.clone(),
            fields: entry.fields.clone(),
            attempt: record.attempt,
            tags: record.tags.clone(),
            time: entry.timestamp,
        }
    }
}
