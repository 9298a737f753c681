//! Prometheus metrics (feature `prometheus`): an observer counting tasks, retries and attempt
//! durations, and the text exposition of those counts plus the queue gauges.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::event::TaskEvent;
use super::observer::{ObserverFuture, ObserverStats, TaskObserver};
use crate::dispatch::QueueStats;
use crate::manager::TaskManager;
use crate::task::{TaskId, TaskStatus};

/// The `Content-Type` of [`TaskManager::prometheus_metrics`].
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Attempt duration buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Attempt start times kept at most; a bound in case end events were dropped.
const MAX_STARTS: usize = 100_000;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameStatus {
    name: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Name {
    name: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Queue {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Observer {
    observer: String,
}

/// The built-in observer behind the metrics.
#[derive(Debug)]
pub(crate) struct PrometheusObserver {
    tasks: Family<NameStatus, Counter>,
    retries: Family<Name, Counter>,
    durations: Family<Name, Histogram>,
    store_errors: Counter,
    /// When the running attempt of each task started.
    starts: parking_lot::Mutex<HashMap<TaskId, DateTime<Utc>>>,
}

impl PrometheusObserver {
    pub(crate) fn new() -> Self {
        Self {
            tasks: Family::default(),
            retries: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            store_errors: Counter::default(),
            starts: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failed store operation.
    pub(crate) fn store_error(&self) {
        self.store_errors.inc();
    }

    fn count(&self, name: &str, status: TaskStatus) {
        self.tasks
            .get_or_create(&NameStatus {
                name: name.to_owned(),
                status: status.as_str().to_owned(),
            })
            .inc();
    }

    /// The metrics in the OpenMetrics text format, with the queue gauges and observer counters
    /// taken now.
    pub(crate) fn render(&self, queues: &[QueueStats], observers: &[ObserverStats]) -> String {
        let mut registry = Registry::with_prefix("taskflow");
        registry.register(
            "tasks",
            "Tasks by name and status: enqueued (pending), started (running) and finished (each final status)",
            self.tasks.clone(),
        );
        registry.register(
            "task_retries",
            "Retries scheduled after a failed attempt",
            self.retries.clone(),
        );
        registry.register_with_unit(
            "task_attempt_duration",
            "Duration of each finished attempt",
            Unit::Seconds,
            self.durations.clone(),
        );
        let pending = Family::<Queue, Gauge>::default();
        let running = Family::<Queue, Gauge>::default();
        for queue in queues {
            let label = Queue {
                queue: queue.name.clone(),
            };
            pending
                .get_or_create(&label)
                .set(i64::try_from(queue.pending).unwrap_or(i64::MAX));
            running
                .get_or_create(&label)
                .set(i64::try_from(queue.running).unwrap_or(i64::MAX));
        }
        registry.register(
            "queue_pending",
            "Tasks waiting in each queue (queue depth)",
            pending,
        );
        registry.register("queue_running", "Tasks running in each queue", running);
        registry.register(
            "store_errors",
            "Failed store operations",
            self.store_errors.clone(),
        );
        let dropped = Family::<Observer, Counter>::default();
        for stats in observers {
            dropped
                .get_or_create(&Observer {
                    observer: stats.name.clone(),
                })
                .inc_by(stats.dropped);
        }
        registry.register(
            "observer_dropped_events",
            "Events an observer missed because its queue was full",
            dropped,
        );
        let mut out = String::with_capacity(4_096);
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!(target: "taskflow::observe", %error, "cannot encode the metrics");
        }
        out
    }
}

impl TaskObserver for PrometheusObserver {
    fn on_event(&self, event: Arc<TaskEvent>) -> ObserverFuture<'_> {
        if let TaskEvent::Lifecycle(e) = event.as_ref() {
            let started = match e.status {
                TaskStatus::Running => {
                    let mut starts = self.starts.lock();
                    if starts.len() >= MAX_STARTS {
                        starts.clear();
                    }
                    starts.insert(e.task_id, e.time);
                    None
                }
                _ => self.starts.lock().remove(&e.task_id),
            };
            if let Some(started) = started {
                let seconds = (e.time - started).as_seconds_f64().max(0.0);
                self.durations
                    .get_or_create(&Name {
                        name: e.name.to_string(),
                    })
                    .observe(seconds);
            }
            match e.status {
                TaskStatus::Pending if e.attempt > 0 => {
                    self.retries
                        .get_or_create(&Name {
                            name: e.name.to_string(),
                        })
                        .inc();
                }
                TaskStatus::Running if e.attempt > 1 => {}
                status => self.count(&e.name, status),
            }
        }
        Box::pin(std::future::ready(()))
    }

    fn min_level(&self) -> crate::task::LogLevel {
        crate::task::LogLevel::Error
    }

    fn name(&self) -> String {
        "prometheus".to_owned()
    }
}

impl TaskManager {
    /// The task metrics in the Prometheus (OpenMetrics) text exposition format, as served at
    /// `GET /tasks/metrics/prometheus` by [`TaskAdmin`](crate::TaskAdmin).
    ///
    /// | metric | type | labels |
    /// |---|---|---|
    /// | `taskflow_tasks_total` | counter: tasks enqueued (`pending`), started (`running`), finished (final statuses) | `name`, `status` |
    /// | `taskflow_task_retries_total` | counter: retries scheduled | `name` |
    /// | `taskflow_task_attempt_duration_seconds` | histogram: each finished attempt | `name` |
    /// | `taskflow_queue_pending` | gauge: tasks waiting (queue depth) | `queue` |
    /// | `taskflow_queue_running` | gauge: tasks running | `queue` |
    /// | `taskflow_store_errors_total` | counter: failed store operations | |
    /// | `taskflow_observer_dropped_events_total` | counter: events an observer missed | `observer` |
    ///
    /// The counts come from the event feed through a built-in observer, so they trail the
    /// tasks by a moment.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let id = manager.spawn("scraped", async {}).await?;
    /// manager.wait(id).await?;
    /// manager.shutdown().await?; // the built-in observer has seen every event
    /// let text = manager.prometheus_metrics();
    /// assert!(text.contains(r#"taskflow_tasks_total{name="scraped",status="success"} 1"#));
    /// assert!(text.ends_with("# EOF\n"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn prometheus_metrics(&self) -> String {
        let observers = &self.inner.observers;
        observers
            .prometheus
            .render(&self.queues(), &observers.stats())
    }
}
