//! Routing: pick targets for a route and run an upstream call across them.
//!
//! Place in the pipeline: below the cache and fan-out, above providers.
//! [`execute`] orders a route's targets (failover: as listed; weighted:
//! weighted random order), and for each target checks the provider's rate
//! limit and circuit breaker, retries with backoff, and fails over to the
//! next target when one is exhausted ([`crate::resilience::decide`] says
//! when: attempts, Retry-After, the 429 policy and the route's retry
//! budget). Requests an upstream rejected as malformed are not retried or
//! failed over. Must not cache or parse client
//! HTTP; its result is the upstream value or one [`GatewayError`].

mod attempt;
mod messages;
pub mod responses;
mod table;
pub mod tpm;

pub use attempt::{AttemptReply, AttemptRequest, AttemptStack};
pub use table::{ProviderHandle, RouteHandle, RouteTable};

use tower::ServiceExt;

use std::sync::Arc;
use std::time::Duration;

use crate::api::{ErrorKind, GatewayError};
use crate::config::{RouteSpec, Strategy, TargetSpec};
use crate::metrics::Metrics;
use crate::providers::UpstreamError;
use crate::resilience::{Decision, RetryHint, Why, decide};

impl RetryHint for UpstreamError {
    fn is_retryable(&self) -> bool {
        UpstreamError::is_retryable(self)
    }
    fn retry_after(&self) -> Option<Duration> {
        UpstreamError::retry_after(self)
    }
    fn is_rate_limit(&self) -> bool {
        self.is_upstream_rate_limit()
    }
}

/// A successful call and who served it.
#[derive(Debug)]
pub struct Served<T> {
    pub value: T,
    pub provider: String,
    /// The target's model, as the provider was asked for it (prices are
    /// keyed on it).
    pub model: Arc<str>,
    pub attempts: u32,
}

impl<T> Served<T> {
    /// The same call with its value turned into `U` (or an error).
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Served<U>, E> {
        Ok(Served {
            value: f(self.value)?,
            provider: self.provider,
            model: self.model,
            attempts: self.attempts,
        })
    }
}

/// Target indices in the order to try them.
pub fn target_order(spec: &RouteSpec) -> Vec<usize> {
    let mut rest: Vec<usize> = (0..spec.targets.len()).collect();
    if spec.strategy == Strategy::Failover {
        return rest;
    }
    let mut order = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let total: u64 = rest.iter().map(|&i| spec.targets[i].weight as u64).sum();
        let mut pick = fastrand::u64(0..total.max(1));
        let pos = rest
            .iter()
            .position(|&i| {
                let w = spec.targets[i].weight as u64;
                if pick < w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        order.push(rest.remove(pos));
    }
    order
}

/// Runs `request` against the route's targets (each as its target's
/// model) with retries, breakers, provider limits and failover, within the
/// route's deadline if it has one.
pub async fn execute(
    table: &RouteTable,
    route: &RouteHandle,
    metrics: &Metrics,
    request: AttemptRequest,
) -> Result<Served<AttemptReply>, GatewayError> {
    let Some(deadline) = route.spec.deadline else {
        return run_targets(table, route, metrics, request).await;
    };
    match tokio::time::timeout(deadline, run_targets(table, route, metrics, request)).await {
        Ok(result) => result,
        Err(_) => Err(GatewayError::new(
            ErrorKind::GatewayTimeout,
            format!(
                "Model `{}` did not answer within its {:?} deadline.",
                route.spec.name, deadline
            ),
        )
        .with_code("deadline_exceeded")
        .final_after_retries()),
    }
}

/// Ordering, retry (with its budget) and failover; each attempt is the
/// target's attempt stack (limit, breaker, metrics, adapter).
async fn run_targets(
    table: &RouteTable,
    route: &RouteHandle,
    metrics: &Metrics,
    request: AttemptRequest,
) -> Result<Served<AttemptReply>, GatewayError> {
    let spec = &route.spec;
    route.budget.deposit();
    let mut attempts = 0u32;
    let mut failures: Vec<(String, UpstreamError)> = Vec::new();
    let estimate = request.estimated_tokens();
    let order: Vec<(&TargetSpec, &Arc<ProviderHandle>)> = target_order(spec)
        .into_iter()
        .filter_map(|i| {
            let t = &spec.targets[i];
            table.providers.get(&t.provider).map(|h| (t, h))
        })
        .filter(|(_, h)| request.servable_by(h.provider.as_ref()))
        .collect();
    for (pos, (target, handle)) in order.iter().enumerate() {
        if !failures.is_empty() {
            metrics.failovers.with_label_values(&[&spec.name]).inc();
        }
        let name = handle.spec.name.as_str();
        let others_left = pos + 1 < order.len();
        let req = request.for_model(&target.model);
        let mut failed = 0u32;
        let error = loop {
            let held = match tpm::hold(&table.store, handle, estimate, metrics).await {
                Ok(held) => held,
                Err(e) => break e,
            };
            let result = handle.attempt.clone().oneshot(req.clone()).await;
            if let Some(h) = held {
                h.release();
            }
            let e = match result {
                Ok(value) => {
                    return Ok(Served {
                        value,
                        provider: name.to_string(),
                        model: Arc::clone(req.model()),
                        attempts: attempts + 1,
                    });
                }
                Err(UpstreamError::BreakerOpen) => {
                    metrics
                        .upstream_requests
                        .with_label_values(&[name, "breaker_open"])
                        .inc();
                    break UpstreamError::BreakerOpen;
                }
                Err(e @ UpstreamError::RateLimited(_)) => {
                    metrics.rate_limited.with_label_values(&["provider"]).inc();
                    break e;
                }
                Err(e) if !e.moves_on() => return Err(client_error(e)),
                Err(e) => e,
            };
            attempts += 1;
            failed += 1;
            match decide(&spec.retry, failed, &e, others_left, || {
                route.budget.withdraw()
            }) {
                Decision::Retry(delay) => {
                    metrics.retries.with_label_values(&[&spec.name, name]).inc();
                    tracing::debug!(route = %spec.name, provider = name, error = %e.describe(), ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Decision::Leave(why) => {
                    if why == Why::BudgetSpent {
                        metrics
                            .retry_budget_exhausted
                            .with_label_values(&[&spec.name])
                            .inc();
                    }
                    break e;
                }
            }
        };
        tracing::warn!(route = %spec.name, provider = name, error = %error.describe(), "target failed");
        failures.push((name.to_string(), error));
    }
    Err(exhausted(&spec.name, failures))
}

/// An upstream's verdict on the request itself, passed back as is.
fn client_error(e: UpstreamError) -> GatewayError {
    match e {
        UpstreamError::Status { status, body, .. }
        | UpstreamError::Classified { status, body, .. } => GatewayError::new(
            ErrorKind::Upstream { status, body },
            format!("The upstream rejected the request (status {status})."),
        ),
        UpstreamError::Translate(t) => GatewayError::invalid(t.to_string()).with_code(match t {
            crate::providers::translate::TranslateError::Unsupported { .. } => {
                "unsupported_feature"
            }
            _ => "invalid_request",
        }),
        other => GatewayError::new(ErrorKind::BadGateway, other.describe()),
    }
}

/// The error for a route whose every target failed.
fn exhausted(route: &str, failures: Vec<(String, UpstreamError)>) -> GatewayError {
    let summary = failures
        .iter()
        .map(|(p, e)| format!("{p}: {}", e.describe()))
        .collect::<Vec<_>>()
        .join("; ");
    let message = format!("All targets for model `{route}` failed ({summary}).");
    if failures.is_empty() {
        return GatewayError::new(
            ErrorKind::Unavailable,
            format!("Model `{route}` has no usable target."),
        )
        .with_code("no_target")
        .final_after_retries();
    }
    let all = |f: fn(&UpstreamError) -> bool| failures.iter().all(|(_, e)| f(e));
    if all(|e| matches!(e, UpstreamError::BreakerOpen)) {
        return GatewayError::new(ErrorKind::Unavailable, message)
            .with_code("circuit_open")
            .final_after_retries();
    }
    if all(|e| {
        matches!(
            e,
            UpstreamError::RateLimited(_) | UpstreamError::BreakerOpen
        )
    }) {
        let wait = failures
            .iter()
            .filter_map(|(_, e)| match e {
                UpstreamError::RateLimited(w) => Some(*w),
                _ => None,
            })
            .min()
            .unwrap_or(Duration::from_secs(1));
        return GatewayError::rate_limited("provider", wait);
    }
    let last = &failures[failures.len() - 1].1;
    match last {
        UpstreamError::Timeout(_) => GatewayError::new(ErrorKind::GatewayTimeout, message)
            .with_code("upstream_timeout")
            .final_after_retries(),
        UpstreamError::Status {
            status: 429,
            retry_after,
            ..
        }
        | UpstreamError::Classified {
            status: 429,
            retry_after,
            ..
        } => {
            let mut e = GatewayError::new(ErrorKind::RateLimited, message)
                .with_code("upstream_rate_limited");
            e.retry_after = Some(retry_after.unwrap_or(Duration::from_secs(1)));
            e
        }
        _ => GatewayError::new(ErrorKind::BadGateway, message)
            .with_code("upstream_error")
            .final_after_retries(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RetrySpec, RouteCache, TargetSpec};

    fn spec(weights: &[u32]) -> RouteSpec {
        RouteSpec {
            tpm: None,
            name: "r".into(),
            strategy: Strategy::Weighted,
            targets: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| TargetSpec {
                    location: String::new(),
                    provider: format!("p{i}"),
                    model: "m".into(),
                    weight: w,
                    max_batch_inputs: 8,
                })
                .collect(),
            retry: RetrySpec {
                max_attempts: 1,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(1),
                jitter: false,
                max_retry_after: Duration::from_secs(1),
                on_rate_limit: crate::config::OnRateLimit::Wait,
                budget: crate::config::BudgetSpec {
                    ratio: 0.2,
                    min_per_second: 5,
                    window: Duration::from_secs(10),
                },
            },
            cache: RouteCache {
                scope: Default::default(),
                enabled: false,
                ttl: Duration::from_secs(1),
            },
            rate_limit: None,
            max_concurrency: 1,
            deadline: None,
            endpoints: Vec::new(),
        }
    }

    #[test]
    fn weighted_order_is_a_permutation_biased_by_weight() {
        let s = spec(&[9, 1]);
        let mut first = [0u32; 2];
        for _ in 0..2000 {
            let order = target_order(&s);
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1]);
            first[order[0]] += 1;
        }
        // Expect ~1800 vs ~200; bounds far outside random noise.
        assert!(first[0] > 1500 && first[1] > 80, "{first:?}");
    }

    #[test]
    fn a_classified_429_last_is_a_429_with_its_retry_after() {
        let e = UpstreamError::Classified {
            status: 429,
            body: bytes::Bytes::from_static(b"{}"),
            retry_after: Some(Duration::from_secs(3)),
            class: crate::providers::ErrorClass {
                retryable: true,
                moves_on: true,
                trips_breaker: false,
            },
        };
        let g = exhausted("r", vec![("p".into(), e)]);
        assert_eq!(g.kind, ErrorKind::RateLimited);
        assert_eq!(g.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn failover_order_is_as_listed() {
        let mut s = spec(&[1, 1, 1]);
        s.strategy = Strategy::Failover;
        assert_eq!(target_order(&s), vec![0, 1, 2]);
    }

    #[test]
    fn a_classified_429_last_is_a_rate_limit_for_the_client() {
        let e = UpstreamError::Classified {
            status: 429,
            body: bytes::Bytes::new(),
            retry_after: Some(Duration::from_secs(3)),
            class: crate::providers::ErrorClass {
                retryable: true,
                moves_on: true,
                trips_breaker: false,
            },
        };
        let out = exhausted("r", vec![("p".into(), e)]);
        assert_eq!(out.kind, ErrorKind::RateLimited);
        assert_eq!(out.retry_after, Some(Duration::from_secs(3)));
    }
}
