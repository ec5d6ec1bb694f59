//! A [`Sample`]: the running totals the live page needs, read from the
//! registry at one instant.
//!
//! Place in the pipeline: off the request path. The stats sampler takes one
//! a second into a [`super::window::Ring`], and the stats endpoint takes a
//! fresh one per poll; rates and percentiles are differences of two
//! samples. It only reads what the request path already records (request,
//! upstream, cache, fan-out and usage metrics); it must not add work there
//! and must not keep label values that are not already metric labels.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::{Metric, MetricFamily};
use tokio::time::Instant;

use super::{LATENCY_BUCKETS, Metrics};

/// Endpoints that are the gateway's own (health, scrapes, the page): left
/// out of the per-route traffic.
const OWN_ENDPOINTS: &[&str] = &["health", "metrics", "dashboard", "admin", "preflight"];

/// Outcomes that are refusals before a call (not upstream failures).
pub const REFUSALS: &[&str] = &["breaker_open", "rate_limited"];

/// The cache metrics' `kind`s, grouped as the page shows them: whole
/// answers (chat, its streams, completions), embeddings per input, rerank
/// per document.
pub fn cache_group(kind: &str) -> &'static str {
    match kind {
        "embeddings" => "embeddings",
        "rerank" => "rerank",
        _ => "answers",
    }
}

/// Cumulative counts of a latency histogram, one per bucket of
/// [`LATENCY_BUCKETS`] plus `+Inf` (the total).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hist {
    pub counts: Vec<u64>,
}

impl Hist {
    fn add(&mut self, m: &Metric) {
        let h = m.get_histogram();
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BUCKETS.len() + 1];
        }
        for (slot, b) in self.counts.iter_mut().zip(h.get_bucket()) {
            *slot += b.cumulative_count();
        }
        if let Some(total) = self.counts.last_mut() {
            *total += h.get_sample_count();
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.last().copied().unwrap_or(0)
    }

    /// `self - base`, bucket by bucket (a missing base is empty).
    pub fn since(&self, base: Option<&Hist>) -> Hist {
        let zero = Vec::new();
        let before = base.map_or(&zero, |b| &b.counts);
        Hist {
            counts: self
                .counts
                .iter()
                .enumerate()
                .map(|(i, c)| c.saturating_sub(before.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// The `q` quantile in milliseconds, interpolated linearly inside its
    /// bucket as Prometheus' `histogram_quantile` does (the lowest bucket
    /// from 0; observations past the last bound read as that bound).
    /// `None` without observations.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, &upper) in LATENCY_BUCKETS.iter().enumerate() {
            let count = self.counts[i];
            if count as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
                let inside = (count - below).max(1) as f64;
                let share = ((rank - below as f64) / inside).clamp(0.0, 1.0);
                return Some((lower + (upper - lower) * share) * 1000.0);
            }
            below = count;
        }
        LATENCY_BUCKETS.last().map(|b| b * 1000.0)
    }
}

/// One route's client traffic (every endpoint but the gateway's own).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteSample {
    pub requests: u64,
    pub client_errors: u64,
    /// 5xx answers, and streams that failed after they started.
    pub server_errors: u64,
    pub latency: Hist,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

/// One provider's upstream calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderSample {
    /// Calls that reached the provider, by outcome (`success`, `timeout`,
    /// `status_5xx`, ...), and refusals (`breaker_open`, `rate_limited`).
    pub outcomes: BTreeMap<String, u64>,
    pub latency: Hist,
    pub in_flight: i64,
}

impl ProviderSample {
    /// Calls that reached the provider and failed.
    pub fn failures(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| *o != "success" && !REFUSALS.contains(&o.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn calls(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| !REFUSALS.contains(&o.as_str()))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Hits and misses of one cache group.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HitMiss {
    pub hits: u64,
    pub misses: u64,
}

/// The totals at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: Instant,
    pub routes: BTreeMap<Arc<str>, RouteSample>,
    pub providers: BTreeMap<Arc<str>, ProviderSample>,
    /// By [`cache_group`].
    pub cache: BTreeMap<&'static str, HitMiss>,
    pub coalesced: u64,
    pub sub_batches: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}

fn label<'a>(m: &'a Metric, name: &str) -> &'a str {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map_or("", |l| l.value())
}

/// Every series of one metric vector.
fn series(c: &dyn Collector) -> impl Iterator<Item = Metric> {
    c.collect()
        .into_iter()
        .flat_map(|mut f: MetricFamily| f.take_metric())
}

fn count(m: &Metric) -> u64 {
    m.get_counter().get_value() as u64
}

impl Sample {
    /// The registry's totals now.
    pub fn take(metrics: &Metrics) -> Sample {
        let mut s = Sample {
            at: Instant::now(),
            routes: BTreeMap::new(),
            providers: BTreeMap::new(),
            cache: BTreeMap::new(),
            coalesced: 0,
            sub_batches: 0,
            tokens: 0,
            cost_usd: 0.0,
        };
        let own = |m: &Metric| OWN_ENDPOINTS.contains(&label(m, "endpoint"));
        for m in series(&metrics.requests).filter(|m| !own(m)) {
            let r = s.route(label(&m, "route"));
            let n = count(&m);
            r.requests += n;
            match label(&m, "status").as_bytes().first() {
                Some(b'4') => r.client_errors += n,
                Some(b'5') | Some(b's') => r.server_errors += n,
                _ => {}
            }
        }
        for m in series(&metrics.request_duration).filter(|m| !own(m)) {
            s.route(label(&m, "route")).latency.add(&m);
        }
        for (vec, hit) in [(&metrics.cache_hits, true), (&metrics.cache_misses, false)] {
            for m in series(vec) {
                let n = count(&m);
                let group = s.cache.entry(cache_group(label(&m, "kind"))).or_default();
                let route = if hit {
                    group.hits += n;
                    &mut s.route(label(&m, "route")).cache_hits
                } else {
                    group.misses += n;
                    &mut s.route(label(&m, "route")).cache_misses
                };
                *route += n;
            }
        }
        s.coalesced = series(&metrics.coalesced).map(|m| count(&m)).sum();
        s.sub_batches = series(&metrics.fanout_sub_batches).map(|m| count(&m)).sum();
        s.tokens = series(&metrics.tokens)
            .filter(|m| label(m, "kind") != "cached")
            .map(|m| count(&m))
            .sum();
        s.cost_usd = series(&metrics.cost_usd)
            .map(|m| m.get_counter().get_value())
            .sum();
        for m in series(&metrics.upstream_requests) {
            let p = s.provider(label(&m, "provider"));
            *p.outcomes
                .entry(label(&m, "outcome").to_string())
                .or_default() += count(&m);
        }
        for m in series(&metrics.upstream_duration) {
            s.provider(label(&m, "provider")).latency.add(&m);
        }
        for m in series(&metrics.provider_in_flight) {
            s.provider(label(&m, "provider")).in_flight = m.get_gauge().get_value() as i64;
        }
        s
    }

    fn route(&mut self, name: &str) -> &mut RouteSample {
        self.routes.entry(Arc::from(name)).or_default()
    }

    fn provider(&mut self, name: &str) -> &mut ProviderSample {
        self.providers.entry(Arc::from(name)).or_default()
    }
}

/// Tokens and spend of one key on one route, summed over providers.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    pub key: String,
    pub route: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The part of the prompt the provider served from its prompt cache.
    pub cached_tokens: u64,
    /// `null` when no model of this key and route has a price.
    pub cost_usd: Option<f64>,
}

type UsageRows = BTreeMap<(String, String), Usage>;

fn usage_row<'a>(rows: &'a mut UsageRows, m: &Metric) -> &'a mut Usage {
    let (key, route) = (label(m, "key"), label(m, "route"));
    rows.entry((key.to_string(), route.to_string()))
        .or_insert_with(|| Usage {
            key: key.to_string(),
            route: route.to_string(),
            ..Usage::default()
        })
}

/// Tokens and spend per key and route since start, largest first (by
/// cost, then tokens), at most `limit` rows.
pub fn usage(metrics: &Metrics, limit: usize) -> Vec<Usage> {
    let mut rows = UsageRows::new();
    for m in series(&metrics.tokens) {
        let n = count(&m);
        match label(&m, "kind") {
            "prompt" => usage_row(&mut rows, &m).prompt_tokens += n,
            "completion" => usage_row(&mut rows, &m).completion_tokens += n,
            "cached" => usage_row(&mut rows, &m).cached_tokens += n,
            _ => {}
        }
    }
    for m in series(&metrics.cost_usd) {
        *usage_row(&mut rows, &m).cost_usd.get_or_insert(0.0) += m.get_counter().get_value();
    }
    let mut rows: Vec<Usage> = rows.into_values().collect();
    rows.sort_by(|a, b| {
        let cost = |u: &Usage| u.cost_usd.unwrap_or(0.0);
        cost(b).total_cmp(&cost(a)).then(
            (b.prompt_tokens + b.completion_tokens).cmp(&(a.prompt_tokens + a.completion_tokens)),
        )
    });
    rows.truncate(limit);
    rows
}

#[cfg(test)]
#[path = "sample_tests.rs"]
mod tests;
