//! Settlements that did not reach Redis, coalesced per key, waiting to be
//! replayed: spend is never lost across an outage, and what a bucket was
//! charged meanwhile is replayed as far as it still weighs on it.
//!
//! Place in the pipeline: held by the Redis backend (`shared.rs`); a failed
//! `settle` parks its adjusts and adds here, the next round trip that
//! reaches Redis sends them first. Bounded by key count: a key beyond the
//! bound is dropped (and reported by the caller). Must not talk to Redis.
//! A settle whose outcome is unknown (a timeout after it was sent) is kept
//! too: spend may then count twice, never zero times. A reservation that
//! admission made locally (Redis down, `fail_open`) is parked here too, a
//! counter's as an add and a bucket's take as an adjust, so that the
//! settlement's later correction (real minus reserved) lands on a counter
//! or bucket that holds the reservation.
//!
//! Counters are summed as they are: a budget period's spend does not fade.
//! A bucket's parked tokens do fade: the bucket refills `per_minute` a
//! minute, so a take made long enough ago no longer weighs on it (and a
//! refund no longer helps a bucket that refilled meanwhile). Each key's
//! parked tokens are kept as they stood when last touched and shrink
//! towards zero at the refill rate, as a bucket's deficit would; what is
//! left when Redis is back is replayed, at most `capacity` either way.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::bucket;
use super::types::{Add, Adjust};

/// Most distinct keys kept per kind (buckets, counters).
pub(crate) const MAX_PENDING_KEYS: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Bucket key -> its parked tokens; the parameters are the latest given.
    adjusts: HashMap<String, Parked>,
    /// Counter key -> (summed amount, latest ttl).
    adds: HashMap<String, (i64, Duration)>,
}

/// One bucket's parked tokens (taken: positive; given back: negative) as
/// they stood at `at`.
#[derive(Debug, Clone, Copy)]
struct Parked {
    capacity: u64,
    per_minute: u64,
    tokens: f64,
    at: Instant,
}

impl Parked {
    /// What is left of the tokens at `now`: they fade towards zero by what
    /// the bucket refilled since `at`.
    fn left(&self, now: Instant) -> f64 {
        let elapsed_us = now.saturating_duration_since(self.at).as_micros() as f64;
        // Either way they fade as a bucket's debt refills up to zero.
        let fade = |debt: f64| bucket::refill(debt, elapsed_us, 0, self.per_minute);
        if self.tokens > 0.0 {
            -fade(-self.tokens)
        } else {
            fade(self.tokens)
        }
    }

    /// The whole tokens to replay at `now`, at most `capacity` either way.
    fn delta(&self, now: Instant) -> i64 {
        let cap = self.capacity as f64;
        self.left(now).round().clamp(-cap, cap) as i64
    }
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.adjusts.is_empty() && self.adds.is_empty()
    }

    /// Parks these as of `now`; returns how many keys were dropped for the
    /// bound.
    pub(crate) fn park(&mut self, adjusts: &[Adjust<'_>], adds: &[Add<'_>], now: Instant) -> usize {
        let mut dropped = 0;
        for a in adjusts {
            let parked = Parked {
                capacity: a.capacity,
                per_minute: a.per_minute,
                tokens: a.delta as f64,
                at: now,
            };
            dropped += usize::from(!self.park_bucket(a.key, parked));
        }
        for a in adds {
            if let Some(e) = self.adds.get_mut(a.key) {
                *e = (e.0.saturating_add(a.amount), a.ttl);
            } else if self.adds.len() < MAX_PENDING_KEYS {
                self.adds.insert(a.key.to_string(), (a.amount, a.ttl));
            } else {
                dropped += 1;
            }
        }
        dropped
    }

    /// Adds `later` (its parameters win) to what `key` holds; false when the
    /// key is new and the bound is reached.
    fn park_bucket(&mut self, key: &str, later: Parked) -> bool {
        if let Some(e) = self.adjusts.get_mut(key) {
            let tokens = e.left(later.at) + later.tokens;
            *e = Parked { tokens, ..later };
            true
        } else if self.adjusts.len() < MAX_PENDING_KEYS {
            self.adjusts.insert(key.to_string(), later);
            true
        } else {
            false
        }
    }

    /// Puts back what a failed replay took out (`earlier`, older than what
    /// was parked meanwhile): amounts sum (a bucket's as they stand at
    /// `now`), the later parameters win.
    pub(crate) fn restore(&mut self, earlier: Pending, now: Instant) -> usize {
        let newer = std::mem::replace(self, earlier);
        let mut dropped = 0;
        for (key, p) in newer.adjusts {
            let p = Parked {
                tokens: p.left(now),
                at: now,
                ..p
            };
            dropped += usize::from(!self.park_bucket(&key, p));
        }
        let adds: Vec<Add<'_>> = newer
            .adds
            .iter()
            .map(|(key, &(amount, ttl))| Add { key, amount, ttl })
            .collect();
        dropped + self.park(&[], &adds, now)
    }

    /// The parked items as they stand at `now`, borrowing their keys, ready
    /// to send (a bucket whose tokens faded to nothing is left out).
    pub(crate) fn as_batches(&self, now: Instant) -> (Vec<Adjust<'_>>, Vec<Add<'_>>) {
        let adjusts = self
            .adjusts
            .iter()
            .map(|(key, p)| Adjust {
                key,
                capacity: p.capacity,
                per_minute: p.per_minute,
                delta: p.delta(now),
            })
            .filter(|a| a.delta != 0)
            .collect();
        let adds = self
            .adds
            .iter()
            .map(|(key, &(amount, ttl))| Add { key, amount, ttl })
            .collect();
        (adjusts, adds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(key: &str, amount: i64, ttl: u64) -> Add<'_> {
        Add {
            key,
            amount,
            ttl: Duration::from_secs(ttl),
        }
    }

    /// A bucket of 10 refilled at 60 a minute (one a second).
    fn adjust(key: &str, delta: i64) -> Adjust<'_> {
        Adjust {
            key,
            capacity: 10,
            per_minute: 60,
            delta,
        }
    }

    fn sorted(p: &Pending, now: Instant) -> (Vec<Adjust<'_>>, Vec<Add<'_>>) {
        let (mut adjusts, mut adds) = p.as_batches(now);
        adjusts.sort_by_key(|a| a.key);
        adds.sort_by_key(|a| a.key);
        (adjusts, adds)
    }

    fn secs(n: f64) -> Duration {
        Duration::from_secs_f64(n)
    }

    #[test]
    fn coalesces_per_key() {
        let t = Instant::now();
        let mut p = Pending::default();
        assert!(p.is_empty());
        p.park(&[adjust("a", 5), adjust("a", -2)], &[add("n", 3, 60)], t);
        p.park(&[adjust("b", 1)], &[add("n", 4, 50), add("m", 1, 10)], t);
        assert_eq!(
            sorted(&p, t),
            (
                vec![adjust("a", 3), adjust("b", 1)],
                vec![add("m", 1, 10), add("n", 7, 50)]
            )
        );
    }

    #[test]
    fn restore_merges_older_under_newer() {
        let t = Instant::now();
        let mut p = Pending::default();
        p.park(&[adjust("a", 5)], &[add("n", 3, 60)], t);
        let taken = std::mem::take(&mut p);
        p.park(&[adjust("a", 2)], &[add("n", 1, 30)], t + secs(1.0));
        assert_eq!(p.restore(taken, t + secs(2.0)), 0);
        assert_eq!(
            sorted(&p, t + secs(2.0)),
            (vec![adjust("a", 3 + 1)], vec![add("n", 4, 30)]),
            "amounts sum (a bucket's as they stand: 5 two seconds old, 2 one second old), \
             the newer ttl wins"
        );
    }

    #[test]
    fn a_buckets_parked_tokens_fade_at_its_refill_rate() {
        let t = Instant::now();
        let mut p = Pending::default();
        p.park(&[adjust("taken", 5), adjust("refunded", -6)], &[], t);
        p.park(&[adjust("again", 4)], &[], t + secs(1.0));
        // Two seconds on, 2 left of "again", and 4 more.
        p.park(&[adjust("again", 4)], &[], t + secs(3.0));
        assert_eq!(
            sorted(&p, t + secs(3.0)).0,
            [
                adjust("again", 6),
                adjust("refunded", -3),
                adjust("taken", 2)
            ]
        );
        assert_eq!(
            sorted(&p, t + secs(4.0)).0,
            [
                adjust("again", 5),
                adjust("refunded", -2),
                adjust("taken", 1)
            ]
        );
        // Refilled: nothing left to replay, either way.
        assert_eq!(sorted(&p, t + secs(60.0)).0, []);
        assert!(!p.is_empty(), "counters and buckets stay parked until sent");
    }

    #[test]
    fn small_takes_fade_by_the_fractions_too() {
        // One token every 10 s: ten takes a second apart fade by 0.9 in
        // all, which whole-token steps would lose.
        let t = Instant::now();
        let slow = |delta| Adjust {
            per_minute: 6,
            ..adjust("k", delta)
        };
        let mut p = Pending::default();
        for i in 0..10 {
            p.park(&[slow(1)], &[], t + secs(f64::from(i)));
        }
        assert_eq!(sorted(&p, t + secs(9.0)).0, [slow(9)], "9.1 left");
        assert_eq!(sorted(&p, t + secs(14.0)).0, [slow(9)], "8.6 left");
        assert_eq!(sorted(&p, t + secs(16.0)).0, [slow(8)], "8.4 left");
    }

    #[test]
    fn a_replay_moves_a_bucket_by_at_most_its_capacity() {
        let t = Instant::now();
        let mut p = Pending::default();
        p.park(&[adjust("up", 25), adjust("down", -25)], &[], t);
        assert_eq!(
            sorted(&p, t).0,
            [adjust("down", -10), adjust("up", 10)],
            "capacity 10"
        );
        assert_eq!(
            sorted(&p, t + secs(12.0)).0,
            [adjust("down", -10), adjust("up", 10)],
            "13 left, still capped"
        );
    }

    #[test]
    fn bounded_by_key_count() {
        let t = Instant::now();
        let mut p = Pending::default();
        let keys: Vec<String> = (0..=MAX_PENDING_KEYS).map(|i| format!("k{i}")).collect();
        let adds: Vec<Add<'_>> = keys.iter().map(|k| add(k, 1, 60)).collect();
        assert_eq!(p.park(&[], &adds, t), 1);
        assert_eq!(
            p.park(&[], &[add("k0", 1, 60)], t),
            0,
            "known keys still sum"
        );
        let adjusts: Vec<Adjust<'_>> = keys.iter().map(|k| adjust(k, 1)).collect();
        assert_eq!(p.park(&adjusts, &[], t), 1);
        assert_eq!(p.park(&[adjust("k0", 1)], &[], t), 0);
        let (adjusts, adds) = sorted(&p, t);
        assert_eq!(adds.len(), MAX_PENDING_KEYS);
        assert_eq!(
            adds.iter().map(|a| a.amount).sum::<i64>(),
            MAX_PENDING_KEYS as i64 + 1
        );
        assert_eq!(adjusts.len(), MAX_PENDING_KEYS);
        assert_eq!(
            adjusts.iter().map(|a| a.delta).sum::<i64>(),
            MAX_PENDING_KEYS as i64 + 1
        );
    }
}
