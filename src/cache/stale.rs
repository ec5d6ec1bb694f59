//! Stale answers: entries past their TTL, kept for a route's
//! `stale_if_error` window, read only when every target failed.
//!
//! Place in the pipeline: the flows call [`ResponseCache::get_stale_many`]
//! after routing failed for a cacheable request on a route that allows it
//! (`server::flows`), and answer with what it finds, marked `stale`. This
//! replica's entries are looked up first, then the shared tier in one round
//! trip for the rest. Must not return an entry older than the staleness the
//! caller allows, nor insert what it reads.

use std::time::Duration;

use tokio::time::Instant;

use super::{CacheKey, Payload, ResponseCache, codec};

impl ResponseCache {
    /// Every key's entry that is fresh, or expired at most `max_stale` ago
    /// (and still kept), in order.
    pub async fn get_stale_many(
        &self,
        keys: &[CacheKey],
        max_stale: Duration,
    ) -> Vec<Option<Payload>> {
        let now = Instant::now();
        let mut out = Vec::with_capacity(keys.len());
        let store = self.store.load_full();
        for k in keys {
            let entry = super::placement::placed(store.get(k)).await;
            out.push(entry.and_then(|e| {
                let usable = now < e.stale_until.min(e.expires_at + max_stale);
                usable.then(|| e.payload.clone())
            }));
        }
        let Some(shared) = &self.shared else {
            return out;
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return out;
        }
        let digests: Vec<[u8; 32]> = missing.iter().map(|&i| keys[i].0).collect();
        let found = shared.cache_get_many(&digests).await;
        for (&i, bytes) in missing.iter().zip(found) {
            out[i] = bytes.and_then(|b| codec::decode_stale(&b, max_stale));
        }
        out
    }

    pub async fn get_stale(&self, key: &CacheKey, max_stale: Duration) -> Option<Payload> {
        self.get_stale_many(std::slice::from_ref(key), max_stale)
            .await
            .pop()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expired_entries_answer_only_within_their_window_and_the_callers() {
        let c = ResponseCache::new(1 << 20, 1 << 20);
        let (kept, plain) = (
            CacheKey::embedding("r", "{}", "\"a\""),
            CacheKey::embedding("r", "{}", "\"b\""),
        );
        let v = || Payload::Embedding(Arc::from(vec![1.0, 2.0]));
        let (ttl, hour) = (Duration::from_secs(10), Duration::from_secs(3600));
        assert!(c.insert(kept, v(), ttl, hour).await);
        assert!(c.insert(plain, v(), ttl, Duration::ZERO).await);
        tokio::time::advance(ttl).await;
        assert!(c.get(&kept).await.is_none(), "expired for normal lookups");
        let stale = c.get_stale_many(&[kept, plain], hour).await;
        assert!(stale[0].is_some() && stale[1].is_none(), "{stale:?}");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(c.get_stale(&kept, Duration::from_secs(30)).await.is_none());
        assert!(c.get_stale(&kept, hour).await.is_some());
        tokio::time::advance(hour).await;
        assert!(
            c.get_stale(&kept, 2 * hour).await.is_none(),
            "past its window"
        );
    }
}
