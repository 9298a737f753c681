//! A task record as a row of the tasks table, both ways. The columns hold what queries filter on
//! (name, status, owner, key, queue, tags); the `record` column holds the rest as a JSON object
//! without null or empty values, so that each write of a persisted task copies as few bytes as it
//! can. Encoding happens off the writer thread, into one buffer: one allocation to make on the
//! caller's thread and one to free on the writer's.

use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{id_from_blob, micros, rfc3339, stats};
use crate::json_text::JsonText;
use crate::shared_str::SharedStr;
use crate::store::StoreError;
use crate::task::{LogEntry, TaskId, TaskRecord, TaskStatus};

/// The columns [`decode`] reads, in its order.
pub(super) const COLUMNS: &str =
    "id, name, status, instance_id, idempotency_key, queue, persist, tags, record";

/// The `record` column read back (see [`write_body`]); what it left out takes its default.
#[derive(Deserialize)]
struct StoredBody<'a> {
    created_at: DateTime<Utc>,
    #[serde(default)]
    start_time: Option<DateTime<Utc>>,
    #[serde(default)]
    end_time: Option<DateTime<Utc>>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    retries_used: u32,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    stacktrace: Option<String>,
    #[serde(default)]
    logs: Vec<LogEntry>,
    #[serde(default)]
    source: String,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    executor: String,
    #[serde(default)]
    attempt: u32,
    /// The result and the arguments are kept as the text they are, without a JSON value made
    /// of them on the way.
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    args: Option<&'a RawValue>,
    #[serde(default)]
    retry_of: Option<TaskId>,
    #[serde(default)]
    run_at: Option<DateTime<Utc>>,
    #[serde(default)]
    trace_parent: Option<String>,
}

/// Rebuilds the record of a row selected with [`COLUMNS`]. A row that does not decode is
/// reported and skipped (`None`), never deleted.
pub(super) fn decode(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<TaskRecord>> {
    let id: Vec<u8> = row.get(0)?;
    let shown =
        || id_from_blob(id.clone()).map_or_else(|| format!("{id:02x?}"), |id| id.to_string());
    let status: String = row.get(2)?;
    let tags: String = row.get(7)?;
    let body: String = row.get(8)?;
    let decoded = (|| -> Result<TaskRecord, String> {
        let task_id = id_from_blob(id.clone()).ok_or("its id is not 16 bytes")?;
        let status: TaskStatus = status
            .parse()
            .map_err(|e| format!("its status `{status}`: {e}"))?;
        let tags = serde_json::from_str(&tags).map_err(|e| format!("its tags: {e}"))?;
        let body: StoredBody<'_> =
            serde_json::from_str(&body).map_err(|e| format!("its record: {e}"))?;
        let name: String = row.get(1).map_err(|e| e.to_string())?;
        let instance_id: String = row.get(3).map_err(|e| e.to_string())?;
        let mut record = TaskRecord::pending_at(task_id, name, instance_id, body.created_at);
        record.status = status;
        record.idempotency_key = row
            .get::<_, Option<String>>(4)
            .map_err(|e| e.to_string())?
            .map(SharedStr::from);
        record.queue = row.get::<_, String>(5).map_err(|e| e.to_string())?.into();
        record.persist = row.get(6).map_err(|e| e.to_string())?;
        record.tags = tags;
        record.start_time = body.start_time;
        record.end_time = body.end_time;
        record.duration = body.duration;
        record.retries_used = body.retries_used;
        record.error = body.error;
        record.stacktrace = body.stacktrace;
        record.logs = body.logs;
        record.source = body.source.into();
        record.priority = body.priority;
        record.executor = body.executor.into();
        record.attempt = body.attempt;
        record.result = body
            .result
            .map(|result| JsonText::from_json_text(result.get()));
        record.args = body.args.map(|args| JsonText::from_json_text(args.get()));
        record.retry_of = body.retry_of;
        record.run_at = body.run_at;
        record.trace_parent = body.trace_parent;
        Ok(record)
    })();
    Ok(match decoded {
        Ok(record) => Some(record),
        Err(error) => {
            tracing::error!(target: "taskflow::store", task_id = %shown(), %error, "skipping a corrupt task row (kept in the file)");
            None
        }
    })
}

/// Appends the part of `record` the `record` column holds: a JSON object of what no column
/// holds, without null or empty values, so that each write of a persisted task copies as few
/// bytes as it can. Written field by field rather than through serde's derive:
/// keys need no escaping and timestamps are written in one pass ([`rfc3339`]); the text is the
/// one the derive would write (tested).
fn write_body(out: &mut Vec<u8>, record: &TaskRecord) -> serde_json::Result<()> {
    /// Appends `,"name":` and `value` as serde writes it, unless `value` is absent.
    fn json<T: Serialize + ?Sized>(
        out: &mut Vec<u8>,
        name: &str,
        value: Option<&T>,
    ) -> serde_json::Result<()> {
        let Some(value) = value else {
            return Ok(());
        };
        key(out, name);
        serde_json::to_writer(&mut *out, value)
    }
    /// Appends `,"name":` and `time`, unless it is absent.
    fn time(out: &mut Vec<u8>, name: &str, time: Option<&DateTime<Utc>>) -> serde_json::Result<()> {
        let Some(time) = time else {
            return Ok(());
        };
        key(out, name);
        rfc3339::write(out, time)
    }
    /// Appends `,"name":` and the JSON text, unless it is absent.
    fn raw(out: &mut Vec<u8>, name: &str, text: Option<&JsonText>) {
        if let Some(text) = text {
            key(out, name);
            out.extend_from_slice(text.as_bytes());
        }
    }
    /// Appends `,"name":` (the first key is written with the brace).
    fn key(out: &mut Vec<u8>, name: &str) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    }
    fn number(n: &u32) -> Option<&u32> {
        (*n != 0).then_some(n)
    }
    fn text(s: &str) -> Option<&str> {
        (!s.is_empty()).then_some(s)
    }
    out.extend_from_slice(b"{\"created_at\":");
    rfc3339::write(out, &record.created_at)?;
    time(out, "start_time", record.start_time.as_ref())?;
    time(out, "end_time", record.end_time.as_ref())?;
    json(out, "duration", record.duration.as_ref())?;
    json(out, "retries_used", number(&record.retries_used))?;
    json(out, "error", record.error.as_ref())?;
    json(out, "stacktrace", record.stacktrace.as_ref())?;
    json(
        out,
        "logs",
        (!record.logs.is_empty()).then_some(&record.logs),
    )?;
    json(out, "source", text(&record.source))?;
    json(
        out,
        "priority",
        (record.priority != 0).then_some(&record.priority),
    )?;
    json(out, "executor", text(&record.executor))?;
    json(out, "attempt", number(&record.attempt))?;
    raw(out, "result", record.result.as_ref());
    raw(out, "args", record.args.as_ref());
    json(out, "retry_of", record.retry_of.as_ref())?;
    time(out, "run_at", record.run_at.as_ref())?;
    json(out, "trace_parent", record.trace_parent.as_ref())?;
    out.push(b'}');
    Ok(())
}

/// The values of one row of the tasks table.
pub(super) struct Row {
    pub(super) id: TaskId,
    pub(super) status: TaskStatus,
    pub(super) created_at: i64,
    pub(super) ended_at: Option<i64>,
    pub(super) duration: Option<f64>,
    pub(super) persist: bool,
    /// Name, instance id, queue, idempotency key, tags JSON and record JSON, back to back.
    text: String,
    name: Range<usize>,
    instance_id: Range<usize>,
    queue: Range<usize>,
    idempotency_key: Option<Range<usize>>,
    tags: Range<usize>,
    record: Range<usize>,
}

impl Row {
    pub(super) fn encode(record: &TaskRecord) -> Result<Self, StoreError> {
        let json = |e: serde_json::Error| {
            StoreError::Backend(format!("cannot encode task `{}`: {e}", record.task_id))
        };
        let mut buffer = Vec::with_capacity(768);
        let push = |buffer: &mut Vec<u8>, text: &str| {
            let start = buffer.len();
            buffer.extend_from_slice(text.as_bytes());
            start..buffer.len()
        };
        let name = push(&mut buffer, &record.func_name);
        let instance_id = push(&mut buffer, &record.instance_id);
        let queue = push(&mut buffer, &record.queue);
        let idempotency_key = record
            .idempotency_key
            .as_deref()
            .map(|key| push(&mut buffer, key));
        let start = buffer.len();
        serde_json::to_writer(&mut buffer, &record.tags).map_err(json)?;
        let tags = start..buffer.len();
        let start = buffer.len();
        write_body(&mut buffer, record).map_err(json)?;
        let record_range = start..buffer.len();
        let text = String::from_utf8(buffer).map_err(|e| {
            StoreError::Backend(format!(
                "task `{}` encodes to invalid UTF-8: {e}",
                record.task_id
            ))
        })?;
        Ok(Self {
            id: record.task_id,
            status: record.status,
            created_at: micros(record.created_at),
            ended_at: record.end_time.map(micros),
            duration: record.duration,
            persist: record.persist,
            text,
            name,
            instance_id,
            queue,
            idempotency_key,
            tags,
            record: record_range,
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.text[self.name.clone()]
    }

    pub(super) fn instance_id(&self) -> &str {
        &self.text[self.instance_id.clone()]
    }

    pub(super) fn queue(&self) -> &str {
        &self.text[self.queue.clone()]
    }

    pub(super) fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.clone().map(|range| &self.text[range])
    }

    /// The tags as a JSON object.
    pub(super) fn tags(&self) -> &str {
        &self.text[self.tags.clone()]
    }

    /// The rest of the record as JSON (see [`COLUMNS`]).
    pub(super) fn record(&self) -> &str {
        &self.text[self.record.clone()]
    }

    /// What the row adds to the running figures.
    pub(super) fn contribution(&self) -> stats::Contribution<'_> {
        stats::Contribution {
            name: self.name(),
            status: self.status,
            duration: self.duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    /// The `record` column as serde's derive writes it: what [`write_body`] must write.
    #[derive(Serialize)]
    struct Body<'a> {
        created_at: &'a DateTime<Utc>,
        #[serde(skip_serializing_if = "Option::is_none")]
        start_time: &'a Option<DateTime<Utc>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        end_time: &'a Option<DateTime<Utc>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        duration: &'a Option<f64>,
        #[serde(skip_serializing_if = "is_zero")]
        retries_used: &'a u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: &'a Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        stacktrace: &'a Option<String>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        logs: &'a [LogEntry],
        #[serde(skip_serializing_if = "str::is_empty")]
        source: &'a str,
        #[serde(skip_serializing_if = "is_zero_i32")]
        priority: &'a i32,
        #[serde(skip_serializing_if = "str::is_empty")]
        executor: &'a str,
        #[serde(skip_serializing_if = "is_zero")]
        attempt: &'a u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: &'a Option<JsonText>,
        #[serde(skip_serializing_if = "Option::is_none")]
        args: &'a Option<JsonText>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_of: &'a Option<TaskId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        run_at: &'a Option<DateTime<Utc>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        trace_parent: &'a Option<String>,
    }

    #[allow(
        clippy::trivially_copy_pass_by_ref,
        reason = "serde passes fields by reference"
    )]
    fn is_zero(n: &&u32) -> bool {
        **n == 0
    }

    #[allow(
        clippy::trivially_copy_pass_by_ref,
        reason = "serde passes fields by reference"
    )]
    fn is_zero_i32(n: &&i32) -> bool {
        **n == 0
    }

    fn derived(record: &TaskRecord) -> String {
        serde_json::to_string(&Body {
            created_at: &record.created_at,
            start_time: &record.start_time,
            end_time: &record.end_time,
            duration: &record.duration,
            retries_used: &record.retries_used,
            error: &record.error,
            stacktrace: &record.stacktrace,
            logs: &record.logs,
            source: &record.source,
            priority: &record.priority,
            executor: &record.executor,
            attempt: &record.attempt,
            result: &record.result,
            args: &record.args,
            retry_of: &record.retry_of,
            run_at: &record.run_at,
            trace_parent: &record.trace_parent,
        })
        .expect("serializes")
    }

    #[test]
    fn the_record_column_is_what_serde_would_write() {
        let bare = TaskRecord::pending(TaskId::new(), "mail.send", "web-1");
        let mut full = bare.clone();
        full.start_time = Some(full.created_at + chrono::Duration::microseconds(1_500));
        full.end_time = Some(full.created_at + chrono::Duration::seconds(2));
        full.duration = Some(1.998_5);
        full.retries_used = 2;
        full.error = Some("smtp said \"no\"\nand\tthen ✉ \u{1}".to_owned());
        full.stacktrace = Some("at main.rs:1\\n".to_owned());
        let mut log = LogEntry::new(crate::task::LogLevel::Warn, "slow \"relay\"");
        log.fields.insert("attempt".to_owned(), 2.into());
        full.logs.push(log);
        full.source = "add".into();
        full.priority = -3;
        full.executor = "blocking".into();
        full.attempt = 3;
        full.result = Some(serde_json::json!({"sent": [1, 2.5, null, "x"]}).into());
        full.args = Some(serde_json::json!({"to": "a@b.c", "n": u64::MAX}).into());
        full.retry_of = Some(TaskId::new());
        full.run_at = NaiveDate::from_ymd_opt(10_000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        full.trace_parent =
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned());
        let mut odd = bare.clone();
        odd.duration = Some(f64::NAN);
        odd.source = "".into();
        odd.executor = "".into();
        for record in [&bare, &full, &odd] {
            let mut ours = Vec::new();
            write_body(&mut ours, record).expect("writes");
            assert_eq!(String::from_utf8_lossy(&ours), derived(record));
        }
    }

    #[test]
    fn every_value_reads_back() {
        let mut record = TaskRecord::pending(TaskId::new(), "mail.send", "web-1");
        record.idempotency_key = Some("order-7".into());
        record.tags.insert("tenant", "acme");
        let row = Row::encode(&record).expect("encodes");
        assert_eq!(row.name(), "mail.send");
        assert_eq!(row.instance_id(), "web-1");
        assert_eq!(row.queue(), record.queue);
        assert_eq!(row.idempotency_key(), Some("order-7"));
        assert_eq!(row.tags(), r#"{"tenant":"acme"}"#);
        assert!(!row.record().contains("null"), "{}", row.record());
    }

    #[test]
    fn a_record_reads_back_from_its_row_whole() {
        let conn = rusqlite::Connection::open_in_memory().expect("opens");
        conn.execute_batch(super::super::schema::MIGRATIONS[0])
            .expect("schema");
        let mut record = TaskRecord::pending(TaskId::new(), "mail.send", "web-1");
        record.status = TaskStatus::Failed;
        record.idempotency_key = Some("order-7".into());
        record.tags.insert("tenant", "acme");
        record.args = Some(serde_json::json!({"to": "a@b.c"}).into());
        record.error = Some("smtp down".to_owned());
        record.attempt = 2;
        record.retries_used = 1;
        record.persist = true;
        record.retry_of = Some(TaskId::new());
        let row = Row::encode(&record).expect("encodes");
        conn.execute(
            "INSERT INTO tasks (id, name, status, created_at, instance_id, idempotency_key, queue, persist, tags, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            rusqlite::params![
                row.id.to_bytes(),
                row.name(),
                row.status.as_str(),
                row.created_at,
                row.instance_id(),
                row.idempotency_key(),
                row.queue(),
                row.persist,
                row.tags(),
                row.record()
            ],
        )
        .expect("inserts");
        let read = conn
            .query_row(&format!("SELECT {COLUMNS} FROM tasks"), [], decode)
            .expect("reads")
            .expect("decodes");
        assert_eq!(read, record);
    }
}
