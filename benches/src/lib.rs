//! Shared workloads of taskflow's benchmarks (see `BENCHMARKS.md` at the repository root).
//!
//! Every workload is "enqueue `n` no-op tasks from `producers` concurrent producers, then wait
//! until every one of them has finished", measured end to end. The same workload runs through
//! a [`TaskManager`] ([`taskflow_noop`]) and through bare `tokio::spawn` + join ([`floor_noop`]),
//! the floor that taskflow's overhead is measured against.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let manager = taskflow_benches::manager().await;
//! let took = taskflow_benches::taskflow_noop(&manager, 100, 4).await;
//! let floor = taskflow_benches::floor_noop(100, 4).await;
//! assert!(took > std::time::Duration::ZERO && floor > std::time::Duration::ZERO);
//! # }
//! ```

mod ledger;
mod sqlite_floor;

pub use ledger::{Ledger, ledger_noop};
pub use sqlite_floor::sqlite_floor_run;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use taskflow::{AddBuilder, Error, TaskContext, TaskId, TaskManager};

/// Does nothing: the unit of work of every benchmark.
#[taskflow::task(name = "bench.noop")]
pub async fn noop() {}

/// Does nothing but count itself in [`PERSISTED`], and is persisted before `add` returns once
/// the SQLite store is configured.
#[taskflow::task(name = "bench.noop_persist", persist)]
pub async fn noop_persist() {
    PERSISTED.finish_one();
}

/// Counts finished runs and wakes whoever waits for the last one: how the persisted benchmarks
/// know every job is done, the same way for taskflow and for its peers (a counter in the job).
#[derive(Debug)]
pub struct Completions {
    done: AtomicUsize,
    target: AtomicUsize,
    all_done: Notify,
}

/// The runs of [`NoopPersist`].
pub static PERSISTED: Completions = Completions::new();

impl Completions {
    /// No runs expected yet.
    pub const fn new() -> Self {
        Self {
            done: AtomicUsize::new(0),
            target: AtomicUsize::new(usize::MAX),
            all_done: Notify::const_new(),
        }
    }

    /// One run finished.
    pub fn finish_one(&self) {
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.target.load(Ordering::SeqCst) {
            self.all_done.notify_waiters();
        }
    }

    /// Expects `n` runs from now on.
    pub fn expect(&self, n: usize) {
        self.done.store(0, Ordering::SeqCst);
        self.target.store(n, Ordering::SeqCst);
    }

    /// Returns once the expected runs finished.
    pub async fn all_done(&self) {
        loop {
            let notified = self.all_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.done.load(Ordering::SeqCst) >= self.target.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

impl Default for Completions {
    fn default() -> Self {
        Self::new()
    }
}

/// Fails its first attempt and succeeds on the second: the retry path with no wait.
#[taskflow::task(name = "bench.fail_once", retries = 1)]
pub async fn fail_once() -> Result<(), String> {
    match TaskContext::current().map(|ctx| ctx.attempt()) {
        Some(1) => Err("first attempt fails".to_owned()),
        _ => Ok(()),
    }
}

/// Takes two arguments, as a typical mail task does: the payload of the decode benchmark.
#[taskflow::task(name = "bench.welcome")]
pub async fn welcome(user_id: u64, email: String) -> Result<u64, String> {
    Ok(user_id + email.len() as u64)
}

/// What a typical report task returns: where its file went and how long it is.
#[derive(Debug, serde::Serialize)]
pub struct Receipt {
    /// Where the receipt was stored.
    pub url: String,
    /// How many pages it has.
    pub pages: u32,
}

/// Takes the mail task's two arguments and returns a [`Receipt`]: a task whose result is a
/// struct, as a report or an export task has.
#[taskflow::task(name = "bench.send_receipt")]
pub async fn send_receipt(user_id: u64, email: String) -> Result<Receipt, String> {
    Ok(Receipt {
        url: format!("https://files.example.com/receipts/{user_id}.pdf"),
        pages: u32::try_from(email.len()).map_err(|e| e.to_string())?,
    })
}

/// The runtime every benchmark runs on: multi-thread, two workers (one per core of the reference
/// machine; `TASKFLOW_BENCH_WORKERS` sets another number, e.g. 1 to measure without contention),
/// timers and I/O enabled.
///
/// # Panics
///
/// When the runtime cannot start, or `TASKFLOW_BENCH_WORKERS` is not a positive number.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env_number("TASKFLOW_BENCH_WORKERS").unwrap_or(2))
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The positive number in environment variable `name`, if it is set.
///
/// # Panics
///
/// When it is set to anything but a positive number.
fn env_number(name: &str) -> Option<usize> {
    let value = std::env::var(name).ok()?;
    let number = value
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| panic!("{name}: a positive number, not `{value}`"));
    Some(number)
}

/// A manager with the defaults (64 concurrent attempts, 10,000 records of history;
/// `TASKFLOW_BENCH_HISTORY` sets another bound, e.g. 100 to measure with the window in cache).
///
/// # Panics
///
/// When the manager does not build (a duplicate task name in the binary), or
/// `TASKFLOW_BENCH_HISTORY` is not a positive number.
pub async fn manager() -> TaskManager {
    TaskManager::builder()
        .max_history(max_history())
        .build()
        .await
        .expect("the default manager builds")
}

/// The history bound of the benchmarks: the manager's default, 10,000, unless
/// `TASKFLOW_BENCH_HISTORY` sets another.
///
/// # Examples
///
/// ```
/// assert!(taskflow_benches::max_history() > 0);
/// ```
///
/// # Panics
///
/// When `TASKFLOW_BENCH_HISTORY` is not a positive number.
pub fn max_history() -> usize {
    env_number("TASKFLOW_BENCH_HISTORY").unwrap_or(10_000)
}

/// A fresh directory under the temp dir for one SQLite database, deleted on drop.
#[derive(Debug)]
pub struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    /// Creates `$TMPDIR/taskflow-bench-<label>-<pid>-<n>/`, empty.
    ///
    /// # Panics
    ///
    /// When the directory cannot be created.
    pub fn new(label: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("taskflow-bench-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp directory for the database");
        Self { dir }
    }

    /// The database file inside the directory.
    pub fn path(&self) -> PathBuf {
        self.dir.join("tasks.db")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A manager with the defaults on the SQLite database at `path` (WAL, `synchronous = NORMAL`).
///
/// # Panics
///
/// When the store cannot be opened.
pub async fn sqlite_manager(path: &Path) -> TaskManager {
    TaskManager::builder()
        .sqlite(path)
        .build()
        .await
        .expect("the sqlite manager builds")
}

/// The `tenant` tag value of task `n` when `producers` producers add tasks `p`, `p + producers`,
/// `p + 2 × producers`, … (as the `scale` example fills its history): each producer cycles
/// through 100 tenants by its own count, so that every stretch of the history holds each tenant
/// at 1%, whichever producers finish last.
///
/// ```
/// assert_eq!(taskflow_benches::tenant(3, 8), "t0");
/// assert_eq!(taskflow_benches::tenant(3 + 8 * 142, 8), "t42");
/// ```
pub fn tenant(n: u64, producers: u64) -> String {
    format!("t{}", (n / producers.max(1)) % 100)
}

/// Splits `n` tasks over `producers` producers: how many producer `p` enqueues.
pub fn share(n: usize, producers: usize, p: usize) -> usize {
    n / producers + usize::from(p < n % producers)
}

/// Waits for task `id` to finish; a record already evicted from the bounded history finished
/// long ago (live tasks are never evicted).
///
/// # Panics
///
/// When waiting fails for another reason than eviction.
pub async fn wait_done(manager: &TaskManager, id: TaskId) {
    match manager.wait(id).await {
        Ok(_) | Err(Error::NotFound(_)) => {}
        Err(e) => panic!("waiting for {id} failed: {e}"),
    }
}

/// Enqueues `n` tasks made by `make` from `producers` concurrent producers, each waiting for
/// its own tasks to finish; returns the time from the first enqueue to the last finish.
///
/// # Panics
///
/// When an enqueue fails.
pub async fn taskflow_run<T, F>(
    manager: &TaskManager,
    n: usize,
    producers: usize,
    make: F,
) -> Duration
where
    T: taskflow::Task,
    F: Fn() -> T + Clone + Send + 'static,
{
    taskflow_run_with(manager, n, producers, make, |add| add).await
}

/// [`taskflow_run`] with `options` applied to every task's [`AddBuilder`] at enqueue (tags, an
/// idempotency key, ...).
///
/// # Panics
///
/// When an enqueue fails.
pub async fn taskflow_run_with<T, F, O>(
    manager: &TaskManager,
    n: usize,
    producers: usize,
    make: F,
    options: O,
) -> Duration
where
    T: taskflow::Task,
    F: Fn() -> T + Clone + Send + 'static,
    O: Fn(AddBuilder) -> AddBuilder + Clone + Send + 'static,
{
    let start = Instant::now();
    fan_out(n, producers, |count| {
        let manager = manager.clone();
        let make = make.clone();
        let options = options.clone();
        async move {
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                let add = options(manager.add(make()));
                ids.push(add.await.expect("enqueue accepted"));
            }
            for id in ids {
                wait_done(&manager, id).await;
            }
        }
    })
    .await;
    start.elapsed()
}

/// Runs `producers` concurrent producers (tokio tasks), producer `p` made by `work` with its
/// [`share`] of `n`; returns their outputs once every one has finished.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let counts = taskflow_benches::fan_out(10, 3, |count| async move { count }).await;
/// assert_eq!(counts, [4, 3, 3]);
/// # }
/// ```
///
/// # Panics
///
/// When a producer panics.
pub async fn fan_out<F, P, T>(n: usize, producers: usize, work: F) -> Vec<T>
where
    F: Fn(usize) -> P,
    P: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..producers)
        .map(|p| tokio::spawn(work(share(n, producers, p))))
        .collect();
    let mut outputs = Vec::with_capacity(producers);
    for handle in handles {
        outputs.push(handle.await.expect("producer finished"));
    }
    outputs
}

/// What [`persisted_run`] measured.
#[derive(Debug, Clone)]
pub struct Timed {
    /// From the first enqueue to the last finish.
    pub elapsed: Duration,
    /// The latency of every `add`, sorted ascending.
    pub adds: Vec<Duration>,
}

impl Timed {
    /// The `q`-quantile (0.0..=1.0) of the `add` latencies (nearest rank).
    pub fn add_quantile(&self, q: f64) -> Duration {
        if self.adds.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.adds.len() as f64).ceil() as usize).clamp(1, self.adds.len());
        self.adds[rank - 1]
    }
}

/// Enqueues `n` [`NoopPersist`] tasks from `producers` concurrent producers and returns once
/// every one has run, as counted by [`PERSISTED`] (the peers' benchmarks count the same way);
/// also times every `add`, which returns once the task's row is committed.
///
/// # Panics
///
/// When an enqueue fails.
pub async fn persisted_run(manager: &TaskManager, n: usize, producers: usize) -> Timed {
    PERSISTED.expect(n);
    let start = Instant::now();
    let per_producer = fan_out(n, producers, |count| {
        let manager = manager.clone();
        async move {
            let mut adds = Vec::with_capacity(count);
            for _ in 0..count {
                let at = Instant::now();
                manager.add(NoopPersist {}).await.expect("enqueue accepted");
                adds.push(at.elapsed());
            }
            adds
        }
    })
    .await;
    let mut adds: Vec<Duration> = per_producer.into_iter().flatten().collect();
    PERSISTED.all_done().await;
    let elapsed = start.elapsed();
    adds.sort_unstable();
    Timed { elapsed, adds }
}

/// The CPU time that this process's threads named `name` have taken so far, from Linux's
/// `/proc/self/task`: in nanoseconds from each thread's `schedstat`, or, where the kernel keeps
/// none, in the 10 ms clock ticks of its `stat`; `None` where there is no such thread or no
/// `/proc`. The store's writer thread is `taskflow-sqlite`: its share of a round's time tells
/// whether the one writer is what bounds the round. Tokio names its runtime's threads
/// `tokio-rt-worker`.
///
/// ```
/// // No thread of the doctest's process has this name.
/// assert_eq!(taskflow_benches::thread_cpu("no-such-thread"), None);
/// ```
pub fn thread_cpu(name: &str) -> Option<Duration> {
    let mut total = None;
    for thread in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = thread.path();
        // `comm` is the name as Linux keeps it (15 bytes at most), with a newline.
        let named = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|comm| comm.strip_suffix('\n').unwrap_or(&comm) == name);
        if let Some(used) = named.then(|| on_cpu(&path)).flatten() {
            *total.get_or_insert(Duration::ZERO) += used;
        }
    }
    total
}

/// The time thread `/proc/self/task/<tid>` (`thread`) has spent on a CPU: the first field of its
/// `schedstat`, else the user and system times of its `stat` (fields 14 and 15, in ticks of 10
/// ms, Linux's `USER_HZ`).
fn on_cpu(thread: &Path) -> Option<Duration> {
    let schedstat = std::fs::read_to_string(thread.join("schedstat")).ok();
    if let Some(nanos) = schedstat.and_then(|s| s.split_whitespace().next()?.parse().ok()) {
        return Some(Duration::from_nanos(nanos));
    }
    let stat = std::fs::read_to_string(thread.join("stat")).ok()?;
    // `pid (comm) state ...`: the name may hold spaces and parentheses, the last `)` ends it;
    // after it come the state, 10 more fields, then utime and stime.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = |at: usize| fields.get(at)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), or `?` where unreadable.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// [`taskflow_run`] with the no-op task.
pub async fn taskflow_noop(manager: &TaskManager, n: usize, producers: usize) -> Duration {
    taskflow_run(manager, n, producers, || Noop {}).await
}

/// The floor: `n` bare `tokio::spawn`s of an empty future from `producers` concurrent
/// producers, each joining its own; returns the time from the first spawn to the last join.
///
/// # Panics
///
/// When a spawned future panics (it cannot: it is empty).
pub async fn floor_noop(n: usize, producers: usize) -> Duration {
    let start = Instant::now();
    fan_out(n, producers, |count| async move {
        let mut joins = Vec::with_capacity(count);
        for _ in 0..count {
            joins.push(tokio::spawn(std::hint::black_box(async {})));
        }
        for join in joins {
            join.await.expect("empty future");
        }
    })
    .await;
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (n, producers) in [(10, 3), (64, 64), (1000, 8), (5, 8)] {
            let total: usize = (0..producers).map(|p| share(n, producers, p)).sum();
            assert_eq!(total, n);
        }
    }

    #[test]
    fn every_producer_tags_every_tenant_alike() {
        let producers = 8;
        for p in 0..producers {
            let mut seen = std::collections::HashSet::new();
            for k in 0..100 {
                seen.insert(tenant(p + k * producers, producers));
            }
            assert_eq!(
                seen.len(),
                100,
                "producer {p} reaches every tenant in 100 tasks"
            );
        }
    }

    #[test]
    fn a_busy_named_thread_shows_its_cpu_time() {
        const NAME: &str = "bench-cpu-test";
        let spun = std::thread::Builder::new()
            .name(NAME.to_owned())
            .spawn(|| {
                // Spin until the thread's own entry shows 20 ms on a CPU (or give up after 10 s
                // of wall time, which the assertion below then reports).
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut seen = None;
                while Instant::now() < deadline {
                    seen = thread_cpu(NAME);
                    if seen.is_some_and(|used| used >= Duration::from_millis(20)) {
                        break;
                    }
                    std::hint::black_box((0..10_000u64).sum::<u64>());
                }
                seen
            })
            .expect("the thread starts")
            .join()
            .expect("the thread does not panic");
        assert!(
            spun.is_some_and(|used| used >= Duration::from_millis(20)),
            "the spinning thread's CPU time: {spun:?}"
        );
    }

    #[tokio::test]
    async fn every_workload_finishes() {
        let manager = manager().await;
        taskflow_noop(&manager, 200, 8).await;
        taskflow_run(&manager, 50, 2, || FailOnce {}).await;
        floor_noop(200, 8).await;
        let db = TempDb::new("test");
        let persisted = sqlite_manager(&db.path()).await;
        let timed = persisted_run(&persisted, 200, 8).await;
        assert_eq!(timed.adds.len(), 200);
        assert!(timed.add_quantile(0.99) >= timed.add_quantile(0.5));
        persisted.shutdown().await.expect("shuts down");
        let failed = manager
            .list(&taskflow::TaskFilter::new().status(taskflow::TaskStatus::Failed))
            .await
            .expect("lists");
        assert!(failed.tasks.is_empty(), "{failed:?}");
    }
}
