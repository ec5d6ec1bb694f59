//! Retries with exponential backoff and jitter (backon), honouring Retry-After.
//!
//! Place in the pipeline: `routing` wraps each target's attempts in
//! [`retry`]. Between attempts it sleeps the backoff, or the upstream's
//! Retry-After when given; a Retry-After longer than `max_retry_after` ends
//! the retries on this target so the caller can fail over instead of
//! waiting. Must not know about targets, HTTP or metrics.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::config::RetrySpec;

/// What `retry` needs to know about an error.
pub trait RetryHint {
    fn is_retryable(&self) -> bool;
    fn retry_after(&self) -> Option<Duration>;
}

/// Runs `op` up to `spec.max_attempts` times. `on_retry` is told each error
/// that will be retried and the delay before the next attempt.
pub async fn retry<T, E, F, Fut>(
    spec: &RetrySpec,
    op: F,
    on_retry: impl FnMut(&E, Duration),
) -> Result<T, E>
where
    E: RetryHint,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(spec.initial_backoff)
        .with_max_delay(spec.max_backoff)
        .with_factor(2.0)
        .with_max_times(spec.max_attempts.saturating_sub(1) as usize);
    if spec.jitter {
        backoff = backoff.with_jitter();
    }
    let cap = spec.max_retry_after;
    op.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e: &E| e.is_retryable())
        .adjust(move |e: &E, delay| match (delay, e.retry_after()) {
            (None, _) => None,
            (Some(_), Some(after)) if after > cap => None,
            (Some(_), Some(after)) => Some(after),
            (Some(d), None) => Some(d),
        })
        .notify(on_retry)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug)]
    struct E {
        retryable: bool,
        after: Option<Duration>,
    }
    impl RetryHint for E {
        fn is_retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            self.after
        }
    }

    fn spec(attempts: u32) -> RetrySpec {
        RetrySpec {
            max_attempts: attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            jitter: false,
            max_retry_after: Duration::from_secs(5),
            on_rate_limit: crate::config::OnRateLimit::Wait,
            budget: crate::config::BudgetSpec {
                ratio: 0.2,
                min_per_second: 5,
                window: Duration::from_secs(10),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_then_gives_up() {
        let calls = Cell::new(0);
        let mut delays = vec![];
        let start = tokio::time::Instant::now();
        let r: Result<(), E> = retry(
            &spec(4),
            || {
                calls.set(calls.get() + 1);
                async {
                    Err(E {
                        retryable: true,
                        after: None,
                    })
                }
            },
            |_, d| delays.push(d),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 4);
        // backon multiplies in f32: allow microsecond rounding.
        let close = |a: Duration, b: Duration| a.abs_diff(b) < Duration::from_micros(1);
        assert_eq!(delays.len(), 3);
        for (d, want) in delays.iter().zip([100, 200, 400]) {
            assert!(close(*d, Duration::from_millis(want)), "{delays:?}");
        }
        // The timer wheel has millisecond resolution.
        let slept = start.elapsed();
        assert!(
            slept >= Duration::from_millis(700) && slept <= Duration::from_millis(703),
            "{slept:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_stops_past_cap() {
        let calls = Cell::new(0);
        let mut delays = vec![];
        let r: Result<(), E> = retry(
            &spec(5),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    Err(E {
                        retryable: true,
                        after: Some(Duration::from_secs(if n == 1 { 3 } else { 60 })),
                    })
                }
            },
            |_, d| delays.push(d),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(delays, [Duration::from_secs(3)]);
        assert_eq!(calls.get(), 2, "a Retry-After over the cap ends retries");
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_errors_are_returned_at_once() {
        let calls = Cell::new(0);
        let r: Result<(), E> = retry(
            &spec(5),
            || {
                calls.set(calls.get() + 1);
                async {
                    Err(E {
                        retryable: false,
                        after: None,
                    })
                }
            },
            |_, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 1);
    }
}
