//! The admin surface on an axum router: the [`Tasks`] extractor, the JSON API, the live
//! Server-Sent Events stream, the dashboard page and access control.
//!
//! | route | does |
//! |---|---|
//! | `GET /tasks` | list, newest first; filters `status`, `name`, `tag`, `q`, `since`, `until`; `limit` + `cursor` |
//! | `GET /tasks/{id}` | one record (404 `{"detail":"Task not found"}`) |
//! | `GET /tasks/metrics` | counts by status, success rate, durations, per-name stats |
//! | `GET /tasks/metrics/prometheus` | Prometheus text exposition (feature `prometheus`) |
//! | `GET /tasks/health` | `{status, store_connected, instance_id, started_at, is_leader}` |
//! | `POST /tasks/{id}/retry` | a new run of a finished task (400 not finished, 404, 409 not registered) |
//! | `POST /tasks/{id}/cancel` | cancel (400 finished or running on the blocking pool, 404) |
//! | `POST /tasks/bulk-retry` | `{task_ids:[…]}` → `{dispatched, skipped, results, errors}` |
//! | `POST /tasks/retry-failed?since=6h&name=…` | retries the failed runs of a window (`<N>m\|h\|d` or `all`) |
//! | `DELETE /tasks/history?older_than=7d` | deletes finished records older than that → `{deleted}` |
//! | `GET /tasks/queues`, `PATCH /tasks/queues/{name}` | queue stats; resize with `{concurrency, max_size}` |
//! | `GET /tasks/schedules` | recurring and one-off schedules (none yet: `[]`) |
//! | `GET /tasks/registered` | the registered tasks with their options |
//! | `GET /tasks/audit` | the audit log of mutations, newest first |
//! | `GET /tasks/stream` | Server-Sent Events: a snapshot, then coalesced deltas |
//! | `GET /tasks/dashboard` | the live dashboard page |
//! | `GET /tasks/login`, `POST /tasks/login`, `POST /tasks/logout` | sessions, with [`TaskAdmin::auth`] |
//!
//! Errors are JSON `{"detail": "…"}` with a fitting status code. Mutations (`POST`, `PATCH`,
//! `DELETE`) are refused with 403 when they come from another origin (a browser's `Origin` or
//! `Sec-Fetch-Site` header says so) or when the admin is [`read_only`](TaskAdmin::read_only), and
//! are written to the [audit log](AuditEntry).

mod action;
mod api;
mod audit;
mod auth;
mod error;
mod extract;
mod page;
#[cfg(feature = "prometheus")]
mod prometheus;
mod query;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get, patch, post};

use crate::manager::TaskManager;

pub use audit::AuditEntry;
pub use auth::Auth;
pub use error::ApiError;
pub use extract::Tasks;
pub use stream::StreamStats;

/// Mounts the task API, the live stream and the dashboard on a router, and makes the [`Tasks`]
/// extractor available to its routes.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use axum::{Router, routing::post};
/// use taskflow::{TaskAdmin, TaskManager, Tasks};
/// use taskflow::admin::Auth;
///
/// async fn kick(tasks: Tasks) -> Result<String, taskflow::Error> {
///     Ok(tasks.spawn("kick", async {}).await?.to_string())
/// }
///
/// let manager = TaskManager::builder().build().await?;
/// let app: Router = Router::new().route("/kick", post(kick));
/// let app = TaskAdmin::new(&manager)
///     .path("/admin/tasks")
///     .title("Shop tasks")
///     .display_args(true)
///     .auth(Auth::users([("ops", "correct horse battery staple")]))
///     .mount(app);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "call .mount(router) to add the routes"]
pub struct TaskAdmin {
    manager: TaskManager,
    settings: Settings,
    auth: Option<Auth>,
    stats: StreamStats,
}

/// Admin options, fixed at mount.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) path: String,
    pub(crate) display_args: bool,
    pub(crate) title: String,
    pub(crate) read_only: bool,
    pub(crate) keep_alive: Duration,
    pub(crate) stream_interval: Duration,
}

/// What every admin handler shares: the settings, access control, the audit log and the
/// stream counters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) auth: Option<auth::Verifier>,
    pub(crate) audit: audit::AuditLog,
    pub(crate) stats: StreamStats,
}

/// The handle handlers extract.
pub(crate) type Admin = axum::Extension<Arc<Shared>>;

impl TaskAdmin {
    /// The admin surface of `manager`, at `/tasks`, without arguments in records, without
    /// authentication and with mutations allowed.
    ///
    /// # Examples
    ///
    /// See [`TaskAdmin`].
    pub fn new(manager: &TaskManager) -> Self {
        Self {
            manager: manager.clone(),
            settings: Settings {
                path: "/tasks".to_owned(),
                display_args: false,
                title: "taskflow".to_owned(),
                read_only: false,
                keep_alive: Duration::from_secs(15),
                stream_interval: Duration::from_millis(200),
            },
            auth: None,
            stats: StreamStats::default(),
        }
    }

    /// Mounts the routes under `path` instead of `/tasks`.
    ///
    /// # Examples
    ///
    /// See [`TaskAdmin`].
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        let trimmed = path.trim_end_matches('/');
        self.settings.path = if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// Includes each task's JSON arguments in the records the API returns and the dashboard
    /// shows.
    ///
    /// # Examples
    ///
    /// See [`TaskAdmin`].
    pub fn display_args(mut self, display: bool) -> Self {
        self.settings.display_args = display;
        self
    }

    /// The dashboard's title (default `taskflow`).
    ///
    /// # Examples
    ///
    /// See [`TaskAdmin`].
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.settings.title = title.into();
        self
    }

    /// Requires a login for every admin route, the stream and the page included. See [`Auth`].
    ///
    /// # Examples
    ///
    /// See [`TaskAdmin`].
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Hides every mutation in the dashboard and refuses it in the API with 403.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let app: axum::Router = taskflow::TaskAdmin::new(&manager).read_only(true).mount(axum::Router::new());
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.settings.read_only = read_only;
        self
    }

    /// How often an idle stream sends a keep-alive comment (default 15 s).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// use std::time::Duration;
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let admin = taskflow::TaskAdmin::new(&manager)
    ///     .keep_alive(Duration::from_secs(5))
    ///     .stream_interval(Duration::from_millis(250));
    /// # Ok(())
    /// # }
    /// ```
    pub fn keep_alive(mut self, every: Duration) -> Self {
        self.settings.keep_alive = every.max(Duration::from_millis(10));
        self
    }

    /// The shortest time between two stream events of one client (default 200 ms): changes in
    /// between are coalesced into one delta.
    ///
    /// # Examples
    ///
    /// See [`TaskAdmin::keep_alive`].
    pub fn stream_interval(mut self, interval: Duration) -> Self {
        self.settings.stream_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Counters of the live stream (open clients, events, resyncs), shared with the mounted
    /// routes: take it before [`mount`](Self::mount).
    ///
    /// # Examples
    ///
    /// See [`StreamStats`].
    pub fn stream_stats(&self) -> StreamStats {
        self.stats.clone()
    }

    /// Adds the admin routes to `router` and the manager to every route of it, so handlers can
    /// take [`Tasks`]. Call it last, like any layer: routes added afterwards do not see it.
    ///
    /// # Examples
    ///
    /// See [`TaskAdmin`].
    pub fn mount<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        let shared = Arc::new(Shared {
            auth: self.auth.map(auth::Verifier::new),
            audit: audit::AuditLog::new(audit::AuditLog::CAPACITY),
            stats: self.stats,
            settings: self.settings,
        });
        let p = shared.settings.path.clone();
        let protected = Router::new()
            .route(&p, get(api::list))
            .route(&format!("{p}/metrics"), get(api::metrics))
            .route(&format!("{p}/health"), get(api::health))
            .route(&format!("{p}/queues"), get(api::queues))
            .route(&format!("{p}/queues/{{name}}"), patch(action::resize_queue))
            .route(&format!("{p}/schedules"), get(api::schedules))
            .route(&format!("{p}/registered"), get(api::registered))
            .route(&format!("{p}/audit"), get(api::audit))
            .route(&format!("{p}/stream"), get(stream::stream))
            .route(&format!("{p}/dashboard"), get(page::dashboard))
            .route(&format!("{p}/bulk-retry"), post(action::bulk_retry))
            .route(&format!("{p}/retry-failed"), post(action::retry_failed))
            .route(&format!("{p}/history"), delete(action::delete_history))
            .route(&format!("{p}/logout"), post(auth::logout))
            .route(&format!("{p}/{{id}}"), get(api::one))
            .route(&format!("{p}/{{id}}/retry"), post(action::retry))
            .route(&format!("{p}/{{id}}/cancel"), post(action::cancel));
        #[cfg(feature = "prometheus")]
        let protected =
            protected.route(&format!("{p}/metrics/prometheus"), get(prometheus::metrics));
        let protected = protected.layer(axum::middleware::from_fn(auth::guard));
        let open = Router::new()
            .route(
                &format!("{p}/login"),
                get(auth::login_page).post(auth::login),
            )
            .route(&format!("{p}/assets/dashboard.js"), get(page::script))
            .route(&format!("{p}/assets/dashboard.css"), get(page::style));
        router
            .merge(protected.merge(open).layer(axum::Extension(shared)))
            .layer(axum::Extension(self.manager))
    }
}
