//! Target order: which of a route's targets to try first.
//!
//! Place in the pipeline: `run::execute` asks [`target_order`] once per
//! call; `failover` tries targets as listed, `weighted` in a random order
//! biased by weight. Must not look at the request or at provider health:
//! the breaker and limits in each attempt stack decide whether a target is
//! tried.

use crate::config::{RouteSpec, Strategy};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RetrySpec, RouteCache, TargetSpec};
    use std::time::Duration;

    fn spec(weights: &[u32]) -> RouteSpec {
        RouteSpec {
            tpm: None,
            unsupported: crate::config::Unsupported::Reject,
            messages_max_tokens: None,
            name: "r".into(),
            patterns: vec![],
            aliases: vec![],
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
                stale_if_error: Default::default(),
            },
            rate_limit: None,
            max_concurrency: Some(1),
            deadline: None,
            endpoints: Vec::new(),
            stream: Default::default(),
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
    fn failover_order_is_as_listed() {
        let mut s = spec(&[1, 1, 1]);
        s.strategy = Strategy::Failover;
        assert_eq!(target_order(&s), vec![0, 1, 2]);
    }
}
