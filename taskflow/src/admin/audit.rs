//! The audit log of admin mutations: who did what to which tasks, when, and how it ended.
//! Bounded: the oldest entries are dropped first.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::task::TaskId;

/// One mutation made through the admin API, as `GET /tasks/audit` lists it.
///
/// # Examples
///
/// ```
/// let entry: taskflow::admin::AuditEntry = serde_json::from_value(serde_json::json!({
///     "time": "2026-11-22T10:00:00Z",
///     "user": "ops",
///     "action": "retry",
///     "task_ids": [],
///     "status": 200,
///     "detail": "1 dispatched",
/// }))?;
/// assert_eq!(entry.action, "retry");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Who did it (`anonymous` without [`Auth`](super::Auth)).
    pub user: String,
    /// What was done: `retry`, `cancel`, `bulk-retry`, `retry-failed`, `delete-history`,
    /// `resize-queue`.
    pub action: String,
    /// The tasks it was about (for a retry: the originals).
    pub task_ids: Vec<TaskId>,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// A short account of the outcome.
    pub detail: String,
}

/// The bounded log.
#[derive(Debug)]
pub(crate) struct AuditLog {
    entries: parking_lot::Mutex<VecDeque<AuditEntry>>,
    capacity: usize,
}

impl AuditLog {
    /// Entries kept.
    pub(crate) const CAPACITY: usize = 1_000;
    /// Task ids kept per entry.
    const MAX_IDS: usize = 1_000;

    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: parking_lot::Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn record(
        &self,
        user: &str,
        action: &str,
        mut task_ids: Vec<TaskId>,
        status: u16,
        detail: impl Into<String>,
    ) {
        task_ids.truncate(Self::MAX_IDS);
        let entry = AuditEntry {
            time: Utc::now(),
            user: user.to_owned(),
            action: action.to_owned(),
            task_ids,
            status,
            detail: detail.into(),
        };
        tracing::info!(
            target: "taskflow::admin",
            user = %entry.user,
            action = %entry.action,
            tasks = entry.task_ids.len(),
            status = entry.status,
            detail = %entry.detail,
            "admin action"
        );
        let mut entries = self.entries.lock();
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Newest first.
    pub(crate) fn entries(&self) -> Vec<AuditEntry> {
        self.entries.lock().iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_newest_first() {
        let log = AuditLog::new(3);
        for n in 0..5 {
            log.record("u", &format!("a{n}"), Vec::new(), 200, "");
        }
        let actions: Vec<_> = log.entries().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["a4", "a3", "a2"]);
    }
}
