//! Routing on what the gateway sees: `least_latency`, `least_busy` and
//! `cost` against fakes whose latency and failures change while traffic
//! runs, over real HTTP. Phases are bounded by counts of answers, not by
//! sleeps; thresholds are generous but far from what a blind strategy gets.

use std::time::Duration;

use crate::common;

use common::dial::{Load, dialled, share};
use common::*;
use serde_json::json;

const MS: Duration = Duration::from_millis(1);

fn hi() -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn least_latency_moves_off_a_target_that_became_five_times_slower_and_back() {
    let (a, dial_a) = dialled(30 * MS).await;
    let (b, _dial_b) = dialled(30 * MS).await;
    let gw = gateway(&format!(
        "{}routes:\n  m:\n    strategy: least_latency\n    latency: {{decay: 1s}}\n    \
         targets: [{{provider: p0}}, {{provider: p1}}]\n",
        providers_yaml(&[&a, &b], "")
    ))
    .await;
    let mut load = Load::start(&gw, "m", 4, hi());
    load.until(80).await;
    let before = share(&load.window(20, 80), "p0");
    assert!(
        (0.2..=0.8).contains(&before),
        "equal targets share: p0 had {before}"
    );

    // p0 becomes 5x slower: after a short while, most traffic is off it.
    dial_a.set_latency(150 * MS);
    let slow_from = load.len();
    load.until(slow_from + 300).await;
    let slow = share(&load.window(slow_from + 100, slow_from + 300), "p0");
    assert!(
        slow <= 0.2,
        "p0 still had {:.0}% of the traffic",
        slow * 100.0
    );

    // p0 recovers: its old peak fades, it is tried again and wins traffic back.
    dial_a.set_latency(30 * MS);
    let back_from = load.len();
    load.until(back_from + 600).await;
    let back = share(&load.window(back_from + 300, back_from + 600), "p0");
    assert!(back >= 0.25, "p0 got only {:.0}% back", back * 100.0);
    let served = load.stop().await;
    assert_eq!(
        a.calls() + b.calls(),
        served.len(),
        "one upstream call per answer"
    );
    gw.stop().await;
}

#[tokio::test]
async fn least_latency_gives_a_slow_provider_fewer_embedding_sub_batches() {
    let (slow, _) = dialled(120 * MS).await;
    let (fast, _) = dialled(10 * MS).await;
    let gw = gateway(&format!(
        "{}routes:\n  e:\n    strategy: least_latency\n    fanout: {{max_concurrency: 2}}\n    \
         targets: [{{provider: p0, max_batch_inputs: 2}}, {{provider: p1, max_batch_inputs: 2}}]\n",
        providers_yaml(&[&slow, &fast], "")
    ))
    .await;
    for round in 0..10 {
        let inputs: Vec<String> = (0..8).map(|i| format!("r{round} i{i}")).collect();
        let r = gw.embed("e", json!(inputs)).await;
        assert_eq!(r.status(), 200);
    }
    // 40 sub-batches of 2: once both are measured, the fast one gets most.
    assert_eq!(slow.calls() + fast.calls(), 40);
    assert!(
        fast.calls() >= 3 * slow.calls(),
        "fast {} vs slow {}",
        fast.calls(),
        slow.calls()
    );
    gw.stop().await;
}

#[tokio::test]
async fn least_busy_keeps_equal_targets_equally_busy_under_load() {
    let mut ups = Vec::new();
    for _ in 0..3 {
        ups.push(dialled(60 * MS).await);
    }
    let refs: Vec<&FakeUpstream> = ups.iter().map(|(u, _)| u).collect();
    let gw = gateway(&format!(
        "{}routes:\n  m:\n    strategy: least_busy\n    \
         targets: [{{provider: p0}}, {{provider: p1}}, {{provider: p2}}]\n",
        providers_yaml(&refs, "")
    ))
    .await;
    let mut load = Load::start(&gw, "m", 45, hi());
    load.until(100).await;
    // Sample what each upstream has in flight while the load runs.
    let (mut sums, mut spread, mut samples) = ([0usize; 3], 0usize, 0usize);
    let mut tick = tokio::time::interval(7 * MS);
    let end = load.len() + 600;
    while load.len() < end {
        tick.tick().await;
        let live: Vec<usize> = refs.iter().map(|u| u.live()).collect();
        let total: usize = live.iter().sum();
        if total < 30 {
            continue; // between bursts: nothing to balance
        }
        for (s, l) in sums.iter_mut().zip(&live) {
            *s += l;
        }
        spread += live.iter().max().unwrap() - live.iter().min().unwrap();
        samples += 1;
    }
    load.stop().await;
    assert!(samples >= 20, "only {samples} samples under load");
    let mean = sums.iter().sum::<usize>() as f64 / 3.0 / samples as f64;
    let (lo, hi) = (
        *sums.iter().min().unwrap() as f64 / samples as f64,
        *sums.iter().max().unwrap() as f64 / samples as f64,
    );
    assert!(
        hi <= lo * 1.2,
        "mean in flight per target {sums:?} over {samples}"
    );
    let spread = spread as f64 / samples as f64;
    assert!(
        spread <= 0.2 * mean,
        "in flight differed by {spread:.1} on average, per-target mean {mean:.1}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn cost_picks_the_cheapest_healthy_target_and_moves_on_when_it_fails() {
    let (cheap, dial_cheap) = dialled(MS).await;
    let (mid, _) = dialled(MS).await;
    let (dear, _) = dialled(MS).await;
    let gw = gateway(&format!(
        "{}prices:\n  gpt-cheap: {{input: 0.15, output: 0.6}}\n  gpt-mid: {{input: 2.5, output: 10}}\n  \
         gpt-dear: {{input: 15, output: 60}}\n\
         routes:\n  m:\n    strategy: cost\n    retry: {{max_attempts: 1}}\n    targets:\n      \
         - {{provider: p2, model: gpt-dear}}\n      - {{provider: p1, model: gpt-mid}}\n      \
         - {{provider: p0, model: gpt-cheap}}\n",
        providers_yaml(
            &[&cheap, &mid, &dear],
            "    breaker: { failure_threshold: 3, open_for: 60s }\n"
        )
    ))
    .await;
    for _ in 0..10 {
        let r = gw.chat("m", "hi").await;
        assert_eq!(r.headers()["x-switchyard-provider"], "p0");
    }
    assert_eq!((cheap.calls(), mid.calls(), dear.calls()), (10, 0, 0));
    // The cheapest fails: each request moves on to the next cheapest...
    dial_cheap.set_failing(true);
    for _ in 0..3 {
        let r = gw.chat("m", "hi").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    }
    assert_eq!(cheap.calls(), 13);
    // ...and once its breaker is open, it is not tried at all.
    for _ in 0..5 {
        let r = gw.chat("m", "hi").await;
        assert_eq!(r.headers()["x-switchyard-provider"], "p1");
        assert_eq!(r.headers()["x-switchyard-attempts"], "1");
    }
    assert_eq!((cheap.calls(), mid.calls(), dear.calls()), (13, 8, 0));
    gw.stop().await;
}
