//! `GET /tasks/stream`: the live feed of the dashboard, as Server-Sent Events.
//!
//! On connect the client gets a `snapshot` event: the first page of tasks for its filter (the
//! query parameters of `GET /tasks`) and the metrics. Then the stream follows the manager's event
//! feed and collects the ids of changed tasks; at most once per interval (200 ms by default) it
//! sends one `delta` event with the changed records that match the filter (`tasks`), the ids
//! that changed but no longer match (`removed`) and fresh metrics. A burst of any size thus costs
//! each client at most one event per interval.
//!
//! Memory per client is bounded: at most [`MAX_PENDING`] changed ids are held; beyond that, or
//! when the client read so slowly that the bounded event feed moved past it, the pending ids are
//! dropped and the next event is a fresh `snapshot` (with `reason` `overflow` or `lagged`). A
//! client that does not read at all is never polled, so nothing is queued for it.
//!
//! Records in the stream are summaries: no `args`, `logs` or `stacktrace` (a `log_count` instead);
//! the dashboard fetches `GET /tasks/{id}` for the detail panel. The stream ends when the manager
//! shuts down, so graceful shutdown never waits on open dashboards.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::extract::Query;
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::error::ApiError;
use super::extract::Tasks;
use super::{Admin, query};
use crate::history::TaskFilter;
use crate::manager::TaskManager;
use crate::observe::TaskEvent;
use crate::task::{TaskId, TaskRecord};

/// Changed ids one client holds between two events before it falls back to a snapshot.
pub(crate) const MAX_PENDING: usize = 256;

/// Counters of the live stream, shared by every client of one mounted admin. Cheap to clone.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// let manager = taskflow::TaskManager::builder().build().await?;
/// let admin = taskflow::TaskAdmin::new(&manager);
/// let stats = admin.stream_stats();
/// let app: axum::Router = admin.mount(axum::Router::new());
/// assert_eq!(stats.clients(), 0);
/// assert_eq!(stats.resyncs(), 0);
/// assert!(stats.max_pending() <= taskflow::admin::StreamStats::PENDING_BOUND);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    clients: AtomicUsize,
    events: AtomicU64,
    snapshots: AtomicU64,
    resyncs: AtomicU64,
    lagged: AtomicU64,
    max_pending: AtomicUsize,
}

impl StreamStats {
    /// The most changed task ids one client holds between two events.
    pub const PENDING_BOUND: usize = MAX_PENDING;

    /// Streams open now.
    ///
    /// # Examples
    ///
    /// See [`StreamStats`].
    pub fn clients(&self) -> usize {
        self.inner.clients.load(Ordering::Relaxed)
    }

    /// Events sent (snapshots and deltas) since mount.
    ///
    /// # Examples
    ///
    /// See [`StreamStats`].
    pub fn events(&self) -> u64 {
        self.inner.events.load(Ordering::Relaxed)
    }

    /// Snapshots sent, the first of each connection included.
    ///
    /// # Examples
    ///
    /// See [`StreamStats`].
    pub fn snapshots(&self) -> u64 {
        self.inner.snapshots.load(Ordering::Relaxed)
    }

    /// Snapshots sent instead of deltas because a client fell behind or had too many changes
    /// pending.
    ///
    /// # Examples
    ///
    /// See [`StreamStats`].
    pub fn resyncs(&self) -> u64 {
        self.inner.resyncs.load(Ordering::Relaxed)
    }

    /// Feed events that slow clients skipped (they got a snapshot instead).
    ///
    /// # Examples
    ///
    /// See [`StreamStats`].
    pub fn lagged(&self) -> u64 {
        self.inner.lagged.load(Ordering::Relaxed)
    }

    /// The most changed ids any client held at once; never above [`Self::PENDING_BOUND`].
    ///
    /// # Examples
    ///
    /// See [`StreamStats`].
    pub fn max_pending(&self) -> usize {
        self.inner.max_pending.load(Ordering::Relaxed)
    }
}

/// Decrements the open-client count when the stream is dropped.
struct ClientGuard(Arc<Counters>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A record as the stream shows it.
fn summary(record: &TaskRecord) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("args");
        map.remove("logs");
        map.remove("stacktrace");
        map.insert("log_count".to_owned(), json!(record.logs.len()));
    }
    value
}

fn event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// One client's state.
struct Client {
    manager: TaskManager,
    filter: TaskFilter,
    feed: tokio::sync::broadcast::Receiver<Arc<TaskEvent>>,
    pending: HashSet<TaskId>,
    resync: Option<&'static str>,
    connected: bool,
    last_flush: Instant,
    interval: std::time::Duration,
    stats: Arc<Counters>,
    _guard: ClientGuard,
}

enum Step {
    Continue,
    End,
}

impl Client {
    fn note(&mut self, received: Result<Arc<TaskEvent>, RecvError>) -> Step {
        match received {
            Ok(event) => {
                if self.resync.is_none() {
                    let id = event.task_id();
                    if self.pending.len() >= MAX_PENDING && !self.pending.contains(&id) {
                        self.pending.clear();
                        self.resync = Some("overflow");
                    } else {
                        self.pending.insert(id);
                        self.stats
                            .max_pending
                            .fetch_max(self.pending.len(), Ordering::Relaxed);
                    }
                }
                Step::Continue
            }
            Err(RecvError::Lagged(n)) => {
                self.stats.lagged.fetch_add(n, Ordering::Relaxed);
                self.pending.clear();
                self.resync = Some("lagged");
                Step::Continue
            }
            Err(RecvError::Closed) => Step::End,
        }
    }

    async fn snapshot(&mut self, reason: &str) -> Event {
        self.pending.clear();
        self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
        if reason != "connect" {
            self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        }
        let mut first_page = self.filter.clone();
        first_page.cursor = None;
        let (tasks, next_cursor) = match self.manager.list(&first_page).await {
            Ok(page) => (
                page.tasks.iter().map(summary).collect::<Vec<_>>(),
                page.next_cursor,
            ),
            Err(_) => (Vec::new(), None),
        };
        event(
            "snapshot",
            &json!({
                "reason": reason,
                "tasks": tasks,
                "next_cursor": next_cursor,
                "metrics": self.manager.metrics().await.ok(),
                "time": chrono::Utc::now(),
            }),
        )
    }

    async fn delta(&mut self) -> Event {
        let mut tasks = Vec::new();
        let mut removed = Vec::new();
        let mut records: Vec<TaskRecord> = Vec::new();
        for id in self.pending.drain() {
            match self.manager.get(id).await.ok().flatten() {
                Some(record) if self.filter.matches(&record) => records.push(record),
                _ => removed.push(id),
            }
        }
        records.sort_by_key(|r| std::cmp::Reverse(r.task_id));
        tasks.extend(records.iter().map(summary));
        event(
            "delta",
            &json!({
                "tasks": tasks,
                "removed": removed,
                "metrics": self.manager.metrics().await.ok(),
                "time": chrono::Utc::now(),
            }),
        )
    }

    /// The next event, or `None` when the manager shuts down.
    async fn next(&mut self) -> Option<Event> {
        let stopping = self.manager.inner.stopping.clone();
        if stopping.is_cancelled() {
            return None;
        }
        if !self.connected {
            self.connected = true;
            self.last_flush = Instant::now();
            return Some(self.snapshot("connect").await);
        }
        // Wait for a first change.
        while self.pending.is_empty() && self.resync.is_none() {
            tokio::select! {
                biased;
                () = stopping.cancelled() => return None,
                received = self.feed.recv() => {
                    if let Step::End = self.note(received) {
                        return None;
                    }
                }
            }
        }
        // Coalesce until the interval since the last event has passed.
        let deadline = self.last_flush + self.interval;
        loop {
            tokio::select! {
                biased;
                () = stopping.cancelled() => return None,
                () = tokio::time::sleep_until(deadline) => break,
                received = self.feed.recv() => {
                    if let Step::End = self.note(received) {
                        return None;
                    }
                }
            }
        }
        // Take what already arrived without waiting.
        loop {
            match self.feed.try_recv() {
                Ok(event) => {
                    let _ = self.note(Ok(event));
                }
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                    let _ = self.note(Err(RecvError::Lagged(n)));
                }
                Err(_) => break,
            }
        }
        self.last_flush = Instant::now();
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        Some(match self.resync.take() {
            Some(reason) => self.snapshot(reason).await,
            None => self.delta().await,
        })
    }
}

fn events(client: Client) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    futures_util::stream::unfold(client, |mut client| async move {
        let event = client.next().await?;
        Some((Ok(event), client))
    })
}

pub(super) async fn stream(
    tasks: Tasks,
    admin: Admin,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = query::filter(&params, &[])?;
    let stats = admin.stats.inner.clone();
    stats.clients.fetch_add(1, Ordering::Relaxed);
    stats.events.fetch_add(1, Ordering::Relaxed);
    let client = Client {
        feed: tasks.subscribe(),
        manager: tasks.0,
        filter,
        pending: HashSet::new(),
        resync: None,
        connected: false,
        last_flush: Instant::now(),
        interval: admin.settings.stream_interval,
        _guard: ClientGuard(stats.clone()),
        stats,
    };
    let mut response = Sse::new(events(client))
        .keep_alive(
            KeepAlive::new()
                .interval(admin.settings.keep_alive)
                .text("keep-alive"),
        )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
