//! The per-item flow: per-item cache, dedupe, one shared upstream fetch of
//! the misses.
//!
//! Place in the pipeline: behind embeddings (one item per input, fetched in
//! parallel sub-batches by `fanout`) and rerank (one item per document,
//! fetched in one call). [`serve`] looks every item up in the cache in one
//! batch (one round trip to a shared tier), deduplicates the misses (first
//! seen order), lets identical concurrent requests share one fetch of them
//! (the leader's fetch holds its request permit), caches each fetched value
//! under its own key (kept past its TTL for the route's `stale_if_error`
//! window), and hands back every item's value in the client's order with
//! what the cache did. A fetch whose items (or some sub-batch of them)
//! every target failed may answer them from expired entries within the
//! maximum staleness ([`Stale`]), all of them or none: never an answer
//! with a hole; the cache state is then `stale`. The endpoint writes its
//! answer. Must not reorder items or change a value.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::flights::Flights;
use crate::api::GatewayError;
use crate::cache::{CacheKey, Payload, ResponseCache, SingleFlight};
use crate::metrics::Metrics;
use crate::routing::RouteHandle;
use crate::server::edge::context::RequestCtx;
use crate::server::http::X_CACHE;
use crate::server::state::Runtime;

/// What a fetch of missed items may use: all owned, for a shared call.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub rt: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    pub route: Arc<RouteHandle>,
    /// Where items every target failed may still be found, when the route
    /// allows it.
    pub stale: Option<Stale>,
}

/// Expired entries a failed fetch may answer from (`stale_if_error`).
#[derive(Debug, Clone)]
pub(crate) struct Stale {
    cache: Arc<ResponseCache>,
    metrics: Arc<Metrics>,
    route: Arc<RouteHandle>,
    kind: &'static str,
    /// The scoped parameters items are keyed under.
    pub params: Arc<str>,
    max: Duration,
}

impl Stale {
    /// The values of the items under `keys`, if every one of them is
    /// kept (fresh or within the maximum staleness); counted when found.
    pub(crate) async fn values<T: Items>(&self, keys: &[CacheKey]) -> Option<Vec<T::Value>> {
        let found = self.cache.get_stale_many(keys, self.max).await;
        let values: Vec<T::Value> = found
            .into_iter()
            .map(|p| p.and_then(T::from_payload))
            .collect::<Option<_>>()?;
        let route = self.route.spec.name.as_str();
        self.metrics
            .cache_stale
            .with_label_values(&[route, self.kind])
            .inc_by(values.len() as u64);
        tracing::warn!(
            route,
            items = values.len(),
            "every target failed; answered from expired cache entries"
        );
        Some(values)
    }

    /// The route's name, for keys.
    pub(crate) fn route(&self) -> &str {
        &self.route.spec.name
    }
}

/// One endpoint's request as a list of separately cached items.
pub(crate) trait Items {
    /// The cached value of one item (a vector, a score).
    type Value: Clone + Send + Sync + 'static;
    /// What one fetch answers, shared with identical requests: the values
    /// of the items it was given, in order, and what it spent.
    type Done: Clone + Send + Sync + 'static;
    /// The cache metrics' kind.
    const KIND: &'static str;

    fn len(&self) -> usize;
    /// Item `i` as text: equal texts are one item (deduplicated).
    fn item(&self, i: usize) -> &str;
    /// The parameters every item's answer depends on (before scoping).
    fn params(&self) -> String;
    /// The cache key of item `i` under the scoped `params`.
    fn item_key(&self, route: &str, params: &str, i: usize) -> CacheKey;
    /// The key of a fetch of `items`, for sharing it.
    fn batch_key(&self, route: &str, params: &str, items: &[usize]) -> CacheKey;
    fn from_payload(p: Payload) -> Option<Self::Value>;
    fn to_payload(v: &Self::Value) -> Payload;
    fn flights(f: &Flights) -> &SingleFlight<CacheKey, Self::Done>;
    /// The fetched values, in the order of the items fetched.
    fn values(done: &Self::Done) -> &[Self::Value];
    /// Whether fetched value `u` came from an expired entry (its fetch
    /// failed everywhere and [`Stale`] answered it).
    fn stale(done: &Self::Done, u: usize) -> bool;
    /// The value of an item a fetch did not answer (fetches check their
    /// answer's length, so this is not reached in practice).
    fn missing() -> Self::Value;
    /// Fetches `items` upstream (one value per item, in order); where every
    /// target failed, from `up.stale` when given.
    fn fetch(
        &self,
        up: Upstream,
        items: &[usize],
    ) -> impl Future<Output = Result<Self::Done, GatewayError>> + Send + 'static;
}

/// Every item's value in the client's order, and what the cache did.
#[derive(Debug)]
pub(crate) struct Served<T: Items> {
    pub values: Vec<T::Value>,
    /// The fetch that went upstream for this request; `None` when every
    /// item came from the cache.
    pub fetched: Option<T::Done>,
    /// The fetch was another request's (it spent the tokens).
    pub shared: bool,
    /// Items answered without an upstream call of this request's own.
    pub cached_items: usize,
    /// `hit`, `miss` or `partial`; `None` when the cache was not used.
    pub cache: Option<&'static str>,
}

impl<T: Items> Served<T> {
    /// `x-switchyard-cache` (and, with `count`, how many items came from
    /// the cache as `x-switchyard-cached-inputs`) into `h`; records the
    /// state in the context.
    pub(crate) fn mark(&self, rc: &mut RequestCtx, h: &mut HeaderMap, count: bool) {
        if let Some(state) = self.cache {
            h.insert(X_CACHE.clone(), HeaderValue::from_static(state));
            if count {
                h.insert(
                    "x-switchyard-cached-inputs",
                    HeaderValue::from(self.cached_items),
                );
            }
            rc.cache = Some(state);
        }
    }
}

/// The per-item flow for `items` on `route` (see the module doc); the
/// cache is skipped when `use_cache` is false (items are still
/// deduplicated).
pub(crate) async fn serve<T: Items>(
    rc: &RequestCtx,
    route: &Arc<RouteHandle>,
    items: &T,
    use_cache: bool,
) -> Result<Served<T>, GatewayError> {
    let metrics = &rc.state.metrics;
    let name = route.spec.name.as_str();
    let params = rc.cache_namespace(route, &items.params()).into_owned();
    let n = items.len();
    let keys: Vec<CacheKey> = if use_cache {
        (0..n).map(|i| items.item_key(name, &params, i)).collect()
    } else {
        Vec::new()
    };
    let mut values: Vec<Option<T::Value>> = vec![None; n];
    if use_cache {
        // One lookup for the whole batch (one round trip to a shared tier).
        for (slot, hit) in values.iter_mut().zip(rc.rt.cache.get_many(&keys).await) {
            *slot = hit.and_then(T::from_payload);
        }
    }
    // Unique missed items, in first-seen order, and where each one goes.
    let mut unique: Vec<usize> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut slot_of: Vec<Option<usize>> = vec![None; n];
    for i in (0..n).filter(|&i| values[i].is_none()) {
        let u = *position.entry(items.item(i)).or_insert_with(|| {
            unique.push(i);
            unique.len() - 1
        });
        slot_of[i] = Some(u);
    }
    let missed = slot_of.iter().filter(|s| s.is_some()).count();
    if use_cache {
        let label = [name, T::KIND];
        metrics
            .cache_hits
            .with_label_values(&label)
            .inc_by((n - missed) as u64);
        metrics
            .cache_misses
            .with_label_values(&label)
            .inc_by(missed as u64);
    }
    let (mut fetched, mut shared, mut stale_items) = (None, false, 0);
    let unique_count = unique.len();
    if !unique.is_empty() {
        let max_stale = route.spec.cache.stale_if_error.items.filter(|_| use_cache);
        let stale = max_stale.map(|max| Stale {
            cache: Arc::clone(&rc.rt.cache),
            metrics: Arc::clone(metrics),
            route: Arc::clone(route),
            kind: T::KIND,
            params: Arc::from(params.as_str()),
            max,
        });
        let up = Upstream {
            rt: Arc::clone(&rc.rt),
            metrics: Arc::clone(metrics),
            route: Arc::clone(route),
            stale,
        };
        let fetch = items.fetch(up, &unique);
        let permit = rc.permit.clone();
        let (cache, ttl) = (Arc::clone(&rc.rt.cache), route.spec.cache.ttl);
        let keep = max_stale.unwrap_or_default();
        let unique_keys: Vec<CacheKey> = if use_cache {
            unique.iter().map(|&i| keys[i]).collect()
        } else {
            Vec::new()
        };
        let work = async move {
            // Holds the leader's permit until the upstream calls are over.
            let _permit = permit;
            let done = fetch.await?;
            if !unique_keys.is_empty() {
                // Values from expired entries are not stored again as fresh.
                let entries = unique_keys
                    .into_iter()
                    .zip(T::values(&done))
                    .enumerate()
                    .filter(|(u, _)| !T::stale(&done, *u))
                    .map(|(_, (key, v))| (key, T::to_payload(v)))
                    .collect();
                cache.insert_many(entries, ttl, keep).await;
            }
            Ok(done)
        };
        let done = if use_cache {
            let key = items.batch_key(name, &params, &unique);
            let (result, leader) = T::flights(&rc.state.flights).run(key, work).await;
            if !leader {
                shared = true;
                metrics.coalesced.with_label_values(&[name, T::KIND]).inc();
            }
            result?
        } else {
            work.await?
        };
        for (slot, u) in values.iter_mut().zip(&slot_of) {
            if let Some(u) = u {
                *slot = T::values(&done).get(*u).cloned();
            }
        }
        stale_items = slot_of
            .iter()
            .flatten()
            .filter(|&&u| u < unique_count && T::stale(&done, u))
            .count();
        fetched = Some(done);
    }
    let cache = use_cache.then_some(match missed {
        _ if stale_items > 0 => "stale",
        0 => "hit",
        _ if shared => "hit",
        m if m == n => "miss",
        _ => "partial",
    });
    let values = values
        .into_iter()
        .map(|v| v.unwrap_or_else(T::missing))
        .collect();
    Ok(Served {
        values,
        fetched,
        shared,
        cached_items: if shared {
            n
        } else {
            (n - missed + stale_items).min(n)
        },
        cache,
    })
}
