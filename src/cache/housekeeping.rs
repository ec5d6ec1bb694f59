//! The cache's moka store: how it is built (what an entry weighs), and its
//! upkeep: moka's pending work (expiry, eviction), run on a timer as well
//! as on scrapes, and a fresh store once every entry is gone.
//!
//! Place in the pipeline: off the request path. The server calls
//! [`ResponseCache::maintain`] every [`MAINTAIN_EVERY`] and the metrics
//! endpoint before it reads the cache's size. Without it, a cache nobody
//! reads or scrapes would hold expired entries until its next use. Why a
//! fresh store: moka's table keeps a removed entry's key (and its bucket)
//! as a tombstone until enough pile up to rebuild, up to a tenth of its
//! capacity; after a full cache expired those few hundred keys, spread over
//! the pages the entries had, kept several MiB of them resident. Must not
//! start over while an entry is live, nor when the store was never used
//! (that would only allocate).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use moka::Expiry;

use super::{CacheKey, ENTRY_OVERHEAD, Entry, Payload, ResponseCache, placement};

pub(super) type Moka = moka::future::Cache<CacheKey, Arc<Entry>>;

/// An empty moka store bounded to `max_bytes`, built with the cache's
/// placement mark so that its tables live among its entries.
pub(super) fn moka_store(max_bytes: u64) -> Moka {
    placement::within(|| {
        moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &CacheKey, v: &Arc<Entry>| {
                u32::try_from(v.payload.weight() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build()
    })
}

impl Payload {
    /// What the payload takes on the heap, counted against
    /// `cache.max_bytes`: its allocation (with an `Arc`'s two counts)
    /// rounded up to the allocator's size class, so that a 6 KiB vector
    /// weighs the 7 KiB it takes.
    pub(super) fn weight(&self) -> usize {
        match self {
            Payload::Chat { body, provider } => heap_size(body.len()) + provider.len(),
            Payload::ChatStream {
                events, provider, ..
            } => heap_size(events.len()) + provider.len(),
            Payload::Embedding(v) => heap_size(16 + v.len() * 4),
            Payload::Score(_) => 8,
        }
    }
}

/// The block an allocation of `n` bytes takes: mimalloc's size classes are
/// multiples of 8 up to 64 bytes, then four to each doubling (80, 96, 112,
/// 128, 160, ...). Other allocators round less, so this errs on the side
/// of the budget.
pub(super) fn heap_size(n: usize) -> usize {
    if n <= 64 {
        n.next_multiple_of(8)
    } else {
        n.next_multiple_of(n.next_power_of_two() / 8)
    }
}

struct PerEntryTtl;

// moka's `Expiry` trait names `std::time::Instant`; the value is unused
// (expiry is checked against tokio's clock in `get`).
#[allow(clippy::disallowed_types)]
impl Expiry<CacheKey, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.keep)
    }
}

/// How often the server runs [`ResponseCache::maintain`].
pub const MAINTAIN_EVERY: Duration = Duration::from_secs(2);

impl ResponseCache {
    /// Applies moka's pending work; if that left the store empty after it
    /// held entries, replaces it with an empty one (an insert racing with
    /// the swap may be lost, which is only a miss).
    pub async fn maintain(&self) {
        self.maintained().await;
    }

    /// [`ResponseCache::maintain`], returning the store now in use.
    pub(super) async fn maintained(&self) -> Arc<Moka> {
        let store = self.store.load_full();
        placement::placed(store.run_pending_tasks()).await;
        if store.entry_count() > 0 || !self.used.swap(false, Ordering::Relaxed) {
            return store;
        }
        let fresh = Arc::new(moka_store(self.max_bytes));
        self.store.store(Arc::clone(&fresh));
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Payload;

    fn key(i: usize) -> CacheKey {
        CacheKey::embedding("r", "{}", &i.to_string())
    }

    async fn fill(c: &ResponseCache, n: usize, ttl: Duration) {
        for i in 0..n {
            let v = Payload::Embedding(Arc::from(vec![0.5; 8]));
            assert!(c.insert(key(i), v, ttl, Duration::ZERO).await);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_is_started_over_only_once_every_entry_is_gone() {
        let c = ResponseCache::new(1 << 20, 1 << 16);
        let first = c.store.load_full();
        // Never used: kept.
        assert!(Arc::ptr_eq(&c.maintained().await, &first));
        fill(&c, 50, Duration::from_secs(5)).await;
        // Entries live: kept.
        assert!(Arc::ptr_eq(&c.maintained().await, &first));
        assert_eq!(c.usage().await.1, 50);
        // Every entry expired; reads drop them, and the store starts over.
        tokio::time::advance(Duration::from_secs(6)).await;
        for i in 0..50 {
            assert!(c.get(&key(i)).await.is_none());
        }
        let fresh = c.maintained().await;
        assert!(!Arc::ptr_eq(&fresh, &first), "an emptied store is replaced");
        assert_eq!(c.usage().await, (0, 0));
        // Empty and unused since: kept.
        assert!(Arc::ptr_eq(&c.maintained().await, &fresh));
        // The fresh store works.
        fill(&c, 3, Duration::from_secs(5)).await;
        assert!(c.get(&key(2)).await.is_some());
        assert!(Arc::ptr_eq(&c.maintained().await, &fresh));
    }
}
