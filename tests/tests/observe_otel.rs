//! With the `opentelemetry` feature the W3C trace context of the enqueuing span is stored with
//! the task (`trace_parent`, kept through JSON like every record field), and every attempt's span
//! is a child of that context, checked with an in-memory span exporter.

use std::sync::atomic::{AtomicU32, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use taskflow::{TaskManager, TaskRecord, TaskStatus};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

static RETRIED_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails its first attempt, succeeds on the second.
#[taskflow::task(name = "obs.otel.retried", retries = 1)]
async fn otel_retried() -> Result<(), String> {
    if RETRIED_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err("first attempt fails".into());
    }
    Ok(())
}

/// An exporter and a subscriber that sends `tracing` spans to it.
fn otel() -> (
    InMemorySpanExporter,
    SdkTracerProvider,
    impl tracing::Subscriber + Send + Sync,
) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("taskflow-tests")));
    (exporter, provider, subscriber)
}

fn attempt_spans(spans: &[SpanData], task_id: &str) -> Vec<SpanData> {
    let mut found: Vec<SpanData> = spans
        .iter()
        .filter(|s| {
            s.name == "taskflow.task"
                && s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "task_id" && kv.value.as_str() == task_id)
        })
        .cloned()
        .collect();
    found.sort_by_key(|s| s.start_time);
    found
}

#[tokio::test]
async fn attempts_are_children_of_the_enqueuing_trace_and_the_context_is_stored() {
    let (exporter, provider, subscriber) = otel();
    let _default = tracing::subscriber::set_default(subscriber);
    let manager = TaskManager::builder().build().await.expect("builds");

    let request = tracing::info_span!("request");
    let id = async { manager.add(OtelRetried {}).await }
        .instrument(request.clone())
        .await
        .expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!((record.status, record.attempt), (TaskStatus::Success, 2));
    manager.shutdown().await.expect("shuts down");
    drop(request);
    provider.force_flush().expect("flushes");

    let spans = exporter.get_finished_spans().expect("spans");
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("the request span");
    let trace_id = request.span_context.trace_id();
    let span_id = request.span_context.span_id();

    // Stored as a W3C traceparent naming the request span, and kept through JSON.
    let stored = record.trace_parent.clone().expect("a traceparent");
    assert_eq!(stored, format!("00-{trace_id}-{span_id}-01"));
    let json = serde_json::to_value(&record).expect("serializes");
    assert_eq!(json["trace_parent"], stored.as_str());
    let back: TaskRecord = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back.trace_parent, Some(stored));

    let attempts = attempt_spans(&spans, &id.to_string());
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    for attempt in &attempts {
        assert_eq!(attempt.span_context.trace_id(), trace_id);
        assert_eq!(attempt.parent_span_id, span_id);
        assert!(
            attempt
                .links
                .iter()
                .any(|link| link.span_context.span_id() == span_id),
            "the follows-from link to the request is kept"
        );
    }
}

#[tokio::test]
async fn a_task_enqueued_outside_any_trace_stores_nothing_and_starts_its_own() {
    let (exporter, provider, subscriber) = otel();
    let _default = tracing::subscriber::set_default(subscriber);
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager
        .spawn("obs.otel.untraced", async {})
        .await
        .expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    manager.shutdown().await.expect("shuts down");
    provider.force_flush().expect("flushes");

    assert_eq!(record.trace_parent, None);
    let json = serde_json::to_value(&record).expect("serializes");
    assert!(
        json.get("trace_parent").is_none(),
        "absent, not null: {json}"
    );
    let spans = exporter.get_finished_spans().expect("spans");
    let attempts = attempt_spans(&spans, &id.to_string());
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0].parent_span_id,
        opentelemetry::trace::SpanId::INVALID,
        "a root span"
    );
}

/// Holds queue `otel-held` until the manager shuts down.
#[taskflow::task(name = "obs.otel.gate", queue = "otel-held")]
async fn otel_gate() {
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
}

/// A persisted task that waits behind the gate, so it is still pending at shutdown.
#[taskflow::task(name = "obs.otel.durable", persist, queue = "otel-held")]
async fn otel_durable() {}

#[tokio::test]
async fn a_task_run_after_a_restart_continues_the_trace_stored_in_sqlite() {
    let (exporter, provider, subscriber) = otel();
    let _default = tracing::subscriber::set_default(subscriber);
    let dir = std::env::temp_dir().join(format!("taskflow-otel-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("tasks.db");
    let builder = |concurrency| {
        TaskManager::builder()
            .sqlite(&db)
            .queue(
                "otel-held",
                taskflow::QueueConfig::new().concurrency(concurrency),
            )
            .shutdown_timeout(std::time::Duration::from_millis(100))
    };

    let first = builder(1).build().await.expect("builds");
    first.add(OtelGate {}).await.expect("holds the queue");
    let request = tracing::info_span!("request");
    let id = async { first.add(OtelDurable {}).await }
        .instrument(request.clone())
        .await
        .expect("stored");
    first
        .shutdown()
        .await
        .expect("keeps the pending persisted task");
    drop(first);
    drop(request);

    // A new manager on the same file claims the task and runs it.
    let second = builder(4).build().await.expect("builds again");
    let record = second.wait(id).await.expect("runs after the restart");
    assert_eq!(record.status, TaskStatus::Success);
    second.shutdown().await.expect("shuts down");
    provider.force_flush().expect("flushes");

    let spans = exporter.get_finished_spans().expect("spans");
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("the request span");
    let attempts = attempt_spans(&spans, &id.to_string());
    assert_eq!(attempts.len(), 1, "one attempt, in the second manager");
    assert_eq!(
        attempts[0].span_context.trace_id(),
        request.span_context.trace_id(),
        "same trace"
    );
    assert_eq!(
        attempts[0].parent_span_id,
        request.span_context.span_id(),
        "child of the request span"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
