//! Retries: counts, waits (`delay · backoff^(n-1)`, capped, jittered) on tokio's paused clock,
//! permanent errors, timeouts, panics and stored results.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use taskflow::{Permanent, TaskManager, TaskStatus};
use tokio::time::Instant;

static BACKOFF_STARTS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

/// Always fails; records when each attempt started.
#[taskflow::task(retries = 3, delay = "1s", backoff = 2.0)]
async fn always_fails() -> Result<(), String> {
    BACKOFF_STARTS.lock().push(Instant::now());
    Err("nope".to_owned())
}

#[tokio::test(start_paused = true)]
async fn retries_wait_delay_times_backoff_and_count() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(AlwaysFails {}).await.expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(record.retries_used, 3);
    assert_eq!(record.attempt, 4);
    assert_eq!(record.error.as_deref(), Some("nope"));
    let starts = BACKOFF_STARTS.lock().clone();
    let waits: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        waits,
        [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
    let separators = record
        .logs
        .iter()
        .filter(|l| l.message.starts_with("--- attempt"))
        .count();
    assert_eq!(separators, 3, "one separator per retry: {:#?}", record.logs);
    let failures = record
        .logs
        .iter()
        .filter(|l| l.message.contains("failed: nope; retrying in"))
        .count();
    assert_eq!(failures, 3);
}

static CAPPED_STARTS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

/// Always fails; its waits are capped.
#[taskflow::task(retries = 4, delay = "2s", backoff = 3.0, max_delay = "5s")]
async fn capped() -> Result<(), String> {
    CAPPED_STARTS.lock().push(Instant::now());
    Err("still no".to_owned())
}

#[tokio::test(start_paused = true)]
async fn max_delay_caps_each_wait() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(Capped {}).await.expect("enqueued");
    manager.wait(id).await.expect("finishes");
    let starts = CAPPED_STARTS.lock().clone();
    let waits: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(waits, [2, 5, 5, 5].map(Duration::from_secs));
}

static JITTER_STARTS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

/// Always fails, with jittered waits.
#[taskflow::task(retries = 20, delay = "10s", jitter)]
async fn jittery() -> Result<(), String> {
    JITTER_STARTS.lock().push(Instant::now());
    Err("flaky".to_owned())
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_waits_within_half() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(Jittery {}).await.expect("enqueued");
    manager.wait(id).await.expect("finishes");
    let starts = JITTER_STARTS.lock().clone();
    let waits: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(waits.len(), 20);
    assert!(
        waits
            .iter()
            .all(|w| *w >= Duration::from_secs(5) && *w <= Duration::from_secs(15)),
        "{waits:?}"
    );
    let distinct: std::collections::HashSet<_> = waits.iter().collect();
    assert!(distinct.len() > 1, "jitter varies the waits: {waits:?}");
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails twice, then returns a value.
#[taskflow::task(retries = 5)]
async fn flaky() -> Result<u32, String> {
    match FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => Err("transient".to_owned()),
        n => Ok(n * 10),
    }
}

#[tokio::test(start_paused = true)]
async fn success_after_retries_stores_the_result() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(Flaky {}).await.expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(record.status, TaskStatus::Success);
    assert_eq!(record.retries_used, 2);
    assert_eq!(record.result, Some(serde_json::json!(20).into()));
    assert_eq!(record.error, None);
    assert!(record.duration.is_some_and(|d| d >= 0.0));
}

static PERMANENT_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails permanently on its first attempt.
#[taskflow::task(retries = 5, delay = "1s")]
async fn bad_input() -> Result<(), Permanent> {
    PERMANENT_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(Permanent::new("invalid address"))
}

#[tokio::test(start_paused = true)]
async fn permanent_error_stops_retries() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(BadInput {}).await.expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(record.retries_used, 0);
    assert_eq!(record.error.as_deref(), Some("invalid address"));
    assert_eq!(PERMANENT_CALLS.load(Ordering::SeqCst), 1);
}

/// Fails permanently through anyhow.
#[taskflow::task(retries = 5)]
async fn bad_input_anyhow() -> anyhow::Result<()> {
    Err(Permanent::new("no such user").into())
}

#[tokio::test(start_paused = true)]
async fn permanent_inside_anyhow_stops_retries() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(BadInputAnyhow {}).await.expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(
        (record.status, record.retries_used),
        (TaskStatus::Failed, 0)
    );
}

static SLOW_CALLS: AtomicU32 = AtomicU32::new(0);

/// Sleeps longer than its timeout on the first attempt only.
#[taskflow::task(timeout = "2s", retries = 1)]
async fn slow_then_fast() -> Result<&'static str, String> {
    if SLOW_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok("done")
}

#[tokio::test(start_paused = true)]
async fn timeout_fails_the_attempt_and_is_retried() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let started = Instant::now();
    let id = manager.add(SlowThenFast {}).await.expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(record.status, TaskStatus::Success);
    assert_eq!(record.retries_used, 1);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the slow attempt was cut at 2 s"
    );
    assert!(
        record
            .logs
            .iter()
            .any(|l| l.message.contains("timed out after 2s")),
        "{:#?}",
        record.logs
    );
}

/// Sleeps past its timeout on the blocking pool.
#[taskflow::task(timeout = "50ms")]
fn blocking_too_slow() {
    std::thread::sleep(Duration::from_millis(400));
}

#[tokio::test]
async fn timeout_applies_to_blocking_tasks() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(BlockingTooSlow {}).await.expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(record.error.as_deref(), Some("timed out after 50ms"));
    assert_eq!(record.executor, "blocking");
}

/// Panics.
#[taskflow::task]
async fn panics_async(code: u32) {
    panic!("exploded with code {code}");
}

/// Panics on the blocking pool.
#[taskflow::task]
fn panics_blocking() {
    panic!("blocking boom");
}

#[tokio::test]
async fn panics_fail_the_attempt_with_message_and_stack_trace() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let a = manager
        .add(PanicsAsync { code: 7 })
        .await
        .expect("enqueued");
    let b = manager.add(PanicsBlocking {}).await.expect("enqueued");
    for (id, message) in [
        (a, "panicked: exploded with code 7"),
        (b, "panicked: blocking boom"),
    ] {
        let record = manager.wait(id).await.expect("finishes");
        assert_eq!(record.status, TaskStatus::Failed);
        assert_eq!(record.error.as_deref(), Some(message));
        let trace = record.stacktrace.expect("a stack trace is captured");
        assert!(!trace.is_empty());
    }
    // The manager survives and keeps running tasks.
    let after = manager
        .spawn("after-panic", async {})
        .await
        .expect("spawned");
    assert_eq!(
        manager.wait(after).await.expect("finishes").status,
        TaskStatus::Success
    );
}

/// An argument that counts its copies in the counter it names.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Counted {
    counter: usize,
}

static COPIES: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

impl Clone for Counted {
    fn clone(&self) -> Self {
        COPIES[self.counter].fetch_add(1, Ordering::SeqCst);
        Self {
            counter: self.counter,
        }
    }
}

/// Runs once: no retries.
#[taskflow::task]
async fn runs_once(payload: Counted) -> Result<usize, String> {
    Ok(payload.counter)
}

/// Fails its first attempt, then succeeds.
#[taskflow::task(retries = 1)]
async fn fails_first(payload: Counted) -> Result<usize, String> {
    match taskflow::TaskContext::current().map(|context| context.attempt()) {
        Some(1) => Err("first attempt".to_owned()),
        _ => Ok(payload.counter),
    }
}

#[tokio::test]
async fn a_task_without_retries_runs_on_its_arguments_and_a_retried_one_on_copies() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let once = manager
        .add(RunsOnce {
            payload: Counted { counter: 0 },
        })
        .await
        .expect("enqueued");
    let record = manager.wait(once).await.expect("finishes");
    assert_eq!(record.status, TaskStatus::Success);
    assert_eq!(
        COPIES[0].load(Ordering::SeqCst),
        0,
        "the arguments moved in"
    );
    let retried = manager
        .add(FailsFirst {
            payload: Counted { counter: 1 },
        })
        .await
        .expect("enqueued");
    let record = manager.wait(retried).await.expect("finishes");
    assert_eq!((record.status, record.attempt), (TaskStatus::Success, 2));
    assert_eq!(record.result, Some(serde_json::json!(1).into()));
    assert_eq!(COPIES[1].load(Ordering::SeqCst), 2, "one copy per attempt");
    manager.shutdown().await.expect("shuts down");
}
