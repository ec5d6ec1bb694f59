//! A provider's own reporters, made when the route table builds its
//! handle: the breaker's state changes (gauges, counters, a log line at
//! most once a second) and the concurrency limit's level and load
//! (gauges).
//!
//! Place in the pipeline: called by `table` while it builds a provider's
//! handle; the reporters then run inside the breaker and the limiter.
//! Must not decide anything about the breaker or the limit.

use std::sync::Arc;

use crate::config::ConcurrencySpec;
use crate::metrics::Metrics;
use crate::metrics::warn::WarnEvery;
use crate::resilience::BreakerState;
use crate::resilience::ConcurrencyLimit;
use crate::resilience::breaker::OnTransition;

/// The provider's concurrency limit: the live one while its settings are
/// unchanged (what it learned and what it has in flight stay), with the
/// share set anew; else a new one reporting to the gauges.
pub(super) fn concurrency_limit(
    name: &str,
    spec: &ConcurrencySpec,
    old: Option<&Arc<ConcurrencyLimit>>,
    share: usize,
    metrics: &Arc<Metrics>,
) -> Arc<ConcurrencyLimit> {
    if let Some(l) = old.filter(|l| l.spec() == spec) {
        l.set_share(share);
        return Arc::clone(l);
    }
    let limit = metrics.provider_limit.with_label_values(&[name]);
    let in_flight = metrics.provider_in_flight.with_label_values(&[name]);
    let observe = move |l: usize, n: usize| {
        limit.set(l as i64);
        in_flight.set(n as i64);
    };
    ConcurrencyLimit::new(spec.clone(), share, Box::new(observe))
}

/// Breaker state changes, as gauges, counters and a log line (at most one
/// a second per provider, so a flapping breaker does not flood the log;
/// the gauge is exact).
pub(super) fn breaker_metrics(provider: &str, metrics: &Arc<Metrics>) -> OnTransition {
    let (provider, metrics) = (provider.to_string(), Arc::clone(metrics));
    let warn = WarnEvery::per_second();
    // The first call is the breaker's birth (closed), not a transition.
    let born = std::sync::atomic::AtomicBool::new(false);
    Box::new(move |state: BreakerState| {
        metrics
            .breaker_state
            .with_label_values(&[&provider])
            .set(state.gauge());
        if born.swap(true, std::sync::atomic::Ordering::Relaxed) {
            metrics
                .breaker_transitions
                .with_label_values(&[&provider, state.label()])
                .inc();
            match (warn.check(), state) {
                (None, _) => {}
                (Some(suppressed), BreakerState::Open) => tracing::warn!(
                    provider,
                    to = state.label(),
                    suppressed,
                    "circuit breaker changed state"
                ),
                (Some(suppressed), _) => tracing::info!(
                    provider,
                    to = state.label(),
                    suppressed,
                    "circuit breaker changed state"
                ),
            }
        }
    })
}
