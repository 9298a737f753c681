//! A task record encoded as the values of its row, off the writer thread. The text values share
//! one buffer: one allocation to make on the caller's thread and one to free on the writer's.

use std::ops::Range;

use super::{micros, stats};
use crate::store::StoreError;
use crate::task::{TaskId, TaskRecord, TaskStatus};

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
        serde_json::to_writer(&mut buffer, record).map_err(json)?;
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

    /// The whole record as JSON.
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
    use super::*;

    #[test]
    fn every_value_reads_back() {
        let mut record = TaskRecord::pending(TaskId::new(), "mail.send", "web-1");
        record.idempotency_key = Some("order-7".to_owned());
        record.tags.insert("tenant".to_owned(), "acme".to_owned());
        let row = Row::encode(&record).expect("encodes");
        assert_eq!(row.name(), "mail.send");
        assert_eq!(row.instance_id(), "web-1");
        assert_eq!(row.queue(), record.queue);
        assert_eq!(row.idempotency_key(), Some("order-7"));
        assert_eq!(row.tags(), r#"{"tenant":"acme"}"#);
        let decoded: TaskRecord = serde_json::from_str(row.record()).expect("decodes");
        assert_eq!(decoded.task_id, record.task_id);
    }
}
