//! The running task's context ([`TaskContext`]) and task logging: [`task_log!`](crate::task_log)
//! and the [`TaskLogLayer`] that captures `tracing` events into the task's log.

use std::cell::RefCell;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context as LayerContext;

use crate::manager::Inner;
use crate::shared_str::SharedStr;
use crate::tags::Tags;
use crate::task::{LogEntry, LogLevel, TaskId};

tokio::task_local! {
    static CURRENT: TaskContext;
}

thread_local! {
    static BLOCKING_CURRENT: RefCell<Option<TaskContext>> = const { RefCell::new(None) };
    /// Contexts of attempts that ended on this thread, emptied ([`TaskContext::recycle`]) and
    /// kept for the attempts started here next, most recent last.
    static SPARE: RefCell<Vec<Arc<ContextInner>>> = const { RefCell::new(Vec::new()) };
}

/// Contexts kept per thread, at most. A runner ends one attempt and starts the next on the same
/// thread, so a few are enough; the rest are freed.
const MAX_SPARE: usize = 16;

/// What a running task knows about itself: id, name, attempt and tags, and where its log goes.
///
/// Available anywhere inside a task's attempt (async or on the blocking pool) through
/// [`TaskContext::current`]; `None` outside of one.
///
/// # Examples
///
/// ```
/// assert!(taskflow::TaskContext::current().is_none());
/// ```
#[derive(Clone)]
pub struct TaskContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    id: TaskId,
    name: SharedStr,
    attempt: u32,
    /// Shared with the task's record.
    tags: Tags,
    /// `None` only in a spare, so that a spare keeps no manager alive.
    manager: Option<Arc<Inner>>,
    /// The attempt's time limit.
    timeout: Option<Duration>,
    /// The span that enqueued the task, which the attempt's span follows from.
    parent_span: tracing::Span,
    panic_trace: parking_lot::Mutex<Option<String>>,
    /// Set when the attempt must end (cancelled, or aborted at shutdown), or once it ended.
    stopped: AtomicBool,
    /// Wakes the attempt when it is stopped.
    stop_waker: AtomicWaker,
}

impl TaskContext {
    /// The context of attempt `attempt` of task `id`. The attempt's limits and parent span live
    /// here, on the heap, so that the future running the attempt stays small; the heap block is
    /// a spare of this thread when it has one, written over in place.
    pub(crate) fn new(
        id: TaskId,
        name: SharedStr,
        attempt: u32,
        tags: &Tags,
        manager: Arc<Inner>,
        timeout: Option<Duration>,
        parent_span: tracing::Span,
    ) -> Self {
        let tags = tags.clone();
        let spare = SPARE
            .try_with(|spare| spare.borrow_mut().pop())
            .ok()
            .flatten();
        if let Some(mut inner) = spare
            && let Some(unshared) = Arc::get_mut(&mut inner)
        {
            // What a spare held on the heap is already dropped (see `recycle`).
            unshared.id = id;
            unshared.name = name;
            unshared.attempt = attempt;
            unshared.tags = tags;
            unshared.manager = Some(manager);
            unshared.timeout = timeout;
            unshared.parent_span = parent_span;
            *unshared.stopped.get_mut() = false;
            return Self { inner };
        }
        Self {
            inner: Arc::new(ContextInner {
                id,
                name,
                attempt,
                tags,
                manager: Some(manager),
                timeout,
                parent_span,
                panic_trace: parking_lot::Mutex::new(None),
                stopped: AtomicBool::new(false),
                stop_waker: AtomicWaker::new(),
            }),
        }
    }

    /// Lets go of the context of an attempt that ended. When this is its last handle (no one
    /// kept a clone), what it holds is dropped and its heap block kept for the next attempt
    /// started on this thread ([`Self::new`]): a runner's attempts then take no allocation each.
    pub(crate) fn recycle(self) {
        let Self { mut inner } = self;
        let Some(unshared) = Arc::get_mut(&mut inner) else {
            return;
        };
        unshared.manager = None;
        unshared.tags = Tags::new();
        unshared.parent_span = tracing::Span::none();
        *unshared.panic_trace.get_mut() = None;
        drop(unshared.stop_waker.take());
        // On a thread being torn down the block is simply freed.
        let _ = SPARE.try_with(move |spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < MAX_SPARE {
                spare.push(inner);
            }
        });
    }

    /// The context of the task running here, or `None` outside a task.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), taskflow::Error> {
    /// let manager = taskflow::TaskManager::builder().build().await?;
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// let id = manager
    ///     .spawn("who-am-i", async move {
    ///         let ctx = taskflow::TaskContext::current().expect("inside a task");
    ///         let _ = tx.send((ctx.id(), ctx.name().to_owned(), ctx.attempt()));
    ///     })
    ///     .await?;
    /// assert_eq!(rx.await.unwrap(), (id, "who-am-i".to_owned(), 1));
    /// # manager.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn current() -> Option<Self> {
        CURRENT
            .try_with(Clone::clone)
            .ok()
            .or_else(|| BLOCKING_CURRENT.with(|current| current.borrow().clone()))
    }

    /// The task's id.
    ///
    /// # Examples
    ///
    /// See [`TaskContext::current`].
    pub fn id(&self) -> TaskId {
        self.inner.id
    }

    /// The task's registered name.
    ///
    /// # Examples
    ///
    /// See [`TaskContext::current`].
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The attempt running now, 1-based.
    ///
    /// # Examples
    ///
    /// See [`TaskContext::current`].
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The tags given at enqueue.
    ///
    /// # Examples
    ///
    /// ```
    /// fn tenant() -> Option<String> {
    ///     taskflow::TaskContext::current()?.tags().get("tenant").map(str::to_owned)
    /// }
    /// assert_eq!(tenant(), None);
    /// ```
    pub fn tags(&self) -> &Tags {
        &self.inner.tags
    }

    /// Appends an entry to the task's log.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskflow::{LogLevel, TaskContext};
    /// if let Some(ctx) = TaskContext::current() {
    ///     ctx.log(LogLevel::Info, "halfway", serde_json::Map::new());
    /// }
    /// ```
    pub fn log(&self, level: LogLevel, message: impl Into<String>, fields: Map<String, Value>) {
        let mut entry = LogEntry::new(level, message);
        entry.fields = fields;
        self.manager().append_log(self.inner.id, entry);
    }

    /// Runs `future` with this context as the current one.
    pub(crate) fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    /// Runs `f` on this thread with this context as the current one.
    pub(crate) fn enter_blocking<R>(self, f: impl FnOnce() -> R) -> R {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                BLOCKING_CURRENT.with(|current| current.borrow_mut().take());
            }
        }
        BLOCKING_CURRENT.with(|current| *current.borrow_mut() = Some(self));
        let _reset = Reset;
        f()
    }

    /// The manager running this attempt.
    pub(crate) fn manager(&self) -> &Arc<Inner> {
        self.inner
            .manager
            .as_ref()
            .expect("only a spare context, never handed out, has no manager")
    }

    /// The attempt's time limit.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.inner.timeout
    }

    /// The span that enqueued the task.
    pub(crate) fn parent_span(&self) -> &tracing::Span {
        &self.inner.parent_span
    }

    /// Ends the attempt at its next poll (see [`Self::poll_unless_stopped`]); does nothing once the
    /// attempt has ended.
    pub(crate) fn stop(&self) {
        if !self.inner.stopped.swap(true, Ordering::AcqRel) {
            self.inner.stop_waker.wake();
        }
    }

    /// Notes that the attempt ended on its own, so a later [`Self::stop`] has nothing to wake.
    pub(crate) fn mark_ended(&self) {
        self.inner.stopped.store(true, Ordering::Release);
    }

    /// Polls `body` unless [`Self::stop`] was called: `Some` of its output once it ends, `None`
    /// once the attempt is stopped (the body is then not polled again). A stop seen before a
    /// poll wins over the body. Poll it through [`std::future::poll_fn`] over a pinned body, so
    /// that the body is kept once, in the caller's future.
    ///
    /// The stop's waker is registered only once the body has to wait, so that a body done in
    /// its first poll never touches it.
    #[inline]
    pub(crate) fn poll_unless_stopped<F: Future>(
        &self,
        body: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<F::Output>> {
        let inner = &*self.inner;
        if inner.stopped.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(output) = body.poll(cx) {
            return Poll::Ready(Some(output));
        }
        // Registered, then looked at again: a stop between the two looks still wakes.
        inner.stop_waker.register(cx.waker());
        if inner.stopped.load(Ordering::Acquire) {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// Keeps the stack trace captured by the panic hook for this attempt.
    pub(crate) fn set_panic_trace(&self, trace: String) {
        *self.inner.panic_trace.lock() = Some(trace);
    }

    /// Takes the stack trace of a panic in this attempt, if one was captured.
    pub(crate) fn take_panic_trace(&self) -> Option<String> {
        self.inner.panic_trace.lock().take()
    }
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .field("attempt", &self.inner.attempt)
            .field("tags", self.tags())
            .finish_non_exhaustive()
    }
}

/// Appends a structured entry to the running task's log; does nothing outside a task.
///
/// Forms: `task_log!("format {}", args)` (level info), `task_log!(warn, "format {}", args)`, and
/// with fields `task_log!(info, amount = 12, currency = "eur"; "charged {}", user)`. Levels are
/// `trace`, `debug`, `info`, `warn`, `error`; field values are anything `Serialize`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use taskflow::task_log;
/// let manager = taskflow::TaskManager::builder().build().await?;
/// let id = manager
///     .spawn("charge", async {
///         task_log!("starting");
///         task_log!(warn, amount = 12, currency = "eur"; "card {} retried", 42);
///     })
///     .await?;
/// let record = manager.wait(id).await?;
/// assert_eq!(record.logs[1].message, "card 42 retried");
/// assert_eq!(record.logs[1].fields["amount"], 12);
/// # manager.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! task_log {
    ($level:ident, $($key:ident = $value:expr),+ ; $($fmt:tt)+) => {
        if let ::std::option::Option::Some(ctx) = $crate::TaskContext::current() {
            let mut fields = $crate::__private::serde_json::Map::new();
            $(
                fields.insert(
                    ::std::string::String::from(::std::stringify!($key)),
                    $crate::__private::to_log_value(&$value),
                );
            )+
            ctx.log($crate::__private::log_level!($level), ::std::format!($($fmt)+), fields);
        }
    };
    ($level:ident, $($fmt:tt)+) => {
        if let ::std::option::Option::Some(ctx) = $crate::TaskContext::current() {
            ctx.log(
                $crate::__private::log_level!($level),
                ::std::format!($($fmt)+),
                $crate::__private::serde_json::Map::new(),
            );
        }
    };
    ($fmt:literal $($rest:tt)*) => {
        $crate::task_log!(info, $fmt $($rest)*)
    };
}

/// A `tracing` layer that appends every event emitted inside a task to that task's log.
///
/// Add it to your subscriber; events outside tasks pass through untouched.
///
/// # Examples
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// let subscriber = tracing_subscriber::registry().with(taskflow::TaskLogLayer::new());
/// let _guard = tracing::subscriber::set_default(subscriber);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskLogLayer {
    _private: (),
}

impl TaskLogLayer {
    /// The layer.
    ///
    /// # Examples
    ///
    /// See [`TaskLogLayer`].
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TaskLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: LayerContext<'_, S>) {
        let Some(task) = TaskContext::current() else {
            return;
        };
        if event.metadata().target().starts_with("taskflow::") {
            return;
        }
        let mut visitor = FieldVisitor {
            message: String::new(),
            fields: Map::new(),
        };
        event.record(&mut visitor);
        let level = match *event.metadata().level() {
            tracing::Level::TRACE => LogLevel::Trace,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::ERROR => LogLevel::Error,
        };
        task.log(level, visitor.message, visitor.fields);
    }
}

struct FieldVisitor {
    message: String,
    fields: Map<String, Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskManager;

    /// The heap block of this thread's most recent spare context, and whether every spare has
    /// let go of its manager.
    fn spares() -> (Option<usize>, bool) {
        SPARE.with(|spare| {
            let spare = spare.borrow();
            (
                spare.last().map(|context| Arc::as_ptr(context).addr()),
                spare.iter().all(|context| context.manager.is_none()),
            )
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_ended_attempts_context_is_reused_and_keeps_no_manager() {
        let manager = TaskManager::builder().build().await.expect("builds");
        let first = manager.spawn("first", async {}).await.expect("enqueued");
        manager.wait(first).await.expect("finishes");
        let (spare, released) = spares();
        let spare = spare.expect("the ended attempt's context is kept on this thread");
        assert!(released, "a spare keeps no manager alive");

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let second = manager
            .spawn("second", async move {
                let context = TaskContext::current().expect("inside a task");
                let block = Arc::as_ptr(&context.inner).addr();
                let _ = sender.send((block, context.name().to_owned()));
            })
            .await
            .expect("enqueued");
        manager.wait(second).await.expect("finishes");
        let (block, name) = receiver.await.expect("the task ran");
        assert_eq!(
            block, spare,
            "the next attempt here reuses the spare's block"
        );
        assert_eq!(name, "second");
        manager.shutdown().await.expect("shuts down");
    }

    /// Runs `body` as an attempt's runner does: to its end, unless `context` is stopped.
    async fn unless_stopped<F: Future>(context: &TaskContext, body: F) -> Option<F::Output> {
        let mut body = std::pin::pin!(body);
        std::future::poll_fn(|cx| context.poll_unless_stopped(body.as_mut(), cx)).await
    }

    /// A context of its own for `manager`, outside any task.
    fn context(manager: &TaskManager) -> TaskContext {
        TaskContext::new(
            crate::TaskId::new(),
            SharedStr::from_static("attempt"),
            1,
            &Tags::new(),
            Arc::clone(&manager.inner),
            None,
            tracing::Span::none(),
        )
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_body_done_in_its_first_poll_never_registers_the_stop() {
        let manager = TaskManager::builder().build().await.expect("builds");
        let context = context(&manager);
        assert_eq!(unless_stopped(&context, async { 7 }).await, Some(7));
        assert!(
            context.inner.stop_waker.take().is_none(),
            "nothing waited, so nothing was registered"
        );
        manager.shutdown().await.expect("shuts down");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stop_before_the_first_poll_keeps_the_body_from_running() {
        let manager = TaskManager::builder().build().await.expect("builds");
        let context = context(&manager);
        context.stop();
        let polled = std::sync::atomic::AtomicBool::new(false);
        let body = async {
            polled.store(true, Ordering::Relaxed);
        };
        assert_eq!(unless_stopped(&context, body).await, None);
        assert!(!polled.load(Ordering::Relaxed), "the body was never polled");
        manager.shutdown().await.expect("shuts down");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stop_wakes_a_waiting_body_and_ends_it() {
        let manager = TaskManager::builder().build().await.expect("builds");
        let context = context(&manager);
        let (_sender, never) = tokio::sync::oneshot::channel::<()>();
        let waiting = context.clone();
        let attempt = tokio::spawn(async move { unless_stopped(&waiting, never).await });
        // Lets the attempt run until its body waits and the stop's waker is registered; the
        // waker taken to see it is put back as it was.
        let registered = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                if let Some(waker) = context.inner.stop_waker.take() {
                    break waker;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the waiting body registered the stop's waker");
        context.inner.stop_waker.register(&registered);
        context.stop();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), attempt)
            .await
            .expect("the stop woke the attempt")
            .expect("the attempt did not panic");
        assert_eq!(ended, None, "the stop ended the waiting body");
        manager.shutdown().await.expect("shuts down");
    }
}
