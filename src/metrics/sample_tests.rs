//! Samples: bucket quantiles interpolated, a window as the difference of
//! two samples, grouping by route, cache kind and outcome, usage per key
//! and route.

use super::*;

fn hist(observations_ms: &[f64]) -> Hist {
    let m = Metrics::new();
    let h = m.upstream_duration.with_label_values(&["p"]);
    for ms in observations_ms {
        h.observe(ms / 1000.0);
    }
    let mut out = Hist::default();
    for metric in series(&m.upstream_duration) {
        out.add(&metric);
    }
    out
}

#[test]
fn quantiles_interpolate_inside_their_bucket() {
    // 100 calls spread evenly in the (50ms, 100ms] bucket.
    let h = hist(&[75.0; 100]);
    assert_eq!(h.total(), 100);
    let p50 = h.quantile_ms(0.5).unwrap();
    assert!((p50 - 75.0).abs() < 1e-9, "{p50}");
    let p99 = h.quantile_ms(0.99).unwrap();
    assert!((p99 - 99.5).abs() < 1e-9, "{p99}");
    assert_eq!(Hist::default().quantile_ms(0.5), None);
    // Past the last bound: read as the last bound.
    assert_eq!(hist(&[500_000.0]).quantile_ms(0.5), Some(120_000.0));
}

#[test]
fn a_window_is_the_difference_of_two_samples() {
    let before = hist(&[3.0, 3.0]);
    let after = hist(&[3.0, 3.0, 700.0, 700.0]);
    let window = after.since(Some(&before));
    assert_eq!(window.total(), 2);
    let p50 = window.quantile_ms(0.5).unwrap();
    assert!((500.0..=1000.0).contains(&p50), "{p50}");
}

#[test]
fn a_sample_groups_routes_cache_kinds_and_outcomes() {
    let m = Metrics::new();
    m.requests
        .with_label_values(&["chat", "r", "200"])
        .inc_by(5);
    m.requests.with_label_values(&["chat", "r", "429"]).inc();
    m.requests.with_label_values(&["chat", "r", "503"]).inc();
    m.requests
        .with_label_values(&["chat", "r", "stream_error"])
        .inc();
    m.requests
        .with_label_values(&["dashboard", "_unknown", "200"])
        .inc_by(9);
    m.cache_hits.with_label_values(&["r", "chat"]).inc_by(3);
    m.cache_hits.with_label_values(&["r", "chat_stream"]).inc();
    m.cache_misses.with_label_values(&["r", "chat"]).inc_by(2);
    m.cache_hits
        .with_label_values(&["e", "embeddings"])
        .inc_by(7);
    m.upstream_requests
        .with_label_values(&["p", "success"])
        .inc_by(4);
    m.upstream_requests
        .with_label_values(&["p", "timeout"])
        .inc();
    m.upstream_requests
        .with_label_values(&["p", "breaker_open"])
        .inc_by(2);
    m.provider_in_flight.with_label_values(&["p"]).set(3);
    let s = Sample::take(&m);
    let r = &s.routes["r"];
    assert_eq!((r.requests, r.client_errors, r.server_errors), (8, 1, 2));
    assert!(
        !s.routes.contains_key("_unknown"),
        "the page's own polls are not traffic"
    );
    assert_eq!(s.cache["answers"], HitMiss { hits: 4, misses: 2 });
    assert_eq!(s.cache["embeddings"], HitMiss { hits: 7, misses: 0 });
    let p = &s.providers["p"];
    assert_eq!((p.calls(), p.failures(), p.in_flight), (5, 1, 3));
}

#[test]
fn usage_is_summed_per_key_and_route() {
    let m = Metrics::new();
    m.tokens
        .with_label_values(&["r", "a", "team", "prompt"])
        .inc_by(10);
    m.tokens
        .with_label_values(&["r", "b", "team", "prompt"])
        .inc_by(5);
    m.tokens
        .with_label_values(&["r", "a", "team", "completion"])
        .inc_by(2);
    m.tokens
        .with_label_values(&["e", "a", "ops", "prompt"])
        .inc_by(100);
    m.cost_usd
        .with_label_values(&["r", "a", "team"])
        .inc_by(0.5);
    let rows = usage(&m, 10);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].key.as_str(), rows[0].route.as_str()),
        ("team", "r"),
        "the costliest first"
    );
    assert_eq!((rows[0].prompt_tokens, rows[0].completion_tokens), (15, 2));
    assert_eq!(rows[0].cost_usd, Some(0.5));
    assert_eq!(rows[1].cost_usd, None);
    assert_eq!(usage(&m, 1).len(), 1);
}
