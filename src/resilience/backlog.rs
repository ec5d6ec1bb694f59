//! Retry hints that spread a burst: each caller refused by a bucket is told
//! to come back at its own slot, after the callers refused before it.
//!
//! Place in the pipeline: `server`'s admission asks [`Backlog::book`] for
//! the `Retry-After` of every 429 it makes for a spent bucket (per-client,
//! route and key limits). A bucket says only when its next token is free;
//! told that, every refused caller of a burst would come back in the same
//! millisecond and be refused again. The backlog remembers, per bucket,
//! the last slot it gave out and gives the next caller the later of the
//! bucket's own wait and that slot plus the bucket's refill time for one
//! request (`spacing`), plus a random part of half a spacing so that no two
//! answers say the same. Retries that come back at their hint each find a
//! token, as long as nobody else took it first. Per replica, on tokio's
//! clock; slots already past are forgotten. Must not refuse or admit
//! anything: it only computes hints.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Hints are never booked further out than this (a caller told more
/// waits its own backoff anyway).
pub const MAX_HINT: Duration = Duration::from_secs(600);

/// Bookings between sweeps of slots that are past.
const SWEEP_EVERY: u32 = 1024;

/// The last slot given out per bucket.
#[derive(Debug, Default)]
pub struct Backlog {
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    last: HashMap<String, Instant>,
    ops: u32,
}

impl Backlog {
    pub fn new() -> Self {
        Self::default()
    }

    /// The retry hint for a caller refused by the bucket `key`, which says
    /// a token is free in `wait` and refills one request's worth in
    /// `spacing`.
    pub fn book(&self, key: &str, wait: Duration, spacing: Duration) -> Duration {
        let now = Instant::now();
        let spacing = spacing.min(MAX_HINT);
        let earliest = now + wait.min(MAX_HINT);
        let slot = {
            let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            s.ops = s.ops.wrapping_add(1);
            if s.ops.is_multiple_of(SWEEP_EVERY) {
                s.last.retain(|_, slot| *slot > now);
            }
            let next = |last: Instant| (last + spacing).max(earliest).min(now + MAX_HINT);
            match s.last.get_mut(key) {
                Some(last) => {
                    *last = next(*last);
                    *last
                }
                None => {
                    s.last.insert(key.to_string(), earliest);
                    earliest
                }
            }
        };
        (slot - now) + spacing.mul_f64(fastrand::f64() / 2.0)
    }

    /// Buckets with a slot still ahead (for tests and metrics).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        let s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        s.last.values().filter(|slot| **slot > now).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn a_burst_gets_one_slot_each_after_the_buckets_wait() {
        let b = Backlog::new();
        let spacing = 20 * MS;
        let hints: Vec<Duration> = (0..100).map(|_| b.book("k", 20 * MS, spacing)).collect();
        for (i, h) in hints.iter().enumerate() {
            let slot = 20 * MS + spacing * i as u32;
            assert!(
                *h >= slot && *h < slot + spacing / 2,
                "#{i}: {h:?} not in its slot {slot:?}"
            );
        }
        let mut distinct = hints.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 100, "jittered per answer");
        // Another bucket has its own queue.
        assert!(b.book("other", 20 * MS, spacing) < 40 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn past_slots_are_forgotten_and_hints_are_capped() {
        let b = Backlog::new();
        for _ in 0..5 {
            b.book("k", MS, Duration::from_secs(1));
        }
        assert_eq!(b.len(), 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(b.is_empty());
        assert!(b.book("k", MS, Duration::from_secs(1)) < Duration::from_millis(1002));
        for _ in 0..2000 {
            let h = b.book("slow", Duration::from_secs(60), Duration::from_secs(60));
            assert!(h <= MAX_HINT + Duration::from_secs(60), "{h:?}");
        }
    }
}
