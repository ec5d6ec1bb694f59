//! A call's first attempt, hedged when its route and the call allow it.
//!
//! Place in the pipeline: `run` makes a call's first attempt here. Without
//! `hedge` on the route, or for a call that may not be sent twice (the
//! endpoint says whether it is idempotent), it is the target's attempt
//! stack, once. Otherwise, when the attempt has not answered within the
//! route's delay (fixed, or a percentile of the target's recent latency
//! for this kind of call: no hedge until it has enough samples), a second
//! attempt goes to the plan's next target (the same target when it is the
//! only one) through the mechanism in [`crate::resilience::hedge`]: the
//! first good answer wins, the other attempt is dropped (cancelled, its
//! holds released by their guards). A hedge takes a token of the route's
//! `hedge.max_per_second` and a retry from its retry budget, or is not
//! sent. Metrics: `switchyard_hedges_total`, `switchyard_hedges_won_total`,
//! `switchyard_hedges_refused_total`. Must not retry or fail over: `run`
//! goes on from what this returns.

use std::time::Duration;

use tower::ServiceExt;

use super::call::{AnyReply, Attempt, Pace};
use super::plan::{Plan, Step};
use super::table::RouteHandle;
use crate::config::HedgeDelay;
use crate::metrics::Metrics;
use crate::providers::UpstreamError;
use crate::resilience::hedge::{Raced, race};

/// How a call's first attempt ended.
pub(super) enum First<'a> {
    /// `step` answered; `sent` attempts went upstream (2 with a hedge).
    Answered {
        reply: AnyReply,
        step: Step<'a>,
        sent: u32,
    },
    /// The attempt failed, and the hedge too when one was sent.
    Failed {
        error: UpstreamError,
        hedge: Option<(Step<'a>, UpstreamError)>,
    },
}

/// The first attempt of a call on `step`; `may_hedge`: the call may be
/// sent twice.
pub(super) async fn first_attempt<'a>(
    route: &RouteHandle,
    metrics: &Metrics,
    plan: &mut Plan<'a>,
    step: Step<'a>,
    attempt: &Attempt,
    may_hedge: bool,
) -> First<'a> {
    let first = step.handle.attempt.clone().oneshot(attempt.clone());
    let delay = may_hedge
        .then(|| delay(route, step, attempt.pace))
        .flatten();
    let name = route.spec.name.as_str();
    let mut hedged: Option<Step<'a>> = None;
    let raced = race(first, delay, || {
        if !allowed(route, metrics) {
            return None;
        }
        // The next target, taken from the plan; alone, the same one again.
        let next = plan.next().unwrap_or(step);
        hedged = Some(next);
        metrics.hedges.with_label_values(&[name]).inc();
        let mut second = attempt.clone();
        second.model = std::sync::Arc::from(next.target.model.as_str());
        // A hedge never queues for a concurrency slot.
        second.may_wait = false;
        Some(next.handle.attempt.clone().oneshot(second))
    })
    .await;
    match (raced, hedged) {
        (Raced::Alone(Ok(reply)), _) => First::Answered {
            reply,
            step,
            sent: 1,
        },
        (Raced::Alone(Err(error)), _) => First::Failed { error, hedge: None },
        (Raced::Won { value, hedge, .. }, Some(next)) => {
            if hedge {
                metrics.hedges_won.with_label_values(&[name]).inc();
            }
            First::Answered {
                reply: value,
                step: if hedge { next } else { step },
                sent: 2,
            }
        }
        (Raced::BothFailed { first, hedge }, Some(next)) => First::Failed {
            error: first,
            hedge: Some((next, hedge)),
        },
        // `race` reports a hedge only after asking for one.
        (Raced::Won { value, .. }, None) => First::Answered {
            reply: value,
            step,
            sent: 1,
        },
        (Raced::BothFailed { first, .. }, None) => First::Failed {
            error: first,
            hedge: None,
        },
    }
}

/// When to hedge an attempt on `step`, if the route hedges and knows when.
fn delay(route: &RouteHandle, step: Step, pace: Pace) -> Option<Duration> {
    match route.spec.hedge.as_ref()?.delay {
        HedgeDelay::Fixed(d) => Some(d),
        HedgeDelay::Percentile(p) => step.handle.live.percentile(pace, p),
    }
}

/// A token of the hedge cap, then a retry from the route's budget.
fn allowed(route: &RouteHandle, metrics: &Metrics) -> bool {
    let name = route.spec.name.as_str();
    let refused = |reason: &str| {
        metrics
            .hedges_refused
            .with_label_values(&[name, reason])
            .inc();
        false
    };
    if route.hedge_cap.as_ref().is_none_or(|c| c.check().is_err()) {
        return refused("rate");
    }
    if !route.budget.withdraw() {
        return refused("budget");
    }
    true
}
