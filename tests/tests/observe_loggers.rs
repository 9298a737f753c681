//! What each built-in observer writes: `FileLogger` lines and rotation, the `log_file`
//! shorthand and its error on a bad path, `StdoutLogger` text and JSON lines, and the
//! `InMemoryLogger` helpers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use taskflow::{
    FileLogger, InMemoryLogger, LogFormat, LogLevel, StdoutLogger, TaskEvent, TaskManager,
    TaskStatus, task_log,
};

const WAIT: Duration = Duration::from_secs(10);

/// Logs a line with fields, then succeeds.
#[taskflow::task(name = "obs.file.mail")]
async fn file_mail(user: u64, to: String) {
    task_log!(info, user = user; "mailing {to}");
    task_log!(debug, "connection detail\nsecond line");
}

/// Fails once with a multi-line error, then gives up.
#[taskflow::task(name = "obs.file.broken")]
async fn file_broken() -> Result<(), String> {
    Err("smtp said:\n550 no such user".to_owned())
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "taskflow-{label}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Checks the fixed prefix of a text line: timestamp, level, name, id, attempt.
fn assert_text_line(line: &str) {
    let mut parts = line.splitn(5, ' ');
    let time = parts.next().expect("a timestamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "bad timestamp in {line:?}"
    );
    let mut rest = parts.collect::<Vec<_>>().join(" ");
    let level = rest.split_whitespace().next().expect("a level").to_owned();
    assert!(
        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level.as_str()),
        "bad level in {line:?}"
    );
    rest = rest[level.len()..].trim_start().to_owned();
    let fields: Vec<&str> = rest.splitn(4, ' ').collect();
    assert!(fields.len() >= 3, "missing name/id/attempt in {line:?}");
    assert!(
        fields[1].parse::<taskflow::TaskId>().is_ok(),
        "bad id in {line:?}"
    );
    assert!(fields[2].starts_with('#'), "bad attempt in {line:?}");
}

#[tokio::test]
async fn file_logger_writes_greppable_lines_with_lifecycle() {
    let dir = TempDir::new("file-lines");
    let path = dir.path("tasks.log");
    let manager = TaskManager::builder()
        .log_file(&path)
        .build()
        .await
        .expect("builds");
    let ok = manager
        .add(FileMail {
            user: 7,
            to: "ada@example.com".into(),
        })
        .tags([("tenant", "acme")])
        .await
        .expect("enqueued");
    let broken = manager.add(FileBroken {}).await.expect("enqueued");
    manager.wait(ok).await.expect("finishes");
    manager.wait(broken).await.expect("finishes");
    manager.shutdown().await.expect("shuts down");

    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines {
        assert_text_line(line);
    }
    let of = |id: taskflow::TaskId| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| l.contains(&id.to_string()))
            .collect()
    };
    let ok_lines = of(ok);
    assert_eq!(ok_lines.len(), 5, "{ok_lines:#?}");
    assert!(ok_lines[0].ends_with(&format!(
        "INFO  obs.file.mail {ok} #0 status=pending queue=default tag.tenant=acme"
    )));
    assert!(ok_lines[1].ends_with(&format!("INFO  obs.file.mail {ok} #1 status=running")));
    assert!(ok_lines[2].ends_with(&format!(
        "INFO  obs.file.mail {ok} #1 mailing ada@example.com user=7"
    )));
    assert!(ok_lines[3].ends_with(&format!(
        "DEBUG obs.file.mail {ok} #1 connection detail\\nsecond line"
    )));
    assert!(
        ok_lines[4].contains(&format!(
            "INFO  obs.file.mail {ok} #1 status=success retries=0 duration="
        )),
        "{}",
        ok_lines[4]
    );

    let broken_lines = of(broken);
    let last = broken_lines.last().expect("a final line");
    assert!(
        last.contains(" ERROR obs.file.broken ")
            && last.contains(" status=failed ")
            && last.ends_with(r#"error="smtp said:\n550 no such user""#),
        "{last}"
    );
    assert_eq!(text.matches("status=failed").count(), 1);
}

#[tokio::test]
async fn file_logger_filters_levels_and_can_skip_lifecycle_lines() {
    let dir = TempDir::new("file-filter");
    let path = dir.path("filtered.log");
    let logger = FileLogger::builder(&path)
        .lifecycle(false)
        .min_level(LogLevel::Info)
        .open()
        .expect("opens");
    assert_eq!(logger.path(), path);
    let manager = TaskManager::builder()
        .observer(logger)
        .build()
        .await
        .expect("builds");
    let id = manager
        .add(FileMail {
            user: 1,
            to: "bob@example.com".into(),
        })
        .await
        .expect("enqueued");
    manager.wait(id).await.expect("finishes");
    manager.shutdown().await.expect("shuts down");
    let text = read(&path);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("mailing bob@example.com user=1"), "{text}");
}

#[tokio::test]
async fn file_logger_rotates_by_size_and_keeps_n_files() {
    let dir = TempDir::new("file-rotate");
    let path = dir.path("app.log");
    let logger = FileLogger::builder(&path)
        .max_size(400)
        .keep(2)
        .open()
        .expect("opens");
    let manager = TaskManager::builder()
        .observer(logger)
        .build()
        .await
        .expect("builds");
    for n in 0..12u32 {
        let id = manager
            .spawn("obs.file.rotated", async move {
                task_log!(info, n = n; "rotation line {n}");
            })
            .await
            .expect("enqueued");
        manager.wait(id).await.expect("finishes");
    }
    manager.shutdown().await.expect("shuts down");

    let current = read(&path);
    let first = read(&dir.path("app.log.1"));
    let second = read(&dir.path("app.log.2"));
    assert!(
        !dir.path("app.log.3").exists(),
        "only two rotated files kept"
    );
    for (name, text) in [
        ("app.log", &current),
        ("app.log.1", &first),
        ("app.log.2", &second),
    ] {
        assert!(!text.is_empty(), "{name} is empty");
        assert!(text.len() <= 400, "{name} has {} bytes", text.len());
        assert!(text.ends_with('\n'), "{name} ends mid-line");
        text.lines().for_each(assert_text_line);
    }
    // The newest line is in the live file, older ones in the rotated files, in order.
    assert!(current.contains("rotation line 11"), "{current}");
    let order = |text: &str| -> Vec<u32> {
        text.lines()
            .filter_map(|l| l.split("rotation line ").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse().ok())
            .collect()
    };
    let (a, b, c) = (order(&second), order(&first), order(&current));
    let all: Vec<u32> = a.iter().chain(&b).chain(&c).copied().collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
}

#[tokio::test]
async fn a_bad_log_file_path_fails_the_build_with_the_path_in_the_message() {
    let dir = TempDir::new("file-bad");
    let missing = dir.path("no-such-dir").join("tasks.log");
    let err = TaskManager::builder()
        .log_file(&missing)
        .build()
        .await
        .expect_err("cannot open");
    let message = err.to_string();
    assert!(
        message.contains(&format!("cannot open log file `{}`", missing.display())),
        "{message}"
    );
    let err = FileLogger::new(dir.path("")).expect_err("a directory is not a file");
    assert!(err.to_string().contains("cannot open log file"), "{err}");
}

/// A writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<parking_lot::Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().clone()).expect("utf-8")
    }
}

#[tokio::test]
async fn stdout_logger_writes_json_lines_that_parse_back_into_events() {
    let buffer = Buffer::default();
    let manager = TaskManager::builder()
        .observer(
            StdoutLogger::new()
                .format(LogFormat::Json)
                .writer(buffer.clone()),
        )
        .build()
        .await
        .expect("builds");
    let id = manager
        .add(FileMail {
            user: 3,
            to: "cy@example.com".into(),
        })
        .await
        .expect("enqueued");
    manager.wait(id).await.expect("finishes");
    manager.shutdown().await.expect("shuts down");

    let text = buffer.text();
    let events: Vec<TaskEvent> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not an event ({e}): {line}"))
        })
        .collect();
    let statuses: Vec<TaskStatus> = events
        .iter()
        .filter_map(|e| match e {
            TaskEvent::Lifecycle(l) => Some(l.status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            TaskStatus::Pending,
            TaskStatus::Running,
            TaskStatus::Success
        ]
    );
    let logs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TaskEvent::Log(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].message, "mailing cy@example.com");
    assert_eq!(logs[0].fields["user"], 3);
    assert!(events.iter().all(|e| e.task_id() == id));
    let raw: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a line")).expect("json");
    assert_eq!(raw["kind"], "lifecycle");
    assert_eq!(raw["name"], "obs.file.mail");
}

#[tokio::test]
async fn stdout_logger_text_lines_follow_min_level() {
    let buffer = Buffer::default();
    let manager = TaskManager::builder()
        .observer(
            StdoutLogger::new()
                .min_level(LogLevel::Info)
                .lifecycle(false)
                .writer(buffer.clone()),
        )
        .build()
        .await
        .expect("builds");
    let id = manager
        .add(FileMail {
            user: 4,
            to: "di@example.com".into(),
        })
        .await
        .expect("enqueued");
    manager.wait(id).await.expect("finishes");
    manager.shutdown().await.expect("shuts down");
    let text = buffer.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_text_line(text.trim_end());
    assert!(text.contains(&format!(
        "obs.file.mail {id} #1 mailing di@example.com user=4"
    )));
}

#[tokio::test]
async fn in_memory_logger_helpers_find_and_wait_for_events() {
    let logger = InMemoryLogger::new();
    let warnings = InMemoryLogger::new().min_level(LogLevel::Warn);
    let manager = TaskManager::builder()
        .observer(logger.clone())
        .observer(warnings.clone())
        .build()
        .await
        .expect("builds");
    let id = manager
        .add(FileMail {
            user: 5,
            to: "ed@example.com".into(),
        })
        .await
        .expect("enqueued");
    let other = manager.add(FileBroken {}).await.expect("enqueued");
    let success = logger
        .wait_for_status(id, TaskStatus::Success, WAIT)
        .await
        .expect("succeeds in time");
    assert_eq!((success.attempt, success.retries_used), (1, 0));
    assert!(success.duration.is_some());
    let failed = logger
        .wait_for_status(other, TaskStatus::Failed, WAIT)
        .await
        .expect("fails in time");
    assert_eq!(
        failed.error.as_deref(),
        Some("smtp said:\n550 no such user")
    );
    assert_eq!(
        logger.statuses_for(id),
        [
            TaskStatus::Pending,
            TaskStatus::Running,
            TaskStatus::Success
        ]
    );
    let logs = logger.logs_for(id);
    assert_eq!(logs.len(), 2);
    assert_eq!(
        (logs[1].level, logs[1].attempt),
        (LogLevel::Debug, 1),
        "{logs:?}"
    );
    assert_eq!(logger.events_for(id).len(), 5);
    assert!(logger.events().len() >= 5 + 3);
    assert!(
        logger
            .wait_for(
                |e| e.task_id() == taskflow::TaskId::new(),
                Duration::from_millis(20)
            )
            .await
            .is_none(),
        "times out on what never happens"
    );
    manager.shutdown().await.expect("shuts down");
    assert!(
        warnings.logs_for(id).is_empty(),
        "info and debug entries are below warn"
    );
    assert_eq!(warnings.statuses_for(id).len(), 3, "lifecycle always comes");
    logger.clear();
    assert!(logger.is_empty());
}
