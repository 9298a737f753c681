//! The [`TaskObserver`] trait and the dispatch that feeds each observer from the event feed on
//! its own worker task.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event::TaskEvent;
use super::file::FileLogger;
use crate::error::{Error, Result};
use crate::manager::TaskManager;
use crate::task::LogLevel;

/// How long shutdown waits for observers to drain their queues and flush.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The future an observer returns for one event.
pub type ObserverFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Receives task events: lifecycle changes and task log entries.
///
/// Each observer registered with [`TaskManagerBuilder::observer`] runs on its own worker task
/// with its own bounded queue (its subscription to the event feed, of
/// [`event_capacity`](crate::TaskManagerBuilder::event_capacity) events). A slow observer only
/// falls behind itself: when its queue overflows the oldest events are dropped and counted
/// ([`TaskManager::observer_stats`]). A panic in `on_event` is caught and counted; the observer
/// keeps receiving the next events. Neither ever delays a task or another observer.
///
/// Events are delivered one at a time, in the order they were published. At
/// [`shutdown`](TaskManager::shutdown) each observer receives what is still queued (within 5 s)
/// and then [`flush`](Self::flush).
///
/// [`TaskManagerBuilder::observer`]: crate::TaskManagerBuilder::observer
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use taskflow::{LogLevel, ObserverFuture, TaskEvent, TaskObserver};
///
/// /// Counts failures, e.g. to page someone.
/// struct FailureCounter(Arc<AtomicUsize>);
///
/// impl TaskObserver for FailureCounter {
///     fn on_event(&self, event: Arc<TaskEvent>) -> ObserverFuture<'_> {
///         Box::pin(async move {
///             if let TaskEvent::Lifecycle(e) = event.as_ref()
///                 && e.status == taskflow::TaskStatus::Failed
///             {
///                 self.0.fetch_add(1, Ordering::Relaxed);
///             }
///         })
///     }
///
///     fn min_level(&self) -> LogLevel {
///         LogLevel::Error // only error log entries (lifecycle events always come)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// let failures = Arc::new(AtomicUsize::new(0));
/// let manager = taskflow::TaskManager::builder()
///     .observer(FailureCounter(failures.clone()))
///     .build()
///     .await?;
/// let id = manager.spawn("observed-failure", async { Err::<(), _>("boom") }).await?;
/// manager.wait(id).await?;
/// manager.shutdown().await?; // drains and flushes the observers
/// assert_eq!(failures.load(Ordering::Relaxed), 1);
/// # Ok(())
/// # }
/// ```
pub trait TaskObserver: Send + Sync + 'static {
    /// Handles one event. Runs on the observer's own worker task: it may await (a slow
    /// observer only delays itself), but should not block the thread.
    fn on_event(&self, event: Arc<TaskEvent>) -> ObserverFuture<'_>;

    /// Log events below this level are not delivered (default: all). Lifecycle events are
    /// always delivered.
    ///
    /// # Examples
    ///
    /// See [`TaskObserver`].
    fn min_level(&self) -> LogLevel {
        LogLevel::Trace
    }

    /// Writes out anything buffered; called once at shutdown, after the last event.
    ///
    /// # Examples
    ///
    /// See [`FileLogger`].
    fn flush(&self) -> ObserverFuture<'_> {
        Box::pin(std::future::ready(()))
    }

    /// The name shown in [`ObserverStats`] (default: the type's name).
    ///
    /// # Examples
    ///
    /// See [`ObserverStats`].
    fn name(&self) -> String {
        let full = std::any::type_name::<Self>();
        let path = full.split('<').next().unwrap_or(full);
        path.rsplit("::").next().unwrap_or(path).to_owned()
    }
}

/// Delivery counters of one observer.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// let logger = taskflow::InMemoryLogger::new();
/// let manager = taskflow::TaskManager::builder().observer(logger.clone()).build().await?;
/// manager.wait(manager.spawn("counted", async {}).await?).await?;
/// manager.shutdown().await?;
/// let stats = manager.observer_stats();
/// let memory = stats.iter().find(|s| s.name == "InMemoryLogger").expect("registered");
/// assert_eq!(memory.delivered, 3); // pending, running, success
/// assert_eq!((memory.dropped, memory.panics), (0, 0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObserverStats {
    /// The observer's [`name`](TaskObserver::name).
    pub name: String,
    /// Events handed to it (log events under its `min_level` are not counted).
    pub delivered: u64,
    /// Events it missed because its queue was full.
    pub dropped: u64,
    /// Events whose handling panicked.
    pub panics: u64,
}

/// The observers configured on the builder, and the `log_file` shorthand.
#[derive(Default)]
pub(crate) struct ObserverSet {
    observers: Vec<Arc<dyn TaskObserver>>,
    log_file: Option<PathBuf>,
}

impl ObserverSet {
    pub(crate) fn push(&mut self, observer: impl TaskObserver) {
        self.observers.push(Arc::new(observer));
    }

    pub(crate) fn log_file(&mut self, path: PathBuf) {
        self.log_file = Some(path);
    }
}

impl fmt::Debug for ObserverSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserverSet")
            .field(
                "observers",
                &self.observers.iter().map(|o| o.name()).collect::<Vec<_>>(),
            )
            .field("log_file", &self.log_file)
            .finish()
    }
}

/// One observer's counters, shared with its worker.
#[derive(Debug)]
struct Counters {
    name: String,
    delivered: AtomicU64,
    dropped: AtomicU64,
    panics: AtomicU64,
}

/// The running observers of a manager: their counters and a way to drain and stop them.
pub(crate) struct Observers {
    counters: Vec<Arc<Counters>>,
    closing: CancellationToken,
    tracker: TaskTracker,
    #[cfg(feature = "prometheus")]
    pub(crate) prometheus: Arc<super::prometheus::PrometheusObserver>,
}

impl Observers {
    /// Opens the `log_file`, subscribes every observer to `events` and starts their workers.
    pub(crate) fn start(
        set: ObserverSet,
        events: &super::EventFeed,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self> {
        let mut observers = set.observers;
        if let Some(path) = set.log_file {
            let logger = FileLogger::new(&path).map_err(|e| Error::Config(e.to_string()))?;
            observers.push(Arc::new(logger));
        }
        #[cfg(feature = "prometheus")]
        let prometheus = Arc::new(super::prometheus::PrometheusObserver::new());
        #[cfg(feature = "prometheus")]
        observers.push(prometheus.clone());

        let closing = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut counters = Vec::with_capacity(observers.len());
        for observer in observers {
            let entry = Arc::new(Counters {
                name: observer.name(),
                delivered: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                panics: AtomicU64::new(0),
            });
            counters.push(Arc::clone(&entry));
            let worker = run(observer, entry, events.subscribe(), closing.clone());
            tracker.spawn_on(worker, runtime);
        }
        tracker.close();
        Ok(Self {
            counters,
            closing,
            tracker,
            #[cfg(feature = "prometheus")]
            prometheus,
        })
    }

    /// The counters of every observer, in registration order.
    pub(crate) fn stats(&self) -> Vec<ObserverStats> {
        self.counters
            .iter()
            .map(|c| ObserverStats {
                name: c.name.clone(),
                delivered: c.delivered.load(Ordering::Relaxed),
                dropped: c.dropped.load(Ordering::Relaxed),
                panics: c.panics.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Lets every observer take what is queued, flushes it and stops its worker; waits at most
    /// 5 s in all.
    pub(crate) async fn close(&self) {
        self.closing.cancel();
        if tokio::time::timeout(CLOSE_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                target: "taskflow::observe",
                "observers did not drain within {CLOSE_TIMEOUT:?}; their remaining events are dropped"
            );
        }
    }

    /// Counts a failed store operation (exposed as `taskflow_store_errors_total`).
    pub(crate) fn store_error(&self) {
        #[cfg(feature = "prometheus")]
        self.prometheus.store_error();
    }
}

/// One observer's worker: receives from its own subscription until closing (then takes what is
/// still queued) or until the feed closes, then flushes.
async fn run(
    observer: Arc<dyn TaskObserver>,
    counters: Arc<Counters>,
    mut events: broadcast::Receiver<Arc<TaskEvent>>,
    closing: CancellationToken,
) {
    loop {
        // Biased: while events are queued they are taken first, so closing drains the queue.
        let received = tokio::select! {
            biased;
            received = events.recv() => received,
            () = closing.cancelled() => break,
        };
        match received {
            Ok(event) => deliver(observer.as_ref(), &counters, event).await,
            Err(RecvError::Lagged(missed)) => {
                if counters.dropped.fetch_add(missed, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        target: "taskflow::observe",
                        observer = %counters.name,
                        missed,
                        "observer is falling behind; events are being dropped"
                    );
                }
            }
            Err(RecvError::Closed) => break,
        }
    }
    if AssertUnwindSafe(observer.flush())
        .catch_unwind()
        .await
        .is_err()
    {
        tracing::warn!(target: "taskflow::observe", observer = %counters.name, "observer panicked while flushing");
    }
}

/// Hands one event to the observer, unless it is a log event under its level; catches a panic.
async fn deliver(observer: &dyn TaskObserver, counters: &Counters, event: Arc<TaskEvent>) {
    let outcome = AssertUnwindSafe(async {
        if let TaskEvent::Log(log) = event.as_ref()
            && log.level < observer.min_level()
        {
            return;
        }
        counters.delivered.fetch_add(1, Ordering::Relaxed);
        observer.on_event(event).await;
    })
    .catch_unwind()
    .await;
    if outcome.is_err() {
        let level_first = counters.panics.fetch_add(1, Ordering::Relaxed) == 0;
        if level_first {
            tracing::warn!(
                target: "taskflow::observe",
                observer = %counters.name,
                "observer panicked on an event; it keeps receiving the next ones"
            );
        } else {
            tracing::debug!(target: "taskflow::observe", observer = %counters.name, "observer panicked on an event");
        }
    }
}

impl TaskManager {
    /// Delivery counters of every observer (including the built-in ones: the `log_file` logger
    /// and, with the `prometheus` feature, the metrics observer), in registration order.
    ///
    /// # Examples
    ///
    /// See [`ObserverStats`].
    pub fn observer_stats(&self) -> Vec<ObserverStats> {
        self.inner.observers.stats()
    }
}
