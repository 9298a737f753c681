//! The error type of the manager's operations.

use crate::task::{TaskId, TaskStatus};

/// What can go wrong when enqueueing, querying or controlling tasks.
///
/// # Examples
///
/// ```
/// let err = taskflow::Error::QueueFull { queue: "mail".into(), max_size: 10 };
/// assert_eq!(err.to_string(), "queue `mail` is full (10 pending tasks); the task was rejected");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task's queue already holds its maximum of pending tasks; the task is recorded as
    /// `rejected`.
    #[error("queue `{queue}` is full ({max_size} pending tasks); the task was rejected")]
    QueueFull {
        /// The queue's name.
        queue: String,
        /// Its configured maximum.
        max_size: usize,
    },
    /// The manager is shutting down and accepts no new work.
    #[error("the task manager is shutting down and accepts no new tasks")]
    ShuttingDown,
    /// No task with this id is known.
    #[error("task `{0}` not found")]
    NotFound(TaskId),
    /// The action is not allowed in the task's current state.
    #[error("cannot {action} task `{id}`: it is {status}")]
    InvalidState {
        /// The task.
        id: TaskId,
        /// Its state.
        status: TaskStatus,
        /// What was asked (`cancel`, `retry`).
        action: &'static str,
    },
    /// The task runs synchronously on the blocking pool, which cannot be interrupted.
    #[error(
        "cannot cancel task `{0}`: it is running synchronously on the blocking pool and cannot be stopped"
    )]
    CannotCancelBlocking(TaskId),
    /// The task was started with `spawn` and has no arguments to run again.
    #[error("cannot retry task `{0}`: it was started with `spawn` and has no stored arguments")]
    NotRetryable(TaskId),
    /// No task of this name is registered.
    #[error("unknown task `{name}`; registered: {registered}")]
    UnknownTask {
        /// The missing name.
        name: String,
        /// The registered names, comma-separated.
        registered: String,
    },
    /// Two declarations share one task name.
    #[error(
        "task name `{name}` is declared twice: in {first} and in {second}; pin distinct names with `#[taskflow::task(name = \"…\")]`"
    )]
    DuplicateTask {
        /// The shared name.
        name: String,
        /// The first declaration.
        first: String,
        /// The second declaration.
        second: String,
    },
    /// The task's arguments could not be encoded or decoded as JSON.
    #[error("arguments of task `{name}` could not be encoded or decoded: {source}")]
    Arguments {
        /// The task's name.
        name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// Another instance runs the task; act on it there.
    #[error("task `{id}` is run by instance `{instance}`; cancel it there")]
    NotOwned {
        /// The task.
        id: TaskId,
        /// The instance that owns it.
        instance: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
