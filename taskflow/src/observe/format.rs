//! How the logging observers turn an event into one line of text or JSON.

use std::fmt::Write as _;

use chrono::SecondsFormat;
use serde_json::Value;

use super::event::{LifecycleEvent, LogEvent, TaskEvent};
use crate::task::{LogLevel, TaskStatus};

/// The line format of [`FileLogger`](crate::FileLogger) and [`StdoutLogger`](crate::StdoutLogger).
///
/// `Text` is one line per event made for `tail -f` and `grep`: an RFC 3339 UTC timestamp, the
/// level, the task's name, id and attempt, then the message (or the new state) and `key=value`
/// fields. Newlines are escaped, so an event is always exactly one line:
///
/// ```text
/// 2026-03-01T09:30:12.345Z INFO  mail.send 01955f0e-8a3c-7d2e-9b41-5f3a2c1d0e9f #1 status=running
/// 2026-03-01T09:30:12.346Z INFO  mail.send 01955f0e-8a3c-7d2e-9b41-5f3a2c1d0e9f #1 mailing ada@example.com user_id=7
/// 2026-03-01T09:30:12.398Z INFO  mail.send 01955f0e-8a3c-7d2e-9b41-5f3a2c1d0e9f #1 status=success retries=0 duration=0.053s
/// ```
///
/// `Json` writes each [`TaskEvent`] as one JSON object per line (`"kind":"lifecycle"` or
/// `"kind":"log"`), for log shippers.
///
/// # Examples
///
/// ```
/// let logger = taskflow::StdoutLogger::new().format(taskflow::LogFormat::Json);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// Plain text lines (the default).
    #[default]
    Text,
    /// JSON lines.
    Json,
}

/// The line for `event` (without the newline).
pub(crate) fn line(format: LogFormat, event: &TaskEvent) -> String {
    match format {
        LogFormat::Text => match event {
            TaskEvent::Lifecycle(e) => lifecycle_text(e),
            TaskEvent::Log(e) => log_text(e),
        },
        LogFormat::Json => serde_json::to_string(event).unwrap_or_else(|e| {
            format!(r#"{{"kind":"error","message":"event not serializable: {e}"}}"#)
        }),
    }
}

fn log_text(e: &LogEvent) -> String {
    let mut out = prefix(&e.time, e.level, &e.name, &e.task_id.to_string(), e.attempt);
    push_escaped(&mut out, &e.message);
    for (key, value) in &e.fields {
        out.push(' ');
        push_pair(&mut out, key, value);
    }
    out
}

fn lifecycle_text(e: &LifecycleEvent) -> String {
    let level = match e.status {
        TaskStatus::Failed => LogLevel::Error,
        TaskStatus::Interrupted | TaskStatus::Cancelled | TaskStatus::Rejected => LogLevel::Warn,
        _ => LogLevel::Info,
    };
    let mut out = prefix(&e.time, level, &e.name, &e.task_id.to_string(), e.attempt);
    let _ = write!(out, "status={}", e.status);
    if e.status == TaskStatus::Pending && e.attempt == 0 {
        let _ = write!(out, " queue=");
        push_value(&mut out, &e.queue);
        for (key, value) in &e.tags {
            out.push(' ');
            push_pair(&mut out, &format!("tag.{key}"), &Value::from(value));
        }
    }
    if e.status.is_finished() || e.retries_used > 0 {
        let _ = write!(out, " retries={}", e.retries_used);
    }
    if let Some(duration) = e.duration {
        let _ = write!(out, " duration={duration:.3}s");
    }
    if e.status != TaskStatus::Success
        && e.status != TaskStatus::Running
        && let Some(error) = &e.error
    {
        out.push_str(" error=");
        push_value(&mut out, error);
    }
    out
}

fn prefix(
    time: &chrono::DateTime<chrono::Utc>,
    level: LogLevel,
    name: &str,
    id: &str,
    attempt: u32,
) -> String {
    let mut out = String::with_capacity(128);
    let level = match level {
        LogLevel::Trace => "TRACE",
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO ",
        LogLevel::Warn => "WARN ",
        LogLevel::Error => "ERROR",
    };
    let _ = write!(
        out,
        "{} {level} ",
        time.to_rfc3339_opts(SecondsFormat::Millis, true)
    );
    push_value(&mut out, name);
    let _ = write!(out, " {id} #{attempt} ");
    out
}

fn push_pair(out: &mut String, key: &str, value: &Value) {
    push_escaped(out, key);
    out.push('=');
    match value {
        Value::String(s) => push_value(out, s),
        other => push_value(out, &other.to_string()),
    }
}

/// Writes `value` bare when it is one plain word, quoted and escaped otherwise.
fn push_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '=' | '\\'));
    if plain {
        out.push_str(value);
    } else {
        out.push('"');
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c => push_char(out, c),
            }
        }
        out.push('"');
    }
}

/// Writes free text with control characters escaped, so it stays on one line.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        push_char(out, c);
    }
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{LogEntry, TaskId, TaskRecord};

    #[test]
    fn text_lines_are_single_lines_with_quoted_values() {
        let mut record = TaskRecord::pending(TaskId::new(), "mail.send", "test");
        record.attempt = 2;
        let mut entry = LogEntry::new(LogLevel::Warn, "two\nlines");
        entry.fields.insert("to".into(), "ada lovelace".into());
        entry.fields.insert("n".into(), 7.into());
        let text = line(
            LogFormat::Text,
            &TaskEvent::Log(LogEvent::of(&record, &entry)),
        );
        assert!(!text.contains('\n'));
        assert!(
            text.ends_with(&format!(
                "WARN  mail.send {} #2 two\\nlines n=7 to=\"ada lovelace\"",
                record.task_id
            )),
            "{text}"
        );

        record.status = TaskStatus::Failed;
        record.retries_used = 1;
        record.duration = Some(1.5);
        record.error = Some("said \"no\"".into());
        let text = line(
            LogFormat::Text,
            &TaskEvent::Lifecycle(LifecycleEvent::of(&record)),
        );
        assert!(
            text.ends_with("status=failed retries=1 duration=1.500s error=\"said \\\"no\\\"\""),
            "{text}"
        );
        assert!(text.contains(" ERROR "), "{text}");
    }

    #[test]
    fn json_lines_parse_back() {
        let record = TaskRecord::pending(TaskId::new(), "a", "test");
        let event = TaskEvent::Lifecycle(LifecycleEvent::of(&record));
        let json = line(LogFormat::Json, &event);
        let back: TaskEvent = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, event);
    }
}
