//! Response cache (moka): bounded in bytes, per-entry TTL, plus single-flight.
//!
//! Place in the pipeline: `server` consults it before routing. Chat
//! responses are keyed on the route and the full canonical request less
//! `stream` and `stream_options`, whole answers and finished streams alike
//! (`stream` converts between them, `broadcast` shares streams in flight);
//! embeddings are cached per input item (route, parameters, item), and
//! rerank scores per (route, parameters, query, document), so a batch with
//! some hits sends only its misses upstream. Keys are SHA-256 digests;
//! entries own exactly their bytes and are weighed with their overhead, so
//! `cache.max_bytes` bounds real memory; answers over `cache.max_entry_bytes`
//! are not kept. Expiry is checked against
//! `tokio::time` on read (moka's own expiry only reclaims memory). With a
//! shared state store (Redis), a second tier sits behind this replica's:
//! local misses are looked up there in one round trip per batch
//! ([`ResponseCache::get_many`]), inserts go to both, values in the format
//! of `codec`. An entry may be kept past its TTL for a stale window (the
//! route's `stale_if_error`): a normal lookup misses it, but when every
//! target failed a flow may still answer from it (`stale`), within the
//! route's maximum staleness; kept entries are weighed like the others, so
//! `cache.max_bytes` bounds them too. Entries are allocated on a heap of
//! their own (`placement`), and a store emptied by expiry is started over
//! (`housekeeping`, on a timer), so memory returns once entries expire.
//! Must not decide what is cacheable: callers only insert successful
//! responses.

mod broadcast;
mod codec;
mod housekeeping;
pub mod placement;
mod singleflight;
mod stale;
pub mod stream;

pub use broadcast::{End, Piece, Publisher, Started, StreamFlights, Subscriber};
pub use housekeeping::MAINTAIN_EVERY;
use housekeeping::{Moka, moka_store};
pub use singleflight::SingleFlight;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::state::Store;

/// A cache key: SHA-256 of the kind, route and canonical request (or
/// embedding parameters and item), so keys are small and fixed whatever the
/// prompt size, and never hold client text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

/// Feeds formatted text straight into a hasher.
struct HashWriter(Sha256);

impl std::fmt::Write for HashWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

impl CacheKey {
    fn build(parts: &[&str], canonical: impl FnOnce(&mut HashWriter)) -> CacheKey {
        let mut h = HashWriter(Sha256::new());
        for p in parts {
            h.0.update(p.as_bytes());
            h.0.update([0]);
        }
        canonical(&mut h);
        CacheKey(h.0.finalize().into())
    }

    /// Chat: route plus the whole request, keys sorted at every level,
    /// except `stream` and `stream_options`: a streamed and a whole answer
    /// to the same request serve each other.
    pub fn chat(route: &str, body: &serde_json::Map<String, serde_json::Value>) -> CacheKey {
        Self::build(&["chat", route], |h| {
            crate::api::write_canonical_map_without(body, &["stream", "stream_options"], h)
        })
    }

    /// Text completions: as chat, under their own prefix.
    pub fn completions(route: &str, body: &serde_json::Map<String, serde_json::Value>) -> CacheKey {
        Self::build(&["completions", route], |h| {
            crate::api::write_canonical_map(body, h)
        })
    }

    /// One embedding input under a route and its canonical parameters.
    pub fn embedding(route: &str, canonical_params: &str, item: &str) -> CacheKey {
        Self::build(&["emb", route, canonical_params, item], |_| {})
    }

    /// A batch of embedding inputs (the single-flight key of a batch).
    pub fn embedding_batch<'a>(
        route: &str,
        canonical_params: &str,
        items: impl Iterator<Item = &'a str>,
    ) -> CacheKey {
        Self::build(&["embbatch", route, canonical_params], |h| {
            for item in items {
                h.0.update(item.as_bytes());
                h.0.update([0]);
            }
        })
    }
}

/// Hashes `text` with its length first, so neighbouring texts cannot run
/// into each other whatever bytes they hold.
fn hash_text(h: &mut HashWriter, text: &str) {
    h.0.update((text.len() as u64).to_le_bytes());
    h.0.update(text.as_bytes());
}

impl CacheKey {
    /// One document's rerank score for `query` under a route and its
    /// canonical parameters.
    pub fn rerank(route: &str, canonical_params: &str, query: &str, document: &str) -> CacheKey {
        Self::build(&["rerank", route, canonical_params], |h| {
            hash_text(h, query);
            hash_text(h, document);
        })
    }

    /// A query and the documents sent for it (the single-flight key).
    pub fn rerank_batch<'a>(
        route: &str,
        canonical_params: &str,
        query: &str,
        documents: impl Iterator<Item = &'a str>,
    ) -> CacheKey {
        Self::build(&["rerankbatch", route, canonical_params], |h| {
            hash_text(h, query);
            for d in documents {
                hash_text(h, d);
            }
        })
    }
}

/// What is stored. All kinds own exactly the bytes they hold (no spare
/// capacity, no slice pinning a larger buffer), so the weigher is honest.
#[derive(Debug, Clone)]
pub enum Payload {
    Chat {
        body: Bytes,
        provider: Arc<str>,
    },
    /// A finished chat stream: its SSE bytes, `[DONE]` included, and
    /// whether a chunk carried usage.
    ChatStream {
        events: Bytes,
        provider: Arc<str>,
        usage: bool,
    },
    Embedding(Arc<[f32]>),
    /// One document's rerank relevance score.
    Score(f64),
}

impl Payload {
    fn size(&self) -> usize {
        match self {
            Payload::Chat { body, provider } => body.len() + provider.len(),
            Payload::ChatStream {
                events, provider, ..
            } => events.len() + provider.len(),
            Payload::Embedding(v) => v.len() * 4,
            Payload::Score(_) => 8,
        }
    }

    /// A copy of `self` that owns exactly its bytes.
    fn owned(self) -> Payload {
        match self {
            Payload::Chat { body, provider } => Payload::Chat {
                body: Bytes::copy_from_slice(&body),
                provider,
            },
            Payload::ChatStream {
                events,
                provider,
                usage,
            } => Payload::ChatStream {
                events: Bytes::copy_from_slice(&events),
                provider,
                usage,
            },
            e => e,
        }
    }
}

#[derive(Debug)]
struct Entry {
    payload: Payload,
    /// How long moka keeps it: the TTL and the stale window.
    keep: Duration,
    expires_at: Instant,
    /// Until then it may still answer when every target failed.
    stale_until: Instant,
}

/// Per-entry memory besides the payload's allocation, counted against the
/// byte budget: the key, the `Arc<Entry>` allocation, the payload's `Bytes`
/// header, and moka's node, deque links, timer wheel slot and frequency
/// sketch share. Measured with `cargo bench --bench memory`.
pub const ENTRY_OVERHEAD: usize = 400;

#[derive(Debug)]
pub struct ResponseCache {
    max_bytes: u64,
    max_entry_bytes: u64,
    /// Swapped for an empty one when every entry is gone (`housekeeping`).
    store: ArcSwap<Moka>,
    /// Whether an entry was stored since the store was last started over.
    used: AtomicBool,
    /// The shared tier (Redis) behind this replica's own: read on a local
    /// miss (in one round trip per batch), written with every insert.
    shared: Option<Store>,
}

impl ResponseCache {
    pub fn new(max_bytes: u64, max_entry_bytes: u64) -> Self {
        ResponseCache {
            max_bytes,
            max_entry_bytes,
            store: ArcSwap::from_pointee(moka_store(max_bytes)),
            used: AtomicBool::new(false),
            shared: None,
        }
    }

    /// This cache with `store`'s shared tier behind it (when the store is
    /// shared; the memory store has none).
    pub fn with_shared(mut self, store: &Store) -> Self {
        if store.is_shared() {
            store.set_max_value_bytes(self.max_entry_bytes as usize + 64);
            self.shared = Some(store.clone());
        }
        self
    }

    /// Whether entries are shared with other replicas.
    pub fn shared_store(&self) -> Option<&Store> {
        self.shared.as_ref()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn max_entry_bytes(&self) -> u64 {
        self.max_entry_bytes
    }

    async fn get_local(&self, key: &CacheKey) -> Option<Payload> {
        let store = self.store.load_full();
        let entry = placement::placed(store.get(key)).await?;
        let now = Instant::now();
        if now >= entry.expires_at {
            // Kept for its stale window: only `get_stale` may answer with it.
            if now >= entry.stale_until {
                placement::placed(store.invalidate(key)).await;
            }
            return None;
        }
        Some(entry.payload.clone())
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Payload> {
        self.get_many(std::slice::from_ref(key))
            .await
            .pop()
            .flatten()
    }

    /// Every key's payload, in order: this replica's entries first, then
    /// the misses from the shared tier in one round trip (kept locally for
    /// the time they have left).
    pub async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Payload>> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get_local(k).await);
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
            if let Some((payload, left)) = bytes.and_then(|b| codec::decode(&b)) {
                self.insert_local(keys[i], payload.clone(), left, Duration::ZERO)
                    .await;
                out[i] = Some(payload);
            }
        }
        out
    }

    async fn insert_local(
        &self,
        key: CacheKey,
        payload: Payload,
        ttl: Duration,
        stale: Duration,
    ) -> bool {
        if payload.size() as u64 > self.max_entry_bytes {
            return false;
        }
        let now = Instant::now();
        let entry = placement::within(|| {
            Arc::new(Entry {
                payload: payload.owned(),
                keep: ttl + stale,
                expires_at: now + ttl,
                stale_until: now + ttl + stale,
            })
        });
        placement::placed(self.store.load_full().insert(key, entry)).await;
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
        true
    }

    /// Stores `payload` for `ttl`, then kept `stale` longer for
    /// `get_stale`, unless it is larger than `cache.max_entry_bytes` (then
    /// it is served but not kept). Returns whether it was stored.
    pub async fn insert(
        &self,
        key: CacheKey,
        payload: Payload,
        ttl: Duration,
        stale: Duration,
    ) -> bool {
        self.insert_many(vec![(key, payload)], ttl, stale).await > 0
    }

    /// Stores every entry that fits (see [`ResponseCache::insert`]), the
    /// shared tier's in one round trip. Returns how many were stored.
    pub async fn insert_many(
        &self,
        entries: Vec<(CacheKey, Payload)>,
        ttl: Duration,
        stale: Duration,
    ) -> usize {
        let mut shared = Vec::new();
        let mut stored = 0;
        for (key, payload) in entries {
            if self.shared.is_some() && payload.size() as u64 <= self.max_entry_bytes {
                // The shared tier keeps it as long; its bytes say when it expires.
                shared.push((key.0, codec::encode(&payload, ttl), ttl + stale));
            }
            stored += usize::from(self.insert_local(key, payload, ttl, stale).await);
        }
        if let (Some(store), false) = (&self.shared, shared.is_empty()) {
            store.cache_set_many(&shared).await;
        }
        stored
    }

    /// (bytes, entries) after applying pending evictions (see
    /// [`ResponseCache::maintain`]).
    pub async fn usage(&self) -> (u64, u64) {
        let store = self.maintained().await;
        (store.weighted_size(), store.entry_count())
    }
}

#[cfg(test)]
mod tests;
