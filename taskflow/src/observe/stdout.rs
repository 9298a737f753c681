//! [`StdoutLogger`]: task events as text or JSON lines on standard output.

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};

use super::event::TaskEvent;
use super::format::{self, LogFormat};
use super::observer::{ObserverFuture, TaskObserver};
use super::writer::LineWriter;
use crate::task::LogLevel;

/// Writes task events to standard output (or another writer), one text or JSON line each.
///
/// Lines are written on a dedicated thread started with the first event, never on the async
/// runtime. JSON lines ([`LogFormat::Json`]) suit container log collectors.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::Error> {
/// use taskflow::{LogFormat, LogLevel, StdoutLogger, TaskManager};
///
/// let manager = TaskManager::builder()
///     .observer(StdoutLogger::new().format(LogFormat::Json).min_level(LogLevel::Info))
///     .build()
///     .await?;
/// # manager.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StdoutLogger {
    format: LogFormat,
    lifecycle: bool,
    min_level: LogLevel,
    target: Arc<Target>,
}

struct Target {
    make: parking_lot::Mutex<Option<Box<dyn io::Write + Send>>>,
    writer: OnceLock<Option<LineWriter>>,
}

impl Default for StdoutLogger {
    fn default() -> Self {
        Self::new()
    }
}

impl StdoutLogger {
    /// A logger of text lines to standard output, with lifecycle lines and every level.
    ///
    /// # Examples
    ///
    /// See [`StdoutLogger`].
    pub fn new() -> Self {
        Self {
            format: LogFormat::Text,
            lifecycle: true,
            min_level: LogLevel::Trace,
            target: Arc::new(Target {
                make: parking_lot::Mutex::new(None),
                writer: OnceLock::new(),
            }),
        }
    }

    /// The line format (default [`LogFormat::Text`]).
    ///
    /// # Examples
    ///
    /// See [`StdoutLogger`].
    pub fn format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }

    /// Whether to write a line for each state change (default `true`).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::StdoutLogger::new().lifecycle(false);
    /// ```
    pub fn lifecycle(mut self, lifecycle: bool) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Task log entries below this level are not written (default: all).
    ///
    /// # Examples
    ///
    /// See [`StdoutLogger`].
    pub fn min_level(mut self, level: LogLevel) -> Self {
        self.min_level = level;
        self
    }

    /// Writes to `writer` instead of standard output (standard error, a pipe, a buffer in a
    /// test). Set it before the logger is registered.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::StdoutLogger::new().writer(std::io::stderr());
    /// ```
    pub fn writer(mut self, writer: impl io::Write + Send + 'static) -> Self {
        self.target = Arc::new(Target {
            make: parking_lot::Mutex::new(Some(Box::new(writer))),
            writer: OnceLock::new(),
        });
        self
    }

    fn line_writer(&self) -> Option<&LineWriter> {
        self.target
            .writer
            .get_or_init(|| {
                let sink = self
                    .target
                    .make
                    .lock()
                    .take()
                    .unwrap_or_else(|| Box::new(io::stdout()));
                match LineWriter::spawn("stdout-log", sink) {
                    Ok(writer) => Some(writer),
                    Err(error) => {
                        tracing::warn!(target: "taskflow::observe", %error, "cannot start the stdout logger's thread; its events are dropped");
                        None
                    }
                }
            })
            .as_ref()
    }
}

impl fmt::Debug for StdoutLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdoutLogger")
            .field("format", &self.format)
            .field("lifecycle", &self.lifecycle)
            .field("min_level", &self.min_level)
            .finish_non_exhaustive()
    }
}

impl TaskObserver for StdoutLogger {
    fn on_event(&self, event: Arc<TaskEvent>) -> ObserverFuture<'_> {
        Box::pin(async move {
            if !self.lifecycle && matches!(event.as_ref(), TaskEvent::Lifecycle(_)) {
                return;
            }
            if let Some(writer) = self.line_writer() {
                writer.send(format::line(self.format, &event)).await;
            }
        })
    }

    fn min_level(&self) -> LogLevel {
        self.min_level
    }

    fn flush(&self) -> ObserverFuture<'_> {
        Box::pin(async move {
            if let Some(writer) = self.target.writer.get().and_then(Option::as_ref) {
                writer.flush().await;
            }
        })
    }
}
