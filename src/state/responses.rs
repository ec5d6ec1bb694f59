//! Stored Responses conversations in process: values by key, bounded by
//! bytes and by a TTL.
//!
//! Place in the pipeline: the memory side of the store's responses calls
//! (`Store::responses_*`): used when the backend is memory. The Redis side
//! is `remote.rs` (`{prefix}:r:{key}`, SET PX, MGET, DEL). Values are
//! opaque bytes the caller writes and reads (`server` keeps one
//! conversation per response id). Evicts the least recently used when over
//! `max_bytes`, and every value `ttl` after it was written. Must not know
//! what a value holds.

use bytes::Bytes;
use moka::future::Cache;

use crate::config::ResponsesStoreSettings;

#[derive(Debug, Clone)]
pub(crate) struct Conversations {
    cache: Cache<String, Bytes>,
}

impl Conversations {
    pub(crate) fn new(settings: &ResponsesStoreSettings) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.max_bytes)
            // A key's bytes count too; a value over u32::MAX is refused
            // before it gets here (`max_entry_bytes`).
            .weigher(|k: &String, v: &Bytes| u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX))
            .time_to_live(settings.ttl)
            .build();
        Conversations { cache }
    }

    pub(crate) async fn get_many(&self, keys: &[&str]) -> Vec<Option<Bytes>> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.cache.get(*k).await);
        }
        out
    }

    pub(crate) async fn put_many(&self, items: &[(&str, Bytes)]) {
        for (k, v) in items {
            self.cache.insert((*k).to_string(), v.clone()).await;
        }
    }

    /// How many of `keys` were there.
    pub(crate) async fn delete_many(&self, keys: &[&str]) -> u64 {
        let mut n = 0;
        for k in keys {
            n += u64::from(self.cache.remove(*k).await.is_some());
        }
        n
    }
}
