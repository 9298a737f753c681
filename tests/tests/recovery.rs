//! Crash safety across real processes on one SQLite file: SIGKILL in the middle of work, four
//! processes claiming 10,000 orphaned tasks, and one idempotency key used by two processes.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::TempDir;
use taskflow::store::{SqliteStore, Store};
use taskflow::{TaskFilter, TaskId, TaskStatus};

const CHILD: &str = env!("CARGO_BIN_EXE_taskflow_child");

/// A child process whose stdout lines are read on a thread.
struct Proc {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(CHILD)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child process");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Every line up to and including `last`, failing after `timeout`.
    fn until(&self, last: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == last => return seen,
                Ok(line) => seen.push(line),
                Err(error) => {
                    panic!("no `{last}` from the child within {timeout:?} ({error}); got {seen:?}")
                }
            }
        }
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the child");
        let _ = self.child.wait();
    }

    fn wait(mut self) {
        let status = self.child.wait().expect("the child exits");
        assert!(status.success(), "the child failed: {status}");
    }
}

/// How many times each `<name> <n>` ran, from the run log.
fn runs(log: &std::path::Path) -> HashMap<(String, u64), usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts = HashMap::new();
    for line in text.lines() {
        let mut parts = line.split(' ');
        if let (Some(name), Some(n)) = (parts.next(), parts.next().and_then(|n| n.parse().ok())) {
            *counts.entry((name.to_owned(), n)).or_default() += 1;
        }
    }
    counts
}

fn wait_for_runs(
    log: &std::path::Path,
    what: &str,
    enough: impl Fn(&HashMap<(String, u64), usize>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !enough(&runs(log)) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_task_and_runs_none_twice() {
    let dir = TempDir::new("sigkill");
    let (db, log) = (dir.join("tasks.db"), dir.join("runs.log"));
    let (db_s, log_s) = (
        db.to_str().expect("utf-8 path"),
        log.to_str().expect("utf-8 path"),
    );

    let first = Proc::start(&["enqueue", db_s, log_s, "300", "3", "3"]);
    let acks: Vec<(String, u64, TaskId)> = first
        .until("ENQUEUED", Duration::from_secs(60))
        .iter()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("ACK ")?.split(' ');
            Some((
                parts.next()?.to_owned(),
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
            ))
        })
        .collect();
    assert_eq!(acks.len(), 306);
    wait_for_runs(&log, "the slow tasks to start", |runs| {
        (0..3).all(|n| {
            runs.contains_key(&("slow".to_owned(), n))
                && runs.contains_key(&("slow_requeue".to_owned(), n))
        })
    });
    first.kill();

    let second = Proc::start(&["drain", db_s, log_s]);
    second.until("DONE", Duration::from_secs(60));
    second.wait();

    let store = SqliteStore::open(&db).await.expect("open the file");
    let runs = runs(&log);
    for (kind, n, id) in &acks {
        let record = store
            .get(*id)
            .await
            .expect("readable")
            .unwrap_or_else(|| panic!("acknowledged task {kind} {n} was lost"));
        let count = runs.get(&(kind.clone(), *n)).copied().unwrap_or(0);
        match kind.as_str() {
            // A task cut off by the kill is recorded as interrupted: it may have started (its
            // running state is committed before its body runs) and it is not run again.
            "quick" => match record.status {
                TaskStatus::Success => {
                    assert_eq!(count, 1, "quick {n} succeeded after {count} runs")
                }
                TaskStatus::Interrupted => {
                    assert!(count <= 1, "interrupted quick {n} ran {count} times")
                }
                other => panic!("quick {n} ended {other}"),
            },
            "slow" => {
                assert_eq!(record.status, TaskStatus::Interrupted, "slow {n}");
                assert_eq!(
                    count, 1,
                    "slow {n} is not run again without requeue_on_interrupt"
                );
                assert!(
                    record
                        .error
                        .as_deref()
                        .is_some_and(|e| e.contains("the instance running it stopped"))
                );
            }
            "slow_requeue" => {
                assert_eq!(record.status, TaskStatus::Success, "slow_requeue {n}");
                assert_eq!(
                    count, 2,
                    "slow_requeue {n} ran once before the kill and once after"
                );
                assert_eq!(record.attempt, 2);
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    let left = store
        .list(&TaskFilter::new().status(TaskStatus::Pending))
        .await
        .expect("list");
    assert!(left.tasks.is_empty(), "nothing is left pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_claim_ten_thousand_orphans_exactly_once() {
    let dir = TempDir::new("orphans");
    let (db, log) = (dir.join("tasks.db"), dir.join("runs.log"));
    let (db_s, log_s) = (
        db.to_str().expect("utf-8 path"),
        log.to_str().expect("utf-8 path"),
    );
    let total = 10_000u64;

    let owner = Proc::start(&["hold", db_s, log_s, &total.to_string()]);
    owner.until("ENQUEUED", Duration::from_secs(120));
    owner.kill();
    assert!(
        runs(&log).is_empty(),
        "nothing ran before the crash: the queue was held"
    );

    let drains: Vec<Proc> = (0..4)
        .map(|_| Proc::start(&["drain", db_s, log_s]))
        .collect();
    for drain in drains {
        drain.until("DONE", Duration::from_secs(180));
        drain.wait();
    }

    let runs = runs(&log);
    let missing: Vec<u64> = (0..total)
        .filter(|n| !runs.contains_key(&("quick".to_owned(), *n)))
        .collect();
    let twice: Vec<_> = runs.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        missing.is_empty(),
        "{} orphans never ran, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        twice.is_empty(),
        "{} orphans ran more than once, e.g. {:?}",
        twice.len(),
        twice.first()
    );
    let store = SqliteStore::open(&db).await.expect("open the file");
    let metrics = store
        .metrics(&TaskFilter::new().name("child.quick"))
        .await
        .expect("metrics");
    assert_eq!(metrics.by_status["success"], total as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_from_two_processes_runs_once() {
    let dir = TempDir::new("idempotency");
    let (db, log) = (dir.join("tasks.db"), dir.join("runs.log"));
    let (db_s, log_s) = (
        db.to_str().expect("utf-8 path"),
        log.to_str().expect("utf-8 path"),
    );
    // Create the file first so that both processes open an existing database.
    drop(SqliteStore::open(&db).await.expect("create the file"));

    let a = Proc::start(&["charge", db_s, log_s, "order-42", "50"]);
    let b = Proc::start(&["charge", db_s, log_s, "order-42", "50"]);
    let mut ids: Vec<String> = a.until("DONE", Duration::from_secs(60));
    ids.extend(b.until("DONE", Duration::from_secs(60)));
    a.wait();
    b.wait();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "100 adds over two processes got one id: {ids:?}"
    );
    let total_runs: usize = runs(&log).values().sum();
    assert_eq!(total_runs, 1, "the task ran once across both processes");
}
