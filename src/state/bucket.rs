//! Token-bucket arithmetic, shared by the memory store and (line for line)
//! by the Redis scripts `admit.lua` and `settle.lua`.
//!
//! A bucket holds up to `capacity` tokens and refills continuously at
//! `per_minute` tokens per 60 s (how OpenAI describes RPM/TPM limits). Its
//! level may go below zero (debt, after real usage exceeded an estimate);
//! it then refills from below. Time is counted in whole microseconds as
//! `f64`, exactly as the Lua side counts Redis `TIME`, so both backends give
//! the same answers. Must not know about keys, maps or Redis.

use std::time::Duration;

use tokio::time::Instant;

/// Microseconds in a minute: a bucket refills `per_minute` tokens per this.
pub(crate) const MINUTE_US: f64 = 60_000_000.0;

/// Bucket expiry when it never refills (`per_minute` 0): one day.
const NEVER_REFILLS_TTL_MS: u64 = 86_400_000;
/// Longest expiry of a bucket deep in debt: thirty days.
const MAX_TTL_MS: u64 = 30 * NEVER_REFILLS_TTL_MS;
/// Kept this long after it would be full again (then it equals an absent one).
const FULL_SLACK_MS: u64 = 1_000;

/// One bucket's state on tokio's clock: its level when it was last written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    /// A bucket as it stands at `at` (a new one is full: `level = capacity`).
    pub(crate) fn new(level: f64, at: Instant) -> Self {
        Bucket { level, at }
    }

    /// The level at `now` after refilling since it was written.
    pub(crate) fn level_at(&self, now: Instant, capacity: u64, per_minute: u64) -> f64 {
        let elapsed_us = now.saturating_duration_since(self.at).as_micros() as f64;
        refill(self.level, elapsed_us, capacity, per_minute)
    }
}

/// `level` after `elapsed_us` of refilling, never above `capacity`.
pub(crate) fn refill(level: f64, elapsed_us: f64, capacity: u64, per_minute: u64) -> f64 {
    let refilled = level + elapsed_us.max(0.0) * per_minute as f64 / MINUTE_US;
    refilled.min(capacity as f64)
}

/// How long until a bucket at `level` holds `amount` tokens: `None` when it
/// never will (`amount > capacity`, or no refill at all). Rounded up to the
/// microsecond, so after waiting this long the amount is there.
pub(crate) fn wait_for(
    level: f64,
    amount: u64,
    capacity: u64,
    per_minute: u64,
) -> Option<Duration> {
    if level >= amount as f64 {
        return Some(Duration::ZERO);
    }
    if amount > capacity || per_minute == 0 {
        return None;
    }
    let us = ((amount as f64 - level) * MINUTE_US / per_minute as f64).ceil();
    Some(Duration::from_micros(us as u64))
}

/// Whether `a` is a longer wait than `b` (`None`, never, is the longest):
/// a refusal reports the take that keeps the caller waiting longest, since
/// buckets refill independently and all must fit at once.
pub(crate) fn longer(a: Option<Duration>, b: Option<Duration>) -> bool {
    match (a, b) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
    }
}

/// Milliseconds until a bucket at `level` is full again, plus a second:
/// after that it equals an absent (full) bucket and may be forgotten.
pub(crate) fn idle_ttl_ms(level: f64, capacity: u64, per_minute: u64) -> u64 {
    if level >= capacity as f64 {
        return FULL_SLACK_MS;
    }
    if per_minute == 0 {
        return NEVER_REFILLS_TTL_MS;
    }
    let ms = ((capacity as f64 - level) * 60_000.0 / per_minute as f64).ceil();
    (ms as u64).saturating_add(FULL_SLACK_MS).min(MAX_TTL_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 10;
    /// One token per second.
    const PM: u64 = 60;

    #[tokio::test(start_paused = true)]
    async fn refills_continuously_up_to_capacity() {
        let start = Instant::now();
        let b = Bucket::new(0.0, start);
        assert_eq!(b.level_at(start, CAP, PM), 0.0);
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(b.level_at(Instant::now(), CAP, PM), 2.5);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(b.level_at(Instant::now(), CAP, PM), 10.0, "capped");
    }

    #[tokio::test(start_paused = true)]
    async fn debt_refills_from_below() {
        let b = Bucket::new(-5.0, Instant::now());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(b.level_at(Instant::now(), CAP, PM), -2.0);
        assert_eq!(
            wait_for(-2.0, 1, CAP, PM),
            Some(Duration::from_secs(3)),
            "three tokens short at one per second"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_exact_the_amount_is_there_after_it() {
        let start = Instant::now();
        let b = Bucket::new(0.25, start);
        // 7 per minute: not a whole number of microseconds per token.
        let wait = wait_for(0.25, 3, CAP, 7).unwrap();
        assert_eq!(wait, Duration::from_micros(23_571_429));
        tokio::time::advance(wait - Duration::from_micros(1)).await;
        assert!(b.level_at(Instant::now(), CAP, 7) < 3.0);
        tokio::time::advance(Duration::from_micros(1)).await;
        assert!(b.level_at(Instant::now(), CAP, 7) >= 3.0);
    }

    #[test]
    fn amounts_that_can_never_fit_have_no_wait() {
        assert_eq!(wait_for(10.0, 11, CAP, PM), None, "over capacity");
        assert_eq!(wait_for(0.0, 1, CAP, 0), None, "never refills");
        assert_eq!(wait_for(5.0, 5, CAP, 0), Some(Duration::ZERO), "fits now");
    }

    #[test]
    fn never_is_longer_than_any_wait() {
        let s = |n| Some(Duration::from_secs(n));
        assert!(longer(None, s(1)));
        assert!(!longer(s(1), None));
        assert!(!longer(None, None));
        assert!(longer(s(2), s(1)));
        assert!(!longer(s(1), s(1)), "ties keep the first");
    }

    #[test]
    fn idle_buckets_expire_a_second_after_they_would_be_full() {
        assert_eq!(idle_ttl_ms(10.0, CAP, PM), 1_000);
        assert_eq!(idle_ttl_ms(7.5, CAP, PM), 3_500);
        assert_eq!(idle_ttl_ms(-10.0, CAP, PM), 21_000);
        assert_eq!(idle_ttl_ms(0.0, CAP, 0), 86_400_000);
        assert_eq!(idle_ttl_ms(-1e12, CAP, 1), MAX_TTL_MS);
    }
}
