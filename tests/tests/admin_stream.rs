//! The live stream over real HTTP on loopback: headers, the first snapshot, deltas, coalescing,
//! bounded slow clients, keep-alives and the end at shutdown.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use support::sse::{SseClient, SseEvent};
use support::{eventually, serve};
use taskflow::admin::{StreamStats, TaskAdmin};
use taskflow::{TaskManager, TaskStatus};

const WAIT: Duration = Duration::from_secs(10);

/// Fails when asked.
#[taskflow::task(name = "stream.work")]
async fn work(fail: bool) -> Result<u32, String> {
    if fail {
        return Err("asked to fail".to_owned());
    }
    Ok(1)
}

/// Waits for a long time.
#[taskflow::task(name = "stream.sleepy")]
async fn sleepy() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

async fn app(
    manager: &TaskManager,
    configure: impl FnOnce(TaskAdmin) -> TaskAdmin,
) -> (SocketAddr, StreamStats) {
    let admin = configure(TaskAdmin::new(manager).display_args(true));
    let stats = admin.stream_stats();
    (serve(admin.mount(Router::new())).await, stats)
}

async fn next(client: &mut SseClient) -> SseEvent {
    client.next_event(WAIT).await.expect("an event in time")
}

fn ids(event: &SseEvent, key: &str) -> Vec<String> {
    event.data[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("task_id").unwrap_or(t).as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn headers_and_first_snapshot() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager.add(Work { fail: false }).await.expect("enqueued");
    manager.wait(id).await.expect("finishes");
    let (addr, stats) = app(&manager, |a| a).await;

    let mut client = SseClient::connect(addr, "/tasks/stream", &[], None).await;
    assert_eq!(client.status, 200);
    assert_eq!(client.header("content-type"), Some("text/event-stream"));
    assert_eq!(client.header("cache-control"), Some("no-cache"));
    assert_eq!(client.header("x-accel-buffering"), Some("no"));
    let snapshot = next(&mut client).await;
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.data["reason"], "connect");
    assert_eq!(ids(&snapshot, "tasks"), [id.to_string()]);
    assert_eq!(snapshot.data["metrics"]["total"], 1);
    assert!(snapshot.data.get("next_cursor").is_some());
    let record = &snapshot.data["tasks"][0];
    assert_eq!(record["status"], "success");
    assert!(record.get("args").is_none(), "stream records are summaries");
    assert!(record.get("logs").is_none());
    assert_eq!(record["log_count"], 0);
    assert_eq!(stats.clients(), 1);
    drop(client);
    eventually("the client to be counted out", WAIT, async || {
        stats.clients() == 0
    })
    .await;
}

#[tokio::test]
async fn bad_filter_answers_400() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let (addr, _) = app(&manager, |a| a).await;
    let client = SseClient::connect(addr, "/tasks/stream?status=done", &[], None).await;
    assert_eq!(client.status, 400);
}

#[tokio::test]
async fn delta_after_a_change() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let (addr, _) = app(&manager, |a| a).await;
    let mut client = SseClient::connect(addr, "/tasks/stream", &[], None).await;
    assert_eq!(next(&mut client).await.event, "snapshot");

    let id = manager.add(Work { fail: false }).await.expect("enqueued");
    let id = id.to_string();
    loop {
        let event = next(&mut client).await;
        assert_eq!(event.event, "delta", "{:?}", event.data);
        assert!(event.data["metrics"]["total"].is_number());
        let task = event.data["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["task_id"] == id.as_str())
            .cloned();
        if let Some(task) = task
            && task["status"] == "success"
        {
            assert_eq!(event.data["metrics"]["by_status"]["success"], 1);
            break;
        }
    }
}

#[tokio::test]
async fn filtered_stream_adds_and_removes() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let (addr, _) = app(&manager, |a| a).await;
    let mut client = SseClient::connect(addr, "/tasks/stream?status=running", &[], None).await;
    let snapshot = next(&mut client).await;
    assert_eq!(ids(&snapshot, "tasks"), Vec::<String>::new());

    let id = manager.add(Sleepy {}).await.expect("enqueued");
    loop {
        let event = next(&mut client).await;
        if ids(&event, "tasks").contains(&id.to_string()) {
            break;
        }
    }
    manager.cancel(id).await.expect("cancels");
    loop {
        let event = next(&mut client).await;
        assert!(!ids(&event, "tasks").contains(&id.to_string()));
        if ids(&event, "removed").contains(&id.to_string()) {
            break;
        }
    }
}

#[tokio::test]
async fn a_burst_is_coalesced() {
    let manager = TaskManager::builder()
        .event_capacity(100_000)
        .build()
        .await
        .expect("builds");
    let (addr, stats) = app(&manager, |a| a.stream_interval(Duration::from_millis(200))).await;
    let mut client = SseClient::connect(addr, "/tasks/stream", &[], None).await;
    assert_eq!(next(&mut client).await.event, "snapshot");

    const BURST: usize = 3_000;
    let started = tokio::time::Instant::now();
    for n in 0..BURST {
        manager
            .add(Work { fail: n % 10 == 0 })
            .await
            .expect("enqueued");
    }
    // Each task makes three feed events (pending, running, finished): 9,000 changes.
    let mut events = 0;
    loop {
        let event = next(&mut client).await;
        events += 1;
        let finished = event.data["metrics"]["by_status"]["success"]
            .as_u64()
            .unwrap_or(0)
            + event.data["metrics"]["by_status"]["failed"]
                .as_u64()
                .unwrap_or(0);
        if finished == BURST as u64 {
            break;
        }
    }
    let elapsed = started.elapsed();
    let allowed = (elapsed.as_millis() / 200) as usize + 3;
    assert!(
        events <= allowed,
        "{events} events in {elapsed:?} (at most one per 200 ms: {allowed})"
    );
    assert!(events < 100, "{events} events for {BURST} tasks");
    assert!(stats.max_pending() <= StreamStats::PENDING_BOUND);
}

#[tokio::test]
async fn a_client_that_does_not_read_is_bounded_and_resynced() {
    let manager = TaskManager::builder()
        .event_capacity(64)
        .build()
        .await
        .expect("builds");
    let (addr, stats) = app(&manager, |a| a.stream_interval(Duration::from_millis(10))).await;
    let mut client = SseClient::connect(addr, "/tasks/stream", &[], Some(4096)).await;
    assert_eq!(next(&mut client).await.event, "snapshot");

    // Stop reading; make big changes until the server has had to skip events for this client.
    let padding = "x".repeat(4096);
    let mut rounds = 0;
    while stats.lagged() == 0 {
        rounds += 1;
        assert!(rounds <= 200, "the stream never fell behind");
        for _ in 0..200 {
            manager
                .add(Work { fail: false })
                .tags([("padding", padding.as_str())])
                .await
                .expect("enqueued");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stats.max_pending() <= StreamStats::PENDING_BOUND,
        "held {} ids",
        stats.max_pending()
    );

    // Reading again, the client gets a fresh snapshot instead of the missed events.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no resync snapshot");
        let event = next(&mut client).await;
        if event.event == "snapshot" {
            assert!(
                matches!(event.data["reason"].as_str(), Some("lagged" | "overflow")),
                "{:?}",
                event.data["reason"]
            );
            if event.data["reason"] == "lagged" {
                break;
            }
        }
    }
    assert!(stats.resyncs() >= 1);
    assert!(stats.max_pending() <= StreamStats::PENDING_BOUND);
}

#[tokio::test]
async fn keep_alive_comments_when_idle() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let (addr, _) = app(&manager, |a| a.keep_alive(Duration::from_millis(50))).await;
    let mut client = SseClient::connect(addr, "/tasks/stream", &[], None).await;
    assert_eq!(next(&mut client).await.event, "snapshot");
    assert!(client.wait_comment(WAIT).await, "a keep-alive comment");
}

#[tokio::test]
async fn the_stream_ends_at_shutdown_and_serve_returns() {
    let manager = TaskManager::builder()
        .shutdown_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("builds");
    let admin = TaskAdmin::new(&manager);
    let stats = admin.stream_stats();
    let app = admin.mount(Router::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(manager.shutdown_signal())
            .into_future(),
    );
    let mut client = SseClient::connect(addr, "/tasks/stream", &[], None).await;
    assert_eq!(next(&mut client).await.event, "snapshot");
    let running = manager.add(Sleepy {}).await.expect("enqueued");
    eventually("the task to run", WAIT, async || {
        manager
            .get(running)
            .await
            .expect("readable")
            .is_some_and(|r| r.status == TaskStatus::Running)
    })
    .await;

    manager.shutdown().await.expect("shuts down");
    let deadline = tokio::time::Instant::now() + WAIT;
    while client.next_event(WAIT).await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the stream goes on");
    }
    assert!(client.ended, "the stream ended");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("graceful shutdown does not hang on the open stream")
        .expect("server task")
        .expect("serve ends cleanly");
    assert_eq!(stats.clients(), 0);
}

#[tokio::test]
async fn stream_requires_auth_when_set() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let (addr, _) = app(&manager, |a| {
        a.auth(taskflow::admin::Auth::users([("ops", "pw")]).token("t0k", "ci"))
    })
    .await;
    let client = SseClient::connect(addr, "/tasks/stream", &[], None).await;
    assert_eq!(client.status, 401);
    let mut client = SseClient::connect(
        addr,
        "/tasks/stream",
        &[("authorization", "Bearer t0k")],
        None,
    )
    .await;
    assert_eq!(client.status, 200);
    let snapshot = next(&mut client).await;
    assert_eq!(snapshot.event, "snapshot");
    let _: &Value = &snapshot.data;
}
