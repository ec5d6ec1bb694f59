//! Target order: which of a route's usable targets to try first.
//!
//! Place in the pipeline: `plan` asks [`order`] once per call (and once
//! more for a fallback list) with the targets that can serve the call.
//! `failover` keeps them as listed, `weighted` draws a random order biased
//! by weight; the others route on what the gateway sees, with targets whose
//! breaker is open put last: `least_latency` takes the first by power of
//! two choices over the peak-EWMA latency of the call's kind of measure
//! times the calls in flight plus one (tower's `balance::p2c` over
//! `load::peak_ewma`), then the rest cheapest first; `least_busy` the
//! fewest calls in flight relative to the provider's concurrency limit
//! (ties at random, so equal targets share evenly); `cost` the cheapest by
//! `prices:` at the call's token estimate, ties by latency. What each
//! provider has in flight comes from [`busy`], the one place that says.
//! Must not look at the request beyond its estimates, nor try targets: the
//! breaker and limits in each attempt stack still decide whether one is
//! tried.

use std::sync::Arc;
use std::time::Duration;

use super::call::Pace;
use super::table::ProviderHandle;
use crate::config::{Prices, Strategy, TargetSpec};
use crate::resilience::BreakerState;
use crate::resilience::p2c;

/// Output tokens `cost` assumes for a call that sets no bound.
pub const ASSUMED_OUTPUT_TOKENS: u64 = 256;

/// A target that can serve the call, with its provider.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub target: &'a TargetSpec,
    pub handle: &'a Arc<ProviderHandle>,
}

/// What the strategies weigh of one call.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub pace: Pace,
    /// How fast latency peaks are forgotten (`latency.decay`).
    pub decay: Duration,
    pub input_tokens: u64,
    /// The output bound the call asks for (0: none).
    pub output_tokens: u64,
}

/// A provider's calls in flight and its current concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub in_flight: usize,
    pub limit: usize,
}

impl Busy {
    /// In flight relative to the limit.
    pub fn load(self) -> f64 {
        self.in_flight as f64 / self.limit.max(1) as f64
    }

    pub fn saturated(self) -> bool {
        self.in_flight >= self.limit
    }
}

/// The one source of the strategies' counts: the provider's bulkhead (its
/// calls in flight, streams until they end, and its concurrency limit,
/// fixed or adaptive, under its share of the gateway).
pub fn busy(h: &ProviderHandle) -> Busy {
    Busy {
        in_flight: h.concurrency.in_flight(),
        limit: h.concurrency.limit(),
    }
}

/// The provider's breaker lets calls through (closed or probing).
pub fn healthy(h: &ProviderHandle) -> bool {
    h.breaker.state() != BreakerState::Open
}

/// Indices into `cands` in the order to try them.
pub fn order(strategy: Strategy, cands: &[Candidate], ask: &Ask, prices: &Prices) -> Vec<usize> {
    match strategy {
        Strategy::Failover => (0..cands.len()).collect(),
        Strategy::Weighted => weighted(cands),
        Strategy::LeastLatency => {
            let cost: Vec<f64> = cands.iter().map(|c| latency_cost(c, ask)).collect();
            let (mut up, down) = split_healthy(cands);
            let first = p2c::pick(up.len(), |i| cost[up[i]]).map(|i| up.remove(i));
            up.sort_by(|&a, &b| cost[a].total_cmp(&cost[b]));
            first.into_iter().chain(up).chain(down).collect()
        }
        Strategy::LeastBusy => {
            let load: Vec<f64> = cands.iter().map(|c| busy(c.handle).load()).collect();
            let (mut up, down) = split_healthy(cands);
            // Shuffled first, so equals are taken in a random order.
            fastrand::shuffle(&mut up);
            up.sort_by(|&a, &b| load[a].total_cmp(&load[b]));
            up.into_iter().chain(down).collect()
        }
        Strategy::Cost => {
            let price: Vec<(f64, f64)> = cands
                .iter()
                .map(|c| (price_of(c, ask, prices), latency_cost(c, ask)))
                .collect();
            let (mut up, down) = split_healthy(cands);
            up.sort_by(|&a, &b| {
                let (pa, la) = price[a];
                let (pb, lb) = price[b];
                pa.total_cmp(&pb).then(la.total_cmp(&lb))
            });
            up.into_iter().chain(down).collect()
        }
    }
}

/// What sending the call costs in latency (`least_latency`'s score).
fn latency_cost(c: &Candidate, ask: &Ask) -> f64 {
    let in_flight = busy(c.handle).in_flight;
    c.handle.live.latency(ask.pace, ask.decay) * (in_flight as f64 + 1.0)
}

/// The call's price at this target in USD (input at the input price, the
/// output bound, or [`ASSUMED_OUTPUT_TOKENS`], at the output price).
fn price_of(c: &Candidate, ask: &Ask, prices: &Prices) -> f64 {
    let Some(p) = prices.lookup(&c.handle.name, &c.target.model) else {
        return f64::INFINITY;
    };
    let output = match ask.output_tokens {
        0 => ASSUMED_OUTPUT_TOKENS,
        n => n,
    };
    (ask.input_tokens as f64 * p.input + output as f64 * p.output) / 1e6
}

/// Healthy candidates, and the others in listed order.
fn split_healthy(cands: &[Candidate]) -> (Vec<usize>, Vec<usize>) {
    (0..cands.len()).partition(|&i| healthy(cands[i].handle))
}

fn weighted(cands: &[Candidate]) -> Vec<usize> {
    let mut rest: Vec<usize> = (0..cands.len()).collect();
    let mut order = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let total: u64 = rest.iter().map(|&i| cands[i].target.weight as u64).sum();
        let mut pick = fastrand::u64(0..total.max(1));
        let pos = rest
            .iter()
            .position(|&i| {
                let w = cands[i].target.weight as u64;
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
