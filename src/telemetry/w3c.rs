//! W3C trace context: a client's `traceparent` / `tracestate` in, the
//! current span's out to an upstream.
//!
//! Place in the pipeline: the edge reads the client's context into the
//! request span ([`extract`]); `providers::upstream` writes the current
//! span's (the attempt's) into every upstream request ([`current`]). Both
//! are called only when tracing is on ([`super::tracing_on`]). Must not
//! trust what a client sent beyond the W3C format: a malformed header is
//! ignored (the request starts a new trace).

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context a client sent, as the parent for the request's span
/// (an empty context when it sent none or a malformed one).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` a child of the context the client sent in `headers`, and
/// records its trace id (as `trace_id`, for the log lines in it).
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = extract(headers);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let context = span.context();
    let trace_id = context.span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
}

/// The trace id of `span` as 32 hex digits, when it has one.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let sc = context.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The current span's `traceparent` (and `tracestate`) for an upstream
/// request; `None` outside a traced span.
pub fn current() -> Option<http::HeaderMap> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut headers = http::HeaderMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(&mut headers));
    Some(headers)
}
