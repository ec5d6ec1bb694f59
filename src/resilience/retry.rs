//! Retry decisions: exponential backoff with jitter, Retry-After, the 429
//! policy and the retry budget, apart from the loop that applies them.
//!
//! Place in the pipeline: `routing` asks [`decide`] after each failed
//! attempt on a target: retry the same target after a delay, or leave it
//! (fail over, or give up when it was the last). A Retry-After longer than
//! `max_retry_after` leaves the target; a 429 leaves it at once when the
//! route prefers failover and another target is left; a spent budget leaves
//! it. Must not sleep, know about targets' identities, HTTP or metrics.

use std::time::Duration;

use crate::config::{OnRateLimit, RetrySpec};

/// What `decide` needs to know about an error.
pub trait RetryHint {
    fn is_retryable(&self) -> bool;
    fn retry_after(&self) -> Option<Duration>;
    /// The upstream said it is rate limiting (429).
    fn is_rate_limit(&self) -> bool;
    /// The attempt failed slowly: it ran into a timeout.
    fn is_slow(&self) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try the same target again after this delay.
    Retry(Duration),
    /// Leave this target.
    Leave(Why),
}

/// Why a target was left (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    NotRetryable,
    AttemptsSpent,
    RetryAfterTooLong,
    RateLimitedFailover,
    /// A timeout, with another target left: that one is tried first.
    SlowFailover,
    BudgetSpent,
}

/// The exponential backoff before attempt `failed + 1` (no jitter).
pub fn backoff(spec: &RetrySpec, failed: u32) -> Duration {
    let factor = 2u32.saturating_pow(failed.saturating_sub(1));
    spec.initial_backoff
        .saturating_mul(factor)
        .min(spec.max_backoff)
}

/// Decides after attempt number `failed` (1-based) on one target failed
/// with `e`. `others_left`: another target can still be tried.
/// `withdraw` takes a retry from the budget; it is called only when a retry
/// would otherwise happen.
pub fn decide<E: RetryHint>(
    spec: &RetrySpec,
    failed: u32,
    e: &E,
    others_left: bool,
    withdraw: impl FnOnce() -> bool,
) -> Decision {
    if !e.is_retryable() {
        return Decision::Leave(Why::NotRetryable);
    }
    if failed >= spec.max_attempts {
        return Decision::Leave(Why::AttemptsSpent);
    }
    if e.is_rate_limit() && spec.on_rate_limit == OnRateLimit::Failover && others_left {
        return Decision::Leave(Why::RateLimitedFailover);
    }
    if e.is_slow() && others_left {
        return Decision::Leave(Why::SlowFailover);
    }
    let delay = match e.retry_after() {
        Some(after) if after > spec.max_retry_after => {
            return Decision::Leave(Why::RetryAfterTooLong);
        }
        Some(after) => after,
        None if spec.jitter => {
            let full = backoff(spec, failed);
            // "Equal jitter": half fixed, half random, so retries spread
            // out but never collapse to zero.
            full / 2 + full.mul_f64(fastrand::f64() / 2.0)
        }
        None => backoff(spec, failed),
    };
    if !withdraw() {
        return Decision::Leave(Why::BudgetSpent);
    }
    Decision::Retry(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BudgetSpec;

    struct E {
        retryable: bool,
        after: Option<Duration>,
        rate_limit: bool,
        slow: bool,
    }
    impl RetryHint for E {
        fn is_retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            self.after
        }
        fn is_rate_limit(&self) -> bool {
            self.rate_limit
        }
        fn is_slow(&self) -> bool {
            self.slow
        }
    }
    const FAIL: E = E {
        retryable: true,
        after: None,
        rate_limit: false,
        slow: false,
    };

    fn spec(attempts: u32, on_rate_limit: OnRateLimit) -> RetrySpec {
        RetrySpec {
            max_attempts: attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            jitter: false,
            max_retry_after: Duration::from_secs(5),
            on_rate_limit,
            budget: BudgetSpec {
                ratio: 0.2,
                min_per_second: 5,
                window: Duration::from_secs(10),
            },
        }
    }

    #[test]
    fn backs_off_exponentially_up_to_the_cap_then_leaves() {
        let s = spec(4, OnRateLimit::Wait);
        let delays: Vec<Decision> = (1..=4)
            .map(|n| decide(&s, n, &FAIL, true, || true))
            .collect();
        assert_eq!(
            delays,
            [
                Decision::Retry(Duration::from_millis(100)),
                Decision::Retry(Duration::from_millis(200)),
                Decision::Retry(Duration::from_millis(300)),
                Decision::Leave(Why::AttemptsSpent),
            ]
        );
    }

    #[test]
    fn jitter_stays_between_half_and_the_full_backoff() {
        let mut s = spec(3, OnRateLimit::Wait);
        s.jitter = true;
        for _ in 0..100 {
            let Decision::Retry(d) = decide(&s, 2, &FAIL, true, || true) else {
                panic!("expected a retry")
            };
            assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&d));
        }
    }

    #[test]
    fn honours_retry_after_and_leaves_past_the_cap() {
        let s = spec(5, OnRateLimit::Wait);
        let after = |secs| E {
            retryable: true,
            after: Some(Duration::from_secs(secs)),
            rate_limit: false,
            slow: false,
        };
        assert_eq!(
            decide(&s, 1, &after(3), true, || true),
            Decision::Retry(Duration::from_secs(3))
        );
        assert_eq!(
            decide(&s, 1, &after(60), true, || true),
            Decision::Leave(Why::RetryAfterTooLong)
        );
    }

    #[test]
    fn a_429_fails_over_at_once_when_the_route_prefers_it_and_a_target_is_left() {
        let limited = E {
            retryable: true,
            after: Some(Duration::from_secs(1)),
            rate_limit: true,
            slow: false,
        };
        let failover = spec(3, OnRateLimit::Failover);
        assert_eq!(
            decide(&failover, 1, &limited, true, || true),
            Decision::Leave(Why::RateLimitedFailover)
        );
        assert_eq!(
            decide(&failover, 1, &limited, false, || true),
            Decision::Retry(Duration::from_secs(1)),
            "the last target waits"
        );
        assert_eq!(
            decide(&spec(3, OnRateLimit::Wait), 1, &limited, true, || true),
            Decision::Retry(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_timeout_fails_over_before_it_is_retried_and_is_retried_on_the_last_target() {
        let s = spec(3, OnRateLimit::Wait);
        let timeout = E {
            retryable: true,
            after: None,
            rate_limit: false,
            slow: true,
        };
        assert_eq!(
            decide(&s, 1, &timeout, true, || true),
            Decision::Leave(Why::SlowFailover)
        );
        assert_eq!(
            decide(&s, 1, &timeout, false, || true),
            Decision::Retry(Duration::from_millis(100)),
            "alone, a timeout is still worth another try"
        );
        assert_eq!(
            decide(&s, 1, &FAIL, true, || true),
            Decision::Retry(Duration::from_millis(100)),
            "fast errors are retried on the same target first"
        );
    }

    #[test]
    fn non_retryable_errors_and_a_spent_budget_leave() {
        let s = spec(5, OnRateLimit::Wait);
        let fatal = E {
            retryable: false,
            after: None,
            rate_limit: false,
            slow: false,
        };
        let mut asked = false;
        assert_eq!(
            decide(&s, 1, &fatal, true, || {
                asked = true;
                true
            }),
            Decision::Leave(Why::NotRetryable)
        );
        assert!(!asked, "the budget is not touched for errors never retried");
        assert_eq!(
            decide(&s, 1, &FAIL, true, || false),
            Decision::Leave(Why::BudgetSpent)
        );
    }
}
