//! `GET /tasks/metrics/prometheus` (feature `prometheus`): the exposition parses line by line
//! and its counts match the tasks that ran.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use taskflow::{QueueConfig, TaskAdmin, TaskManager, TaskStatus};

const WAIT: Duration = Duration::from_secs(10);

/// Succeeds.
#[taskflow::task(name = "obs.prom.ok")]
async fn prom_ok(n: u32) -> Result<u32, String> {
    Ok(n)
}

/// Always fails; retried twice.
#[taskflow::task(name = "obs.prom.flaky", retries = 2)]
async fn prom_flaky() -> Result<(), String> {
    Err("still broken".into())
}

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the OpenMetrics text format strictly: every line is a `# HELP`, `# TYPE`, `# UNIT`
/// comment, a sample of a declared family, or the final `# EOF`; anything else panics.
fn parse(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut saw_eof = false;
    for line in text.lines() {
        assert!(!saw_eof, "content after # EOF: {line:?}");
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default();
            let family = parts
                .next()
                .unwrap_or_else(|| panic!("bad comment {line:?}"));
            let rest = parts
                .next()
                .unwrap_or_else(|| panic!("bad comment {line:?}"));
            assert!(valid_name(family), "bad family name in {line:?}");
            match kind {
                "TYPE" => {
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "info",
                            "stateset",
                            "unknown"
                        ]
                        .contains(&rest),
                        "bad type in {line:?}"
                    );
                    types.insert(family.to_owned(), rest.to_owned());
                }
                "HELP" | "UNIT" => {}
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let sample = parse_sample(line);
        let family = types
            .keys()
            .filter(|family| sample.name.starts_with(family.as_str()))
            .max_by_key(|family| family.len())
            .unwrap_or_else(|| panic!("sample of an undeclared family: {line:?}"));
        let suffix = &sample.name[family.len()..];
        let allowed: &[&str] = match types[family].as_str() {
            "counter" => &["_total", "_created"],
            "gauge" => &[""],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            _ => &[""],
        };
        assert!(
            allowed.contains(&suffix),
            "bad suffix {suffix:?} in {line:?}"
        );
        samples.push(sample);
    }
    assert!(saw_eof, "no # EOF at the end");
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(at) => line.split_at(at),
        None => panic!("no value in {line:?}"),
    };
    assert!(valid_name(name), "bad metric name in {line:?}");
    let mut labels = BTreeMap::new();
    let value_text = if let Some(body) = rest.strip_prefix('{') {
        let end = body
            .find("} ")
            .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
        let mut pairs = &body[..end];
        while !pairs.is_empty() {
            let (key, tail) = pairs
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad label in {line:?}"));
            assert!(valid_name(key), "bad label name in {line:?}");
            let close = tail
                .find('"')
                .unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
            labels.insert(key.to_owned(), tail[..close].to_owned());
            pairs = tail[close + 1..]
                .strip_prefix(',')
                .unwrap_or(&tail[close + 1..]);
        }
        &body[end + 2..]
    } else {
        &rest[1..]
    };
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// The value of the sample `name` with exactly these labels; `None` when absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
}

async fn scrape(addr: std::net::SocketAddr) -> Vec<Sample> {
    let response = support::request(addr, "GET", "/tasks/metrics/prometheus", None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    parse(&response.body)
}

#[tokio::test]
async fn the_exposition_parses_and_counts_match_the_tasks_that_ran() {
    let manager = TaskManager::builder()
        .queue(
            "obs-prom-tiny",
            QueueConfig::new().concurrency(1).max_size(1),
        )
        .build()
        .await
        .expect("builds");
    let addr = support::serve(TaskAdmin::new(&manager).mount(axum::Router::new())).await;

    // A held queue: one running, one waiting, and a third rejected.
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let blocker = manager
        .spawn("obs.prom.blocker", async move {
            let _ = held.await;
        })
        .queue("obs-prom-tiny")
        .await
        .expect("enqueued");
    let waiter = manager
        .spawn("obs.prom.waiter", async {})
        .queue("obs-prom-tiny")
        .await
        .expect("enqueued");
    let rejected = manager
        .spawn("obs.prom.rejected", async {})
        .queue("obs-prom-tiny")
        .await;
    assert!(rejected.is_err(), "the queue is full");
    support::eventually("the blocker runs", WAIT, async || {
        manager
            .get(blocker)
            .await
            .expect("readable")
            .is_some_and(|r| r.status == TaskStatus::Running)
    })
    .await;
    let samples = scrape(addr).await;
    let tiny = [("queue", "obs-prom-tiny")];
    assert_eq!(value(&samples, "taskflow_queue_pending", &tiny), Some(1.0));
    assert_eq!(value(&samples, "taskflow_queue_running", &tiny), Some(1.0));
    let _ = release.send(());

    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(manager.add(PromOk { n }).await.expect("enqueued"));
    }
    ids.push(manager.add(PromFlaky {}).await.expect("enqueued"));
    ids.extend([blocker, waiter]);
    for id in &ids {
        manager.wait(*id).await.expect("finishes");
    }

    // The counts arrive through the event feed: wait until the last one is in.
    let deadline = tokio::time::Instant::now() + WAIT;
    let samples = loop {
        let samples = scrape(addr).await;
        let flaky_failed = value(
            &samples,
            "taskflow_tasks_total",
            &[("name", "obs.prom.flaky"), ("status", "failed")],
        );
        let ok_done = value(
            &samples,
            "taskflow_tasks_total",
            &[("name", "obs.prom.ok"), ("status", "success")],
        );
        let waiter_done = value(
            &samples,
            "taskflow_tasks_total",
            &[("name", "obs.prom.waiter"), ("status", "success")],
        );
        if flaky_failed == Some(1.0) && ok_done == Some(3.0) && waiter_done == Some(1.0) {
            break samples;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never caught up: {samples:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let tasks = |name: &str, status: &str| {
        value(
            &samples,
            "taskflow_tasks_total",
            &[("name", name), ("status", status)],
        )
    };
    assert_eq!(tasks("obs.prom.ok", "pending"), Some(3.0));
    assert_eq!(tasks("obs.prom.ok", "running"), Some(3.0));
    assert_eq!(tasks("obs.prom.ok", "success"), Some(3.0));
    assert_eq!(tasks("obs.prom.ok", "failed"), None);
    assert_eq!(tasks("obs.prom.flaky", "pending"), Some(1.0));
    assert_eq!(
        tasks("obs.prom.flaky", "running"),
        Some(1.0),
        "tasks, not attempts"
    );
    assert_eq!(tasks("obs.prom.flaky", "failed"), Some(1.0));
    assert_eq!(tasks("obs.prom.rejected", "rejected"), Some(1.0));
    assert_eq!(tasks("obs.prom.rejected", "pending"), None);
    assert_eq!(tasks("obs.prom.blocker", "success"), Some(1.0));

    let by_name = |metric: &str, name: &str| value(&samples, metric, &[("name", name)]);
    assert_eq!(
        by_name("taskflow_task_retries_total", "obs.prom.flaky"),
        Some(2.0)
    );
    assert_eq!(by_name("taskflow_task_retries_total", "obs.prom.ok"), None);
    assert_eq!(
        by_name(
            "taskflow_task_attempt_duration_seconds_count",
            "obs.prom.flaky"
        ),
        Some(3.0),
        "one observation per attempt"
    );
    assert_eq!(
        by_name(
            "taskflow_task_attempt_duration_seconds_count",
            "obs.prom.ok"
        ),
        Some(3.0)
    );
    // Buckets are cumulative and end at the count.
    let buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| {
            s.name == "taskflow_task_attempt_duration_seconds_bucket"
                && s.labels.get("name").map(String::as_str) == Some("obs.prom.ok")
        })
        .map(|s| {
            let le = match s.labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                le => le.parse().expect("a bucket bound"),
            };
            (le, s.value)
        })
        .collect();
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 3.0)));
    let sum = by_name("taskflow_task_attempt_duration_seconds_sum", "obs.prom.ok").expect("a sum");
    assert!((0.0..WAIT.as_secs_f64()).contains(&sum), "{sum}");

    assert_eq!(value(&samples, "taskflow_queue_pending", &tiny), Some(0.0));
    assert_eq!(value(&samples, "taskflow_queue_running", &tiny), Some(0.0));
    assert_eq!(
        value(&samples, "taskflow_queue_pending", &[("queue", "default")]),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "taskflow_store_errors_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "taskflow_observer_dropped_events_total",
            &[("observer", "prometheus")]
        ),
        Some(0.0)
    );
    let families: HashSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    assert!(families.contains("taskflow_tasks_total"));
    manager.shutdown().await.expect("shuts down");
}

#[test]
fn the_parser_rejects_what_is_not_the_format() {
    for bad in [
        "# TYPE x counter\nx_total 1\n",                // no # EOF
        "x_total 1\n# EOF\n",                           // undeclared family
        "# TYPE x counter\nx_total{a=\"1\" 1\n# EOF\n", // unclosed labels
        "# TYPE x counter\nx_total one\n# EOF\n",       // not a number
        "# TYPE x gauge\nx_total 1\n# EOF\n",           // wrong suffix for a gauge
    ] {
        assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "{bad:?}");
    }
    let good = parse("# HELP x An x.\n# TYPE x counter\nx_total{a=\"1\",b=\"two\"} 3\n# EOF\n");
    assert_eq!(good[0].labels["b"], "two");
    assert_eq!(good[0].value, 3.0);
}
