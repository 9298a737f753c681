//! The task model: the [`Task`] trait, its [`TaskOptions`], ids, states and records.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use crate::id::TaskId;
use crate::json_text::JsonText;
use crate::shared_str::SharedStr;
use crate::tags::Tags;

/// A unit of background work with typed, serializable arguments.
///
/// Implemented by the struct that `#[taskflow::task]` generates for a function; it can also be
/// implemented by hand for a struct whose fields are the arguments.
///
/// # Examples
///
/// ```
/// use taskflow::{Task, TaskOptions, TaskRun};
///
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Ping { host: String }
///
/// impl Task for Ping {
///     const NAME: &'static str = "ping";
///     const OPTIONS: TaskOptions = TaskOptions::new().retries(2);
///     fn run(self) -> TaskRun {
///         TaskRun::from_future(async move { println!("ping {}", self.host) })
///     }
/// }
/// assert_eq!(Ping::OPTIONS.retries, 2);
/// ```
pub trait Task: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The stable name stored in records and used to find the task again after a restart.
    const NAME: &'static str;
    /// Retry, timeout, queue and persistence options.
    const OPTIONS: TaskOptions;
    /// Whether [`Task::run`] returns [`TaskRun::Blocking`] (a task for the blocking pool); `false`
    /// by default. `#[taskflow::task]` sets it for a plain `fn`.
    ///
    /// A task added with [`TaskManager::add`](crate::TaskManager::add) waits for its slot under
    /// this kind, and its first attempt's body is made only when that attempt starts. When `run` returns the other kind, the attempt still runs where
    /// `run` says, counted against the declared kind's limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskflow::Task;
    ///
    /// #[taskflow::task]
    /// fn shrink(width: u32) -> Result<u32, String> {
    ///     Ok(width / 2)
    /// }
    ///
    /// #[taskflow::task]
    /// async fn notify(user_id: u64) {
    ///     let _ = user_id;
    /// }
    ///
    /// assert!(Shrink::BLOCKING);
    /// assert!(!Notify::BLOCKING);
    /// ```
    const BLOCKING: bool = false;
    /// Starts one attempt with these arguments.
    fn run(self) -> TaskRun;
}

/// Options of a task: retries and backoff, timeout, persistence, queue and priority.
///
/// Built with `const` methods so the attribute can store them in a constant.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskflow::TaskOptions;
///
/// const OPTS: TaskOptions = TaskOptions::new()
///     .retries(3)
///     .delay(Duration::from_secs(1))
///     .backoff(2.0)
///     .queue("mail");
/// assert_eq!(OPTS.retry_wait(2), Some(Duration::from_secs(2)));
/// assert_eq!(OPTS.queue, "mail");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TaskOptions {
    /// Extra attempts after the first failure.
    pub retries: u32,
    /// Wait before the first retry.
    pub delay: Duration,
    /// Multiplier on the wait for each further retry (at least 1.0).
    pub backoff: f64,
    /// Cap on one retry wait.
    pub max_delay: Option<Duration>,
    /// Randomise each wait by up to ±50%.
    pub jitter: bool,
    /// An attempt running longer than this fails with a timeout error.
    pub timeout: Option<Duration>,
    /// Write the task to the store before `add` returns.
    pub persist: bool,
    /// Run the task again when its run was cut off by shutdown or a crash.
    pub requeue_on_interrupt: bool,
    /// The named queue the task runs in.
    pub queue: &'static str,
    /// Higher runs first within its queue.
    pub priority: i32,
}

impl TaskOptions {
    /// The defaults: no retries, no timeout, not persisted, queue `"default"`, priority 0.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskOptions::new().queue, "default");
    /// ```
    pub const fn new() -> Self {
        Self {
            retries: 0,
            delay: Duration::ZERO,
            backoff: 1.0,
            max_delay: None,
            jitter: false,
            timeout: None,
            persist: false,
            requeue_on_interrupt: false,
            queue: "default",
            priority: 0,
        }
    }

    /// Sets the number of extra attempts after the first failure.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskOptions::new().retries(3).retries, 3);
    /// ```
    pub const fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the wait before the first retry.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = taskflow::TaskOptions::new().delay(Duration::from_millis(500));
    /// assert_eq!(o.delay, Duration::from_millis(500));
    /// ```
    pub const fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the multiplier applied to the wait for each further retry; values below 1.0 are
    /// raised to 1.0.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskOptions::new().backoff(0.5).backoff, 1.0);
    /// ```
    pub const fn backoff(mut self, backoff: f64) -> Self {
        self.backoff = if backoff >= 1.0 { backoff } else { 1.0 };
        self
    }

    /// Caps one retry wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = taskflow::TaskOptions::new().max_delay(Duration::from_secs(60));
    /// assert_eq!(o.max_delay, Some(Duration::from_secs(60)));
    /// ```
    pub const fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = Some(max_delay);
        self
    }

    /// Randomises each retry wait by up to ±50%.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(taskflow::TaskOptions::new().jitter(true).jitter);
    /// ```
    pub const fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Fails an attempt that runs longer than `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = taskflow::TaskOptions::new().timeout(Duration::from_secs(30));
    /// assert_eq!(o.timeout, Some(Duration::from_secs(30)));
    /// ```
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Writes the task to the store before `add` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(taskflow::TaskOptions::new().persist(true).persist);
    /// ```
    pub const fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// Runs the task again when its run was cut off by shutdown or a crash.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(taskflow::TaskOptions::new().requeue_on_interrupt(true).requeue_on_interrupt);
    /// ```
    pub const fn requeue_on_interrupt(mut self, requeue: bool) -> Self {
        self.requeue_on_interrupt = requeue;
        self
    }

    /// Sets the named queue.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskOptions::new().queue("reports").queue, "reports");
    /// ```
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.queue = queue;
        self
    }

    /// Sets the priority within the queue (higher runs first).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskOptions::new().priority(5).priority, 5);
    /// ```
    pub const fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The wait before retry number `retry` (1-based) without jitter:
    /// `delay * backoff^(retry - 1)`, capped by `max_delay`. `None` when no retry is left.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = taskflow::TaskOptions::new()
    ///     .retries(4)
    ///     .delay(Duration::from_secs(1))
    ///     .backoff(3.0)
    ///     .max_delay(Duration::from_secs(5));
    /// assert_eq!(o.retry_wait(1), Some(Duration::from_secs(1)));
    /// assert_eq!(o.retry_wait(2), Some(Duration::from_secs(3)));
    /// assert_eq!(o.retry_wait(3), Some(Duration::from_secs(5)));
    /// assert_eq!(o.retry_wait(5), None);
    /// ```
    pub fn retry_wait(&self, retry: u32) -> Option<Duration> {
        if retry == 0 || retry > self.retries {
            return None;
        }
        let exponent = i32::try_from(retry - 1).unwrap_or(i32::MAX);
        let secs = self.delay.as_secs_f64() * self.backoff.powi(exponent);
        let cap = self.max_delay.map_or(f64::MAX, |d| d.as_secs_f64());
        Some(Duration::try_from_secs_f64(secs.min(cap)).unwrap_or(Duration::MAX))
    }
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// One attempt of a task, ready to run: an async future, or a closure for the blocking pool.
///
/// # Examples
///
/// ```
/// let run = taskflow::TaskRun::from_future(async { Ok::<_, std::io::Error>(42) });
/// assert!(!run.is_blocking());
/// let run = taskflow::TaskRun::from_blocking(|| ());
/// assert!(run.is_blocking());
/// ```
pub enum TaskRun {
    /// Polled on the async runtime.
    Async(Pin<Box<dyn Future<Output = TaskResult> + Send + 'static>>),
    /// Run on the manager's dedicated blocking pool.
    Blocking(Box<dyn FnOnce() -> TaskResult + Send + 'static>),
}

impl TaskRun {
    /// Wraps a future whose output is `()` or a `Result`.
    ///
    /// # Examples
    ///
    /// ```
    /// let _run = taskflow::TaskRun::from_future(async {});
    /// ```
    pub fn from_future<F>(future: F) -> Self
    where
        F: Future + Send + 'static,
        F::Output: IntoTaskResult,
    {
        Self::Async(Box::pin(async move { future.await.into_task_result() }))
    }

    /// Wraps a synchronous closure; it runs on the blocking pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let _run = taskflow::TaskRun::from_blocking(|| Ok::<u32, String>(1));
    /// ```
    pub fn from_blocking<F, R>(f: F) -> Self
    where
        F: FnOnce() -> R + Send + 'static,
        R: IntoTaskResult,
    {
        Self::Blocking(Box::new(move || f().into_task_result()))
    }

    /// Whether this attempt runs on the blocking pool.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(taskflow::TaskRun::from_blocking(|| ()).is_blocking());
    /// ```
    pub fn is_blocking(&self) -> bool {
        matches!(self, Self::Blocking(_))
    }
}

impl fmt::Debug for TaskRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_blocking() {
            "TaskRun::Blocking"
        } else {
            "TaskRun::Async"
        })
    }
}

/// The outcome of one attempt: the JSON result, or why it failed.
pub type TaskResult = Result<JsonText, TaskFailure>;

/// Why an attempt failed.
///
/// # Examples
///
/// ```
/// let f = taskflow::TaskFailure::new("smtp timeout");
/// assert_eq!(f.to_string(), "smtp timeout");
/// assert!(!f.is_permanent());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    message: String,
    permanent: bool,
    stacktrace: Option<String>,
}

impl TaskFailure {
    /// A retryable failure with this message.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskFailure::new("x").message(), "x");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            stacktrace: None,
        }
    }

    /// A failure that stops retries.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(taskflow::TaskFailure::permanent("bad input").is_permanent());
    /// ```
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
            stacktrace: None,
        }
    }

    /// Attaches a stack trace.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = taskflow::TaskFailure::new("x").with_stacktrace("at main");
    /// assert_eq!(f.stacktrace(), Some("at main"));
    /// ```
    pub fn with_stacktrace(mut self, stacktrace: impl Into<String>) -> Self {
        self.stacktrace = Some(stacktrace.into());
        self
    }

    /// The error message.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskFailure::new("boom").message(), "boom");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retries stop after this failure.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!taskflow::TaskFailure::new("x").is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The stack trace, where one was captured (panics).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskFailure::new("x").stacktrace(), None);
    /// ```
    pub fn stacktrace(&self) -> Option<&str> {
        self.stacktrace.as_deref()
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Wraps an error to fail the task at once, without further retries.
///
/// Return it directly (`Result<T, Permanent>`), or inside a `Box<dyn Error + Send + Sync>` or an
/// `anyhow::Error` (`Err(Permanent::new(e).into())`).
///
/// # Examples
///
/// ```
/// use taskflow::{IntoTaskResult, Permanent};
///
/// let outcome: Result<(), anyhow::Error> = Err(Permanent::new("card declined").into());
/// let failure = outcome.into_task_result().unwrap_err();
/// assert!(failure.is_permanent());
/// assert_eq!(failure.message(), "card declined");
/// ```
#[derive(Debug)]
pub struct Permanent(pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl Permanent {
    /// Wraps an error or a message.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = taskflow::Permanent::new("no such user");
    /// assert_eq!(p.to_string(), "no such user");
    /// ```
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self(error.into())
    }
}

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Permanent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What a task function may return: `()`, or `Result<T, E>` with `T: Serialize` (stored as the
/// task's JSON result) and `E: Display` (stored as its error).
///
/// # Examples
///
/// ```
/// use taskflow::IntoTaskResult;
///
/// assert_eq!(().into_task_result(), Ok(taskflow::JsonText::null()));
/// assert_eq!(Ok::<_, String>(7).into_task_result().unwrap(), serde_json::json!(7));
/// assert_eq!(Err::<u8, _>("boom").into_task_result().unwrap_err().message(), "boom");
/// ```
#[diagnostic::on_unimplemented(
    message = "task functions must return `()` or `Result<T, E>` with `T: Serialize` and `E: Display`, not `{Self}`",
    label = "unsupported return type"
)]
pub trait IntoTaskResult {
    /// Converts the function's output to a task result.
    fn into_task_result(self) -> TaskResult;
}

impl IntoTaskResult for () {
    fn into_task_result(self) -> TaskResult {
        Ok(JsonText::null())
    }
}

impl<T, E> IntoTaskResult for Result<T, E>
where
    T: Serialize,
    E: fmt::Display + 'static,
{
    fn into_task_result(self) -> TaskResult {
        match self {
            Ok(value) => JsonText::encode(&value).map_err(|e| {
                TaskFailure::new(format!("the task's result could not be serialized: {e}"))
            }),
            Err(error) => {
                let message = error.to_string();
                Err(if is_permanent(&error) {
                    TaskFailure::permanent(message)
                } else {
                    TaskFailure::new(message)
                })
            }
        }
    }
}

/// Whether an error is, or wraps, a [`Permanent`] or a permanent [`TaskFailure`].
fn is_permanent<E: 'static>(error: &E) -> bool {
    let any: &dyn std::any::Any = error;
    if any.is::<Permanent>() {
        return true;
    }
    if let Some(failure) = any.downcast_ref::<TaskFailure>() {
        return failure.is_permanent();
    }
    if let Some(boxed) = any.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>() {
        return chain_has_permanent(boxed.as_ref());
    }
    if let Some(error) = any.downcast_ref::<anyhow::Error>() {
        return error.chain().any(|e| e.is::<Permanent>());
    }
    false
}

fn chain_has_permanent(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<Permanent>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Where a task is in its lifecycle (lowercase on the wire).
///
/// # Examples
///
/// ```
/// use taskflow::TaskStatus;
/// assert_eq!("failed".parse::<TaskStatus>().unwrap(), TaskStatus::Failed);
/// assert!(TaskStatus::Success.is_finished());
/// assert_eq!(serde_json::to_string(&TaskStatus::Running).unwrap(), "\"running\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting to start (for a slot, a delay, or a retry wait).
    Pending,
    /// An attempt is running.
    Running,
    /// Finished and returned `Ok`.
    Success,
    /// Failed its last attempt.
    Failed,
    /// Was running (or never started) when its instance stopped.
    Interrupted,
    /// Cancelled before or while running.
    Cancelled,
    /// Refused at enqueue because its queue was full.
    Rejected,
}

impl TaskStatus {
    /// Every state, in lifecycle order.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskStatus::ALL.len(), 7);
    /// ```
    pub const ALL: [TaskStatus; 7] = [
        Self::Pending,
        Self::Running,
        Self::Success,
        Self::Failed,
        Self::Interrupted,
        Self::Cancelled,
        Self::Rejected,
    ];

    /// The lowercase wire name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::TaskStatus::Pending.as_str(), "pending");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }

    /// Whether the task reached a final state.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!taskflow::TaskStatus::Running.is_finished());
    /// ```
    pub const fn is_finished(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    /// Whether a run in this state holds its idempotency key (pending, running, success).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(taskflow::TaskStatus::Success.holds_idempotency_key());
    /// assert!(!taskflow::TaskStatus::Failed.holds_idempotency_key());
    /// ```
    pub const fn holds_idempotency_key(self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Success)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown status name.
///
/// # Examples
///
/// ```
/// let err = "done".parse::<taskflow::TaskStatus>().unwrap_err();
/// assert!(err.to_string().contains("expected one of"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown status `{0}`; expected one of pending, running, success, failed, interrupted, cancelled, rejected"
)]
pub struct ParseStatusError(String);

impl FromStr for TaskStatus {
    type Err = ParseStatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

/// The level of a task log entry.
///
/// # Examples
///
/// ```
/// assert_eq!(taskflow::LogLevel::Warn.as_str(), "warn");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected, the task goes on.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The lowercase wire name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::LogLevel::Info.as_str(), "info");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One structured entry of a task's log.
///
/// # Examples
///
/// ```
/// let entry = taskflow::LogEntry::new(taskflow::LogLevel::Info, "sent");
/// assert_eq!(entry.message, "sent");
/// assert!(entry.fields.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When it was written.
    pub timestamp: DateTime<Utc>,
    /// Its level.
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// Key/value fields.
    #[serde(default)]
    pub fields: serde_json::Map<String, Value>,
}

impl LogEntry {
    /// An entry with no fields, stamped now.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = taskflow::LogEntry::new(taskflow::LogLevel::Warn, "slow");
    /// assert_eq!(e.level, taskflow::LogLevel::Warn);
    /// ```
    pub fn new(level: LogLevel, message: impl Into<String>) -> Self {
        Self {
            timestamp: Utc::now(),
            level,
            message: message.into(),
            fields: Default::default(),
        }
    }
}

/// Everything known about one task run, as the admin API shows it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// let manager = taskflow::TaskManager::builder().build().await?;
/// let id = manager.spawn("hello", async {}).await?;
/// let record: taskflow::TaskRecord = manager.get(id).await?.expect("just added");
/// assert_eq!(record.func_name, "hello");
/// # manager.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskRecord {
    /// The task's id.
    pub task_id: TaskId,
    /// The task's registered name.
    pub func_name: SharedStr,
    /// Its state.
    pub status: TaskStatus,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its first attempt started.
    pub start_time: Option<DateTime<Utc>>,
    /// When it finished.
    pub end_time: Option<DateTime<Utc>>,
    /// Seconds from first start to finish.
    pub duration: Option<f64>,
    /// Retries used so far.
    pub retries_used: u32,
    /// The last error.
    pub error: Option<String>,
    /// The stack trace of the last panic.
    pub stacktrace: Option<String>,
    /// Structured log entries.
    pub logs: Vec<LogEntry>,
    /// Tags given at enqueue.
    pub tags: Tags,
    /// How it was started: `"task"` (declared), `"spawn"` (ad-hoc future) or `"retry"`.
    pub source: SharedStr,
    /// Its priority within the queue.
    pub priority: i32,
    /// Its queue.
    pub queue: SharedStr,
    /// Where its attempts run: `"async"` or `"blocking"`.
    pub executor: SharedStr,
    /// The current (or last) attempt, 1-based; 0 before the first starts.
    pub attempt: u32,
    /// The idempotency key given at enqueue.
    pub idempotency_key: Option<SharedStr>,
    /// The instance that owns the run.
    pub instance_id: SharedStr,
    /// The JSON result of a successful run; [`JsonText::decode`] reads it as the task's return
    /// type.
    pub result: Option<JsonText>,
    /// The arguments, as JSON (the admin API shows them only with `display_args`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<JsonText>,
    /// The run this one retries.
    pub retry_of: Option<TaskId>,
    /// Not started before this time.
    pub run_at: Option<DateTime<Utc>>,
    /// Whether the run is written to the store before `add` returns (the `persist` option).
    #[serde(default)]
    pub persist: bool,
    /// The W3C `traceparent` of the span that enqueued it (feature `opentelemetry`); its
    /// attempts continue that trace, also after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
}

impl TaskRecord {
    /// A new pending record created now.
    #[cfg(test)]
    pub(crate) fn pending(
        task_id: TaskId,
        func_name: impl Into<SharedStr>,
        instance_id: impl Into<SharedStr>,
    ) -> Self {
        Self::pending_at(task_id, func_name, instance_id, Utc::now())
    }

    /// A new pending record created at `created_at`; the caller fills in `source`, `queue` and
    /// `executor`.
    pub(crate) fn pending_at(
        task_id: TaskId,
        func_name: impl Into<SharedStr>,
        instance_id: impl Into<SharedStr>,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            task_id,
            func_name: func_name.into(),
            status: TaskStatus::Pending,
            created_at,
            start_time: None,
            end_time: None,
            duration: None,
            retries_used: 0,
            error: None,
            stacktrace: None,
            logs: Vec::new(),
            tags: Tags::new(),
            source: SharedStr::default(),
            priority: 0,
            queue: SharedStr::default(),
            executor: SharedStr::default(),
            attempt: 0,
            idempotency_key: None,
            instance_id: instance_id.into(),
            result: None,
            args: None,
            retry_of: None,
            run_at: None,
            persist: false,
            trace_parent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_wait_grows_and_caps() {
        let o = TaskOptions::new()
            .retries(5)
            .delay(Duration::from_millis(100))
            .backoff(2.0)
            .max_delay(Duration::from_millis(500));
        let waits: Vec<_> = (1..=6).map(|n| o.retry_wait(n)).collect();
        assert_eq!(
            waits,
            vec![
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(400)),
                Some(Duration::from_millis(500)),
                Some(Duration::from_millis(500)),
                None
            ]
        );
    }

    #[test]
    fn permanent_is_found_through_boxes_and_chains() {
        let boxed: Result<(), Box<dyn std::error::Error + Send + Sync>> =
            Err(Box::new(Permanent::new("x")));
        assert!(boxed.into_task_result().unwrap_err().is_permanent());
        let plain: Result<(), std::io::Error> = Err(std::io::Error::other("x"));
        assert!(!plain.into_task_result().unwrap_err().is_permanent());
        let wrapped: Result<(), anyhow::Error> =
            Err(anyhow::Error::new(Permanent::new("inner")).context("outer"));
        let failure = wrapped.into_task_result().unwrap_err();
        assert!(failure.is_permanent());
        assert_eq!(failure.message(), "outer");
    }

    #[test]
    fn unserializable_result_fails_the_attempt() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        let failure = Ok::<_, String>(map).into_task_result().unwrap_err();
        assert!(
            failure.message().contains("could not be serialized"),
            "{failure}"
        );
    }
}
