//! Retry budget per route: retries may add only a fraction of the recent
//! traffic, so a failing upstream is not hit by a retry storm.
//!
//! Place in the pipeline: `routing` deposits once per routed call and
//! withdraws once per retry on the same target; when the budget is empty the
//! target is given up at once (failover to another target is not budgeted:
//! it is bounded by the number of targets). The mechanism is tower's
//! `TpsBudget` (a sliding window on tokio's clock, so tests can pause time).
//! Must not decide what is retryable.

use tower::retry::budget::{Budget, TpsBudget};

use crate::config::BudgetSpec;

#[derive(Debug)]
pub struct RetryBudget {
    spec: BudgetSpec,
    inner: TpsBudget,
}

impl RetryBudget {
    pub fn new(spec: &BudgetSpec) -> Self {
        RetryBudget {
            spec: spec.clone(),
            // The policy validated the ranges tower asserts on.
            inner: TpsBudget::new(spec.window, spec.min_per_second, spec.ratio),
        }
    }

    pub fn spec(&self) -> &BudgetSpec {
        &self.spec
    }

    /// One routed call: earns `ratio` of a retry.
    pub fn deposit(&self) {
        self.inner.deposit();
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn withdraw(&self) -> bool {
        self.inner.withdraw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_the_ratio_of_recent_calls() {
        let b = RetryBudget::new(&BudgetSpec {
            ratio: 0.5,
            min_per_second: 0,
            window: Duration::from_secs(10),
        });
        assert!(!b.withdraw(), "nothing earned yet");
        for _ in 0..10 {
            b.deposit();
        }
        let granted = (0..20).filter(|_| b.withdraw()).count();
        assert_eq!(granted, 5, "half of ten calls");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!b.withdraw(), "deposits expire with the window");
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_a_few_retries_per_second() {
        let b = RetryBudget::new(&BudgetSpec {
            ratio: 0.0,
            min_per_second: 2,
            window: Duration::from_secs(1),
        });
        let granted = (0..10).filter(|_| b.withdraw()).count();
        assert_eq!(granted, 2);
    }
}
