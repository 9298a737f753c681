//! The SQLite store in one process: history across a clean restart, write-ahead inserts, bad
//! files refused untouched, corrupt rows skipped and kept, unknown names and undecodable
//! arguments failed and kept, `requeue_pending`, history queries, retention, key time to live.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::TempDir;
use taskflow::store::{SqliteOptions, SqliteStore, Store, StoreError};
use taskflow::{Error, QueueConfig, TaskFilter, TaskManager, TaskStatus, task_log};
use tokio::sync::Notify;

/// Logs and returns a value; fails for negative numbers.
#[taskflow::task(name = "sq.compute")]
async fn compute(n: i64) -> Result<i64, String> {
    task_log!(info, n = n; "computing {n}");
    if n < 0 {
        return Err(format!("{n} is negative"));
    }
    Ok(n * 2)
}

/// What `sq.receipt` returns.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Receipt {
    url: String,
    pages: u32,
}

/// Returns a struct.
#[taskflow::task(name = "sq.receipt")]
async fn make_receipt(order: u64) -> Result<Receipt, String> {
    Ok(Receipt {
        url: format!("/receipts/{order}.pdf"),
        pages: 2,
    })
}

/// A persisted task.
#[taskflow::task(name = "sq.durable", persist)]
async fn durable(n: u64) -> Result<u64, String> {
    Ok(n)
}

/// Holds the `gate` queue until released.
static GATE: Notify = Notify::const_new();

/// Waits for the gate; holds queue `gated`.
#[taskflow::task(name = "sq.gatekeeper", queue = "gated")]
async fn gatekeeper() {
    GATE.notified().await;
}

async fn build(db: &std::path::Path) -> TaskManager {
    TaskManager::builder()
        .sqlite(db)
        .snapshot_interval(Duration::from_millis(20))
        .queue("gated", QueueConfig::new().concurrency(1))
        .shutdown_timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("the manager builds on the file")
}

#[tokio::test]
async fn a_struct_result_is_kept_as_its_json_and_decodes_as_its_type() {
    let dir = TempDir::new("struct-result");
    let db = dir.join("tasks.db");
    let expected = Receipt {
        url: "/receipts/7.pdf".to_owned(),
        pages: 2,
    };
    let manager = build(&db).await;
    let id = manager
        .add(MakeReceipt { order: 7 })
        .await
        .expect("enqueued");
    let done = manager.wait(id).await.expect("finishes");
    let result = done.result.expect("a result");
    assert_eq!(result.as_str(), r#"{"url":"/receipts/7.pdf","pages":2}"#);
    assert_eq!(result.decode::<Receipt>().expect("decodes"), expected);
    manager.shutdown().await.expect("shuts down");

    let restarted = build(&db).await;
    let record = restarted
        .get(id)
        .await
        .expect("readable")
        .expect("kept across the restart");
    let kept = record.result.clone().expect("a result");
    assert_eq!(kept.decode::<Receipt>().expect("decodes"), expected);
    assert_eq!(
        kept,
        serde_json::json!({ "pages": 2, "url": "/receipts/7.pdf" })
    );
    // The record's JSON holds the result as an object, not as a string of text.
    let json = serde_json::to_value(&record).expect("serializes");
    assert_eq!(json["result"]["url"], "/receipts/7.pdf");
    restarted.shutdown().await.expect("shuts down");
}

#[tokio::test]
async fn finished_tasks_are_listed_after_a_clean_restart_with_logs_and_results() {
    let dir = TempDir::new("restart");
    let db = dir.join("tasks.db");
    let manager = build(&db).await;
    let ok = manager
        .add(Compute { n: 21 })
        .tags([("batch", "a")])
        .await
        .expect("enqueued");
    let bad = manager.add(Compute { n: -1 }).await.expect("enqueued");
    manager.wait(ok).await.expect("finishes");
    manager.wait(bad).await.expect("finishes");
    manager.shutdown().await.expect("shuts down");

    let restarted = build(&db).await;
    let record = restarted
        .get(ok)
        .await
        .expect("readable")
        .expect("kept across the restart");
    assert_eq!(record.status, TaskStatus::Success);
    assert_eq!(record.result, Some(serde_json::json!(42).into()));
    assert_eq!(record.logs.len(), 1);
    assert_eq!(record.logs[0].message, "computing 21");
    assert_eq!(record.logs[0].fields["n"], 21);
    assert_eq!(&record.tags["batch"], "a");
    let failed = restarted.get(bad).await.expect("readable").expect("kept");
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (TaskStatus::Failed, Some("-1 is negative"))
    );

    let page = restarted.list(&TaskFilter::new()).await.expect("list");
    assert_eq!(
        page.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>(),
        [bad, ok],
        "newest first"
    );
    let metrics = restarted.metrics().await.expect("metrics");
    assert_eq!(
        (metrics.by_status["success"], metrics.by_status["failed"]),
        (1, 1)
    );
    assert_eq!(metrics.by_name["sq.compute"].total, 2);
    assert!(metrics.p95_duration.is_some());
    restarted.shutdown().await.expect("shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_adds_are_committed_before_they_return() {
    let dir = TempDir::new("write-ahead");
    let db = dir.join("tasks.db");
    let manager = build(&db).await;
    let reader = SqliteStore::open(&db).await.expect("a second connection");
    let mut producers = Vec::new();
    for p in 0..64u64 {
        let (manager, reader) = (
            manager.clone(),
            Arc::new(SqliteStore::open(&db).await.expect("open")),
        );
        producers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..20 {
                let id = manager
                    .add(Durable { n: p * 100 + n })
                    .await
                    .expect("accepted");
                // Committed: another connection sees the row as soon as `add` returns.
                assert!(
                    reader.get(id).await.expect("readable").is_some(),
                    "task {id} not committed"
                );
                ids.push(id);
            }
            ids
        }));
    }
    for producer in producers {
        for id in producer.await.expect("producer finished") {
            manager.wait(id).await.expect("finishes");
        }
    }
    manager.shutdown().await.expect("shuts down");
    let metrics = reader
        .metrics(&TaskFilter::new().name("sq.durable"))
        .await
        .expect("metrics");
    assert_eq!(metrics.total, 1280);
    assert_eq!(metrics.by_status["success"], 1280);
}

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).expect("read the file")
}

#[tokio::test]
async fn bad_files_fail_the_build_clearly_and_are_left_untouched() {
    let dir = TempDir::new("bad-files");

    let error = TaskManager::builder()
        .sqlite(dir.join("missing/dir/tasks.db"))
        .build()
        .await
        .expect_err("no such dir");
    assert!(
        matches!(error, Error::Store(StoreError::Open { .. })),
        "{error}"
    );
    assert!(
        error.to_string().contains("missing/dir/tasks.db"),
        "names the path: {error}"
    );

    let text = dir.join("notes.txt");
    std::fs::write(&text, "these are not tasks\n".repeat(200)).expect("write");
    let before = file_bytes(&text);
    let error = TaskManager::builder()
        .sqlite(&text)
        .build()
        .await
        .expect_err("not a database");
    assert!(
        matches!(error, Error::Store(StoreError::NotTaskflow { .. })),
        "{error}"
    );
    assert!(file_bytes(&text) == before, "the file is untouched");

    let foreign = dir.join("app.db");
    rusqlite::Connection::open(&foreign)
        .and_then(|c| c.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
        .expect("a foreign database");
    let before = file_bytes(&foreign);
    let error = TaskManager::builder()
        .sqlite(&foreign)
        .build()
        .await
        .expect_err("foreign");
    assert!(
        error.to_string().contains("is not a taskflow database"),
        "{error}"
    );
    assert!(file_bytes(&foreign) == before, "the file is untouched");

    let newer = dir.join("newer.db");
    rusqlite::Connection::open(&newer)
        .and_then(|c| {
            c.execute_batch("PRAGMA application_id = 1952869495; PRAGMA user_version = 99;")
        })
        .expect("a newer file");
    let before = file_bytes(&newer);
    let error = TaskManager::builder()
        .sqlite(&newer)
        .build()
        .await
        .expect_err("newer");
    assert!(
        matches!(
            error,
            Error::Store(StoreError::NewerSchema { found: 99, .. })
        ),
        "{error}"
    );
    assert!(file_bytes(&newer) == before, "the file is untouched");

    let locked = dir.join("locked.db");
    build(&locked)
        .await
        .shutdown()
        .await
        .expect("create a valid file");
    let holder = rusqlite::Connection::open(&locked).expect("open");
    holder
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the file");
    let error = TaskManager::builder()
        .sqlite_with(
            &locked,
            SqliteOptions::new().busy_timeout(Duration::from_millis(100)),
        )
        .build()
        .await
        .expect_err("locked");
    assert!(error.to_string().contains("locked"), "{error}");
    holder.execute_batch("COMMIT").expect("unlock");
    build(&locked)
        .await
        .shutdown()
        .await
        .expect("usable once unlocked");
}

#[tokio::test]
async fn a_read_only_file_fails_the_build() {
    let dir = TempDir::new("read-only");
    let db = dir.join("tasks.db");
    build(&db)
        .await
        .shutdown()
        .await
        .expect("create a valid file");
    for file in [
        db.clone(),
        dir.join("tasks.db-wal"),
        dir.join("tasks.db-shm"),
    ] {
        if file.exists() {
            set_mode(&file, 0o444);
        }
    }
    set_mode(&dir.0, 0o555);
    let before = file_bytes(&db);
    let running_as_root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let outcome = if running_as_root {
        // Permissions do not bind root: open the file from a child that runs as `nobody`.
        set_mode(
            std::path::Path::new(env!("CARGO_BIN_EXE_taskflow_child")),
            0o755,
        );
        let output = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_taskflow_child"),
                "open",
            ])
            .arg(&db)
            .arg(dir.join("unused.log"))
            .output();
        match output {
            Ok(output) => String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            Err(error) => {
                println!("skipping: setpriv is not available to drop root privileges ({error})");
                set_mode(&dir.0, 0o755);
                return;
            }
        }
    } else {
        match TaskManager::builder().sqlite(&db).build().await {
            Ok(_) => "OPENED".to_owned(),
            Err(error) => format!("ERROR {error}"),
        }
    };
    set_mode(&dir.0, 0o755);
    assert!(
        outcome.starts_with("ERROR cannot open the task store"),
        "{outcome}"
    );
    let after = file_bytes(&db);
    let first_difference = before.iter().zip(&after).position(|(a, b)| a != b);
    assert!(
        after == before,
        "the file changed: {} -> {} bytes, first difference at {first_difference:?}",
        before.len(),
        after.len()
    );
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test]
async fn a_corrupt_row_is_reported_skipped_and_kept() {
    let dir = TempDir::new("corrupt");
    let db = dir.join("tasks.db");
    let manager = build(&db).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = manager.add(Compute { n }).await.expect("enqueued");
        manager.wait(id).await.expect("finishes");
        ids.push(id);
    }
    manager.shutdown().await.expect("shuts down");
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute(
        "UPDATE tasks SET record = '{not json' WHERE id = ?1",
        [ids[1].to_bytes()],
    )
    .expect("corrupt a row");

    let manager = build(&db).await;
    let page = manager
        .list(&TaskFilter::new())
        .await
        .expect("the list still works");
    assert_eq!(
        page.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>(),
        [ids[2], ids[0]]
    );
    let error = manager
        .get(ids[1])
        .await
        .expect_err("a corrupt row is an error, not a missing task");
    assert!(error.to_string().contains("corrupt"), "{error}");
    manager.shutdown().await.expect("shuts down");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 3, "the corrupt row is kept");
}

/// A persisted task implemented by hand and never registered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Orphan {
    n: u32,
}

impl taskflow::Task for Orphan {
    const NAME: &'static str = "sq.orphan";
    const OPTIONS: taskflow::TaskOptions =
        taskflow::TaskOptions::new().persist(true).queue("gated");
    fn run(self) -> taskflow::TaskRun {
        taskflow::TaskRun::from_future(async {})
    }
}

/// A persisted task that waits behind the gate.
#[taskflow::task(name = "sq.later", persist, queue = "gated")]
async fn later(n: u64) -> Result<u64, String> {
    Ok(n)
}

#[tokio::test]
async fn stored_tasks_with_unknown_names_or_bad_arguments_fail_and_are_kept() {
    let dir = TempDir::new("unknown");
    let db = dir.join("tasks.db");
    let manager = build(&db).await;
    manager.add(Gatekeeper {}).await.expect("holds the queue");
    let orphan = manager.add(Orphan { n: 1 }).await.expect("stored");
    let undecodable = manager.add(Later { n: 2 }).await.expect("stored");
    let fine = manager.add(Later { n: 3 }).await.expect("stored");
    manager
        .shutdown()
        .await
        .expect("shuts down, keeping the pending persisted tasks");
    rusqlite::Connection::open(&db)
        .and_then(|c| {
            c.execute(
                "UPDATE tasks SET record = json_set(record, '$.args', json('{\"n\":\"two\"}')) WHERE id = ?1",
                [undecodable.to_bytes()],
            )
        })
        .expect("change the stored arguments");

    let manager = build(&db).await;
    let record = manager.wait(orphan).await.expect("decided");
    assert_eq!(record.status, TaskStatus::Failed);
    let error = record.error.unwrap_or_default();
    assert!(
        error.starts_with("unknown task `sq.orphan`; registered: "),
        "{error}"
    );
    assert!(error.contains("sq.later"), "{error}");
    let record = manager.wait(undecodable).await.expect("decided");
    assert_eq!(record.status, TaskStatus::Failed);
    assert!(
        record
            .error
            .unwrap_or_default()
            .contains("arguments no longer decode")
    );
    let record = manager.wait(fine).await.expect("runs after the restart");
    assert_eq!(
        (record.status, record.result),
        (TaskStatus::Success, Some(serde_json::json!(3).into()))
    );
    manager.shutdown().await.expect("shuts down");
    let store = SqliteStore::open(&db).await.expect("open");
    assert!(
        store.get(orphan).await.expect("readable").is_some(),
        "kept, never deleted"
    );
}

#[tokio::test]
async fn requeue_pending_keeps_unpersisted_pending_tasks_for_the_next_start() {
    let dir = TempDir::new("requeue-pending");
    let db = dir.join("tasks.db");
    let builder = || {
        TaskManager::builder()
            .sqlite(&db)
            .requeue_pending(true)
            .queue("gated", QueueConfig::new().concurrency(1))
            .shutdown_timeout(Duration::from_millis(100))
    };
    let manager = builder().build().await.expect("builds");
    manager.add(Gatekeeper {}).await.expect("holds the queue");
    let waiting = manager
        .add(Compute { n: 5 })
        .queue("gated")
        .await
        .expect("queued");
    let spawned = manager
        .spawn("adhoc", async {})
        .queue("gated")
        .await
        .expect("queued");
    manager.shutdown().await.expect("shuts down");
    assert_eq!(
        manager
            .get(spawned)
            .await
            .expect("readable")
            .map(|r| r.status),
        Some(TaskStatus::Interrupted),
        "an ad-hoc future cannot be kept"
    );

    let manager = builder().build().await.expect("builds again");
    let record = manager.wait(waiting).await.expect("runs after the restart");
    assert_eq!(
        (record.status, record.result),
        (TaskStatus::Success, Some(serde_json::json!(10).into()))
    );
    manager.shutdown().await.expect("shuts down");

    // Without requeue_pending the same task is recorded as interrupted.
    let db2 = dir.join("plain.db");
    let manager = build(&db2).await;
    manager.add(Gatekeeper {}).await.expect("holds the queue");
    let waiting = manager
        .add(Compute { n: 5 })
        .queue("gated")
        .await
        .expect("queued");
    manager.shutdown().await.expect("shuts down");
    let record = SqliteStore::open(&db2)
        .await
        .expect("open")
        .get(waiting)
        .await
        .expect("readable")
        .expect("stored");
    assert_eq!(record.status, TaskStatus::Interrupted);
}

#[tokio::test]
async fn history_queries_filter_count_and_paginate_stably() {
    let dir = TempDir::new("queries");
    let db = dir.join("tasks.db");
    let manager = TaskManager::builder()
        .sqlite(&db)
        .max_history(5)
        .build()
        .await
        .expect("builds");
    let start = chrono::Utc::now();
    let mut ids = Vec::new();
    for n in 0..30i64 {
        let id = manager
            .add(Compute {
                n: if n % 10 == 9 { -n } else { n },
            })
            .tags([("parity", if n % 2 == 0 { "even" } else { "odd" })])
            .idempotency_key(format!("compute-{n}"))
            .await
            .expect("enqueued");
        manager.wait(id).await.expect("finishes");
        ids.push(id);
    }
    // Only 5 records stay in memory; the rest are read from the file.
    let failed = manager
        .list(&TaskFilter::new().status(TaskStatus::Failed).limit(100))
        .await
        .expect("list");
    assert_eq!(failed.tasks.len(), 3);
    let odd = manager
        .list(&TaskFilter::new().tag("parity:odd").limit(100))
        .await
        .expect("list");
    assert_eq!(odd.tasks.len(), 15);
    let tagged = manager
        .list(&TaskFilter::new().tag("parity").limit(100))
        .await
        .expect("list");
    assert_eq!(tagged.tasks.len(), 30);
    let text = manager
        .list(&TaskFilter::new().q("COMPUTE-1").limit(100))
        .await
        .expect("list");
    assert_eq!(
        text.tasks.len(),
        11,
        "compute-1 and compute-10..19 (case-insensitive)"
    );
    let errors = manager
        .list(&TaskFilter::new().q("negative").limit(100))
        .await
        .expect("list");
    assert_eq!(errors.tasks.len(), 3, "searches the error text");
    // A stored (evicted) task is found by part of its id as the API prints it (hyphens
    // included; ids made in the same millisecond share their start).
    let printed = ids[0].to_string();
    let by_id = manager
        .list(&TaskFilter::new().q(&printed[18..]).limit(100))
        .await
        .expect("list");
    assert_eq!(
        by_id.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>(),
        [ids[0]]
    );
    let window = manager
        .list(
            &TaskFilter::new()
                .since(start)
                .until(chrono::Utc::now())
                .limit(100),
        )
        .await
        .expect("list");
    assert_eq!(window.tasks.len(), 30);
    let none = manager
        .list(&TaskFilter::new().until(start))
        .await
        .expect("list");
    assert!(none.tasks.is_empty());

    let first = manager
        .list(&TaskFilter::new().limit(10))
        .await
        .expect("page 1");
    assert_eq!(
        first.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>(),
        ids[20..].iter().rev().copied().collect::<Vec<_>>()
    );
    for n in 100..105 {
        let id = manager.add(Compute { n }).await.expect("enqueued");
        manager.wait(id).await.expect("finishes");
    }
    let second = manager
        .list(
            &TaskFilter::new()
                .limit(10)
                .cursor(first.next_cursor.expect("more")),
        )
        .await
        .expect("page 2");
    assert_eq!(
        second.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>(),
        ids[10..20].iter().rev().copied().collect::<Vec<_>>(),
        "new rows do not shift the pages"
    );
    let metrics = manager.metrics().await.expect("metrics");
    assert_eq!(metrics.total, 35);
    assert_eq!(metrics.by_status["failed"], 3);
    let stats = &metrics.by_name["sq.compute"];
    assert_eq!((stats.total, stats.success, stats.failed), (35, 32, 3));
    assert!(stats.avg_duration.is_some() && stats.p95_duration.is_some());
    // The running figures the store keeps agree with a full scan (a filter forces the scan).
    let store = SqliteStore::open(&db).await.expect("open");
    let kept = store
        .metrics(&TaskFilter::new())
        .await
        .expect("running figures");
    let scanned = store
        .metrics(&TaskFilter::new().since(chrono::DateTime::UNIX_EPOCH))
        .await
        .expect("scanned figures");
    assert_eq!(
        (kept.total, &kept.by_status),
        (scanned.total, &scanned.by_status)
    );
    let (kept_avg, scanned_avg) = (
        kept.avg_duration.unwrap_or(0.0),
        scanned.avg_duration.unwrap_or(0.0),
    );
    assert!(
        (kept_avg - scanned_avg).abs() < 1e-6,
        "{kept_avg} vs {scanned_avg}"
    );
    let (kept_p95, scanned_p95) = (
        kept.p95_duration.unwrap_or(0.0),
        scanned.p95_duration.unwrap_or(0.0),
    );
    assert!(
        kept_p95 >= scanned_p95 && kept_p95 <= scanned_p95 * 1.1 + 1e-6,
        "{kept_p95} vs {scanned_p95}"
    );
    manager.shutdown().await.expect("shuts down");
}

#[tokio::test]
async fn tag_filters_page_newest_first_and_combine_with_the_other_filters() {
    let dir = TempDir::new("tag-filters");
    let db = dir.join("tasks.db");
    let manager = build(&db).await;
    let mut ids = Vec::new();
    for n in 0..24i64 {
        let tenant = if n % 3 == 0 { "acme" } else { "globex" };
        let mut tags = vec![("tenant", tenant)];
        if n == 5 || n == 17 {
            tags.push(("vip", "yes"));
        }
        let id = manager
            .add(Compute {
                n: if n % 4 == 0 { -n - 1 } else { n },
            })
            .tags(tags)
            .await
            .expect("enqueued");
        manager.wait(id).await.expect("finishes");
        ids.push(id);
    }
    manager.shutdown().await.expect("shuts down");
    let store = SqliteStore::open(&db).await.expect("open");
    let newest_first = |ns: &[usize]| ns.iter().rev().map(|&n| ids[n]).collect::<Vec<_>>();
    let listed =
        |page: &taskflow::ListPage| page.tasks.iter().map(|r| r.task_id).collect::<Vec<_>>();

    let mut pages = Vec::new();
    let mut filter = TaskFilter::new().tag("tenant:acme").limit(3);
    loop {
        let page = store.list(&filter).await.expect("list");
        pages.push(listed(&page));
        match page.next_cursor {
            Some(cursor) => filter = filter.cursor(cursor),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            newest_first(&[15, 18, 21]),
            newest_first(&[6, 9, 12]),
            newest_first(&[0, 3])
        ]
    );
    let cases = [
        (
            TaskFilter::new()
                .tag("tenant:acme")
                .status(TaskStatus::Failed),
            newest_first(&[0, 12]),
        ),
        (TaskFilter::new().tag("vip"), newest_first(&[5, 17])),
        (
            TaskFilter::new().tag("vip=yes").name("sq.compute"),
            newest_first(&[5, 17]),
        ),
        (
            TaskFilter::new().tag("tenant:globex").q("VIP"),
            newest_first(&[5, 17]),
        ),
        (TaskFilter::new().tag("tenant:initech"), Vec::new()),
        (TaskFilter::new().tag("region"), Vec::new()),
        (
            TaskFilter::new().tag("tenant"),
            newest_first(&(0..24).collect::<Vec<_>>()),
        ),
    ];
    for (filter, expected) in cases {
        let page = store.list(&filter.clone().limit(100)).await.expect("list");
        assert_eq!(listed(&page), expected, "{filter:?}");
    }
    let metrics = store
        .metrics(&TaskFilter::new().tag("tenant:acme"))
        .await
        .expect("metrics");
    assert_eq!((metrics.total, metrics.by_status["failed"]), (8, 2));
    assert!(metrics.p95_duration.is_some());
    let unheld = store
        .metrics(&TaskFilter::new().tag("region"))
        .await
        .expect("metrics");
    assert_eq!((unheld.total, unheld.p95_duration), (0, None));
    store.close().await.expect("closes");
}

#[tokio::test]
async fn retention_deletes_by_age_and_by_row_count() {
    let dir = TempDir::new("retention");
    let db = dir.join("tasks.db");
    let manager = TaskManager::builder()
        .sqlite(&db)
        .max_stored_rows(4)
        .build()
        .await
        .expect("builds");
    for n in 0..10 {
        let id = manager.add(Compute { n }).await.expect("enqueued");
        manager.wait(id).await.expect("finishes");
    }
    assert_eq!(manager.apply_retention().await.expect("retention"), 6);
    let store = SqliteStore::open(&db).await.expect("open");
    assert_eq!(
        store
            .metrics(&TaskFilter::new())
            .await
            .expect("metrics")
            .total,
        4
    );
    assert_eq!(
        manager.purge_history(Duration::ZERO).await.expect("purge"),
        4
    );
    assert_eq!(
        store
            .metrics(&TaskFilter::new())
            .await
            .expect("metrics")
            .total,
        0
    );
    assert!(
        manager
            .list(&TaskFilter::new())
            .await
            .expect("list")
            .tasks
            .is_empty()
    );
    manager.shutdown().await.expect("shuts down");
}

#[tokio::test]
async fn a_successful_key_is_released_after_its_time_to_live() {
    let dir = TempDir::new("key-ttl");
    let db = dir.join("tasks.db");
    let manager = TaskManager::builder()
        .sqlite(&db)
        .idempotency_ttl(Duration::from_millis(200))
        .build()
        .await
        .expect("builds");
    let first = manager
        .add(Durable { n: 1 })
        .idempotency_key("daily")
        .await
        .expect("accepted");
    manager.wait(first).await.expect("finishes");
    manager
        .apply_retention()
        .await
        .expect("flushes the success");
    let again = manager
        .add(Durable { n: 1 })
        .idempotency_key("daily")
        .await
        .expect("accepted");
    assert_eq!(again, first, "held while the time to live runs");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = manager
        .add(Durable { n: 1 })
        .idempotency_key("daily")
        .await
        .expect("accepted");
    assert_ne!(fresh, first, "released after the time to live");
    manager.shutdown().await.expect("shuts down");
}
