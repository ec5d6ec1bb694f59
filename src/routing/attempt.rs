//! One attempt on one target, as a tower stack built once per provider.
//!
//! Place in the pipeline: `table` builds [`AttemptStack`] when a provider
//! handle is (re)built; `run::execute` calls it once per attempt with an
//! [`Attempt`] (any endpoint's call, its type erased). The stack, outermost
//! first, one comment each in [`stack`]:
//!   trace span           (when tracing is on: the attempt's client span, `span`)
//!   -> bulkhead          (the provider's concurrency limit, fixed or adaptive,
//!                         under its share of the gateway: refused at once when
//!                         full, or the last target waits)
//!   -> provider rate limit (a spent bucket refuses at once: spill to the next target)
//!   -> provider TPM hold (the estimate held while the attempt runs; a guard gives it back)
//!   -> circuit breaker   (an open breaker refuses; outcomes feed it)
//!   -> measure           (latency by kind of call, for the strategies: `live`)
//!   -> upstream metrics  (duration and outcome of calls that reached the provider)
//!   -> adapter           (the call's own attempt on the provider kind)
//! Must not retry or fail over: `run` decides that.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

use super::call::{AnyReply, Attempt};
use super::live::{Live, MeasureLayer};
use super::span::AttemptSpanLayer;
use super::tpm::TpmHoldLayer;
use crate::config::ProviderSpec;
use crate::metrics::Metrics;
use crate::providers::{Provider, UpstreamError};
use crate::resilience::bulkhead::BulkheadLayer;
use crate::resilience::layers::{BreakerLayer, RateLimitLayer, Refusal, UpstreamMetricsLayer};
use crate::resilience::{Breaker, ConcurrencyLimit, Limiter, Refused, Signal};
use crate::state::Store;
use crate::telemetry;

pub type AttemptStack = BoxCloneSyncService<Attempt, AnyReply, UpstreamError>;

impl Refusal for UpstreamError {
    fn rate_limited(wait: Duration) -> Self {
        UpstreamError::RateLimited(wait)
    }
    fn breaker_open() -> Self {
        UpstreamError::BreakerOpen
    }
    fn saturated() -> Self {
        UpstreamError::Saturated
    }
}

/// What an attempt's outcome says about the provider's capacity: timeouts,
/// refused connections, 429s and 5xx mean it is over it; an open breaker
/// that it is down; a client error or a local limit says nothing.
fn signal(result: &Result<AnyReply, UpstreamError>) -> Signal {
    match result {
        Ok(_) => Signal::Success,
        Err(UpstreamError::BreakerOpen) => Signal::Unavailable,
        Err(UpstreamError::Timeout(_) | UpstreamError::Connect(_)) => Signal::Overload,
        Err(e) if e.is_upstream_rate_limit() => Signal::Overload,
        Err(UpstreamError::Status { status, .. } | UpstreamError::Classified { status, .. })
            if *status >= 500 =>
        {
            Signal::Overload
        }
        Err(_) => Signal::Ignore,
    }
}

fn outcome(result: &Result<AnyReply, UpstreamError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(e) => e.outcome(),
    }
}

/// The adapter: runs the attempt on the provider kind.
#[derive(Clone)]
struct Adapter(Arc<dyn Provider>);

impl Service<Attempt> for Adapter {
    type Response = AnyReply;
    type Error = UpstreamError;
    type Future = BoxFuture<'static, Result<AnyReply, UpstreamError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        attempt.run(Arc::clone(&self.0))
    }
}

/// The live pieces of a provider its stack is built around (`table` keeps
/// them over reloads while their settings are unchanged).
pub(super) struct Parts {
    pub breaker: Arc<Breaker>,
    pub limiter: Option<Arc<Limiter>>,
    pub concurrency: Arc<ConcurrencyLimit>,
    pub live: Arc<Live>,
}

/// The attempt stack of one provider (see the module doc for the order).
pub(super) fn stack(
    spec: &ProviderSpec,
    provider: Arc<dyn Provider>,
    parts: Parts,
    store: &Store,
    metrics: &Arc<Metrics>,
) -> AttemptStack {
    let Parts {
        breaker,
        limiter,
        concurrency,
        live,
    } = parts;
    let count_rate_limits = spec.breaker.count_rate_limits;
    let refusals = Arc::clone(metrics);
    let saturated = Refused::ALL.map(|r| {
        metrics
            .provider_refusals
            .with_label_values(&[&spec.name, r.label()])
    });
    let service = ServiceBuilder::new()
        // Trace span (when tracing is on): one client span per attempt, refused ones too.
        .option_layer(
            telemetry::tracing_on()
                .then(|| AttemptSpanLayer::new(&spec.name, &spec.kind, Arc::clone(&breaker))),
        )
        // Bulkhead: a slot of the provider's concurrency limit (or refused, counted).
        .layer(BulkheadLayer::new(concurrency, signal, move |r| {
            saturated[r as usize].inc();
        }))
        // Provider rate limit: refused at once (and counted), so the next target is tried.
        .layer(RateLimitLayer::new(limiter).on_refuse(move || {
            refusals.rate_limited.with_label_values(&["provider"]).inc();
        }))
        // Provider TPM: the attempt's estimate is held while it runs.
        .option_layer(
            spec.tpm
                .map(|tpm| TpmHoldLayer::new(store, &spec.name, tpm, metrics)),
        )
        // Circuit breaker: an open breaker refuses; outcomes count per provider's rules.
        .layer(BreakerLayer::new(breaker, move |e: &UpstreamError| {
            e.trips_breaker(count_rate_limits)
        }))
        // Measure: latency by the call's pace, what the strategies read.
        .layer(MeasureLayer::new(live))
        // Upstream metrics: calls that reached the provider, timed and counted by outcome.
        .layer(UpstreamMetricsLayer::new(
            &spec.name,
            Arc::clone(metrics),
            outcome,
        ))
        // Adapter: the call's own attempt on this provider kind.
        .service(Adapter(provider));
    BoxCloneSyncService::new(service)
}
