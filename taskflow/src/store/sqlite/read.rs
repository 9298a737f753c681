//! Reads: a small pool of read-only connections used from the blocking pool, so queries never
//! block the async runtime and never wait for the writer (WAL readers see the last commit).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{from_micros, id_from_blob, micros, row, stats};
use crate::history::{ListPage, Metrics, NameStats, TaskFilter};
use crate::store::{Instance, StoreError};
use crate::task::{TaskId, TaskRecord, TaskStatus};

/// Read-only connections, opened on demand and reused: at most `max` queries run at once, so a
/// burst of reads waits for a connection instead of opening (and parsing the schema on) new ones.
pub(super) struct Readers {
    path: PathBuf,
    idle: parking_lot::Mutex<Vec<Connection>>,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    opened: std::sync::atomic::AtomicUsize,
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl Readers {
    pub(super) fn new(path: PathBuf, max: usize) -> Self {
        Self {
            path,
            idle: parking_lot::Mutex::new(Vec::new()),
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(max.max(1))),
            opened: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Closes the idle connections; later reads fail.
    pub(super) fn close(&self) {
        self.permits.close();
        self.idle.lock().clear();
    }

    /// How many connections were opened so far.
    #[cfg(test)]
    pub(super) fn opened(&self) -> usize {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `query` on a pooled connection on the blocking pool, once a connection is free.
    pub(super) async fn run<T: Send + 'static>(
        self: std::sync::Arc<Self>,
        query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // The permit lives as long as the blocking closure, even if the caller stops waiting.
        let permit = std::sync::Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let result = self.with(query);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("a read failed: {e}")))?
    }

    fn with<T>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = query(&conn);
        if !self.permits.is_closed() {
            self.idle.lock().push(conn);
        }
        result
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(conn)
    }
}

pub(super) fn get(conn: &Connection, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
    let found: Option<Option<TaskRecord>> = conn
        .prepare_cached(&format!("SELECT {} FROM tasks WHERE id = ?1", row::COLUMNS))
        .and_then(|mut stmt| stmt.query_row([id.to_bytes()], row::decode).optional())
        .map_err(backend)?;
    match found {
        None => Ok(None),
        Some(decoded) => decoded.map(Some).ok_or_else(|| {
            StoreError::Backend(format!("the stored row of task `{id}` is corrupt"))
        }),
    }
}

/// The rows a filter reads and the `WHERE` clause that narrows them, with its parameters.
struct Clause {
    /// `tasks`, or, with a `key:value` tag filter, the runs holding that tag (`task_tags`,
    /// migration 3) joined to their rows, outermost, so that the query walks that tag's runs,
    /// newest first, and never the rest of the table.
    from: &'static str,
    /// The run id column that orders and pages the rows: `task_tags.task_id` when the tag's runs
    /// drive the query, since the tags table walks them in id order (`tasks.id` is the same).
    id: &'static str,
    sql: String,
    params: Vec<SqlValue>,
}

/// With a filter on a tag's key alone, up to this many runs holding the key are looked up by id
/// from the tags table; more are found by checking each run's tags, newest first, which then
/// meets one of them within a few rows.
const FEW_KEYED_RUNS: i64 = 20_000;

/// How a tag filter reads its runs.
enum TagRead<'f> {
    /// `key:value`: the tag's runs from the tags table, in id order.
    Value(&'f str, &'f str),
    /// A key alone that few runs hold: those runs, looked up by id.
    FewRuns(&'f str),
    /// A key alone that many runs hold: every run in id order, each checked for the key.
    ManyRuns(&'f str),
}

/// How many runs hold tag key `key`, counted up to `FEW_KEYED_RUNS + 1`.
fn keyed_runs(conn: &Connection, key: &str) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT count(*) FROM (SELECT 1 FROM task_tags WHERE key = ?1 LIMIT ?2)")
        .and_then(|mut stmt| {
            stmt.query_row(rusqlite::params![key, FEW_KEYED_RUNS + 1], |r| r.get(0))
        })
        .map_err(backend)
}

impl Clause {
    /// The clause of `filter` (with its cursor if `with_cursor`), or `None` when the tags table
    /// shows that no row can match: a filter on a tag key that no run holds (a typo, say).
    fn new(
        conn: &Connection,
        filter: &TaskFilter,
        with_cursor: bool,
    ) -> Result<Option<Self>, StoreError> {
        let tag = match filter
            .tag
            .as_deref()
            .map(|tag| tag.split_once([':', '=']).ok_or(tag))
        {
            None => None,
            Some(Ok((key, value))) => Some(TagRead::Value(key, value)),
            Some(Err(key)) => match keyed_runs(conn, key)? {
                0 => return Ok(None),
                runs if runs <= FEW_KEYED_RUNS => Some(TagRead::FewRuns(key)),
                _ => Some(TagRead::ManyRuns(key)),
            },
        };
        let by_tag = matches!(tag, Some(TagRead::Value(..)));
        let mut clause = Self {
            from: if by_tag {
                "task_tags CROSS JOIN tasks ON tasks.id = task_tags.task_id"
            } else {
                "tasks"
            },
            id: if by_tag { "task_tags.task_id" } else { "id" },
            sql: "1 = 1".to_owned(),
            params: Vec::new(),
        };
        match tag {
            Some(TagRead::Value(key, value)) => {
                clause.push("task_tags.key = ?", key.to_owned().into());
                clause.push("task_tags.value = ?", value.to_owned().into());
            }
            // SQLite walks the ids it collects in order (see migration 3).
            Some(TagRead::FewRuns(key)) => clause.push(
                "id IN (SELECT task_id FROM task_tags WHERE key = ?)",
                key.to_owned().into(),
            ),
            Some(TagRead::ManyRuns(key)) => clause.push(
                "EXISTS (SELECT 1 FROM json_each(tasks.tags) WHERE key = ?)",
                key.to_owned().into(),
            ),
            None => {}
        }
        if let Some(status) = filter.status {
            clause.push("status = ?", status.as_str().to_owned().into());
        }
        if let Some(name) = &filter.name {
            clause.push("name = ?", name.clone().into());
        }
        if let Some(since) = filter.since {
            clause.push("created_at >= ?", micros(since).into());
        }
        if let Some(until) = filter.until {
            clause.push("created_at < ?", micros(until).into());
        }
        if let Some(q) = &filter.q {
            let pattern = format!(
                "%{}%",
                q.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            clause.sql.push_str(
                " AND (lower(substr(hex(id), 1, 8) || '-' || substr(hex(id), 9, 4) || '-' || substr(hex(id), 13, 4)
                  || '-' || substr(hex(id), 17, 4) || '-' || substr(hex(id), 21)) LIKE ?1q ESCAPE '\\' OR name LIKE ?1q ESCAPE '\\' OR idempotency_key LIKE ?1q ESCAPE '\\'
                  OR tags LIKE ?1q ESCAPE '\\' OR json_extract(record, '$.error') LIKE ?1q ESCAPE '\\')",
            );
            let index = clause.params.len() + 1;
            clause.sql = clause.sql.replace("?1q", &format!("?{index}"));
            clause.params.push(pattern.into());
        }
        if with_cursor
            && let Some(after) = filter
                .cursor
                .as_deref()
                .and_then(|c| c.parse::<TaskId>().ok())
        {
            let id = clause.id;
            clause.push(&format!("{id} < ?"), after.to_bytes().to_vec().into());
        }
        Ok(Some(clause))
    }

    /// The query of a page of at most `rows` matching rows, newest first.
    fn page(&self, rows: usize) -> String {
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} DESC LIMIT {rows}",
            row::COLUMNS,
            self.from,
            self.sql,
            self.id
        )
    }

    fn push(&mut self, condition: &str, value: SqlValue) {
        self.params.push(value);
        let numbered = condition.replacen('?', &format!("?{}", self.params.len()), 1);
        self.sql.push_str(" AND ");
        self.sql.push_str(&numbered);
    }
}

pub(super) fn list(conn: &Connection, filter: &TaskFilter) -> Result<ListPage, StoreError> {
    let limit = filter.limit.clamp(1, TaskFilter::MAX_LIMIT);
    let Some(clause) = Clause::new(conn, filter, true)? else {
        return Ok(ListPage {
            tasks: Vec::new(),
            next_cursor: None,
        });
    };
    let sql = clause.page(limit + 1);
    let rows: Vec<(Vec<u8>, Option<TaskRecord>)> = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(rusqlite::params_from_iter(&clause.params), |r| {
                Ok((r.get(0)?, row::decode(r)?))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(backend)?;
    let more = rows.len() > limit;
    let next_cursor = if more {
        rows.get(limit - 1)
            .and_then(|(id, _)| id_from_blob(id.clone()))
            .map(|id| id.to_string())
    } else {
        None
    };
    let tasks: Vec<TaskRecord> = rows
        .into_iter()
        .take(limit)
        .filter_map(|(_, record)| record)
        .collect();
    Ok(ListPage { tasks, next_cursor })
}

pub(super) fn metrics(conn: &Connection, filter: &TaskFilter) -> Result<Metrics, StoreError> {
    let unfiltered = filter.status.is_none()
        && filter.name.is_none()
        && filter.tag.is_none()
        && filter.q.is_none()
        && filter.since.is_none()
        && filter.until.is_none();
    if unfiltered {
        return running_metrics(conn);
    }
    scanned_metrics(conn, filter)
}

/// Metrics of the whole history from the running figures: a few rows whatever its size. The
/// 95th percentile is the upper bound of its histogram bucket (within 10%).
fn running_metrics(conn: &Connection) -> Result<Metrics, StoreError> {
    let counts: Vec<(String, String, i64, f64, i64)> = conn
        .prepare_cached("SELECT name, status, count, duration_sum, duration_count FROM task_counts WHERE count > 0")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(backend)?;
    let buckets: Vec<(String, i64, i64)> = conn
        .prepare_cached(
            "SELECT name, bucket, count FROM task_durations WHERE count > 0 ORDER BY bucket",
        )
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(backend)?;
    let mut per_name: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    let mut all_buckets: BTreeMap<i64, i64> = BTreeMap::new();
    for (name, bucket, count) in buckets {
        *all_buckets.entry(bucket).or_default() += count;
        per_name.entry(name).or_default().push((bucket, count));
    }
    fold(counts, |name, _| {
        Ok(match name {
            Some(name) => per_name
                .get(name)
                .and_then(|b| histogram_p95(b.iter().copied())),
            None => histogram_p95(all_buckets.iter().map(|(b, c)| (*b, *c))),
        })
    })
}

/// Builds metrics from `(name, status, count, finished duration sum, finished timed count)`
/// groups; `p95` gives the 95th percentile of one name (or of all, `None`) given its timed count.
fn fold(
    groups: Vec<(String, String, i64, f64, i64)>,
    mut p95: impl FnMut(Option<&str>, i64) -> Result<Option<f64>, StoreError>,
) -> Result<Metrics, StoreError> {
    let mut by_status: BTreeMap<String, usize> = TaskStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    let mut names: BTreeMap<String, (NameStats, f64, i64)> = BTreeMap::new();
    let (mut total, mut sum_all, mut timed_all) = (0usize, 0.0, 0i64);
    for (name, status, count, sum, timed) in groups {
        let count = usize::try_from(count).unwrap_or(0);
        total += count;
        *by_status.entry(status.clone()).or_default() += count;
        let entry = names.entry(name).or_default();
        entry.0.total += count;
        match status.parse::<TaskStatus>() {
            Ok(TaskStatus::Success) => entry.0.success += count,
            Ok(TaskStatus::Failed) => entry.0.failed += count,
            _ => {}
        }
        entry.1 += sum;
        entry.2 += timed;
        sum_all += sum;
        timed_all += timed;
    }
    let mut by_name = BTreeMap::new();
    let (mut success_all, mut failed_all) = (0, 0);
    for (name, (mut stats, sum, timed)) in names {
        success_all += stats.success;
        failed_all += stats.failed;
        stats.success_rate = rate(stats.success, stats.failed);
        stats.avg_duration = (timed > 0).then(|| sum / timed as f64);
        stats.p95_duration = p95(Some(&name), timed)?;
        by_name.insert(name, stats);
    }
    Ok(Metrics {
        total,
        by_status,
        success_rate: rate(success_all, failed_all),
        avg_duration: (timed_all > 0).then(|| sum_all / timed_all as f64),
        p95_duration: p95(None, timed_all)?,
        by_name,
    })
}

/// The 95th percentile of a histogram given in ascending bucket order.
fn histogram_p95(buckets: impl Iterator<Item = (i64, i64)> + Clone) -> Option<f64> {
    let total: i64 = buckets.clone().map(|(_, count)| count).sum();
    if total <= 0 {
        return None;
    }
    let rank = ((total as f64) * 0.95).ceil() as i64;
    let mut seen = 0;
    for (bucket, count) in buckets {
        seen += count;
        if seen >= rank {
            return Some(stats::upper_bound(bucket));
        }
    }
    None
}

/// Metrics of the rows matching a filter, by scanning them.
fn scanned_metrics(conn: &Connection, filter: &TaskFilter) -> Result<Metrics, StoreError> {
    let Some(clause) = Clause::new(conn, filter, false)? else {
        return fold(Vec::new(), |_, _| Ok(None));
    };
    let finished = "status NOT IN ('pending', 'running')";
    let sql = format!(
        "SELECT name, status, count(*), coalesce(sum(CASE WHEN {finished} THEN duration END), 0),
                count(CASE WHEN {finished} THEN duration END)
         FROM {} WHERE {} GROUP BY name, status",
        clause.from, clause.sql
    );
    let groups: Vec<(String, String, i64, f64, i64)> = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(rusqlite::params_from_iter(&clause.params), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(backend)?;
    fold(groups, |name, timed| p95(conn, &clause, name, timed))
}

fn rate(success: usize, failed: usize) -> Option<f64> {
    let decided = success + failed;
    (decided > 0).then(|| success as f64 / decided as f64)
}

/// The 95th percentile duration of the finished runs matching `clause` (and `name`), by rank.
fn p95(
    conn: &Connection,
    clause: &Clause,
    name: Option<&str>,
    timed: i64,
) -> Result<Option<f64>, StoreError> {
    if timed == 0 {
        return Ok(None);
    }
    let rank = ((timed as f64) * 0.95).ceil() as i64;
    let mut params = clause.params.clone();
    let mut sql = format!(
        "SELECT duration FROM {} WHERE {} AND duration IS NOT NULL AND status NOT IN ('pending', 'running')",
        clause.from, clause.sql
    );
    if let Some(name) = name {
        params.push(name.to_owned().into());
        sql.push_str(&format!(" AND name = ?{}", params.len()));
    }
    sql.push_str(&format!(
        " ORDER BY duration LIMIT 1 OFFSET {}",
        rank.clamp(1, timed) - 1
    ));
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_row(rusqlite::params_from_iter(&params), |r| r.get(0))
                .optional()
        })
        .map_err(backend)
}

pub(super) fn instances(conn: &Connection) -> Result<Vec<Instance>, StoreError> {
    conn.prepare_cached("SELECT id, host, pid, started_at, heartbeat_at FROM instances ORDER BY id")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| {
                let started: i64 = r.get(3)?;
                let beat: i64 = r.get(4)?;
                Ok(Instance {
                    id: r.get(0)?,
                    host: r.get(1)?,
                    pid: r.get(2)?,
                    started_at: from_micros(started),
                    heartbeat_at: from_micros(beat),
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::Clause;
    use crate::history::TaskFilter;
    use crate::store::{SqliteStore, Store};
    use crate::task::{TaskId, TaskStatus};

    /// A database with every migration applied and no rows.
    fn empty() -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().expect("opens");
        super::super::schema::migrate(&mut conn, 0).expect("migrates");
        conn
    }

    /// SQLite's plan for a page of `filter` on `conn`, one step per line.
    fn plan(conn: &rusqlite::Connection, filter: &TaskFilter) -> Vec<String> {
        let clause = Clause::new(conn, filter, true)
            .expect("builds")
            .expect("can match");
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", clause.page(51)))
            .expect("prepares");
        stmt.query_map(rusqlite::params_from_iter(&clause.params), |r| {
            r.get::<_, String>(3)
        })
        .expect("plans")
        .collect::<Result<_, _>>()
        .expect("plans")
    }

    /// No step reads a whole table or sorts.
    fn walks_indexes_only(plan: &[String]) -> bool {
        plan.iter()
            .all(|step| !step.starts_with("SCAN") && !step.contains("TEMP B-TREE"))
    }

    /// A `key:value` tag filter reads the runs holding the tag from the tags table, in id order
    /// (no sort), alone or with other filters and a cursor, and never scans the tasks: a tag that
    /// no run holds once read the whole table (BENCHMARKS.md, session 29).
    #[test]
    fn a_tag_filter_walks_the_tags_index_and_scans_no_table() {
        let cursor = TaskId::new().to_string();
        for filter in [
            TaskFilter::new().tag("tenant:acme"),
            TaskFilter::new().tag("tenant=acme").cursor(cursor.clone()),
            TaskFilter::new()
                .tag("tenant:acme")
                .status(TaskStatus::Failed),
            TaskFilter::new().tag("tenant:acme").name("job").q("x"),
        ] {
            let plan = plan(&empty(), &filter);
            assert!(
                plan[0].starts_with("SEARCH task_tags USING PRIMARY KEY (key=? AND value=?"),
                "{filter:?}: {plan:?}"
            );
            assert!(walks_indexes_only(&plan), "{filter:?}: {plan:?}");
        }
    }

    /// A filter on a tag's key alone reads nothing when no run holds the key, looks up by id the
    /// runs holding a key few runs hold, and walks the runs in id order for a key many hold.
    #[test]
    fn a_tag_key_filter_reads_by_how_many_runs_hold_the_key() {
        let conn = empty();
        let tag = |key: &str, n: i64| {
            conn.execute(
                "INSERT INTO task_tags (key, value, task_id) VALUES (?1, 'x', ?2)",
                rusqlite::params![key, n.to_be_bytes()],
            )
            .expect("inserts");
        };
        conn.execute_batch("BEGIN").expect("begins");
        for n in 0..3 {
            tag("vip", n);
        }
        for n in 0..=super::FEW_KEYED_RUNS {
            tag("tenant", n);
        }
        conn.execute_batch("COMMIT").expect("commits");

        let unheld = Clause::new(&conn, &TaskFilter::new().tag("region"), true).expect("builds");
        assert!(unheld.is_none(), "no run holds `region`");
        let few = plan(
            &conn,
            &TaskFilter::new().tag("vip").status(TaskStatus::Failed),
        );
        assert!(
            few.iter().any(|step| step.contains("LIST SUBQUERY")) && walks_indexes_only(&few),
            "{few:?}"
        );
        let many = plan(&conn, &TaskFilter::new().tag("tenant"));
        assert!(
            many[0].starts_with("SCAN tasks USING INDEX")
                && !many.iter().any(|step| step.contains("TEMP B-TREE")),
            "{many:?}"
        );
    }

    /// A burst of reads once opened a connection (and parsed the schema) per read in flight.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_reads_shares_the_configured_connections() {
        let dir = std::env::temp_dir().join(format!("taskflow-readers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = SqliteStore::open(dir.join("tasks.db"))
            .await
            .expect("opens");
        let reads = (0..64).map(|_| store.get(TaskId::new()));
        for found in futures_util::future::join_all(reads).await {
            assert!(found.expect("reads").is_none());
        }
        let opened = store.readers.opened();
        assert!(
            (1..=4).contains(&opened),
            "{opened} connections for 4 readers"
        );
        store.close().await.expect("closes");
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
