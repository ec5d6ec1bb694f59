//! Settlements that did not reach Redis, coalesced per key, waiting to be
//! replayed: spend is never lost across an outage.
//!
//! Place in the pipeline: held by the Redis backend (`shared.rs`); a failed
//! `settle` parks its adjusts and adds here, the next round trip that
//! reaches Redis sends them first. Bounded by key count: a key beyond the
//! bound is dropped (and reported by the caller). Must not talk to Redis.
//! A settle whose outcome is unknown (a timeout after it was sent) is kept
//! too: spend may then count twice, never zero times. A reservation that
//! admission made locally (Redis down, `fail_open`) is parked here as an
//! add, so that the settlement's later correction (real minus reserved)
//! lands on a counter that holds the reservation.

use std::collections::HashMap;
use std::time::Duration;

use super::types::{Add, Adjust};

/// Most distinct keys kept per kind (buckets, counters).
pub(crate) const MAX_PENDING_KEYS: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Bucket key -> (capacity, per_minute, summed delta); the parameters
    /// are the latest given.
    adjusts: HashMap<String, (u64, u64, i64)>,
    /// Counter key -> (summed amount, latest ttl).
    adds: HashMap<String, (i64, Duration)>,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.adjusts.is_empty() && self.adds.is_empty()
    }

    /// Parks these; returns how many keys were dropped for the bound.
    pub(crate) fn park(&mut self, adjusts: &[Adjust<'_>], adds: &[Add<'_>]) -> usize {
        let mut dropped = 0;
        for a in adjusts {
            if let Some(e) = self.adjusts.get_mut(a.key) {
                *e = (a.capacity, a.per_minute, e.2.saturating_add(a.delta));
            } else if self.adjusts.len() < MAX_PENDING_KEYS {
                self.adjusts
                    .insert(a.key.to_string(), (a.capacity, a.per_minute, a.delta));
            } else {
                dropped += 1;
            }
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

    /// Puts back what a failed replay took out (`earlier`, older than what
    /// was parked meanwhile): amounts sum, the later parameters win.
    pub(crate) fn restore(&mut self, earlier: Pending) -> usize {
        let (adjusts, adds) = earlier.as_batches();
        let newer = std::mem::take(self);
        let mut dropped = self.park(&adjusts, &adds);
        let (adjusts, adds) = newer.as_batches();
        dropped += self.park(&adjusts, &adds);
        dropped
    }

    /// The parked items, borrowing their keys, ready to send.
    pub(crate) fn as_batches(&self) -> (Vec<Adjust<'_>>, Vec<Add<'_>>) {
        let adjusts = self
            .adjusts
            .iter()
            .map(|(key, &(capacity, per_minute, delta))| Adjust {
                key,
                capacity,
                per_minute,
                delta,
            })
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

    fn adjust(key: &str, delta: i64) -> Adjust<'_> {
        Adjust {
            key,
            capacity: 10,
            per_minute: 60,
            delta,
        }
    }

    fn sorted(p: &Pending) -> (Vec<Adjust<'_>>, Vec<Add<'_>>) {
        let (mut adjusts, mut adds) = p.as_batches();
        adjusts.sort_by_key(|a| a.key);
        adds.sort_by_key(|a| a.key);
        (adjusts, adds)
    }

    #[test]
    fn coalesces_per_key() {
        let mut p = Pending::default();
        assert!(p.is_empty());
        p.park(&[adjust("a", 5), adjust("a", -2)], &[add("n", 3, 60)]);
        p.park(&[adjust("b", 1)], &[add("n", 4, 50), add("m", 1, 10)]);
        assert_eq!(
            sorted(&p),
            (
                vec![adjust("a", 3), adjust("b", 1)],
                vec![add("m", 1, 10), add("n", 7, 50)]
            )
        );
    }

    #[test]
    fn restore_merges_older_under_newer() {
        let mut p = Pending::default();
        p.park(&[adjust("a", 5)], &[add("n", 3, 60)]);
        let taken = std::mem::take(&mut p);
        p.park(&[], &[add("n", 1, 30)]);
        assert_eq!(p.restore(taken), 0);
        assert_eq!(
            sorted(&p),
            (vec![adjust("a", 5)], vec![add("n", 4, 30)]),
            "amounts sum, the newer ttl wins"
        );
    }

    #[test]
    fn bounded_by_key_count() {
        let mut p = Pending::default();
        let keys: Vec<String> = (0..=MAX_PENDING_KEYS).map(|i| format!("k{i}")).collect();
        let adds: Vec<Add<'_>> = keys.iter().map(|k| add(k, 1, 60)).collect();
        assert_eq!(p.park(&[], &adds), 1);
        assert_eq!(p.park(&[], &[add("k0", 1, 60)]), 0, "known keys still sum");
        let (_, adds) = sorted(&p);
        assert_eq!(adds.len(), MAX_PENDING_KEYS);
        assert_eq!(
            adds.iter().map(|a| a.amount).sum::<i64>(),
            MAX_PENDING_KEYS as i64 + 1
        );
    }
}
