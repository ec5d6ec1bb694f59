//! The in-process store: buckets and counters in one mutex-guarded map,
//! on tokio's clock.
//!
//! Place in the pipeline: the default backend (limits per replica), and the
//! local fallback of the Redis backend while Redis cannot be reached. Its
//! answers follow the same rules, in the same order, as `admit.lua` and
//! `settle.lua`. Must not await while holding its lock, nor grow without
//! bound: idle buckets and counters expire as in Redis and are swept now
//! and then.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::bucket::{self, Bucket};
use super::types::{Add, Adjust, Admit, Cap, Take, Which};

/// Operations between sweeps of idle buckets and expired counters.
const SWEEP_EVERY: u32 = 1024;

#[derive(Debug, Default)]
pub(crate) struct Memory {
    maps: Mutex<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    /// Bucket key -> state and when it may be forgotten (as Redis'
    /// PEXPIRE: a second after it would be full again).
    buckets: HashMap<String, (Bucket, Instant)>,
    counters: HashMap<String, Counter>,
    ops: u32,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    value: u64,
    expires: Instant,
}

impl Maps {
    fn level(&self, key: &str, now: Instant, capacity: u64, per_minute: u64) -> f64 {
        match self.buckets.get(key) {
            Some((b, expires)) if *expires > now => b.level_at(now, capacity, per_minute),
            _ => capacity as f64,
        }
    }

    fn write(&mut self, key: &str, level: f64, now: Instant, capacity: u64, per_minute: u64) {
        let ttl = bucket::idle_ttl_ms(level, capacity, per_minute);
        let expires = now + Duration::from_millis(ttl);
        self.buckets
            .insert(key.to_string(), (Bucket::new(level, now), expires));
    }

    fn counter(&self, key: &str, now: Instant) -> u64 {
        match self.counters.get(key) {
            Some(c) if c.expires > now => c.value,
            _ => 0,
        }
    }

    /// Adds `amount` to a counter (see `Add`); returns its total.
    fn add(&mut self, key: &str, amount: i64, ttl: Duration, now: Instant) -> u64 {
        let c = match self.counters.get(key) {
            Some(c) if c.expires > now => Counter {
                value: c.value.saturating_add_signed(amount),
                expires: c.expires,
            },
            // A reservation given back after its counter expired.
            _ if amount < 0 => return 0,
            _ => Counter {
                value: amount.unsigned_abs(),
                expires: now + ttl,
            },
        };
        self.counters.insert(key.to_string(), c);
        c.value
    }

    fn tick(&mut self, now: Instant) {
        self.ops = self.ops.wrapping_add(1);
        if self.ops.is_multiple_of(SWEEP_EVERY) {
            self.buckets.retain(|_, (_, expires)| *expires > now);
            self.counters.retain(|_, c| c.expires > now);
        }
    }
}

impl Memory {
    fn lock(&self) -> MutexGuard<'_, Maps> {
        // A panic elsewhere cannot leave the maps half-written (every write
        // is one insert), so a poisoned lock is still safe to use.
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// All-or-nothing admission (see [`super::Store::admit`]).
    pub(crate) fn admit(&self, takes: &[Take<'_>], caps: &[Cap<'_>]) -> Admit {
        let now = Instant::now();
        let mut maps = self.lock();
        maps.tick(now);
        for (i, cap) in caps.iter().enumerate() {
            if maps.counter(cap.key, now) >= cap.limit {
                return Admit::Refused {
                    which: Which::Cap(i),
                    wait: None,
                };
            }
        }
        // Levels after this call's takes, so a key named twice is charged twice.
        let mut after: Vec<(&str, f64, &Take<'_>)> = Vec::with_capacity(takes.len());
        let mut worst: Option<(usize, Option<Duration>)> = None;
        for (i, t) in takes.iter().enumerate() {
            let level = match after.iter().rev().find(|(k, _, _)| *k == t.key) {
                Some((_, level, _)) => *level,
                None => maps.level(t.key, now, t.capacity, t.per_minute),
            };
            if level < t.amount as f64 {
                let wait = bucket::wait_for(level, t.amount, t.capacity, t.per_minute);
                if worst.is_none_or(|(_, w)| bucket::longer(wait, w)) {
                    worst = Some((i, wait));
                }
            }
            after.push((t.key, level - t.amount as f64, t));
        }
        if let Some((i, wait)) = worst {
            return Admit::Refused {
                which: Which::Take(i),
                wait,
            };
        }
        for (i, &(key, level, t)) in after.iter().enumerate() {
            // The last level of a key named twice is its final one.
            if !after[i + 1..].iter().any(|(k, _, _)| *k == key) {
                maps.write(key, level, now, t.capacity, t.per_minute);
            }
        }
        for cap in caps.iter().filter(|c| c.amount > 0) {
            let amount = i64::try_from(cap.amount).unwrap_or(i64::MAX);
            maps.add(cap.key, amount, cap.ttl, now);
        }
        Admit::Granted
    }

    /// Sets counters to values read from the shared store (the last known
    /// spend, kept for when it cannot be reached); a new one expires after
    /// its ttl.
    pub(crate) fn observe(&self, counters: &[(&str, u64, Duration)]) {
        let now = Instant::now();
        let mut maps = self.lock();
        for &(key, value, ttl) in counters {
            let expires = match maps.counters.get(key) {
                Some(c) if c.expires > now => c.expires,
                _ => now + ttl,
            };
            maps.counters
                .insert(key.to_string(), Counter { value, expires });
        }
    }

    /// Adjusts buckets and adds to counters; returns the counters' totals.
    pub(crate) fn settle(&self, adjusts: &[Adjust<'_>], adds: &[Add<'_>]) -> Vec<u64> {
        let now = Instant::now();
        let mut maps = self.lock();
        maps.tick(now);
        for a in adjusts {
            let level = maps.level(a.key, now, a.capacity, a.per_minute);
            let level = (level - a.delta as f64).min(a.capacity as f64);
            maps.write(a.key, level, now, a.capacity, a.per_minute);
        }
        adds.iter()
            .map(|a| maps.add(a.key, a.amount, a.ttl, now))
            .collect()
    }

    pub(crate) fn counters(&self, keys: &[&str]) -> Vec<u64> {
        let now = Instant::now();
        let maps = self.lock();
        keys.iter().map(|k| maps.counter(k, now)).collect()
    }

    #[cfg(test)]
    fn bucket_count(&self) -> usize {
        self.lock().buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(key: &str, amount: u64) -> Take<'_> {
        // Ten tokens, one per second.
        Take {
            key,
            capacity: 10,
            per_minute: 60,
            amount,
        }
    }

    fn refused(which: Which, wait: Option<Duration>) -> Admit {
        Admit::Refused { which, wait }
    }

    #[tokio::test(start_paused = true)]
    async fn admission_is_all_or_nothing() {
        let m = Memory::default();
        assert_eq!(m.admit(&[take("a", 8)], &[]), Admit::Granted);
        // b would fit, a does not: neither is taken.
        assert_eq!(
            m.admit(&[take("b", 5), take("a", 5)], &[]),
            refused(Which::Take(1), Some(Duration::from_secs(3)))
        );
        assert_eq!(
            m.admit(&[take("b", 10)], &[]),
            Admit::Granted,
            "b untouched"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(m.admit(&[take("a", 5)], &[]), Admit::Granted, "exact wait");
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_wait_is_reported_and_never_beats_all() {
        let m = Memory::default();
        assert_eq!(m.admit(&[take("a", 9), take("b", 8)], &[]), Admit::Granted);
        assert_eq!(
            m.admit(&[take("a", 2), take("b", 5)], &[]),
            refused(Which::Take(1), Some(Duration::from_secs(3)))
        );
        assert_eq!(
            m.admit(&[take("b", 5), take("a", 11)], &[]),
            refused(Which::Take(1), None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_named_twice_is_charged_twice() {
        let m = Memory::default();
        assert_eq!(
            m.admit(&[take("a", 6), take("a", 6)], &[]),
            refused(Which::Take(1), Some(Duration::from_secs(2)))
        );
        assert_eq!(m.admit(&[take("a", 5), take("a", 5)], &[]), Admit::Granted);
        assert_eq!(
            m.admit(&[take("a", 1)], &[]),
            refused(Which::Take(0), Some(Duration::from_secs(1)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn caps_refuse_at_the_limit_and_come_first() {
        let m = Memory::default();
        let ttl = Duration::from_secs(60);
        let cap = Cap {
            key: "n",
            limit: 5,
            amount: 0,
            ttl,
        };
        assert_eq!(m.admit(&[], &[cap]), Admit::Granted);
        let add = |amount| Add {
            key: "n",
            amount,
            ttl,
        };
        assert_eq!(m.settle(&[], &[add(4)]), vec![4]);
        assert_eq!(m.admit(&[take("a", 1)], &[cap]), Admit::Granted);
        assert_eq!(m.settle(&[], &[add(1)]), vec![5]);
        assert_eq!(
            m.admit(&[take("a", 100)], &[cap]),
            refused(Which::Cap(0), None)
        );
        assert_eq!(m.counters(&["n", "other"]), vec![5, 0]);
        tokio::time::advance(ttl).await;
        assert_eq!(m.counters(&["n"]), vec![0], "expired with its first ttl");
        assert_eq!(m.settle(&[], &[add(2)]), vec![2], "recreated");
    }

    #[tokio::test(start_paused = true)]
    async fn caps_reserve_until_settled_so_concurrent_admissions_overshoot_by_one_estimate() {
        let m = Memory::default();
        let ttl = Duration::from_secs(60);
        let cap = Cap {
            key: "n",
            limit: 60,
            amount: 25,
            ttl,
        };
        // In flight together: 0, 25, 50 are under 60; at 75 it refuses.
        let granted = (0..50)
            .filter(|_| m.admit(&[], &[cap]) == Admit::Granted)
            .count();
        assert_eq!(granted, 3);
        assert_eq!(m.counters(&["n"]), vec![75], "at most one estimate over");
        // Each spent 10 of its 25: the reservations turn into real spend.
        let add = |amount| Add {
            key: "n",
            amount,
            ttl,
        };
        for _ in 0..3 {
            m.settle(&[], &[add(10 - 25)]);
        }
        assert_eq!(m.counters(&["n"]), vec![30]);
        assert_eq!(m.admit(&[], &[cap]), Admit::Granted, "room again");
        // A reservation given back after its counter expired creates nothing.
        tokio::time::advance(ttl).await;
        assert_eq!(m.settle(&[], &[add(-25)]), vec![0]);
        assert_eq!(m.counters(&["n"]), vec![0]);
        // The last known spend from the shared store, kept as it was read.
        m.observe(&[("k", 99, ttl)]);
        assert_eq!(m.counters(&["k"]), vec![99]);
        let spent = Cap {
            key: "k",
            limit: 90,
            amount: 1,
            ttl,
        };
        assert_eq!(m.admit(&[], &[spent]), refused(Which::Cap(0), None));
    }

    #[tokio::test(start_paused = true)]
    async fn settle_charges_into_debt_and_refunds_up_to_capacity() {
        let m = Memory::default();
        let adjust = |delta| Adjust {
            key: "a",
            capacity: 10,
            per_minute: 60,
            delta,
        };
        assert_eq!(m.admit(&[take("a", 2)], &[]), Admit::Granted);
        m.settle(&[adjust(13)], &[]);
        assert_eq!(
            m.admit(&[take("a", 0)], &[]),
            refused(Which::Take(0), Some(Duration::from_secs(5))),
            "five tokens of debt"
        );
        m.settle(&[adjust(-100)], &[]);
        assert_eq!(m.admit(&[take("a", 10)], &[]), Admit::Granted, "refunded");
        assert_eq!(
            m.admit(&[take("a", 1)], &[]),
            refused(Which::Take(0), Some(Duration::from_secs(1))),
            "not above capacity"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_buckets_are_swept_a_second_after_they_are_full() {
        let m = Memory::default();
        for i in 0..100 {
            assert_eq!(m.admit(&[take(&format!("k{i}"), 1)], &[]), Admit::Granted);
        }
        assert_eq!(m.bucket_count(), 100);
        let sweep = || {
            for _ in 0..SWEEP_EVERY {
                m.settle(&[], &[]);
            }
        };
        // Full again after 1s (one token at one per second), kept 1s more.
        tokio::time::advance(Duration::from_millis(1_999)).await;
        sweep();
        assert_eq!(m.bucket_count(), 100);
        tokio::time::advance(Duration::from_millis(1)).await;
        sweep();
        assert_eq!(m.bucket_count(), 0);
    }
}
