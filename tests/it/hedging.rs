//! Hedged requests over real HTTP: a heavy-tailed fake (one answer in 20
//! takes 20x longer), the p99 with and without hedging, the share of extra
//! upstream calls the retry budget allows, the per-second cap, and a stream
//! hedged before its first event.

use std::time::Duration;

use crate::common;

use common::dial::{Load, dialled, quantile};
use common::*;
use serde_json::json;

const MS: Duration = Duration::from_millis(1);

/// A heavy-tailed target (p0) and a steady one (p1), a plain route and a
/// hedged one (hedges may add 15% of the calls, none of the budget's floor).
async fn heavy_tail() -> (FakeUpstream, FakeUpstream, TestGateway) {
    let (tailed, dial) = dialled(20 * MS).await;
    dial.set_tail(20, 20);
    let (steady, _) = dialled(20 * MS).await;
    let budget = "    retry: { budget: { ratio: 0.15, min_per_second: 0 } }\n";
    let gw = gateway(&format!(
        "{}routes:\n  plain:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n{budget}\
         \x20 hedged:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n{budget}    \
         hedge: {{delay: 80ms, max_per_second: 100}}\n",
        providers_yaml(&[&tailed, &steady], "")
    ))
    .await;
    (tailed, steady, gw)
}

fn hi() -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn hedging_cuts_the_p99_of_a_heavy_tail_within_its_share_of_extra_calls() {
    let (tailed, steady, gw) = heavy_tail().await;
    let calls = || tailed.calls() + steady.calls();
    let mut load = Load::start(&gw, "plain", 4, hi());
    load.until(300).await;
    let plain = load.stop().await;
    assert_eq!(calls(), plain.len(), "no hedges without `hedge`");
    let mut load = Load::start(&gw, "hedged", 4, hi());
    load.until(300).await;
    let hedged = load.stop().await;
    let extra = calls() - plain.len() - hedged.len();
    let (p99_plain, p99_hedged) = (quantile(&plain, 0.99), quantile(&hedged, 0.99));
    assert!(
        p99_plain >= 300 * MS,
        "the tail shows without hedging: {p99_plain:?}"
    );
    assert!(
        p99_hedged * 2 <= p99_plain,
        "p99 {p99_hedged:?} hedged vs {p99_plain:?} plain"
    );
    assert!(
        extra as f64 <= 0.15 * hedged.len() as f64,
        "{extra} extra calls for {} answers",
        hedged.len()
    );
    let sent = gw
        .metric(r#"switchyard_hedges_total{route="hedged"}"#)
        .await;
    let won = gw
        .metric(r#"switchyard_hedges_won_total{route="hedged"}"#)
        .await;
    assert!(
        sent >= 5.0 && sent as usize >= extra,
        "sent {sent}, extra calls {extra}"
    );
    assert!(won >= 5.0 && won <= sent, "won {won} of {sent}");
    gw.stop().await;
}

#[tokio::test]
async fn hedges_are_bounded_by_the_retry_budget_and_the_rate_cap() {
    let (up, _dial) = dialled(30 * MS).await;
    let gw = gateway(&format!(
        "{}routes:\n  eager:\n    targets: [{{provider: p0}}]\n    \
         retry: {{ budget: {{ ratio: 0.1, min_per_second: 0 }} }}\n    \
         hedge: {{delay: 1ms, max_per_second: 1000}}\n\
         \x20 capped:\n    targets: [{{provider: p0}}]\n    \
         retry: {{ budget: {{ ratio: 10, min_per_second: 0 }} }}\n    \
         hedge: {{delay: 1ms, max_per_second: 2}}\n",
        providers_yaml(&[&up], "")
    ))
    .await;
    // Every call would hedge: the budget lets 1 in 10 through.
    let mut load = Load::start(&gw, "eager", 4, hi());
    load.until(200).await;
    let n = load.stop().await.len();
    let extra = up.calls() - n;
    assert!(
        extra as f64 <= 0.1 * n as f64,
        "{extra} extra calls for {n}"
    );
    assert!(extra >= 5, "some hedges were sent: {extra}");
    let refused = r#"switchyard_hedges_refused_total{reason="budget",route="eager"}"#;
    assert!(gw.metric(refused).await >= 100.0);
    // A generous budget, but at most 2 a second (a bucket of 2).
    let before = up.calls();
    let start = tokio::time::Instant::now();
    let mut load = Load::start(&gw, "capped", 4, hi());
    load.until(100).await;
    let n = load.stop().await.len();
    let secs = start.elapsed().as_secs_f64();
    let hedges = gw
        .metric(r#"switchyard_hedges_total{route="capped"}"#)
        .await;
    assert!(
        hedges <= 2.0 + 2.0 * secs.ceil(),
        "{hedges} hedges in {secs:.1}s"
    );
    let capped = r#"switchyard_hedges_refused_total{reason="rate",route="capped"}"#;
    assert!(gw.metric(capped).await >= 50.0);
    assert_eq!(up.calls() - before, n + hedges as usize);
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_is_hedged_before_its_first_event_and_the_slow_one_is_cancelled() {
    let event = |text: &str| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        )
    };
    // Headers at once, then no event until the test sends one (never).
    let mut slow = common::scripted::Scripted::start().await;
    let fast_events = vec![event("fast"), "data: [DONE]\n\n".to_string()];
    let fast = FakeUpstream::start(move |_, _| {
        let events = fast_events.clone();
        async move { Reply::Sse(events, MS) }
    })
    .await;
    let gw = gateway(&format!(
        "providers:\n  p0:\n    kind: openai\n    base_url: {}\n  p1:\n    kind: openai\n    \
         base_url: {}\nroutes:\n  m:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n    \
         hedge: {{delay: 100ms}}\n",
        slow.base,
        fast.base_url()
    ))
    .await;
    let start = tokio::time::Instant::now();
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    let body = r.text().await.unwrap();
    assert!(body.contains("fast") && !body.contains("slow"), "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        gw.metric(r#"switchyard_hedges_won_total{route="m"}"#).await,
        1.0
    );
    // The slow stream was dropped: the upstream sees its reader gone.
    let tx = slow.requests.recv().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), tx.closed())
        .await
        .expect("the losing stream was cancelled");
    gw.stop().await;
}
