//! OpenTelemetry glue (feature `opentelemetry`): the W3C `traceparent` of the enqueuing span,
//! stored with the task, becomes the OpenTelemetry parent of each of its attempt spans.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span (through the `tracing-opentelemetry` layer), or of the
/// current OpenTelemetry context; `None` when neither is in a valid trace.
pub(super) fn current_trace_parent() -> Option<String> {
    let span = tracing::Span::current();
    let mut context = if span.is_disabled() {
        opentelemetry::Context::new()
    } else {
        span.context()
    };
    if !context.span().span_context().is_valid() {
        context = opentelemetry::Context::current();
    }
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes the context in `trace_parent` the OpenTelemetry parent of `span` (not yet entered).
pub(super) fn set_parent(span: &tracing::Span, trace_parent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), trace_parent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if !context.span().span_context().is_valid() {
        tracing::debug!(target: "taskflow::observe", trace_parent, "ignoring an invalid stored traceparent");
        return;
    }
    if let Err(error) = span.set_parent(context) {
        tracing::debug!(target: "taskflow::observe", %error, "cannot continue the stored trace");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    use crate::{QueueConfig, TaskManager, TaskRecord, TaskStatus};

    fn task_span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
        spans
            .iter()
            .find(|s| {
                s.name == "taskflow.task"
                    && s.attributes
                        .iter()
                        .any(|kv| kv.key.as_str() == "name" && kv.value.as_str() == name)
            })
            .unwrap_or_else(|| panic!("no span of task `{name}` in {spans:#?}"))
    }

    /// What a restart does with a stored task: the record comes back from the store (here: its
    /// JSON), and the new manager runs it with no span of the original request in this process.
    #[tokio::test]
    async fn a_stored_trace_parent_survives_json_and_parents_a_later_run() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("taskflow-test")));
        let _default = tracing::subscriber::set_default(subscriber);

        let before = TaskManager::builder().build().await.expect("builds");
        let request = tracing::info_span!("request");
        let id = async { before.spawn("otel.unit.first", async {}).await }
            .instrument(request.clone())
            .await
            .expect("enqueued");
        let record = before.wait(id).await.expect("finishes");
        before.shutdown().await.expect("shuts down");
        let trace_parent = record.trace_parent.clone().expect("a stored traceparent");
        assert!(trace_parent.starts_with("00-"), "{trace_parent}");

        let json = serde_json::to_string(&record).expect("serializes");
        let restored: TaskRecord = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(restored.trace_parent, Some(trace_parent));

        // The restarted manager: one slot in the queue, held, so the requeued task waits
        // pending while its record is replaced by the stored one's trace context.
        let after = TaskManager::builder()
            .queue("otel-held", QueueConfig::new().concurrency(1))
            .build()
            .await
            .expect("builds");
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let blocker = after
            .spawn("otel.unit.blocker", async move {
                let _ = held.await;
            })
            .queue("otel-held")
            .await
            .expect("enqueued");
        let requeued = after
            .spawn("otel.unit.requeued", async {})
            .queue("otel-held")
            .await
            .expect("enqueued");
        {
            let cell = after.inner.cell(requeued).expect("known");
            let pending = &mut cell.lock().record;
            assert_eq!(pending.status, TaskStatus::Pending);
            assert_eq!(pending.trace_parent, None, "enqueued outside any trace");
            pending.trace_parent = restored.trace_parent.clone();
        }
        let _ = release.send(());
        after.wait(blocker).await.expect("finishes");
        let done = tokio::time::timeout(Duration::from_secs(5), after.wait(requeued))
            .await
            .expect("in time")
            .expect("finishes");
        assert_eq!(done.status, TaskStatus::Success);
        after.shutdown().await.expect("shuts down");
        drop(request);
        provider.force_flush().expect("flushes");

        let spans = exporter.get_finished_spans().expect("spans");
        let request = spans
            .iter()
            .find(|s| s.name == "request")
            .expect("the request span");
        let request_trace: TraceId = request.span_context.trace_id();
        let request_span: SpanId = request.span_context.span_id();
        for name in ["otel.unit.first", "otel.unit.requeued"] {
            let task = task_span(&spans, name);
            assert_eq!(task.span_context.trace_id(), request_trace, "{name}");
            assert_eq!(task.parent_span_id, request_span, "{name}");
        }
        let blocker = task_span(&spans, "otel.unit.blocker");
        assert_ne!(blocker.span_context.trace_id(), request_trace);
    }
}
