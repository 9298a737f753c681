//! The `taskflow.task` span of every attempt follows from the span that enqueued the task (a
//! request's), carries `task_id`, `name` and `attempt`, and is never the child of whatever span
//! happened to launch it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use taskflow::{QueueConfig, TaskManager, TaskStatus};
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One span as the recorder saw it.
#[derive(Debug, Clone, Default)]
struct SpanInfo {
    name: String,
    target: String,
    parent: Option<u64>,
    follows: Vec<u64>,
    fields: HashMap<String, String>,
    events: Vec<String>,
}

/// A layer that records every span, its parent, its fields, what it follows from, and the
/// messages of the (non-taskflow) events inside it.
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<parking_lot::Mutex<HashMap<u64, SpanInfo>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut info = SpanInfo {
            name: attrs.metadata().name().to_owned(),
            target: attrs.metadata().target().to_owned(),
            parent: ctx
                .span(id)
                .and_then(|span| span.parent())
                .map(|parent| parent.id().into_u64()),
            ..SpanInfo::default()
        };
        attrs.record(&mut Fields(&mut info.fields));
        self.spans.lock().insert(id.into_u64(), info);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(info) = self.spans.lock().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut info.fields));
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, _ctx: Context<'_, S>) {
        if let Some(info) = self.spans.lock().get_mut(&id.into_u64()) {
            info.follows.push(follows.into_u64());
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target().starts_with("taskflow") {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        if let Some(info) = self.spans.lock().get_mut(&span.id().into_u64()) {
            info.events
                .push(fields.remove("message").unwrap_or_default());
        }
    }
}

impl Recorder {
    fn task_spans(&self, task_id: &str) -> Vec<SpanInfo> {
        let mut spans: Vec<SpanInfo> = self
            .spans
            .lock()
            .values()
            .filter(|s| {
                s.name == "taskflow.task"
                    && s.fields.get("task_id").map(String::as_str) == Some(task_id)
            })
            .cloned()
            .collect();
        spans.sort_by_key(|s| s.fields.get("attempt").cloned());
        spans
    }
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails its first attempt, logs through `tracing`, succeeds on the second.
#[taskflow::task(name = "obs.span.flaky", retries = 1)]
async fn span_flaky() -> Result<(), String> {
    tracing::info!("inside the attempt");
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err("first attempt fails".into());
    }
    Ok(())
}

#[tokio::test]
async fn every_attempt_span_follows_from_the_enqueuing_request_span() {
    let recorder = Recorder::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let manager = TaskManager::builder().build().await.expect("builds");

    let request = tracing::info_span!("request", path = "/signup");
    let request_id = request.id().expect("enabled").into_u64();
    let id = async { manager.add(SpanFlaky {}).await }
        .instrument(request.clone())
        .await
        .expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!((record.status, record.attempt), (TaskStatus::Success, 2));

    let spans = recorder.task_spans(&id.to_string());
    assert_eq!(spans.len(), 2, "one span per attempt: {spans:#?}");
    for (n, span) in spans.iter().enumerate() {
        assert_eq!(span.target, "taskflow::executor");
        assert_eq!(span.fields["name"], "obs.span.flaky");
        assert_eq!(span.fields["attempt"], (n + 1).to_string());
        assert_eq!(
            span.follows,
            [request_id],
            "attempt {} follows the request",
            n + 1
        );
        assert_eq!(
            span.parent,
            None,
            "attempt {} is not a child of a launcher",
            n + 1
        );
        assert_eq!(
            span.events,
            ["inside the attempt"],
            "events land in the attempt's span"
        );
    }
    drop(request);
    manager.shutdown().await.expect("shuts down");
}

#[tokio::test]
async fn a_task_started_when_another_finishes_does_not_become_its_child() {
    let recorder = Recorder::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let manager = TaskManager::builder()
        .queue("obs-span-single", QueueConfig::new().concurrency(1))
        .build()
        .await
        .expect("builds");
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let first_request = tracing::info_span!("first_request");
    let first = async {
        manager
            .spawn("obs.span.first", async move {
                let _ = held.await;
            })
            .queue("obs-span-single")
            .await
    }
    .instrument(first_request.clone())
    .await
    .expect("enqueued");
    let second_request = tracing::info_span!("second_request");
    let second = async {
        manager
            .spawn("obs.span.second", async {})
            .queue("obs-span-single")
            .await
    }
    .instrument(second_request.clone())
    .await
    .expect("enqueued");
    let _ = release.send(());
    manager.wait(first).await.expect("finishes");
    manager.wait(second).await.expect("finishes");

    let second_span = recorder.task_spans(&second.to_string());
    assert_eq!(second_span.len(), 1);
    assert_eq!(
        second_span[0].follows,
        [second_request.id().expect("enabled").into_u64()]
    );
    assert_eq!(
        second_span[0].parent, None,
        "launched from the first task's span, but not its child"
    );
    let first_span = recorder.task_spans(&first.to_string());
    assert_eq!(
        first_span[0].follows,
        [first_request.id().expect("enabled").into_u64()]
    );
    manager.shutdown().await.expect("shuts down");
}
