//! The rolling windows: rates and ratios over the last window, overall
//! latency across routes, the ring's five minutes and a young gateway's
//! window over its whole life.

use super::*;
use crate::metrics::Metrics;

#[tokio::test(start_paused = true)]
async fn rates_and_ratios_cover_the_last_window() {
    let m = Metrics::new();
    let ring = Ring::default();
    let start = tokio::time::Instant::now();
    // Two minutes at 10 requests a second, the last minute all cache hits.
    for second in 0..=120u64 {
        ring.push(Sample::take(&m));
        m.requests
            .with_label_values(&["chat", "r", "200"])
            .inc_by(10);
        let kind = if second < 60 {
            &m.cache_misses
        } else {
            &m.cache_hits
        };
        kind.with_label_values(&["r", "chat"]).inc_by(10);
        tokio::time::advance(SAMPLE_EVERY).await;
    }
    let now = Sample::take(&m);
    let s = compute(&ring.snapshot(), &now, start.elapsed());
    assert_eq!(s.window_s, 60.0);
    assert!(
        (s.requests.per_s - 10.0).abs() < 1e-9,
        "{}",
        s.requests.per_s
    );
    assert_eq!(s.requests.total, 1210.0);
    let chat = &s.cache["answers"];
    assert_eq!(chat.window_hit_ratio, Some(1.0));
    assert_eq!(chat.hit_ratio, Some(610.0 / 1210.0));
    assert_eq!(
        s.cache["embeddings"].hit_ratio, None,
        "no lookups, no ratio"
    );
    // Sparkline: a point per 5 s over the ring's 2 minutes, 10/s each.
    assert_eq!(s.requests.spark.len(), 24);
    assert!(s.requests.spark.iter().all(|r| (r - 10.0).abs() < 1e-9));
    assert_eq!(chat.spark.first(), Some(&Some(0.0)));
    assert_eq!(chat.spark.last(), Some(&Some(1.0)));
}

#[tokio::test(start_paused = true)]
async fn overall_latency_covers_every_route() {
    let m = Metrics::new();
    // "a" has cache lookups but no requests (no latency series).
    m.cache_hits.with_label_values(&["a", "chat"]).inc();
    m.request_duration
        .with_label_values(&["chat", "b"])
        .observe(0.075);
    let s = compute(&[], &Sample::take(&m), Duration::from_secs(1));
    assert_eq!(s.routes.len(), 2);
    assert_eq!(s.routes[0].latency_ms.p50, None);
    let p50 = s.latency_ms.p50.unwrap();
    assert!((50.0..=100.0).contains(&p50), "{p50}");
}

#[tokio::test(start_paused = true)]
async fn the_ring_keeps_five_minutes() {
    let ring = Ring::default();
    let m = Metrics::new();
    for _ in 0..1000 {
        ring.push(Sample::take(&m));
        tokio::time::advance(SAMPLE_EVERY).await;
    }
    let n = ring.len();
    assert!((300..=302).contains(&n), "{n}");
}

#[tokio::test(start_paused = true)]
async fn a_young_gateway_windows_over_its_whole_life() {
    let m = Metrics::new();
    let ring = Ring::default();
    let start = tokio::time::Instant::now();
    ring.push(Sample::take(&m));
    m.upstream_requests
        .with_label_values(&["p", "success"])
        .inc_by(8);
    m.upstream_requests
        .with_label_values(&["p", "status_5xx"])
        .inc_by(2);
    m.upstream_requests
        .with_label_values(&["p", "breaker_open"])
        .inc_by(5);
    tokio::time::advance(Duration::from_secs(4)).await;
    let s = compute(&ring.snapshot(), &Sample::take(&m), start.elapsed());
    assert_eq!(s.window_s, 4.0);
    assert_eq!(s.requests.spark.len(), 1, "younger than a step: one point");
    let p = &s.providers[0];
    assert_eq!(p.calls.total, 10.0);
    assert_eq!(p.failure_ratio, Some(0.2));
    assert_eq!(p.recent_failures["status_5xx"], 2);
    assert_eq!(p.recent_failures["breaker_open"], 5);
}
