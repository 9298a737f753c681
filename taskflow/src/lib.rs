//! Production-ready background tasks for axum.
#![doc = include_str!("../docs/crate.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "admin")]
pub mod admin;
mod blocking;
mod clock;
mod context;
mod dispatch;
mod error;
mod executor;
mod few;
mod history;
mod id;
mod json_text;
mod manager;
mod observe;
mod registry;
mod shared_str;
pub mod store;
mod tags;
mod task;

#[doc(hidden)]
pub mod __private;

/// Guide: observers, log files, tracing from request to task, OpenTelemetry, Prometheus.
#[doc = include_str!("../docs/observability.md")]
pub mod observability {}

#[cfg(feature = "admin")]
pub use admin::{TaskAdmin, Tasks};
pub use context::{TaskContext, TaskLogLayer};
pub use dispatch::{QueueConfig, QueueStats};
pub use error::{Error, Result};
pub use history::{ListPage, Metrics, NameStats, TaskFilter};
pub use id::TaskId;
pub use json_text::JsonText;
pub use manager::{AddBuilder, AddFuture, TaskManager, TaskManagerBuilder};
pub use observe::{
    FileLogger, FileLoggerBuilder, InMemoryLogger, LifecycleEvent, LogEvent, LogFormat,
    ObserverFuture, ObserverStats, StdoutLogger, TaskEvent, TaskObserver,
};
pub use registry::{Registration, Registry};
pub use shared_str::SharedStr;
pub use tags::{Tags, TagsIter};
pub use task::{
    IntoTaskResult, LogEntry, LogLevel, ParseStatusError, Permanent, Task, TaskFailure,
    TaskOptions, TaskRecord, TaskResult, TaskRun, TaskStatus,
};
/// Declares a function as a task; see the [crate docs](crate#declaring-tasks).
pub use taskflow_macros::task;
