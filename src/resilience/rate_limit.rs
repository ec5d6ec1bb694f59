//! Token-bucket rate limits (governor) on tokio's clock.
//!
//! Place in the pipeline: `server` checks the per-client and per-route
//! limits before any work; `routing` checks a provider's limit before each
//! attempt. A refusal carries how long until a token is free, for the
//! `Retry-After` header. Must not sleep or queue: callers decide what to do.

// governor's clocks are std-`Instant` based; ours reads tokio's clock and
// converts, so this file may name `std::time::Instant` (and only this one
// and cache/mod.rs, see clippy.toml).
#![allow(clippy::disallowed_types)]

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::RateSpec;

/// governor clock reading `tokio::time`, so paused-time tests control it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;
    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

fn quota(spec: &RateSpec) -> Quota {
    let period = Duration::from_secs_f64(1.0 / spec.per_second).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(spec.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

/// One shared bucket (a route or a provider).
#[derive(Debug)]
pub struct Limiter {
    spec: RateSpec,
    inner: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>,
}

impl Limiter {
    pub fn new(spec: &RateSpec) -> Self {
        Limiter {
            spec: spec.clone(),
            inner: RateLimiter::direct_with_clock(quota(spec), TokioClock),
        }
    }

    pub fn spec(&self) -> &RateSpec {
        &self.spec
    }

    /// Takes a token, or says how long until one is free.
    pub fn check(&self) -> Result<(), Duration> {
        self.inner
            .check()
            .map_err(|not_until| not_until.wait_time_from(TokioClock.now()))
    }
}

/// One bucket per key (client keys).
#[derive(Debug)]
pub struct KeyedLimiter {
    spec: RateSpec,
    inner: RateLimiter<
        String,
        DefaultKeyedStateStore<String>,
        TokioClock,
        NoOpMiddleware<std::time::Instant>,
    >,
}

impl KeyedLimiter {
    pub fn new(spec: &RateSpec) -> Self {
        KeyedLimiter {
            spec: spec.clone(),
            inner: RateLimiter::dashmap_with_clock(quota(spec), TokioClock),
        }
    }

    pub fn spec(&self) -> &RateSpec {
        &self.spec
    }

    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.inner
            .check_key(&key.to_string())
            .map_err(|not_until| not_until.wait_time_from(TokioClock.now()))
    }

    /// Forgets keys whose buckets are full again; call periodically.
    pub fn prune(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill_on_tokio_time() {
        let l = Limiter::new(&RateSpec {
            per_second: 2.0,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(l.check().is_ok());
        }
        let wait = l.check().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(l.check().is_ok());
        assert!(l.check().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_separate_buckets() {
        let l = KeyedLimiter::new(&RateSpec {
            per_second: 1.0,
            burst: 1,
        });
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_err());
        assert!(l.check("b").is_ok());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(l.check("a").is_ok());
    }
}
