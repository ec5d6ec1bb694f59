//! Rolling windows over [`Sample`]s: the numbers the live page shows.
//!
//! Place in the pipeline: off the request path. A background sampler
//! pushes one sample a second into a [`Ring`] (five minutes of them); the
//! stats endpoint takes a fresh sample and calls [`compute`], which turns
//! the difference between it and the sample one window ago into rates,
//! ratios and percentiles, and the ring into sparkline points. Must not read
//! the live policy (the server adds breaker states and limits) and must not
//! hold anything that is not a metric already.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::sample::{Hist, HitMiss, ProviderSample, RouteSample, Sample};

/// How often the sampler takes a sample.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How far back the ring (and so the sparklines) reaches.
pub const SPAN: Duration = Duration::from_secs(300);

/// Rates, ratios and percentiles are over this last stretch.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Sparkline points are this far apart.
pub const STEP: Duration = Duration::from_secs(5);

/// The last [`SPAN`] of samples, oldest first.
#[derive(Debug, Default)]
pub struct Ring {
    samples: Mutex<VecDeque<Arc<Sample>>>,
}

impl Ring {
    pub fn push(&self, s: Sample) {
        let mut q = self.lock();
        let cutoff = s.at.checked_sub(SPAN + SAMPLE_EVERY);
        while q
            .front()
            .is_some_and(|old| cutoff.is_some_and(|c| old.at < c))
        {
            q.pop_front();
        }
        q.push_back(Arc::new(s));
    }

    /// The samples now, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Sample>> {
        self.lock().iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Sample>>> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    fn of(h: &Hist) -> Self {
        Percentiles {
            p50: h.quantile_ms(0.50),
            p95: h.quantile_ms(0.95),
            p99: h.quantile_ms(0.99),
        }
    }
}

/// A counter: its total since start, its rate over the window, and its
/// rate per sparkline step.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rate {
    pub total: f64,
    pub per_s: f64,
    pub spark: Vec<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteStats {
    pub route: String,
    pub requests: Rate,
    pub client_errors: Rate,
    pub server_errors: Rate,
    /// Server errors over requests in the window.
    pub error_ratio: Option<f64>,
    pub latency_ms: Percentiles,
    /// Cache hits over lookups in the window (every kind on the route).
    pub cache_hit_ratio: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Since start.
    pub hit_ratio: Option<f64>,
    pub window_hits: u64,
    pub window_misses: u64,
    pub window_hit_ratio: Option<f64>,
    /// Hit ratio per sparkline step (`null` without lookups).
    pub spark: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProviderStats {
    pub provider: String,
    /// Its kind (`openai`, `mock`, ...); filled in by the server.
    pub kind: Option<String>,
    /// `closed`, `open` or `half_open`; filled in by the server.
    pub breaker: Option<String>,
    pub in_flight: i64,
    /// Its concurrency limit, when it has one; filled in by the server.
    pub concurrency_limit: Option<u64>,
    /// Calls that reached it.
    pub calls: Rate,
    /// Calls that reached it and failed.
    pub failures: Rate,
    pub failure_ratio: Option<f64>,
    /// Non-success outcomes in the window, by outcome (refusals included:
    /// `breaker_open`, `rate_limited`).
    pub recent_failures: BTreeMap<String, u64>,
    pub latency_ms: Percentiles,
    /// p95 latency per sparkline step (`null` without calls).
    pub spark_p95_ms: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub uptime_s: f64,
    /// What the rates and ratios cover (shorter than [`WINDOW`] while the
    /// gateway is younger).
    pub window_s: f64,
    pub step_s: f64,
    pub requests: Rate,
    pub client_errors: Rate,
    pub server_errors: Rate,
    pub latency_ms: Percentiles,
    pub routes: Vec<RouteStats>,
    /// `answers` (chat, chat streams, completions), `embeddings` (per
    /// input), `rerank` (per document).
    pub cache: BTreeMap<&'static str, CacheStats>,
    pub coalesced: Rate,
    pub sub_batches: Rate,
    pub tokens: Rate,
    pub cost_usd: Rate,
    pub providers: Vec<ProviderStats>,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The stats of `now` against the ring (oldest first); `uptime` is how
/// long the gateway has run.
pub fn compute(ring: &[Arc<Sample>], now: &Sample, uptime: Duration) -> Stats {
    // The window's start: the newest sample at least WINDOW old, else the
    // oldest (a younger gateway), else nothing (all totals are new).
    let edge = now.at.checked_sub(WINDOW);
    let base = edge
        .and_then(|e| ring.iter().rev().find(|s| s.at <= e))
        .or_else(|| ring.first())
        .map(|s| s.as_ref());
    let window_s = match base {
        Some(b) => now.at.saturating_duration_since(b.at),
        None => uptime,
    }
    .as_secs_f64();
    let points = spark_points(ring, now);
    let w = Window {
        base,
        now,
        window_s,
        points: &points,
    };
    let all = |f: fn(&RouteSample) -> u64| move |s: &Sample| s.routes.values().map(f).sum::<u64>();
    let mut latency = Hist::default();
    for (name, r) in &now.routes {
        let before = base.and_then(|b| b.routes.get(name)).map(|r| &r.latency);
        merge(&mut latency, &r.latency.since(before));
    }
    Stats {
        uptime_s: uptime.as_secs_f64(),
        window_s,
        step_s: STEP.as_secs_f64(),
        requests: w.rate(all(|r| r.requests)),
        client_errors: w.rate(all(|r| r.client_errors)),
        server_errors: w.rate(all(|r| r.server_errors)),
        latency_ms: Percentiles::of(&latency),
        routes: now.routes.keys().map(|name| w.route(name)).collect(),
        cache: ["answers", "embeddings", "rerank"]
            .into_iter()
            .map(|g| (g, w.cache(g)))
            .collect(),
        coalesced: w.rate(|s| s.coalesced),
        sub_batches: w.rate(|s| s.sub_batches),
        tokens: w.rate(|s| s.tokens),
        cost_usd: w.rate_f(|s| s.cost_usd),
        providers: now.providers.keys().map(|name| w.provider(name)).collect(),
    }
}

fn merge(into: &mut Hist, h: &Hist) {
    if into.counts.len() < h.counts.len() {
        into.counts.resize(h.counts.len(), 0);
    }
    for (a, b) in into.counts.iter_mut().zip(&h.counts) {
        *a += b;
    }
}

/// The samples that bound the sparkline steps, oldest first, ending with
/// `now`: one per [`STEP`] back over [`SPAN`], where the ring has one
/// (the first sample when the gateway is younger than a step).
fn spark_points<'a>(ring: &'a [Arc<Sample>], now: &'a Sample) -> Vec<&'a Sample> {
    let steps = (SPAN.as_secs() / STEP.as_secs()) as u32;
    let mut points: Vec<&Sample> = (1..=steps)
        .rev()
        .filter_map(|k| {
            let target = now.at.checked_sub(STEP * k)?;
            ring.iter()
                .rev()
                .find(|s| s.at <= target)
                .map(|s| s.as_ref())
        })
        .collect();
    points.dedup_by(|a, b| std::ptr::eq(*a, *b));
    // A gateway younger than a step: one point from its first sample.
    if points.is_empty()
        && let Some(first) = ring.first().filter(|f| f.at < now.at)
    {
        points.push(first);
    }
    points.push(now);
    points
}

struct Window<'a> {
    base: Option<&'a Sample>,
    now: &'a Sample,
    window_s: f64,
    points: &'a [&'a Sample],
}

impl Window<'_> {
    fn per_s(&self, delta: f64) -> f64 {
        if self.window_s > 0.0 {
            delta / self.window_s
        } else {
            0.0
        }
    }

    fn rate(&self, f: impl Fn(&Sample) -> u64) -> Rate {
        self.rate_f(|s| f(s) as f64)
    }

    fn rate_f(&self, f: impl Fn(&Sample) -> f64) -> Rate {
        let total = f(self.now);
        let before = self.base.map_or(0.0, &f);
        Rate {
            total,
            per_s: self.per_s((total - before).max(0.0)),
            spark: self
                .points
                .windows(2)
                .map(|p| {
                    let dt = p[1].at.saturating_duration_since(p[0].at).as_secs_f64();
                    if dt > 0.0 {
                        (f(p[1]) - f(p[0])).max(0.0) / dt
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }

    fn route(&self, name: &Arc<str>) -> RouteStats {
        let zero = RouteSample::default();
        let get = |s: &Sample| s.routes.get(name).cloned().unwrap_or_default();
        let now = self.now.routes.get(name).unwrap_or(&zero);
        let base = self.base.map(get).unwrap_or_default();
        let requests = now.requests.saturating_sub(base.requests);
        let lookups_now = now.cache_hits + now.cache_misses;
        let lookups_base = base.cache_hits + base.cache_misses;
        RouteStats {
            route: name.to_string(),
            requests: self.rate(|s| get(s).requests),
            client_errors: self.rate(|s| get(s).client_errors),
            server_errors: self.rate(|s| get(s).server_errors),
            error_ratio: ratio(
                now.server_errors.saturating_sub(base.server_errors),
                requests,
            ),
            latency_ms: Percentiles::of(&now.latency.since(Some(&base.latency))),
            cache_hit_ratio: ratio(
                now.cache_hits.saturating_sub(base.cache_hits),
                lookups_now.saturating_sub(lookups_base),
            ),
        }
    }

    fn cache(&self, group: &str) -> CacheStats {
        let get = |s: &Sample| s.cache.get(group).copied().unwrap_or_default();
        let (now, base) = (get(self.now), self.base.map(get).unwrap_or_default());
        let hits = now.hits.saturating_sub(base.hits);
        let misses = now.misses.saturating_sub(base.misses);
        CacheStats {
            hits: now.hits,
            misses: now.misses,
            hit_ratio: ratio(now.hits, now.hits + now.misses),
            window_hits: hits,
            window_misses: misses,
            window_hit_ratio: ratio(hits, hits + misses),
            spark: self
                .points
                .windows(2)
                .map(|p| {
                    let (a, b): (HitMiss, HitMiss) = (get(p[0]), get(p[1]));
                    let h = b.hits.saturating_sub(a.hits);
                    ratio(h, h + b.misses.saturating_sub(a.misses))
                })
                .collect(),
        }
    }

    fn provider(&self, name: &Arc<str>) -> ProviderStats {
        let zero = ProviderSample::default();
        let get = |s: &Sample| s.providers.get(name).cloned().unwrap_or_default();
        let now = self.now.providers.get(name).unwrap_or(&zero);
        let base = self.base.map(get).unwrap_or_default();
        let recent_failures = now
            .outcomes
            .iter()
            .filter(|(o, _)| *o != "success")
            .filter_map(|(o, n)| {
                let d = n.saturating_sub(base.outcomes.get(o).copied().unwrap_or(0));
                (d > 0).then(|| (o.clone(), d))
            })
            .collect();
        ProviderStats {
            provider: name.to_string(),
            kind: None,
            breaker: None,
            in_flight: now.in_flight,
            concurrency_limit: None,
            calls: self.rate(|s| get(s).calls()),
            failures: self.rate(|s| get(s).failures()),
            failure_ratio: ratio(
                now.failures().saturating_sub(base.failures()),
                now.calls().saturating_sub(base.calls()),
            ),
            recent_failures,
            latency_ms: Percentiles::of(&now.latency.since(Some(&base.latency))),
            spark_p95_ms: self
                .points
                .windows(2)
                .map(|p| {
                    get(p[1])
                        .latency
                        .since(Some(&get(p[0]).latency))
                        .quantile_ms(0.95)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
