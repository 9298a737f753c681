//! Dispatch: `max_concurrent_tasks` is never exceeded, sync tasks run on their own pool while
//! request handlers stay responsive, named queues limit concurrency and size, priority then FIFO
//! order, run-time resize, queue stats, the start and end times of tasks that start at once or
//! wait for a slot, and a typed task's body made when its attempt starts, of the kind `run` says.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use parking_lot::Mutex;
use support::{eventually, request, serve};
use taskflow::{Error, QueueConfig, TaskAdmin, TaskManager, TaskStatus};

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Counts how many copies of itself run at once.
#[taskflow::task]
async fn measured() {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_tasks_is_never_exceeded() {
    let manager = TaskManager::builder()
        .max_concurrent_tasks(4)
        .build()
        .await
        .expect("builds");
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(manager.add(Measured {}).await.expect("enqueued"));
    }
    for id in ids {
        assert_eq!(
            manager.wait(id).await.expect("finishes").status,
            TaskStatus::Success
        );
    }
    assert_eq!(
        PEAK.load(Ordering::SeqCst),
        4,
        "the limit is reached and never exceeded"
    );
}

/// Burns its blocking-pool thread for a while.
#[taskflow::task]
fn crunch(millis: u64) {
    std::thread::sleep(Duration::from_millis(millis));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_stay_responsive_during_a_burst_of_blocking_tasks() {
    let manager = TaskManager::builder()
        .max_blocking_threads(2)
        .build()
        .await
        .expect("builds");
    async fn ping() -> &'static str {
        "pong"
    }
    let addr = serve(TaskAdmin::new(&manager).mount(Router::new().route("/ping", get(ping)))).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(manager.add(Crunch { millis: 200 }).await.expect("enqueued"));
    }
    eventually("the pool is busy", Duration::from_secs(5), async || {
        manager.queues().iter().map(|q| q.running).sum::<usize>() == 2
    })
    .await;
    // While both pool threads sleep, the async runtime still answers at once.
    for _ in 0..5 {
        let response =
            tokio::time::timeout(Duration::from_secs(2), request(addr, "GET", "/ping", None))
                .await
                .expect("the handler answers while blocking tasks run");
        assert_eq!(response.body, "pong");
    }
    let running_now = manager
        .list(
            &taskflow::TaskFilter::new()
                .status(TaskStatus::Running)
                .limit(100),
        )
        .await
        .expect("list")
        .tasks
        .len();
    assert_eq!(running_now, 2, "no more than max_blocking_threads run");
    manager.shutdown().await.expect("shuts down");
}

/// Sets its flag when dropped.
struct DropFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_builder_awaited_later_is_created_and_started_when_it_is_queued() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let adding = manager.spawn("held", async {});
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before_queued = chrono::Utc::now();
    let id = adding.await.expect("accepted");
    let record = manager.wait(id).await.expect("finishes");
    assert!(
        record.created_at >= before_queued,
        "created at {}, when `spawn` made the builder, not when it was queued at {before_queued}",
        record.created_at
    );
    let started = record.start_time.expect("it ran");
    assert!(
        started >= record.created_at,
        "started at {started}, before it was created at {}",
        record.created_at
    );
    manager.shutdown().await.expect("shuts down");
}

#[tokio::test]
async fn ids_follow_the_order_builders_are_awaited_in() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let made_first = manager.spawn("first", async {});
    let made_second = manager.spawn("second", async {});
    let second = made_second.await.expect("accepted");
    let first = made_first.await.expect("accepted");
    assert!(second < first, "the builder awaited first has the older id");
    let (second, first) = (
        manager.wait(second).await.expect("finishes"),
        manager.wait(first).await.expect("finishes"),
    );
    assert!(second.created_at <= first.created_at);
    manager.shutdown().await.expect("shuts down");
}

#[tokio::test]
async fn a_rejected_task_is_no_longer_live() {
    let manager = TaskManager::builder()
        .queue("closed", QueueConfig::new().max_size(0))
        .build()
        .await
        .expect("builds");
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = DropFlag(std::sync::Arc::clone(&dropped));
    let error = manager
        .spawn("never", async move { drop(flag) })
        .queue("closed")
        .await
        .expect_err("a queue of size 0 takes nothing");
    assert!(
        matches!(error, Error::QueueFull { max_size: 0, .. }),
        "{error}"
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the rejected task's future is dropped at once, not kept until its record is evicted"
    );
    let metrics = manager.metrics().await.expect("metrics");
    assert_eq!((metrics.total, metrics.by_status["rejected"]), (1, 1));
    manager.shutdown().await.expect("shuts down");
}

#[tokio::test]
async fn full_queue_rejects_with_a_record_and_an_error() {
    let manager = TaskManager::builder()
        .queue("tiny", QueueConfig::new().concurrency(1).max_size(2))
        .build()
        .await
        .expect("builds");
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut accepted = Vec::new();
    for _ in 0..3 {
        let gate = std::sync::Arc::clone(&gate);
        accepted.push(
            manager
                .spawn("gated", async move { gate.notified().await })
                .queue("tiny")
                .await
                .expect("room"),
        );
    }
    // One runs, two wait: the queue is full.
    let error = manager
        .spawn("overflow", async {})
        .queue("tiny")
        .await
        .expect_err("queue full");
    assert!(
        matches!(&error, Error::QueueFull { queue, max_size: 2 } if queue == "tiny"),
        "{error}"
    );
    let rejected = manager
        .list(&taskflow::TaskFilter::new().status(TaskStatus::Rejected))
        .await
        .expect("list")
        .tasks;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].func_name, "overflow");
    assert!(
        rejected[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("is full"))
    );
    let stats = manager
        .queues()
        .into_iter()
        .find(|q| q.name == "tiny")
        .expect("stats");
    assert_eq!((stats.pending, stats.running, stats.rejected), (2, 1, 1));
    for _ in 0..3 {
        gate.notify_one();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in accepted {
        assert_eq!(
            manager.wait(id).await.expect("finishes").status,
            TaskStatus::Success
        );
    }
}

static ORDER: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records the order tasks ran in.
#[taskflow::task(queue = "ordered")]
async fn note(label: String) {
    ORDER.lock().push(label);
}

#[tokio::test]
async fn priority_first_then_fifo_within_a_queue() {
    let manager = TaskManager::builder()
        .queue("ordered", QueueConfig::new().concurrency(1))
        .build()
        .await
        .expect("builds");
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let waiter = std::sync::Arc::clone(&gate);
    let blocker = manager
        .spawn("gate", async move { waiter.notified().await })
        .queue("ordered")
        .await
        .expect("ok");
    let mut ids = Vec::new();
    for (label, priority) in [
        ("low-1", 0),
        ("high-1", 5),
        ("low-2", 0),
        ("mid", 2),
        ("high-2", 5),
        ("neg", -1),
    ] {
        ids.push(
            manager
                .add(Note {
                    label: label.into(),
                })
                .priority(priority)
                .await
                .expect("enqueued"),
        );
    }
    gate.notify_one();
    manager.wait(blocker).await.expect("gate finishes");
    for id in ids {
        manager.wait(id).await.expect("finishes");
    }
    assert_eq!(
        *ORDER.lock(),
        ["high-1", "high-2", "mid", "low-1", "low-2", "neg"]
    );
}

#[tokio::test]
async fn queue_concurrency_and_resize_at_run_time() {
    let manager = TaskManager::builder()
        .queue("narrow", QueueConfig::new().concurrency(1))
        .build()
        .await
        .expect("builds");
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut ids = Vec::new();
    for _ in 0..4 {
        let gate = std::sync::Arc::clone(&gate);
        ids.push(
            manager
                .spawn("gated", async move { gate.notified().await })
                .queue("narrow")
                .await
                .expect("ok"),
        );
    }
    let stats = |m: &TaskManager| {
        m.queues()
            .into_iter()
            .find(|q| q.name == "narrow")
            .expect("stats")
    };
    eventually("one runs", Duration::from_secs(5), async || {
        stats(&manager).running == 1
    })
    .await;
    assert_eq!(stats(&manager).pending, 3);
    manager.resize_queue("narrow", QueueConfig::new().concurrency(3));
    eventually(
        "three run after the resize",
        Duration::from_secs(5),
        async || stats(&manager).running == 3,
    )
    .await;
    assert_eq!(stats(&manager).pending, 1);
    assert_eq!(stats(&manager).concurrency, Some(3));
    for _ in 0..4 {
        gate.notify_waiters();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in ids {
        manager.wait(id).await.expect("finishes");
    }
    let done = stats(&manager);
    assert_eq!((done.running, done.pending, done.started), (0, 0, 4));
}

#[tokio::test]
async fn zero_limits_are_configuration_errors() {
    let error = TaskManager::builder()
        .max_concurrent_tasks(0)
        .build()
        .await
        .expect_err("zero");
    assert!(matches!(error, Error::Config(_)), "{error}");
    let error = TaskManager::builder()
        .queue("q", QueueConfig::new().concurrency(0))
        .build()
        .await
        .expect_err("zero");
    assert!(
        error
            .to_string()
            .contains("queue `q` has a concurrency of 0"),
        "{error}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_long_run_of_queued_tasks_lets_other_tasks_run() {
    // One slot: every task after the first is started by the finish of the one before, in the
    // same tokio task. On a one-thread runtime the ticker only advances if that run yields.
    let manager = TaskManager::builder()
        .max_concurrent_tasks(1)
        .build()
        .await
        .expect("builds");
    let ticks = std::sync::Arc::new(AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = std::sync::Arc::clone(&ticks);
        async move {
            loop {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let mut last = None;
    for _ in 0..2_000 {
        let (ticks, seen) = (std::sync::Arc::clone(&ticks), std::sync::Arc::clone(&seen));
        let id = manager
            .spawn("chain", async move {
                seen.lock().push(ticks.load(Ordering::SeqCst));
            })
            .await
            .expect("enqueued");
        last = Some(id);
    }
    let last = last.expect("tasks were added");
    assert_eq!(
        manager.wait(last).await.expect("waits").status,
        TaskStatus::Success
    );
    ticker.abort();
    let seen = seen.lock();
    assert_eq!(seen.len(), 2_000);
    assert!(
        seen.last() > seen.first(),
        "the ticker never ran while 2,000 tasks ran: {:?} … {:?}",
        seen.first(),
        seen.last()
    );
}

/// Takes a little while, so that tasks added behind it wait for the slot.
#[taskflow::task]
async fn brief() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_starts_after_it_was_created_and_ends_after_it_started() {
    // One slot: the first task starts inside its `add`, the others from the finish before them.
    let manager = TaskManager::builder()
        .max_concurrent_tasks(1)
        .build()
        .await
        .expect("builds");
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(manager.add(Brief {}).await.expect("enqueued"));
    }
    for id in ids {
        let record = manager.wait(id).await.expect("finishes");
        assert_eq!(record.status, TaskStatus::Success);
        let start = record.start_time.expect("a start time");
        let end = record.end_time.expect("an end time");
        assert!(record.created_at <= start, "{record:?}");
        assert!(start <= end, "{record:?}");
        let duration = record.duration.expect("a duration");
        let between = (end - start).as_seconds_f64();
        assert!((duration - between).abs() < 1e-6, "{record:?}");
        assert!(duration >= 0.002, "it slept 2 ms: {record:?}");
    }
    manager.shutdown().await.expect("shuts down");
}

static BODIES_MADE: AtomicUsize = AtomicUsize::new(0);

/// Counts the attempt bodies made of it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CountsBodies {}

impl taskflow::Task for CountsBodies {
    const NAME: &'static str = "dispatch.counts_bodies";
    const OPTIONS: taskflow::TaskOptions = taskflow::TaskOptions::new();
    fn run(self) -> taskflow::TaskRun {
        BODIES_MADE.fetch_add(1, Ordering::SeqCst);
        taskflow::TaskRun::from_future(async {})
    }
}

#[tokio::test]
async fn a_typed_tasks_body_is_made_when_its_attempt_starts() {
    let manager = TaskManager::builder()
        .max_concurrent_tasks(1)
        .build()
        .await
        .expect("builds");
    let (open, gate) = tokio::sync::oneshot::channel::<()>();
    let holder = manager
        .spawn("holds.the.slot", async move {
            let _ = gate.await;
        })
        .await
        .expect("enqueued");
    let id = manager.add(CountsBodies {}).await.expect("enqueued");
    let waiting = manager.get(id).await.expect("reads").expect("known");
    assert_eq!(waiting.status, TaskStatus::Pending);
    assert_eq!(
        BODIES_MADE.load(Ordering::SeqCst),
        0,
        "no body is made while the task waits for its slot"
    );
    let _ = open.send(());
    manager.wait(holder).await.expect("finishes");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(record.status, TaskStatus::Success);
    assert_eq!(record.executor, "async");
    assert_eq!(
        BODIES_MADE.load(Ordering::SeqCst),
        1,
        "one attempt, one body"
    );
    manager.shutdown().await.expect("shuts down");
}

/// Runs on the blocking pool for `millis` without saying so (`BLOCKING` left `false`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Undeclared {
    millis: u64,
}

impl taskflow::Task for Undeclared {
    const NAME: &'static str = "dispatch.undeclared";
    const OPTIONS: taskflow::TaskOptions = taskflow::TaskOptions::new();
    fn run(self) -> taskflow::TaskRun {
        taskflow::TaskRun::from_blocking(move || {
            std::thread::sleep(Duration::from_millis(self.millis));
            let thread = std::thread::current();
            thread.name().map(str::to_owned).ok_or("an unnamed thread")
        })
    }
}

#[tokio::test]
async fn a_blocking_run_declared_async_runs_and_is_refused_cancel_as_blocking() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager
        .add(Undeclared { millis: 300 })
        .await
        .expect("enqueued");
    support::until_status(&manager, id, TaskStatus::Running).await;
    let refused = manager.cancel(id).await;
    assert!(
        matches!(refused, Err(Error::CannotCancelBlocking(e)) if e == id),
        "a running blocking attempt cannot be stopped, whatever was declared: {refused:?}"
    );
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(record.status, TaskStatus::Success, "{record:?}");
    assert_eq!(record.executor, "blocking");
    let thread: String = record
        .result
        .expect("a result")
        .decode()
        .expect("a thread name");
    assert!(thread.starts_with("taskflow-blocking-"), "ran on {thread}");
    manager.shutdown().await.expect("shuts down");
}
