//! Response cache (moka): bounded in bytes, per-entry TTL, plus single-flight.
//!
//! Place in the pipeline: `server` consults it before routing. Chat
//! responses are keyed on the route and the full canonical request;
//! embeddings are cached per input item (route, parameters, item), so a batch
//! with some hits sends only its misses upstream. Expiry is checked against
//! `tokio::time` on read (moka's own expiry only reclaims memory). Must not
//! decide what is cacheable: callers only insert successful responses.

mod singleflight;

pub use singleflight::SingleFlight;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub enum Payload {
    Chat { body: Bytes, provider: Arc<str> },
    Embedding(Arc<Vec<f32>>),
}

impl Payload {
    fn size(&self) -> usize {
        match self {
            Payload::Chat { body, provider } => body.len() + provider.len(),
            Payload::Embedding(v) => v.len() * 4,
        }
    }
}

#[derive(Debug)]
struct Entry {
    payload: Payload,
    ttl: Duration,
    expires_at: Instant,
}

struct PerEntryTtl;

impl Expiry<Arc<str>, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Fixed per-entry bookkeeping counted against the byte budget.
const ENTRY_OVERHEAD: usize = 96;

pub struct ResponseCache {
    max_bytes: u64,
    store: moka::future::Cache<Arc<str>, Arc<Entry>>,
}

impl ResponseCache {
    pub fn new(max_bytes: u64) -> Self {
        let store = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Arc<str>, v: &Arc<Entry>| {
                u32::try_from(k.len() + v.payload.size() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        ResponseCache { max_bytes, store }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn chat_key(route: &str, canonical_request: &str) -> String {
        format!("chat\0{route}\0{canonical_request}")
    }

    pub fn embedding_key(route: &str, canonical_params: &str, canonical_item: &str) -> String {
        format!("emb\0{route}\0{canonical_params}\0{canonical_item}")
    }

    pub async fn get(&self, key: &str) -> Option<Payload> {
        let entry = self.store.get(key).await?;
        if Instant::now() >= entry.expires_at {
            self.store.invalidate(key).await;
            return None;
        }
        Some(entry.payload.clone())
    }

    pub async fn insert(&self, key: String, payload: Payload, ttl: Duration) {
        let entry = Entry {
            payload,
            ttl,
            expires_at: Instant::now() + ttl,
        };
        self.store.insert(Arc::from(key), Arc::new(entry)).await;
    }

    /// (bytes, entries) after applying pending evictions.
    pub async fn usage(&self) -> (u64, u64) {
        self.store.run_pending_tasks().await;
        (self.store.weighted_size(), self.store.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_tokio_time() {
        let c = ResponseCache::new(1 << 20);
        let v = Payload::Embedding(Arc::new(vec![1.0, 2.0]));
        c.insert("k".into(), v, Duration::from_secs(10)).await;
        assert!(c.get("k").await.is_some());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(c.get("k").await.is_none());
    }

    #[tokio::test]
    async fn stays_within_its_byte_budget() {
        let c = ResponseCache::new(64 * 1024);
        for i in 0..200 {
            let v = Payload::Embedding(Arc::new(vec![0.5; 256])); // ~1 KiB each
            c.insert(format!("k{i}"), v, Duration::from_secs(60)).await;
        }
        let (bytes, entries) = c.usage().await;
        assert!(bytes <= 64 * 1024, "{bytes}");
        assert!(entries < 200 && entries > 0, "{entries}");
    }
}
