//! A child process for the crash and multi-process tests: it enqueues persisted tasks into a
//! SQLite file, or drains a file after another process died, appending one line per task run to
//! a log file (`<name> <n> <pid>`) so the tests can count runs across processes.
//!
//! ```text
//! taskflow_child enqueue <db> <log> <quick> <slow> <slow_requeue>   # then waits to be killed
//! taskflow_child hold <db> <log> <count>                            # then waits to be killed
//! taskflow_child drain <db> <log>                                   # exits when nothing is left
//! taskflow_child charge <db> <log> <key> <concurrent>               # one key, many adds
//! taskflow_child open <db> <log>                                    # prints OPENED or ERROR …
//! ```

use std::io::Write;
use std::time::Duration;

use taskflow::{QueueConfig, TaskContext, TaskFilter, TaskManager, TaskStatus};

fn note(log: &str, name: &str, n: u64) {
    let line = format!("{name} {n} {}\n", std::process::id());
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(error) = written {
        eprintln!("cannot write the run log {log}: {error}");
    }
}

/// A short task.
#[taskflow::task(name = "child.quick", persist)]
async fn quick(n: u64, log: String) {
    note(&log, "quick", n);
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// A task that hangs on its first attempt.
#[taskflow::task(name = "child.slow", persist)]
async fn slow(n: u64, log: String) {
    note(&log, "slow", n);
    if TaskContext::current().is_some_and(|ctx| ctx.attempt() == 1) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// A task that hangs on its first attempt and is run again after an interruption.
#[taskflow::task(name = "child.slow_requeue", persist, requeue_on_interrupt)]
async fn slow_requeue(n: u64, log: String) {
    note(&log, "slow_requeue", n);
    if TaskContext::current().is_some_and(|ctx| ctx.attempt() == 1) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Holds its queue forever.
#[taskflow::task(name = "child.blocker", persist, queue = "held")]
async fn blocker() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// Charges once per key.
#[taskflow::task(name = "child.charge", persist)]
async fn charge(n: u64, log: String) {
    note(&log, "charge", n);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// A manager on `db`; `held_concurrency` limits the queue `held` (1 while holding it shut).
async fn manager(db: &str, held_concurrency: usize) -> TaskManager {
    match TaskManager::builder()
        .sqlite(db)
        .max_concurrent_tasks(16)
        .heartbeat_interval(Duration::from_millis(200))
        .queue(
            "held",
            QueueConfig::new()
                .concurrency(held_concurrency)
                .max_size(1_000_000),
        )
        .build()
        .await
    {
        Ok(manager) => manager,
        Err(error) => {
            eprintln!("cannot build the manager: {error}");
            std::process::exit(2);
        }
    }
}

fn arg(args: &[String], index: usize) -> &str {
    args.get(index).map(String::as_str).unwrap_or_else(|| {
        eprintln!("missing argument {index}; see the usage in the source");
        std::process::exit(2);
    })
}

fn number(args: &[String], index: usize) -> u64 {
    arg(args, index).parse().unwrap_or_else(|_| {
        eprintln!("argument {index} must be a number");
        std::process::exit(2);
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (db, log) = (arg(&args, 2).to_owned(), arg(&args, 3).to_owned());
    match arg(&args, 1) {
        "enqueue" => {
            let m = manager(&db, 16).await;
            let (quick_n, slow_n, requeue_n) =
                (number(&args, 4), number(&args, 5), number(&args, 6));
            for n in 0..slow_n {
                let id = m
                    .add(Slow {
                        n,
                        log: log.clone(),
                    })
                    .await
                    .expect("accepted");
                say(&format!("ACK slow {n} {id}"));
            }
            for n in 0..requeue_n {
                let id = m
                    .add(SlowRequeue {
                        n,
                        log: log.clone(),
                    })
                    .await
                    .expect("accepted");
                say(&format!("ACK slow_requeue {n} {id}"));
            }
            for n in 0..quick_n {
                let id = m
                    .add(Quick {
                        n,
                        log: log.clone(),
                    })
                    .await
                    .expect("accepted");
                say(&format!("ACK quick {n} {id}"));
            }
            say("ENQUEUED");
            std::future::pending::<()>().await;
        }
        "hold" => {
            let m = manager(&db, 1).await;
            m.add(Blocker {}).await.expect("accepted");
            for n in 0..number(&args, 4) {
                m.add(Quick {
                    n,
                    log: log.clone(),
                })
                .queue("held")
                .await
                .expect("accepted");
            }
            say("ENQUEUED");
            std::future::pending::<()>().await;
        }
        "drain" => {
            let m = manager(&db, 16).await;
            say("STARTED");
            loop {
                let mut left = 0;
                for status in [TaskStatus::Pending, TaskStatus::Running] {
                    let page = m
                        .list(&TaskFilter::new().status(status).limit(1))
                        .await
                        .expect("list");
                    left += page.tasks.len();
                }
                if left == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            m.shutdown().await.expect("shutdown");
            say("DONE");
        }
        "charge" => {
            let m = manager(&db, 16).await;
            let key = arg(&args, 4).to_owned();
            let mut adds = Vec::new();
            for n in 0..number(&args, 5) {
                let (m, key, log) = (m.clone(), key.clone(), log.clone());
                adds.push(tokio::spawn(async move {
                    m.add(Charge { n, log }).idempotency_key(key).await
                }));
            }
            for add in adds {
                let id = add.await.expect("joined").expect("accepted");
                say(&format!("ID {id}"));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            m.shutdown().await.expect("shutdown");
            say("DONE");
        }
        "open" => match TaskManager::builder().sqlite(&db).build().await {
            Ok(m) => {
                m.shutdown().await.expect("shutdown");
                say("OPENED");
            }
            Err(error) => say(&format!("ERROR {error}")),
        },
        other => {
            eprintln!("unknown mode `{other}`");
            std::process::exit(2);
        }
    }
}
