//! The per-target attempt layers as tower middleware: provider rate limit,
//! circuit breaker, upstream metrics.
//!
//! Place in the pipeline: `routing` stacks them once per target when the
//! route table is built, around the provider adapter:
//! `(Bulkhead) -> RateLimit -> (TPM hold) -> Breaker -> UpstreamMetrics -> adapter`
//! (the bulkhead is in `bulkhead`). Each is a layer
//! (constructor) plus a `Service`. They are mechanisms only: what an error
//! means (which errors trip the breaker, what an outcome is called) is given
//! to them as functions by `routing`. Must not know providers or HTTP.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

use super::{Breaker, Limiter};
use crate::boxed::in_place;

type BoxFut<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// How the layers turn their refusals into the service's error type.
pub trait Refusal {
    /// Not tried: the provider's own rate limit is spent for `wait`.
    fn rate_limited(wait: Duration) -> Self;
    /// Not tried: the breaker is open.
    fn breaker_open() -> Self;
    /// Not tried: the provider is at its concurrency limit (`bulkhead`).
    fn saturated() -> Self;
}

/// Refuses at once, without calling the provider, when its bucket is empty
/// (so a spent provider limit spills to the next target instead of
/// queueing); `on_refuse` is told of each refusal (to count it).
#[derive(Clone, Default)]
pub struct RateLimitLayer {
    limiter: Option<Arc<Limiter>>,
    on_refuse: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// A limit from `limiter`; none when it is `None`.
    pub fn new(limiter: Option<Arc<Limiter>>) -> Self {
        RateLimitLayer {
            limiter,
            on_refuse: None,
        }
    }

    /// Calls `f` on every refusal.
    pub fn on_refuse(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_refuse = Some(Arc::new(f));
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limit: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    limit: RateLimitLayer,
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req>,
    S::Error: Refusal,
    S::Future: Send + 'static,
    S::Response: 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if let Some(limiter) = &self.limit.limiter
            && let Err(wait) = limiter.check()
        {
            if let Some(f) = &self.limit.on_refuse {
                f();
            }
            return Box::pin(async move { Err(S::Error::rate_limited(wait)) });
        }
        Box::pin(self.inner.call(req))
    }
}

/// Lets a call through only while the provider's breaker admits it, and
/// reports the outcome; `is_failure` decides what counts against it.
#[derive(Clone)]
pub struct BreakerLayer<E> {
    breaker: Arc<Breaker>,
    is_failure: Arc<dyn Fn(&E) -> bool + Send + Sync>,
}

impl<E> std::fmt::Debug for BreakerLayer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerLayer").finish_non_exhaustive()
    }
}

impl<S: std::fmt::Debug, E> std::fmt::Debug for BreakerService<S, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<E> BreakerLayer<E> {
    pub fn new(
        breaker: Arc<Breaker>,
        is_failure: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        BreakerLayer {
            breaker,
            is_failure: Arc::new(is_failure),
        }
    }
}

impl<S, E> Layer<S> for BreakerLayer<E> {
    type Service = BreakerService<S, E>;
    fn layer(&self, inner: S) -> BreakerService<S, E> {
        BreakerService {
            inner,
            breaker: Arc::clone(&self.breaker),
            is_failure: Arc::clone(&self.is_failure),
        }
    }
}

pub struct BreakerService<S, E> {
    inner: S,
    breaker: Arc<Breaker>,
    is_failure: Arc<dyn Fn(&E) -> bool + Send + Sync>,
}

impl<S: Clone, E> Clone for BreakerService<S, E> {
    fn clone(&self) -> Self {
        BreakerService {
            inner: self.inner.clone(),
            breaker: Arc::clone(&self.breaker),
            is_failure: Arc::clone(&self.is_failure),
        }
    }
}

impl<S, Req, E> Service<Req> for BreakerService<S, E>
where
    S: Service<Req, Error = E>,
    S::Future: Send + 'static,
    S::Response: 'static,
    E: Refusal + 'static,
{
    type Response = S::Response;
    type Error = E;
    type Future = BoxFut<S::Response, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let Some(permit) = self.breaker.try_acquire() else {
            return Box::pin(async { Err(E::breaker_open()) });
        };
        let is_failure = Arc::clone(&self.is_failure);
        let call = self.inner.call(req);
        in_place(move || async move {
            let result = call.await;
            match &result {
                Err(e) if is_failure(e) => permit.failure(),
                _ => permit.success(),
            }
            result
        })
    }
}

/// Times each call that reached the provider and counts its outcome under
/// the name `outcome` gives it.
#[derive(Debug, Clone)]
pub struct UpstreamMetricsLayer<R, E> {
    handles: Arc<UpstreamHandles>,
    outcome: fn(&Result<R, E>) -> &'static str,
}

/// One provider's upstream series: its duration histogram and its
/// `success` counter (the outcome of nearly every call) are looked up in
/// their vectors once, on first use, not on every call; other outcomes are
/// looked up when they happen.
#[derive(Debug)]
struct UpstreamHandles {
    provider: Arc<str>,
    metrics: Arc<crate::metrics::Metrics>,
    duration: OnceLock<prometheus::Histogram>,
    success: OnceLock<prometheus::IntCounter>,
}

impl UpstreamHandles {
    fn record(&self, elapsed: Duration, outcome: &'static str) {
        let m = &self.metrics;
        self.duration
            .get_or_init(|| m.upstream_duration.with_label_values(&[&self.provider]))
            .observe(elapsed.as_secs_f64());
        let counter = |o: &str| m.upstream_requests.with_label_values(&[&self.provider, o]);
        if outcome == "success" {
            self.success.get_or_init(|| counter(outcome)).inc();
        } else {
            counter(outcome).inc();
        }
    }
}

impl<R, E> UpstreamMetricsLayer<R, E> {
    pub fn new(
        provider: &str,
        metrics: Arc<crate::metrics::Metrics>,
        outcome: fn(&Result<R, E>) -> &'static str,
    ) -> Self {
        UpstreamMetricsLayer {
            handles: Arc::new(UpstreamHandles {
                provider: Arc::from(provider),
                metrics,
                duration: OnceLock::new(),
                success: OnceLock::new(),
            }),
            outcome,
        }
    }
}

impl<S, R, E> Layer<S> for UpstreamMetricsLayer<R, E> {
    type Service = UpstreamMetrics<S, R, E>;
    fn layer(&self, inner: S) -> UpstreamMetrics<S, R, E> {
        UpstreamMetrics {
            inner,
            handles: Arc::clone(&self.handles),
            outcome: self.outcome,
        }
    }
}

#[derive(Debug)]
pub struct UpstreamMetrics<S, R, E> {
    inner: S,
    handles: Arc<UpstreamHandles>,
    outcome: fn(&Result<R, E>) -> &'static str,
}

impl<S: Clone, R, E> Clone for UpstreamMetrics<S, R, E> {
    fn clone(&self) -> Self {
        UpstreamMetrics {
            inner: self.inner.clone(),
            handles: Arc::clone(&self.handles),
            outcome: self.outcome,
        }
    }
}

impl<S, Req, R, E> Service<Req> for UpstreamMetrics<S, R, E>
where
    S: Service<Req, Response = R, Error = E>,
    S::Future: Send + 'static,
    R: 'static,
    E: 'static,
{
    type Response = R;
    type Error = E;
    type Future = BoxFut<R, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let (handles, outcome) = (Arc::clone(&self.handles), self.outcome);
        let call = self.inner.call(req);
        in_place(move || async move {
            let start = tokio::time::Instant::now();
            let result = call.await;
            handles.record(start.elapsed(), outcome(&result));
            result
        })
    }
}

#[cfg(test)]
#[path = "layers_tests.rs"]
mod tests;
