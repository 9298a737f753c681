//! Observability: task events, observers that ship them somewhere, and the tracing glue.
//!
//! Events — a [`LifecycleEvent`] for every state change and a [`LogEvent`] for every task log
//! entry — are published on a bounded broadcast feed ([`TaskManager::subscribe`]). Publishing
//! never waits: a subscriber that falls behind by more than the feed's capacity skips the oldest
//! events and is told how many it missed (`RecvError::Lagged`).
//!
//! [`TaskObserver`]s registered on the builder each get their own subscription and worker task,
//! so a slow or panicking observer never delays a task or another observer. Built in:
//! [`FileLogger`], [`StdoutLogger`] and [`InMemoryLogger`]; with the `prometheus` feature a
//! metrics observer behind `TaskManager::prometheus_metrics`; with the `opentelemetry`
//! feature the W3C trace context of the enqueuing span is stored with each task.
//!
//! [`TaskManager::subscribe`]: crate::TaskManager::subscribe

mod event;
mod feed;
mod file;
mod format;
mod memory;
mod observer;
#[cfg(feature = "opentelemetry")]
mod otel;
#[cfg(feature = "prometheus")]
pub(crate) mod prometheus;
mod stdout;
mod writer;

pub use event::{LifecycleEvent, LogEvent, TaskEvent};
pub use file::{FileLogger, FileLoggerBuilder};
pub use format::LogFormat;
pub use memory::InMemoryLogger;
pub use observer::{ObserverFuture, ObserverStats, TaskObserver};
pub use stdout::StdoutLogger;

pub(crate) use feed::EventFeed;
pub(crate) use observer::{ObserverSet, Observers};

use crate::manager::Inner;
use crate::task::TaskId;

/// The W3C `traceparent` of the current span's OpenTelemetry context, to store with a task at
/// enqueue; `None` without the `opentelemetry` feature or outside a sampled trace.
pub(crate) fn trace_parent() -> Option<String> {
    #[cfg(feature = "opentelemetry")]
    {
        otel::current_trace_parent()
    }
    #[cfg(not(feature = "opentelemetry"))]
    {
        None
    }
}

/// Makes the trace stored with task `id` (its `trace_parent`) the OpenTelemetry parent of `span`,
/// the span of one of its attempts. Call with no lock held. Does nothing without the
/// `opentelemetry` feature.
pub(crate) fn continue_trace(span: &tracing::Span, inner: &Inner, id: TaskId) {
    #[cfg(feature = "opentelemetry")]
    {
        if span.is_disabled() {
            return;
        }
        let stored = inner
            .cell(id)
            .and_then(|cell| cell.lock().record.trace_parent.clone());
        if let Some(trace_parent) = stored {
            otel::set_parent(span, &trace_parent);
        }
    }
    #[cfg(not(feature = "opentelemetry"))]
    {
        let _ = (span, inner, id);
    }
}
