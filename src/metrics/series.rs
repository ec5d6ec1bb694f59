//! One route's per-request series, kept once looked up: the counter and
//! histogram of a request answered `200` by endpoint, and the token and
//! cost counters by provider and key alias.
//!
//! Place in the pipeline: a route's handle owns one [`RouteSeries`] (shared
//! by the per-request views of the route), and the edge's accounting goes
//! through it when the request ends. Each series is looked up in its
//! vector (`with_label_values`: its labels hashed, a lock, a map, some two
//! hundred instructions) the first time and kept; a request then costs a
//! few loads and a short lock. Anything else (another status, an endpoint
//! not listed, more provider and key pairs than [`MAX_SPENDERS`]) is looked
//! up as before. Must not decide what is counted, only where.

use std::sync::{Arc, Mutex, OnceLock};

use prometheus::{Counter, Histogram, IntCounter};

use super::Metrics;

/// The endpoints whose answered requests are kept (the ones a route serves).
const ENDPOINTS: [&str; 6] = [
    "chat",
    "embeddings",
    "responses",
    "messages",
    "completions",
    "rerank",
];

/// The most (provider, key alias) pairs a route keeps counters for; others
/// are looked up per request.
pub const MAX_SPENDERS: usize = 64;

/// A route's kept series (see the module doc). Empty until used.
#[derive(Debug, Default)]
pub struct RouteSeries {
    /// `requests_total{endpoint, route, "200"}` and
    /// `request_duration_seconds{endpoint, route}`, by [`ENDPOINTS`] index.
    answered: [OnceLock<(IntCounter, Histogram)>; ENDPOINTS.len()],
    spenders: Mutex<Vec<Spender>>,
}

/// The token counters (`prompt`, `completion`, `cached`) and the cost
/// counter of one provider and key alias on the route.
#[derive(Debug)]
pub struct Spender {
    provider: Arc<str>,
    key: Arc<str>,
    pub tokens: [IntCounter; 3],
    cost: OnceLock<Counter>,
}

/// The token kinds, in [`Spender::tokens`] order.
pub const TOKEN_KINDS: [&str; 3] = ["prompt", "completion", "cached"];

impl RouteSeries {
    /// A request on `route` through `endpoint` answered with `status`,
    /// after `secs`.
    pub fn answered(
        &self,
        m: &Metrics,
        endpoint: &'static str,
        route: &str,
        status: &str,
        secs: f64,
    ) {
        if status == "200"
            && let Some(i) = ENDPOINTS.iter().position(|e| *e == endpoint)
        {
            let (count, time) = self.answered[i].get_or_init(|| {
                (
                    m.requests.with_label_values(&[endpoint, route, status]),
                    m.request_duration.with_label_values(&[endpoint, route]),
                )
            });
            count.inc();
            time.observe(secs);
            return;
        }
        answered(m, endpoint, route, status, secs);
    }

    /// Runs `count` on the counters of `provider` and `key` on `route`.
    pub fn spent(
        &self,
        m: &Metrics,
        route: &str,
        provider: &Arc<str>,
        key: &Arc<str>,
        count: impl FnOnce(&Spender),
    ) {
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || **a == **b;
        let mut spenders = self.spenders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = spenders
            .iter()
            .find(|s| same(&s.provider, provider) && same(&s.key, key))
        {
            return count(s);
        }
        let s = Spender::new(m, route, provider, key);
        if spenders.len() < MAX_SPENDERS {
            spenders.push(s);
            count(spenders.last().expect("just pushed"));
        } else {
            drop(spenders);
            count(&s);
        }
    }
}

/// [`RouteSeries::answered`] without a route's kept series.
pub fn answered(m: &Metrics, endpoint: &str, route: &str, status: &str, secs: f64) {
    m.requests
        .with_label_values(&[endpoint, route, status])
        .inc();
    m.request_duration
        .with_label_values(&[endpoint, route])
        .observe(secs);
}

impl Spender {
    /// The counters of `provider` and `key` on `route`, looked up.
    pub fn new(m: &Metrics, route: &str, provider: &Arc<str>, key: &Arc<str>) -> Self {
        Spender {
            provider: Arc::clone(provider),
            key: Arc::clone(key),
            tokens: TOKEN_KINDS
                .map(|kind| m.tokens.with_label_values(&[route, provider, key, kind])),
            cost: OnceLock::new(),
        }
    }

    /// The cost counter (`cost_usd_total{route, provider, key}`).
    pub fn cost(&self, m: &Metrics, route: &str) -> &Counter {
        self.cost.get_or_init(|| {
            m.cost_usd
                .with_label_values(&[route, &self.provider, &self.key])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_series_count_where_a_lookup_would() {
        let m = Metrics::new();
        let s = RouteSeries::default();
        for (endpoint, status) in [("chat", "200"), ("chat", "200"), ("chat", "429")] {
            s.answered(&m, endpoint, "r", status, 0.5);
        }
        s.answered(&m, "embeddings", "r", "200", 0.25);
        s.answered(&m, "other", "r", "200", 0.25);
        let count = |e: &str, st: &str| m.requests.with_label_values(&[e, "r", st]).get();
        assert_eq!((count("chat", "200"), count("chat", "429")), (2, 1));
        assert_eq!((count("embeddings", "200"), count("other", "200")), (1, 1));
        let time = |e: &str| m.request_duration.with_label_values(&[e, "r"]);
        assert_eq!(time("chat").get_sample_count(), 3);
        assert_eq!(time("chat").get_sample_sum(), 1.5);
        assert_eq!(time("other").get_sample_count(), 1);
    }

    #[test]
    fn spenders_past_the_limit_are_counted_without_being_kept() {
        let m = Metrics::new();
        let s = RouteSeries::default();
        let p: Arc<str> = Arc::from("p");
        let keys: Vec<Arc<str>> = (0..MAX_SPENDERS + 3)
            .map(|i| Arc::from(format!("k{i}")))
            .collect();
        for _ in 0..2 {
            for key in &keys {
                s.spent(&m, "r", &p, key, |c| {
                    c.tokens[0].inc_by(2);
                    c.tokens[2].inc();
                    c.cost(&m, "r").inc_by(0.5);
                });
            }
        }
        // The same names, spelled by other `Arc`s, find the kept ones.
        let again: Arc<str> = Arc::from("k0");
        s.spent(&m, "r", &Arc::from("p"), &again, |c| c.tokens[1].inc());
        assert_eq!(s.spenders.lock().unwrap().len(), MAX_SPENDERS);
        for (i, key) in keys.iter().enumerate() {
            let tokens = |kind| m.tokens.with_label_values(&["r", "p", key, kind]).get();
            let completion = u64::from(i == 0);
            assert_eq!(
                (tokens("prompt"), tokens("completion"), tokens("cached")),
                (4, completion, 2),
                "{key}"
            );
            assert_eq!(m.cost_usd.with_label_values(&["r", "p", key]).get(), 1.0);
        }
    }
}
