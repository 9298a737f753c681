//! The floor of the persisted benchmark: what one SQLite writer can commit on this disk when it
//! does only the two writes a persisted task that starts at once needs (its row, `running`,
//! before `add` returns and its body starts; its final state after), with taskflow's schema,
//! statements and row sizes, in group-committed transactions, and nothing else: no channel, no
//! runtime, no stats, no checkpoints, no tasks run.
//!
//! [`sqlite_floor_run`] pipelines `n` tasks through transactions of `group` tasks each: the
//! transaction that inserts group `k` also marks group `k - 1` succeeded, as taskflow's writer
//! does under load when 64 producers keep it busy.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use taskflow::TaskId;

/// A stored row of a finished no-op task: the columns every floor row copies.
struct Template {
    name: String,
    instance_id: String,
    queue: String,
    tags: String,
    record: String,
}

/// Runs one persisted no-op task through a taskflow manager on `path` (which creates the schema)
/// and reads its row back.
async fn template(path: &Path) -> Template {
    let manager = crate::sqlite_manager(path).await;
    crate::persisted_run(&manager, 1, 1).await;
    manager.shutdown().await.expect("shuts down");
    let conn = Connection::open(path).expect("the database opens");
    conn.query_row(
        "SELECT name, instance_id, queue, tags, record FROM tasks LIMIT 1",
        [],
        |row| {
            Ok(Template {
                name: row.get(0)?,
                instance_id: row.get(1)?,
                queue: row.get(2)?,
                tags: row.get(3)?,
                record: row.get(4)?,
            })
        },
    )
    .expect("the task's row")
}

/// Writes `n` tasks' two states to the SQLite database at `path` (made for the purpose; its
/// tables are created by a taskflow manager first) in transactions of `group` tasks, with the
/// store's pragmas (WAL, `synchronous = NORMAL`); returns the time the writes took.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let db = taskflow_benches::TempDb::new("doc-floor");
/// let took = taskflow_benches::sqlite_floor_run(&db.path(), 200, 64).await;
/// assert!(took > std::time::Duration::ZERO);
/// # }
/// ```
///
/// # Panics
///
/// When the database cannot be created, opened or written.
pub async fn sqlite_floor_run(path: &Path, n: usize, group: usize) -> Duration {
    let template = template(path).await;
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || write_all(&path, &template, n, group.max(1)))
        .await
        .expect("the writer thread finishes")
        .expect("the floor's writes succeed")
}

fn write_all(
    path: &Path,
    template: &Template,
    n: usize,
    group: usize,
) -> rusqlite::Result<Duration> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    let ids: Vec<[u8; 16]> = (0..n).map(|_| TaskId::new().to_bytes()).collect();
    let mut seqs = vec![0_i64; n];
    let groups = n.div_ceil(group);
    let start = Instant::now();
    for k in 0..groups + 1 {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Prepared once per transaction, as taskflow's writer does.
        let mut insert = tx.prepare_cached(
            "INSERT INTO tasks (id, name, status, created_at, ended_at, duration, instance_id, idempotency_key, queue, persist, tags, record)
             VALUES (?1, ?2, 'running', ?3, NULL, NULL, ?4, NULL, ?5, 1, ?6, ?7)",
        )?;
        let mut update = tx.prepare_cached(
            "UPDATE tasks SET status = ?2, ended_at = ?3, duration = ?4, instance_id = ?5, persist = 1,
                 tags = ?6, record = ?7
             WHERE seq = ?1 AND id = ?8 AND (?9 IS NULL OR status = ?9)",
        )?;
        let span = |g: usize| g * group..((g + 1) * group).min(n);
        if k < groups {
            for i in span(k) {
                insert.execute(params![
                    ids[i],
                    template.name,
                    micros_now(),
                    template.instance_id,
                    template.queue,
                    template.tags,
                    template.record,
                ])?;
                seqs[i] = tx.last_insert_rowid();
            }
        }
        if let Some(previous) = k.checked_sub(1).filter(|&g| g < groups) {
            for i in span(previous) {
                let ended = micros_now();
                update.execute(params![
                    seqs[i],
                    "success",
                    ended,
                    0.0001_f64,
                    template.instance_id,
                    template.tags,
                    template.record,
                    ids[i],
                    Option::<&str>::None,
                ])?;
            }
        }
        drop((insert, update));
        tx.commit()?;
    }
    Ok(start.elapsed())
}

fn micros_now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_task_ends_succeeded() {
        let db = crate::TempDb::new("floor-test");
        sqlite_floor_run(&db.path(), 300, 64).await;
        let conn = Connection::open(db.path()).expect("opens");
        let count = |status: &str| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM tasks WHERE status = ?1",
                [status],
                |row| row.get(0),
            )
            .expect("counts")
        };
        // The template's own task, plus the floor's 300.
        assert_eq!(count("success"), 301);
        assert_eq!(count("pending") + count("running"), 0);
    }
}
