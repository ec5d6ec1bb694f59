//! Running one call across a route's targets: order, retry, fail over.
//!
//! Place in the pipeline: below the endpoints' flows (cache, fan-out),
//! above the per-target attempt stacks. [`execute`] orders the route's
//! targets (`strategy`), skips those whose declared capabilities cannot
//! serve the call, and for each target runs its attempt stack (limits, TPM
//! hold, breaker, metrics, adapter), retrying with backoff and failing over
//! when one is exhausted ([`crate::resilience::decide`] says when: attempts,
//! Retry-After, the 429 policy, timeouts and the route's retry budget), all
//! within the route's deadline if it has one. A target at its concurrency
//! limit is left at once (its bulkhead counted it); the last target may
//! wait for a slot instead. A timed-out attempt moves to the next target
//! before the same one is retried. Requests an upstream rejected as
//! malformed are neither retried nor failed over. Must not cache, parse
//! client HTTP or know which endpoint the call is for.

use std::sync::Arc;
use std::time::Duration;

use tower::ServiceExt;

use super::call::{Attempt, Call, KeepsSlot, Served};
use super::outcome::{client_error, exhausted};
use super::strategy::target_order;
use super::table::{ProviderHandle, RouteHandle, RouteTable};
use crate::api::{ErrorKind, GatewayError};
use crate::config::TargetSpec;
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
    fn is_slow(&self) -> bool {
        self.is_timeout()
    }
}

/// Runs `call` against the route's targets (each as its target's model)
/// with retries, breakers, provider limits and failover, within the route's
/// deadline if it has one.
pub async fn execute<C: Call>(
    table: &RouteTable,
    route: &RouteHandle,
    metrics: &Metrics,
    call: Arc<C>,
) -> Result<Served<C::Reply>, GatewayError> {
    execute_avoiding(table, route, metrics, call, None).await
}

/// [`execute`] with the targets of provider `avoid` tried last (a stream
/// that broke there is continued elsewhere first).
pub(super) async fn execute_avoiding<C: Call>(
    table: &RouteTable,
    route: &RouteHandle,
    metrics: &Metrics,
    call: Arc<C>,
    avoid: Option<&str>,
) -> Result<Served<C::Reply>, GatewayError> {
    let run = run_targets(table, route, metrics, call, avoid);
    let Some(deadline) = route.spec.deadline else {
        return run.await;
    };
    match tokio::time::timeout(deadline, run).await {
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
/// target's attempt stack.
async fn run_targets<C: Call>(
    table: &RouteTable,
    route: &RouteHandle,
    metrics: &Metrics,
    call: Arc<C>,
    avoid: Option<&str>,
) -> Result<Served<C::Reply>, GatewayError> {
    let spec = &route.spec;
    route.budget.deposit();
    let mut attempts = 0u32;
    let mut failures: Vec<(Arc<str>, UpstreamError)> = Vec::new();
    let (need, estimate) = (call.need(), call.estimated_tokens());
    let mut order: Vec<(usize, &TargetSpec, &Arc<ProviderHandle>)> = target_order(spec)
        .into_iter()
        .filter_map(|i| {
            let t = &spec.targets[i];
            table.providers.get(&t.provider).map(|h| (i, t, h))
        })
        .filter(|(_, _, h)| h.capabilities.serves(need))
        .collect();
    if let Some(avoid) = avoid {
        order.sort_by_key(|(_, _, h)| *h.name == *avoid);
    }
    for (pos, &(index, target, handle)) in order.iter().enumerate() {
        if !failures.is_empty() {
            metrics.failovers.with_label_values(&[&spec.name]).inc();
        }
        let name = &handle.name;
        let others_left = pos + 1 < order.len();
        let mut attempt = Attempt::new(&call, &target.model, estimate);
        attempt.may_wait = !others_left;
        let mut failed = 0u32;
        let error = loop {
            let mut this = attempt.clone();
            this.retry = failed;
            let e = match handle.attempt.clone().oneshot(this).await {
                Ok(reply) => {
                    let mut value = reply.downcast::<C::Reply>().map_err(|_| {
                        GatewayError::new(ErrorKind::Internal, "An attempt answered another call.")
                    })?;
                    if let Some(slot) = attempt.take_slot() {
                        value.keep(slot);
                    }
                    return Ok(Served {
                        value: *value,
                        provider: Arc::clone(name),
                        model: Arc::clone(&attempt.model),
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
                // A provider limit (rate, TPM or concurrency) refused: its layer counted it.
                Err(e @ (UpstreamError::RateLimited(_) | UpstreamError::Saturated)) => break e,
                Err(e) if !e.moves_on() => return Err(client_error(e)),
                Err(e) => e,
            };
            attempts += 1;
            failed += 1;
            match decide(&spec.retry, failed, &e, others_left, || {
                route.budget.withdraw()
            }) {
                Decision::Retry(delay) => {
                    metrics
                        .retries
                        .with_label_values(&[spec.name.as_str(), name])
                        .inc();
                    tracing::debug!(route = %spec.name, provider = &**name, error = %e, ?delay, "retrying");
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
        // At most one line a second per route target, with a count of the rest.
        if let Some(suppressed) = route.warnings.get(index).and_then(|w| w.check()) {
            tracing::warn!(route = %spec.name, provider = &**name, error = %error, suppressed, "target failed");
        }
        failures.push((Arc::clone(name), error));
    }
    Err(exhausted(&spec.name, failures))
}
