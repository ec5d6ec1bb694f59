//! One attempt on one target, as a tower stack built once per provider.
//!
//! Place in the pipeline: `table` builds [`AttemptStack`] when a provider
//! handle is (re)built; `run_targets` calls it once per attempt. The stack,
//! outermost first:
//!   provider rate limit  (a spent bucket refuses at once: spill to the next target)
//!   -> circuit breaker   (an open breaker refuses; outcomes feed it)
//!   -> upstream metrics  (duration and outcome of calls that reached the provider)
//!   -> adapter           (the provider kind: translate, call, translate back)
//! Must not retry or fail over: `run_targets` decides that.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

use crate::api::chat::{ChatRequest, body_with_model};
use crate::api::embeddings::EmbedReply;
use crate::api::rerank::RerankReply;
use crate::config::ProviderSpec;
use crate::metrics::Metrics;
use crate::providers::{ChatReply, Provider, UpstreamError};
use crate::resilience::layers::{BreakerLayer, RateLimitLayer, Refusal, UpstreamMetricsLayer};
use crate::resilience::{Breaker, Limiter};

/// What one attempt asks of a provider.
#[derive(Debug, Clone)]
pub enum AttemptRequest {
    Chat {
        request: Arc<ChatRequest>,
        model: Arc<str>,
        stream: bool,
    },
    Embed {
        model: Arc<str>,
        inputs: Arc<Vec<Value>>,
        extra: Arc<Map<String, Value>>,
    },
    /// An OpenAI-compatible endpoint passed through as it is (`path` such as
    /// `/responses`); the body is sent with `model` replaced.
    Passthrough {
        path: &'static str,
        body: Arc<Map<String, Value>>,
        model: Arc<str>,
        stream: bool,
        /// The client's body size, to size the upstream body's buffer.
        wire_len: usize,
    },
    /// `POST /v1/responses`: passed through or translated, per target
    /// (see `routing::responses`).
    Responses {
        call: Arc<super::responses::ResponsesCall>,
        model: Arc<str>,
    },
    /// Scores for `documents` against `query` ([`Provider::rerank`]).
    Rerank {
        model: Arc<str>,
        query: Arc<str>,
        documents: Arc<Vec<Arc<str>>>,
        extra: Arc<Map<String, Value>>,
    },
    /// Anthropic Messages (`path` `/messages` or `/messages/count_tokens`):
    /// passed through, with the client's `anthropic-*` `headers`, to kinds
    /// that serve it natively, translated to chat for the others.
    Messages {
        path: &'static str,
        body: Arc<Map<String, Value>>,
        headers: Arc<http::HeaderMap>,
        model: Arc<str>,
        stream: bool,
        wire_len: usize,
    },
}

impl AttemptRequest {
    /// The same request for a target serving `model`.
    pub fn for_model(&self, model: &str) -> AttemptRequest {
        let mut req = self.clone();
        match &mut req {
            AttemptRequest::Chat { model: m, .. }
            | AttemptRequest::Embed { model: m, .. }
            | AttemptRequest::Passthrough { model: m, .. }
            | AttemptRequest::Responses { model: m, .. }
            | AttemptRequest::Rerank { model: m, .. }
            | AttemptRequest::Messages { model: m, .. } => *m = Arc::from(model),
        }
        req
    }

    /// The upstream model this request is for.
    pub fn model(&self) -> &Arc<str> {
        match self {
            AttemptRequest::Chat { model, .. }
            | AttemptRequest::Embed { model, .. }
            | AttemptRequest::Passthrough { model, .. }
            | AttemptRequest::Responses { model, .. }
            | AttemptRequest::Rerank { model, .. }
            | AttemptRequest::Messages { model, .. } => model,
        }
    }

    /// The tokens this attempt may use, estimated before it is sent (for
    /// provider TPM limits; see `api::estimate`).
    pub fn estimated_tokens(&self) -> u64 {
        use crate::api::estimate::{Routed, estimate_tokens, max_output_tokens};
        match self {
            AttemptRequest::Chat { request, .. } => {
                estimate_tokens(request.wire_len, request.max_output_tokens())
            }
            AttemptRequest::Embed { inputs, .. } => inputs
                .iter()
                .map(|v| match v {
                    Value::String(s) => estimate_tokens(s.len(), 0),
                    Value::Array(tokens) => tokens.len() as u64,
                    _ => 1,
                })
                .sum(),
            AttemptRequest::Passthrough { body, wire_len, .. }
            | AttemptRequest::Messages { body, wire_len, .. } => {
                estimate_tokens(*wire_len, max_output_tokens(body))
            }
            AttemptRequest::Responses { call, .. } => {
                estimate_tokens(call.request.wire_len, call.request.max_output_tokens())
            }
            AttemptRequest::Rerank {
                query, documents, ..
            } => {
                let text: usize = documents.iter().map(|d| d.len() + query.len()).sum();
                estimate_tokens(text, 0)
            }
        }
    }

    /// Whether `provider` can serve this request at all: a passthrough
    /// only goes to providers that pass its path through, others are
    /// skipped (not failed).
    pub fn servable_by(&self, provider: &dyn Provider) -> bool {
        match self {
            AttemptRequest::Passthrough { path, .. } => provider.passes_through(path),
            _ => true,
        }
    }
}

/// What one attempt answered.
#[derive(Debug)]
pub enum AttemptReply {
    Chat(ChatReply),
    Embed(EmbedReply),
    Rerank(RerankReply),
}

pub type AttemptStack = BoxCloneSyncService<AttemptRequest, AttemptReply, UpstreamError>;

impl Refusal for UpstreamError {
    fn rate_limited(wait: Duration) -> Self {
        UpstreamError::RateLimited(wait)
    }
    fn breaker_open() -> Self {
        UpstreamError::BreakerOpen
    }
}

fn outcome(result: &Result<AttemptReply, UpstreamError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(e) => e.outcome(),
    }
}

/// The adapter: hands the attempt to the provider kind.
#[derive(Clone)]
struct Adapter(Arc<dyn Provider>);

impl Service<AttemptRequest> for Adapter {
    type Response = AttemptReply;
    type Error = UpstreamError;
    type Future = BoxFuture<'static, Result<AttemptReply, UpstreamError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: AttemptRequest) -> Self::Future {
        let provider = Arc::clone(&self.0);
        Box::pin(async move {
            match req {
                AttemptRequest::Chat {
                    request,
                    model,
                    stream,
                } => provider
                    .chat(&request, &model, stream)
                    .await
                    .map(AttemptReply::Chat),
                AttemptRequest::Embed {
                    model,
                    inputs,
                    extra,
                } => provider
                    .embed(&model, &inputs, &extra)
                    .await
                    .map(AttemptReply::Embed),
                AttemptRequest::Passthrough {
                    path,
                    body,
                    model,
                    stream,
                    wire_len,
                } => provider
                    .passthrough(path, body_with_model(&body, &model, wire_len), stream)
                    .await
                    .map(AttemptReply::Chat),
                AttemptRequest::Responses { call, model } => {
                    super::responses::attempt(provider, call, model)
                        .await
                        .map(AttemptReply::Chat)
                }
                AttemptRequest::Rerank {
                    model,
                    query,
                    documents,
                    extra,
                } => provider
                    .rerank(&model, &query, &documents, &extra)
                    .await
                    .map(AttemptReply::Rerank),
                AttemptRequest::Messages {
                    path,
                    body,
                    headers,
                    model,
                    stream,
                    wire_len,
                } => super::messages::attempt(
                    provider.as_ref(),
                    super::messages::Messages {
                        path,
                        body: &body,
                        headers: &headers,
                        model: &model,
                        stream,
                        wire_len,
                    },
                )
                .await
                .map(AttemptReply::Chat),
            }
        })
    }
}

/// The attempt stack of one provider (see the module doc for the order).
pub(super) fn stack(
    spec: &ProviderSpec,
    provider: Arc<dyn Provider>,
    breaker: Arc<Breaker>,
    limiter: Option<Arc<Limiter>>,
    metrics: &Arc<Metrics>,
) -> AttemptStack {
    let count_rate_limits = spec.breaker.count_rate_limits;
    let service = ServiceBuilder::new()
        .layer(RateLimitLayer(limiter))
        .layer(BreakerLayer::new(breaker, move |e: &UpstreamError| {
            e.trips_breaker(count_rate_limits)
        }))
        .layer(UpstreamMetricsLayer::new(
            &spec.name,
            Arc::clone(metrics),
            outcome,
        ))
        .service(Adapter(provider));
    BoxCloneSyncService::new(service)
}
