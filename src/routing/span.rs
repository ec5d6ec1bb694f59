//! The attempt's trace span: one client span per attempt on a target.
//!
//! Place in the pipeline: the outermost layer of the attempt stack
//! (`attempt::stack`), present only when tracing is on, so an attempt a
//! provider limit or an open breaker refused has its span too. The span is
//! a child of the request's (or of the single-flight leader's), named
//! `operation model` after the OpenTelemetry GenAI conventions, current
//! while the provider runs, so the upstream request carries its id in
//! `traceparent` (`providers::upstream`). It records the operation, the
//! provider (its well-known name and its policy name), the target's model,
//! the retry number, the breaker's state when the attempt was made, the
//! fan-out sub-batch, and the model and tokens a whole answer reports
//! (`Call::describe`; a stream's tokens as they go by, `Call::watch_usage`,
//! the span ending with the stream) or the outcome of a failed attempt. Must not change
//! the attempt or its result.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use opentelemetry::trace::Status;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::call::{AnyReply, Attempt};
use crate::api::usage::Usage;
use crate::boxed::in_place;
use crate::providers::{Need, UpstreamError};
use crate::resilience::Breaker;
use crate::telemetry::semconv as sc;

/// `gen_ai.operation.name` for what a call needs.
fn operation(need: Need) -> &'static str {
    match need {
        Need::Chat { .. } => "chat",
        Need::Embeddings => "embeddings",
        Need::Rerank => "rerank",
        Need::Native("/v1/completions") => "text_completion",
        Need::Native(path) if path.ends_with("/count_tokens") => "count_tokens",
        Need::Native(_) | Need::NativeOrChat { .. } => "chat",
    }
}

/// The tokens an answer reports, on its attempt's span.
fn tokens(span: &tracing::Span, usage: Usage) {
    span.set_attribute(sc::INPUT_TOKENS, usage.prompt as i64);
    span.set_attribute(sc::OUTPUT_TOKENS, usage.completion as i64);
}

/// Wraps each attempt on one provider in its span.
#[derive(Clone)]
pub(super) struct AttemptSpanLayer {
    provider: Arc<str>,
    /// `gen_ai.provider.name` of the provider's kind.
    system: &'static str,
    breaker: Arc<Breaker>,
}

impl AttemptSpanLayer {
    pub(super) fn new(provider: &str, kind: &str, breaker: Arc<Breaker>) -> Self {
        AttemptSpanLayer {
            provider: Arc::from(provider),
            system: sc::provider_name(kind),
            breaker,
        }
    }
}

impl<S> Layer<S> for AttemptSpanLayer {
    type Service = AttemptSpan<S>;
    fn layer(&self, inner: S) -> AttemptSpan<S> {
        AttemptSpan {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(super) struct AttemptSpan<S> {
    inner: S,
    layer: AttemptSpanLayer,
}

impl<S> Service<Attempt> for AttemptSpan<S>
where
    S: Service<Attempt, Response = AnyReply, Error = UpstreamError>,
    S::Future: Send + 'static,
{
    type Response = AnyReply;
    type Error = UpstreamError;
    type Future = BoxFuture<'static, Result<AnyReply, UpstreamError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        let l = &self.layer;
        let op = operation(attempt.need);
        let span = tracing::info_span!(
            "attempt",
            provider = &*l.provider,
            model = &*attempt.model,
            retry = attempt.retry,
            otel.name = %format_args!("{op} {}", attempt.model),
            otel.kind = "client",
            otel.status_code = Empty,
        );
        span.set_attribute(sc::OPERATION, op);
        span.set_attribute(sc::PROVIDER, l.system);
        span.set_attribute(sc::PROVIDER_ENTRY, l.provider.to_string());
        span.set_attribute(sc::REQUEST_MODEL, attempt.model.to_string());
        span.set_attribute(sc::RETRY, i64::from(attempt.retry));
        span.set_attribute(sc::BREAKER, l.breaker.state().label());
        if let Some(part) = attempt.sub_batch {
            span.set_attribute(sc::SUB_BATCH, part.index as i64);
            span.set_attribute(sc::SUB_BATCH_SIZE, part.size as i64);
        }
        let this = attempt.clone();
        let call = span.in_scope(|| self.inner.call(attempt));
        in_place(move || async move {
            let mut result = call.instrument(span.clone()).await;
            match &mut result {
                Ok(reply) => {
                    let facts = this.describe(reply);
                    if let Some(model) = facts.model {
                        span.set_attribute(sc::RESPONSE_MODEL, model);
                    }
                    if let Some(usage) = facts.usage {
                        // A whole answer told its usage: nothing to watch.
                        tokens(&span, usage);
                    } else {
                        // A stream's usage comes at its end: the span stays
                        // open until then and takes it, entered so that its
                        // end is then (the layer ends a span at its last
                        // exit).
                        let open = span.clone();
                        this.watch_usage(
                            reply,
                            Box::new(move |usage| {
                                let _in = open.enter();
                                tokens(&open, usage);
                            }),
                        );
                    }
                }
                Err(e) => {
                    span.set_attribute(sc::ERROR_TYPE, e.outcome());
                    span.set_status(Status::error(e.outcome()));
                }
            }
            result
        })
    }
}
