//! Running one call across a route's targets: order, retry, fail over.
//!
//! Place in the pipeline: below the endpoints' flows (cache, fan-out),
//! above the per-target attempt stacks. [`execute`] takes the call's plan
//! (`plan`: the usable targets in the strategy's order, affinity first,
//! fallbacks by error class) and for each target runs its attempt stack
//! (bulkhead, limits, TPM hold, breaker, measure, metrics, adapter), the
//! call's first attempt hedged when the route says so (`hedged`), retrying
//! with backoff and failing over when one is exhausted
//! ([`crate::resilience::decide`] says when: attempts, Retry-After, the 429
//! policy, timeouts and the route's retry budget), all within the route's
//! deadline if it has one. A target at its concurrency limit is left at
//! once (its bulkhead counted it); the last target may wait for a slot
//! instead. A timed-out attempt moves to the next target before the same
//! one is retried. Requests an upstream rejected as malformed are neither
//! retried nor failed over, unless the error's class has a fallback on the
//! route. The target that answered is remembered for the call's
//! conversation (affinity). Must not cache, parse client HTTP or know which
//! endpoint the call is for.

use std::sync::Arc;
use std::time::Duration;

use tower::ServiceExt;

use super::call::{Attempt, Call, Served};
use super::hedged::{First, first_attempt};
use super::outcome::{client_error, exhausted, too_long};
use super::plan::Plan;
use super::reply::KeepsSlot;
use super::table::{RouteHandle, RouteTable};
use crate::api::{ErrorKind, GatewayError};
use crate::config::TargetSpec;
use crate::metrics::Metrics;
use crate::metrics::warn::WarnEvery;
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

/// Ordering, retry (with its budget), hedging and failover; each attempt
/// is the target's attempt stack.
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
    let estimate = call.estimated_tokens();
    let mut plan = Plan::new(table, route, &*call);
    if let Some(avoid) = avoid {
        plan.avoid(avoid);
    }
    // Only a call's first attempt is hedged.
    let mut first = Some(call.idempotent());
    while let Some(step) = plan.next() {
        if !failures.is_empty() {
            metrics.failovers.with_label_values(&[&spec.name]).inc();
        }
        let name = &step.handle.name;
        let mut attempt = Attempt::new(&call, &step.target.model, estimate);
        attempt.decay = spec.latency_decay;
        attempt.may_wait = !plan.others_left();
        let mut failed = 0u32;
        let error = loop {
            // Tries of this target before this one (for its trace span).
            attempt.retry = failed;
            let result = match first.take() {
                Some(may_hedge) => {
                    match first_attempt(route, metrics, &mut plan, step, &attempt, may_hedge).await
                    {
                        First::Answered { reply, step, sent } => Ok((reply, step, sent)),
                        First::Failed { error, hedge } => {
                            if let Some((other, e)) = hedge {
                                attempts += 1;
                                failures.push((Arc::clone(&other.handle.name), e));
                            }
                            Err(error)
                        }
                    }
                }
                None => (step.handle.attempt.clone().oneshot(attempt.clone()).await)
                    .map(|reply| (reply, step, 1)),
            };
            let e = match result {
                Ok((reply, served, sent)) => {
                    let mut value = reply.downcast::<C::Reply>().map_err(|_| {
                        GatewayError::new(ErrorKind::Internal, "An attempt answered another call.")
                    })?;
                    if let Some(slot) = attempt.take_slot() {
                        value.keep(slot);
                    }
                    if let (Some(affinity), Some(key)) = (&route.affinity, call.affinity()) {
                        affinity.set(key, served.pin());
                    }
                    return Ok(Served {
                        value: *value,
                        provider: Arc::clone(&served.handle.name),
                        model: Arc::from(served.target.model.as_str()),
                        attempts: attempts + sent,
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
                // An error class the route has a fallback for: go there.
                Err(e) if e.fallback_class().is_some_and(|c| plan.fall_back(c)) => {
                    attempts += 1;
                    break e;
                }
                Err(e) if !e.moves_on() => return Err(client_error(e)),
                Err(e) => e,
            };
            attempts += 1;
            failed += 1;
            match decide(&spec.retry, failed, &e, plan.others_left(), || {
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
        if let Some(suppressed) = warning(route, step.target).and_then(|w| w.check()) {
            tracing::warn!(route = %spec.name, provider = &**name, error = %error, suppressed, "target failed");
        }
        failures.push((Arc::clone(name), error));
    }
    if failures.is_empty() && plan.too_long() {
        return Err(too_long(
            &spec.name,
            plan.ask.input_tokens + plan.ask.output_tokens,
        ));
    }
    Err(exhausted(&spec.name, failures))
}

/// The warning limiter of `target` (fallback targets share the route's last).
fn warning<'r>(route: &'r RouteHandle, target: &TargetSpec) -> Option<&'r WarnEvery> {
    let targets = &route.spec.targets;
    let i = targets
        .iter()
        .position(|t| t.provider == target.provider && t.model == target.model)
        .unwrap_or(targets.len());
    route.warnings.get(i)
}
