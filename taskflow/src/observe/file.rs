//! [`FileLogger`]: task events as plain-text lines in a file rotated by size.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::event::TaskEvent;
use super::format::{self, LogFormat};
use super::observer::{ObserverFuture, TaskObserver};
use super::writer::{LineWriter, Sink};
use crate::task::LogLevel;

/// Writes task events to a file, one line each, for `tail -f` and `grep`; rotates by size.
///
/// When a line would take the file past [`max_size`](FileLoggerBuilder::max_size) (default
/// 10 MiB), `app.log` becomes `app.log.1`, `app.log.1` becomes `app.log.2`, and so on; the
/// oldest beyond [`keep`](FileLoggerBuilder::keep) (default 5) is deleted. Lines are written on a
/// dedicated thread, never on the async runtime. Lines are in [`LogFormat::Text`] unless asked
/// otherwise, and include lifecycle lines (`status=running`, `status=failed …`) unless
/// [`lifecycle(false)`](FileLoggerBuilder::lifecycle).
///
/// [`TaskManagerBuilder::log_file`](crate::TaskManagerBuilder::log_file) is the shorthand for a
/// logger with the defaults.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use taskflow::{FileLogger, LogLevel, TaskManager};
///
/// let dir = std::env::temp_dir().join(format!("taskflow-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("tasks.log");
/// let logger = FileLogger::builder(&path)
///     .max_size(1024 * 1024)
///     .keep(3)
///     .min_level(LogLevel::Info)
///     .open()?; // fails here, not later, when the file cannot be opened
/// let manager = TaskManager::builder().observer(logger).build().await?;
/// let id = manager
///     .spawn("file-logged", async { taskflow::task_log!("hello from the task") })
///     .await?;
/// manager.wait(id).await?;
/// manager.shutdown().await?; // flushes the file
/// let text = std::fs::read_to_string(&path)?;
/// assert!(text.contains(&format!("file-logged {id} #1 hello from the task")));
/// assert!(text.contains("status=success"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FileLogger {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    writer: LineWriter,
    format: LogFormat,
    lifecycle: bool,
    min_level: LogLevel,
}

impl FileLogger {
    /// A logger appending to `path` with the defaults: text lines, lifecycle lines, every
    /// level, rotation at 10 MiB keeping 5 old files.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or created (the message names the path).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = taskflow::FileLogger::new("/no/such/dir/tasks.log").unwrap_err();
    /// assert!(err.to_string().contains("/no/such/dir/tasks.log"));
    /// ```
    pub fn new(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::builder(path).open()
    }

    /// A builder for a logger writing to `path`.
    ///
    /// # Examples
    ///
    /// See [`FileLogger`].
    pub fn builder(path: impl AsRef<Path>) -> FileLoggerBuilder {
        FileLoggerBuilder {
            path: path.as_ref().to_path_buf(),
            max_size: 10 * 1024 * 1024,
            keep: 5,
            format: LogFormat::Text,
            lifecycle: true,
            min_level: LogLevel::Trace,
        }
    }

    /// The file it writes to.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// let path = std::env::temp_dir().join(format!("taskflow-path-{}.log", std::process::id()));
    /// let logger = taskflow::FileLogger::new(&path)?;
    /// assert_eq!(logger.path(), path);
    /// # drop(logger);
    /// # std::fs::remove_file(&path)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

impl TaskObserver for FileLogger {
    fn on_event(&self, event: Arc<TaskEvent>) -> ObserverFuture<'_> {
        Box::pin(async move {
            if !self.shared.lifecycle && matches!(event.as_ref(), TaskEvent::Lifecycle(_)) {
                return;
            }
            let line = format::line(self.shared.format, &event);
            self.shared.writer.send(line).await;
        })
    }

    fn min_level(&self) -> LogLevel {
        self.shared.min_level
    }

    fn flush(&self) -> ObserverFuture<'_> {
        Box::pin(self.shared.writer.flush())
    }

    fn name(&self) -> String {
        format!("FileLogger({})", self.shared.path.display())
    }
}

/// Options of a [`FileLogger`]; [`open`](Self::open) it.
///
/// # Examples
///
/// See [`FileLogger`].
#[derive(Debug, Clone)]
#[must_use = "call .open() to create the logger"]
pub struct FileLoggerBuilder {
    path: PathBuf,
    max_size: u64,
    keep: usize,
    format: LogFormat,
    lifecycle: bool,
    min_level: LogLevel,
}

impl FileLoggerBuilder {
    /// Rotates when a line would take the file past this many bytes (default 10 MiB).
    ///
    /// # Examples
    ///
    /// See [`FileLogger`].
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes.max(1);
        self
    }

    /// Rotated files kept: `app.log.1` (newest) to `app.log.{keep}` (default 5). With 0 the file
    /// is truncated instead of rotated.
    ///
    /// # Examples
    ///
    /// See [`FileLogger`].
    pub fn keep(mut self, files: usize) -> Self {
        self.keep = files;
        self
    }

    /// The line format (default [`LogFormat::Text`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::FileLogger::builder("tasks.jsonl").format(taskflow::LogFormat::Json);
    /// ```
    pub fn format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }

    /// Whether to write a line for each state change (default `true`).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = taskflow::FileLogger::builder("task-logs-only.log").lifecycle(false);
    /// ```
    pub fn lifecycle(mut self, lifecycle: bool) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Task log entries below this level are not written (default: all).
    ///
    /// # Examples
    ///
    /// See [`FileLogger`].
    pub fn min_level(mut self, level: LogLevel) -> Self {
        self.min_level = level;
        self
    }

    /// Opens (or creates) the file for appending and starts the writer thread.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or created, or the thread cannot start; the message
    /// names the path.
    ///
    /// # Examples
    ///
    /// See [`FileLogger`].
    pub fn open(self) -> io::Result<FileLogger> {
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("cannot open log file `{}`: {e}", self.path.display()),
            )
        };
        let sink =
            RotatingFile::open(self.path.clone(), self.max_size, self.keep).map_err(context)?;
        let writer = LineWriter::spawn("file-log", sink).map_err(context)?;
        Ok(FileLogger {
            shared: Arc::new(Shared {
                path: self.path,
                writer,
                format: self.format,
                lifecycle: self.lifecycle,
                min_level: self.min_level,
            }),
        })
    }
}

/// A file that rotates by size: `path`, `path.1`, …, `path.{keep}`.
struct RotatingFile {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    max_size: u64,
    keep: usize,
}

impl RotatingFile {
    fn open(path: PathBuf, max_size: u64, keep: usize) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file: BufWriter::new(file),
            size,
            max_size,
            keep,
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = OsString::from(self.path.as_os_str());
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep > 0 {
            remove_if_present(&self.numbered(self.keep))?;
            for n in (1..self.keep).rev() {
                rename_if_present(&self.numbered(n), &self.numbered(n + 1))?;
            }
            rename_if_present(&self.path, &self.numbered(1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

impl Sink for RotatingFile {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = std::env::temp_dir().join(format!(
            "taskflow-rotate-unit-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("app.log");
        let mut file = RotatingFile::open(path.clone(), 20, 2).expect("opens");
        for n in 0..5 {
            file.write_line(&format!("line {n} ........"))
                .expect("writes"); // 17 bytes + \n
        }
        file.flush().expect("flushes");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path), "line 4 ........\n");
        assert_eq!(read(&dir.join("app.log.1")), "line 3 ........\n");
        assert_eq!(read(&dir.join("app.log.2")), "line 2 ........\n");
        assert!(!dir.join("app.log.3").exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
