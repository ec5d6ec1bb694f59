//! Shared state: token buckets (RPM/TPM limits), counters (budgets) and the
//! shared response cache, behind one small async [`Store`].
//!
//! Place in the pipeline: built from the policy's `state:` settings and
//! handed to `server`, which admits a request before routing it (`admit`:
//! take from buckets, check budget caps), settles after the answer
//! (`settle`: charge real usage, add spend) and may share cached answers
//! across replicas (`cache_get_many` / `cache_set_many`), and keeps the
//! conversations of stateful Responses (`responses_*`: bounded by bytes and
//! a TTL, see `responses.rs`). Two backends, an
//! enum rather than a trait object: in-process memory (the default, limits
//! per replica) and Redis (global across replicas, one round trip per call,
//! atomic scripts on Redis' clock, a failure policy for outages). Batch
//! calls from the start: a request touches several buckets and counters in
//! one call. Must not know about requests, keys' secrets or HTTP: callers
//! name buckets and counters with strings they choose.
//!
//! Files: `types.rs` (the vocabulary), `bucket.rs` (the math), `memory.rs`,
//! `connect.rs` (TLS, Sentinel, Cluster) + `link.rs` + `remote.rs` +
//! `admit.lua` + `settle.lua` (Redis; both
//! scripts begin with `bucket.lua`), `shared.rs` (failure policy),
//! `pending.rs` (replay after an outage), `period.rs` (budget periods),
//! `responses.rs` (stored conversations in process).

mod bucket;
mod connect;
mod link;
mod memory;
mod pending;
pub mod period;
mod remote;
mod responses;
mod shared;
mod types;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::config::{ResponsesStoreSettings, StateBackend, StateSettings};
use crate::metrics::Metrics;
use memory::Memory;
use responses::Conversations;
use shared::Shared;

pub use types::{Add, Adjust, Admit, Cap, StoreError, Take, Unavailable, Which};

/// Bound on every Redis call when the settings give none (zero).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// Key prefix when the settings give none (empty).
pub const DEFAULT_PREFIX: &str = "switchyard";
/// Largest value the shared cache stores, unless set otherwise.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

/// The state store; cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct Store(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    backend: Backend,
    metrics: Arc<Metrics>,
    max_value_bytes: AtomicUsize,
    /// Stored Responses conversations: their bounds, and the memory
    /// backend's own map (unused with Redis).
    responses: ResponsesStoreSettings,
    conversations: Conversations,
}

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per store, inside its Arc: boxing would only add a hop"
)]
enum Backend {
    Memory(Memory),
    Redis(Shared),
}

impl Store {
    /// The in-process store (limits per replica, no shared cache).
    pub fn memory(metrics: Arc<Metrics>) -> Store {
        Store::memory_with(&ResponsesStoreSettings::default(), metrics)
    }

    fn memory_with(responses: &ResponsesStoreSettings, metrics: Arc<Metrics>) -> Store {
        // Nothing to lose contact with.
        metrics.state_up.set(1);
        Store::with(Backend::Memory(Memory::default()), responses, metrics)
    }

    /// The store the settings name. For Redis this neither blocks nor fails
    /// when Redis is down: it connects in the background (call it inside a
    /// tokio runtime) and serves per `on_error` meanwhile. Fails only for a
    /// URL that does not parse or TLS certificates that do not load.
    pub fn new(settings: &StateSettings, metrics: Arc<Metrics>) -> Result<Store, StoreError> {
        let (url, tls, topology) = match &settings.backend {
            StateBackend::Memory => return Ok(Store::memory_with(&settings.responses, metrics)),
            StateBackend::Redis { url, tls, topology } => (url, tls, topology),
        };
        let timeout = match settings.timeout {
            Duration::ZERO => DEFAULT_TIMEOUT,
            t => t,
        };
        let connector = connect::Connector::new(url, tls, topology, timeout)?;
        let prefix = match settings.prefix.as_str() {
            "" => DEFAULT_PREFIX,
            p => p,
        };
        let shared = Shared::new(connector, settings.on_error, prefix, timeout)?;
        Ok(Store::with(
            Backend::Redis(shared),
            &settings.responses,
            metrics,
        ))
    }

    fn with(backend: Backend, responses: &ResponsesStoreSettings, metrics: Arc<Metrics>) -> Store {
        let conversations = match backend {
            Backend::Memory(_) => responses.clone(),
            // Nothing is kept in process: a minimal map.
            Backend::Redis(_) => ResponsesStoreSettings {
                max_bytes: 1,
                ..responses.clone()
            },
        };
        Store(Arc::new(Inner {
            backend,
            metrics,
            max_value_bytes: AtomicUsize::new(DEFAULT_MAX_VALUE_BYTES),
            conversations: Conversations::new(&conversations),
            responses: responses.clone(),
        }))
    }

    /// The bounds of stored Responses conversations (`state.responses`).
    pub fn responses_settings(&self) -> &ResponsesStoreSettings {
        &self.0.responses
    }

    /// Stored Responses conversations by key, in order. Redis: one MGET;
    /// an error is returned (a conversation cannot be continued
    /// without it). Memory: the in-process map.
    pub async fn responses_get_many(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<Bytes>>, StoreError> {
        match &self.0.backend {
            _ if keys.is_empty() => Ok(Vec::new()),
            Backend::Memory(_) => Ok(self.0.conversations.get_many(keys).await),
            Backend::Redis(s) => s.responses_get_many(&self.0.metrics, keys).await,
        }
    }

    /// Stores conversations for `state.responses.ttl`; values over
    /// `max_entry_bytes` are skipped. Returns how many were stored.
    pub async fn responses_put_many(&self, items: &[(&str, Bytes)]) -> Result<usize, StoreError> {
        let max = self.0.responses.max_entry_bytes;
        let items: Vec<(&str, Bytes)> = items
            .iter()
            .filter(|(_, v)| v.len() as u64 <= max)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        if items.is_empty() {
            return Ok(0);
        }
        match &self.0.backend {
            Backend::Memory(_) => self.0.conversations.put_many(&items).await,
            Backend::Redis(s) => {
                s.responses_put_many(&self.0.metrics, &items, self.0.responses.ttl)
                    .await?;
            }
        }
        Ok(items.len())
    }

    /// Deletes conversations; how many existed.
    pub async fn responses_delete_many(&self, keys: &[&str]) -> Result<u64, StoreError> {
        match &self.0.backend {
            _ if keys.is_empty() => Ok(0),
            Backend::Memory(_) => Ok(self.0.conversations.delete_many(keys).await),
            Backend::Redis(s) => s.responses_delete_many(&self.0.metrics, keys).await,
        }
    }

    /// Whether state is shared across replicas (the Redis backend).
    pub fn is_shared(&self) -> bool {
        matches!(self.0.backend, Backend::Redis(_))
    }

    /// Whether the store can answer from its backend now (memory: always;
    /// Redis: a connection is up). For readiness reports, not for admission.
    pub fn is_connected(&self) -> bool {
        match &self.0.backend {
            Backend::Memory(_) => true,
            Backend::Redis(s) => s.is_connected(),
        }
    }

    /// Values larger than this are not stored in the shared cache.
    pub fn set_max_value_bytes(&self, bytes: usize) {
        self.0.max_value_bytes.store(bytes, Ordering::Relaxed);
    }

    /// All-or-nothing admission: refused if any cap's counter is at or
    /// above its limit, or any bucket holds fewer than its take's amount
    /// (see [`Which`] for which one is reported); otherwise every take's
    /// amount is taken. Redis: one script call, atomic (none for an empty
    /// call).
    pub async fn admit(&self, takes: &[Take<'_>], caps: &[Cap<'_>]) -> Result<Admit, StoreError> {
        if takes.is_empty() && caps.is_empty() {
            return Ok(Admit::Granted);
        }
        let (result, reached) = match &self.0.backend {
            Backend::Memory(m) => return Ok(m.admit(takes, caps)),
            Backend::Redis(s) => s.admit(&self.0.metrics, takes, caps).await,
        };
        if reached {
            self.replay_in_background();
        }
        result
    }

    /// After the answer: adjusts buckets by their delta (real usage minus
    /// the reserved estimate; negative refunds) and adds to counters.
    /// Returns the counters' new totals, in order. Redis: one script call;
    /// when Redis cannot be reached (under either policy) the settlement is
    /// applied locally and replayed into Redis later, and the local totals
    /// are returned.
    pub async fn settle(
        &self,
        adjusts: &[Adjust<'_>],
        adds: &[Add<'_>],
    ) -> Result<Vec<u64>, StoreError> {
        Ok(match &self.0.backend {
            Backend::Memory(m) => m.settle(adjusts, adds),
            Backend::Redis(s) => s.settle(&self.0.metrics, adjusts, adds).await,
        })
    }

    /// Current counter values (0 for absent ones). Redis: one MGET.
    pub async fn counters(&self, keys: &[&str]) -> Result<Vec<u64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (result, reached) = match &self.0.backend {
            Backend::Memory(m) => return Ok(m.counters(keys)),
            Backend::Redis(s) => s.counters(&self.0.metrics, keys).await,
        };
        if reached {
            self.replay_in_background();
        }
        result
    }

    /// Shared cached values by SHA-256 digest, in order. Redis: one MGET;
    /// errors count and read as misses. Memory: all misses (the in-process
    /// cache is `cache::`'s own).
    pub async fn cache_get_many(&self, keys: &[[u8; 32]]) -> Vec<Option<Bytes>> {
        match &self.0.backend {
            Backend::Redis(s) if !keys.is_empty() => s.cache_get_many(&self.0.metrics, keys).await,
            _ => vec![None; keys.len()],
        }
    }

    /// Stores values by digest with their TTLs (values over the size limit
    /// and zero TTLs are skipped). Redis: one pipeline; errors count and
    /// skip the write. Memory: nothing.
    pub async fn cache_set_many(&self, items: &[([u8; 32], Bytes, Duration)]) {
        let Backend::Redis(s) = &self.0.backend else {
            return;
        };
        let max = self.0.max_value_bytes.load(Ordering::Relaxed);
        let items: Vec<(&[u8; 32], &Bytes, Duration)> = items
            .iter()
            .filter(|(_, v, ttl)| v.len() <= max && !ttl.is_zero())
            .map(|(k, v, ttl)| (k, v, *ttl))
            .collect();
        if !items.is_empty() {
            s.cache_set_many(&self.0.metrics, &items).await;
        }
    }

    /// After a round trip reached Redis: replays parked settlements, off
    /// the request's path.
    fn replay_in_background(&self) {
        if let Backend::Redis(s) = &self.0.backend
            && s.has_pending()
        {
            let store = self.clone();
            tokio::spawn(async move {
                if let Backend::Redis(s) = &store.0.backend {
                    s.settle(&store.0.metrics, &[], &[]).await;
                }
            });
        }
    }
}
