//! The width of an embeddings fan-out: how many sub-batches to have in
//! flight at once, read again each time one ends.
//!
//! Place in the pipeline: `server`'s embeddings endpoint hands
//! [`fanout_width`] to `fanout::fan_out`, which asks it before it starts
//! each sub-batch, so a long fan-out follows a provider's adaptive limit as
//! it moves. The width is the room of the providers that would take the
//! sub-batches: for `failover`, the limit now of the first target whose
//! breaker is not open (overflow would spill onto the fallbacks, which are
//! for failures; `cost` likewise, its overflow would go to dearer targets);
//! for `weighted`, `least_latency` and `least_busy`, the sum of the limits
//! of those targets (the traffic is spread over them anyway). `fanout.max_concurrency`, when
//! set, caps it; when it is not set and no target has an adaptive limit,
//! the width is 4, as before adaptive limits. Must not start calls.

use std::collections::BTreeMap;

use super::table::{RouteHandle, RouteTable};
use crate::config::{LimitSpec, Strategy};
use crate::providers::Need;
use crate::resilience::BreakerState;

/// The fan-out width when no target adapts and the route sets none.
pub const DEFAULT_FANOUT: usize = 4;

/// How many of `route`'s embedding sub-batches to have in flight now.
pub fn fanout_width(table: &RouteTable, route: &RouteHandle) -> usize {
    let spec = &route.spec;
    let mut adaptive = false;
    // The usable targets' providers, each once, in target order.
    let mut room: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, t) in spec.targets.iter().enumerate() {
        let Some(h) = table.providers.get(&t.provider) else {
            continue;
        };
        if !h.capabilities.serves(Need::Embeddings) {
            continue;
        }
        adaptive |= matches!(h.spec.concurrency.limit, LimitSpec::Adaptive { .. });
        if h.breaker.state() != BreakerState::Open {
            room.entry(&t.provider)
                .or_insert((i, h.concurrency.limit()));
        }
    }
    let width = match spec.strategy {
        Strategy::Failover | Strategy::Cost => room.values().min().map_or(1, |&(_, limit)| limit),
        Strategy::Weighted | Strategy::LeastLatency | Strategy::LeastBusy => {
            room.values().map(|&(_, limit)| limit).sum()
        }
    };
    let cap = spec
        .max_concurrency
        .unwrap_or(if adaptive { usize::MAX } else { DEFAULT_FANOUT });
    width.min(cap).max(1)
}
