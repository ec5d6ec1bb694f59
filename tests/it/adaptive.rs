//! Adaptive concurrency over HTTP: against an upstream that answers 429
//! above N calls in flight, a provider's adaptive limit settles at or below
//! N without a 429 storm, rises again when the cap lifts, survives a reload
//! that leaves its settings alone, and an embeddings fan-out follows it.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::time::Instant;

const P0_LIMIT: &str = r#"switchyard_provider_concurrency_limit{provider="p0"}"#;

/// What the capped upstream did.
#[derive(Default)]
struct Capped {
    cap: AtomicUsize,
    live: AtomicUsize,
    served: AtomicUsize,
    refused: AtomicUsize,
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An OpenAI upstream that takes `cap` calls at once, each `latency`
/// long, and answers 429 (at once, no Retry-After) to any call above it.
async fn capped(cap: usize, latency: Duration) -> (Arc<Capped>, FakeUpstream) {
    let c = Arc::new(Capped::default());
    c.cap.store(cap, Ordering::SeqCst);
    let state = Arc::clone(&c);
    let up = FakeUpstream::start(move |s, _| {
        let c = Arc::clone(&state);
        async move {
            let now = c.live.fetch_add(1, Ordering::SeqCst) + 1;
            let _leave = Leave(&c.live);
            if now > c.cap.load(Ordering::SeqCst) {
                c.refused.fetch_add(1, Ordering::SeqCst);
                let e = json!({"error": {"message": "too many requests in flight", "type": "rate_limit_error"}});
                return Reply::Json(429, e);
            }
            tokio::time::sleep(latency).await; // the upstream's work
            c.served.fetch_add(1, Ordering::SeqCst);
            default_reply(&s)
        }
    })
    .await;
    (c, up)
}

fn policy(up: &FakeUpstream, max: usize, routes: &str) -> String {
    let p0 = format!(
        "    concurrency: {{ adaptive: {{ min: 1, max: {max} }}, max_wait: 10s }}\n\
         \x20   breaker: {{ failure_threshold: 1000 }}\n    max_batch_inputs: 1\n"
    );
    let retry = "    retry: { max_attempts: 10, initial_backoff: 5ms, max_backoff: 20ms,\n\
                 \x20            budget: { ratio: 10, min_per_second: 1000 } }\n";
    format!(
        "{}routes:\n  m:\n    targets: [{{provider: p0}}]\n{retry}{routes}",
        providers_yaml(&[up], &p0)
    )
}

/// `clients` loops of chat requests until `stop`; failures counted.
fn load(
    gw: &TestGateway,
    clients: usize,
    stop: &Arc<AtomicBool>,
    failed: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|id| {
            let (http, base) = (gw.http.clone(), gw.base.clone());
            let (stop, failed) = (Arc::clone(stop), Arc::clone(failed));
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("{id}-{n}")}]});
                    let r = http
                        .post(format!("{base}/v1/chat/completions"))
                        .json(&body)
                        .send()
                        .await;
                    if !r.is_ok_and(|r| r.status() == 200) {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect()
}

#[tokio::test]
async fn the_adaptive_limit_settles_under_an_upstream_cap_rises_when_it_lifts_and_survives_a_reload()
 {
    const N: usize = 4;
    let (c, up) = capped(N, Duration::from_millis(40)).await;
    let gw = gateway(&policy(&up, 64, "")).await;
    let (stop, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let clients = load(&gw, 24, &stop, &failed);

    // Let it find the cap, then watch it for 2 s.
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while start.elapsed() < Duration::from_millis(1500) {
        tick.tick().await;
    }
    let (served, refused) = (
        c.served.load(Ordering::SeqCst),
        c.refused.load(Ordering::SeqCst),
    );
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_millis(3500) {
        tick.tick().await;
        samples.push(gw.metric(P0_LIMIT).await as usize);
    }
    let served = c.served.load(Ordering::SeqCst) - served;
    let refused = c.refused.load(Ordering::SeqCst) - refused;
    let under = samples.iter().filter(|&&l| l <= N).count();
    println!("steady state: {served} served, {refused} answered 429; limit samples {samples:?}");
    assert!(served > 50, "the provider kept serving: {served}");
    assert!(
        (refused as f64) < 0.1 * (served + refused) as f64,
        "a 429 storm: {refused} of {}",
        served + refused
    );
    assert!(
        under * 10 >= samples.len() * 8,
        "the limit sat above the cap of {N}: {samples:?}"
    );

    // The cap lifts: the limit climbs past it.
    c.cap.store(64, Ordering::SeqCst);
    let lifted = Instant::now();
    let mut limit = 0.0;
    while limit < (3 * N) as f64 {
        assert!(
            lifted.elapsed() < Duration::from_secs(10),
            "stuck at {limit}"
        );
        tick.tick().await;
        limit = gw.metric(P0_LIMIT).await;
    }
    println!("rose to {limit} in {:?}", lifted.elapsed());
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no client saw a failure");

    // A reload that leaves the provider alone keeps what it learned; one
    // that changes its concurrency settings starts it afresh.
    let learned = gw.metric(P0_LIMIT).await;
    let other = "  other:\n    targets: [{provider: p0}]\n";
    gw.write_policy("policy.yaml", &policy(&up, 64, other));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(gw.metric(P0_LIMIT).await, learned);
    gw.write_policy("policy.yaml", &policy(&up, 32, other));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(gw.metric(P0_LIMIT).await, 1.0, "new settings: from min");
    gw.stop().await;
}

#[tokio::test]
async fn an_embeddings_fan_out_widens_with_the_adaptive_limit() {
    let (c, up) = capped(64, Duration::from_millis(30)).await;
    let gw = gateway(&policy(&up, 64, "")).await;
    let inputs: Vec<String> = (0..64).map(|i| format!("input {i}")).collect();
    let r = gw.embed("m", json!(inputs)).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let got = common::faults::vectors(&v);
    let want: Vec<Vec<f32>> = inputs.iter().map(|i| expected_vector(&json!(i))).collect();
    assert_eq!(got, want);
    assert_eq!(
        c.served.load(Ordering::SeqCst),
        64,
        "one sub-batch per input"
    );
    // The limit starts at 1 and doubles-ish per round trip: the fan-out
    // followed it past the fixed width of 4 it would have without it.
    assert!(
        up.peak_concurrency() > routing_default(),
        "peak {} in flight",
        up.peak_concurrency()
    );
    assert!(gw.metric(P0_LIMIT).await > routing_default() as f64);
    gw.stop().await;
}

fn routing_default() -> usize {
    switchyard::routing::DEFAULT_FANOUT
}
