//! Saturation: one provider that trickles, stalls or hangs must not take
//! the gateway down. A trickling provider under 150 req/s at the shipped
//! default timeouts; timeouts failing over before the same target is
//! retried; bulkheads (a fixed limit, the share of the gateway, waiting on
//! the last target, a reload that keeps them); the chaos load of `faults`
//! with trickle and stall at the shipped defaults. All over real HTTP
//! against the fakes in `common`.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::faults::*;
use common::*;
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

const P0_IN_FLIGHT: &str = r#"switchyard_provider_in_flight{provider="p0"}"#;
const P0_LIMIT: &str = r#"switchyard_provider_concurrency_limit{provider="p0"}"#;

fn refusals(reason: &str) -> String {
    format!(r#"switchyard_provider_refusals_total{{provider="p0",reason="{reason}"}}"#)
}

/// 150 requests a second for 10 s; p0 trickles one byte every 0.5 s, p1 is
/// healthy; nothing in the policy but the providers and the route, so every
/// timeout, breaker and limit is the shipped default. Before: `body: 30s`
/// let p0 hold all 1,024 request slots within 7 s and a third of the
/// requests got 503 `overloaded`. Now p0 holds at most its share (512), its
/// attempts give up after `body` (5 s) and fail over to p1 at once.
#[tokio::test]
async fn a_trickling_provider_at_150_requests_a_second_costs_no_client_a_failure() {
    let (p0, p1) = (
        FaultyUpstream::start("p0").await,
        FaultyUpstream::start("p1").await,
    );
    p0.set(Fault::Trickle(Duration::from_millis(500)));
    let providers = faulty_providers_yaml(&[&p0, &p1], &[]);
    let gw = gateway(&format!(
        "{providers}routes:\n{}",
        route_yaml("m", &["p0", "p1"], "")
    ))
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    // Watch p0's calls in flight through /metrics (outside every limit).
    let stop = Arc::new(AtomicBool::new(false));
    let peak = tokio::spawn({
        let (http, base, stop) = (http.clone(), gw.base.clone(), Arc::clone(&stop));
        async move {
            let mut peak = 0f64;
            while !stop.load(Ordering::SeqCst) {
                let text = http.get(format!("{base}/metrics")).send().await;
                let text = text.unwrap().text().await.unwrap();
                peak = peak.max(sample(&text, P0_IN_FLIGHT));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            peak
        }
    });
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / 150));
    let mut sent = Vec::with_capacity(1500);
    for n in 0..1500 {
        tick.tick().await;
        let (http, base, failures) = (http.clone(), gw.base.clone(), Arc::clone(&failures));
        sent.push(tokio::spawn(async move {
            let body = chat_body("m", &format!("q{n}"), false);
            if let Err(e) = expect_chat(&http, &base, body).await {
                failures.lock().unwrap().push(e);
            }
        }));
    }
    let sending = start.elapsed();
    for s in sent {
        s.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let peak = peak.await.unwrap();
    let failures = failures.lock().unwrap().clone();
    let at_limit = gw.metric(&refusals("at_limit")).await;
    println!(
        "1500 requests sent in {sending:?}, all answered in {:?}; {} failed; p0: {} calls, \
         peak {peak} in flight, {at_limit} refused at its limit; p1: {} calls",
        start.elapsed(),
        failures.len(),
        p0.calls(),
        p1.calls()
    );
    assert!(
        failures.is_empty(),
        "{} of 1500 failed; first:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
    assert!(peak <= 512.0, "p0 held more than its share: {peak}");
    assert!(
        p0.calls() <= 530,
        "p0 got {} calls: its share (512), then its breaker",
        p0.calls()
    );
    assert!(
        gw.metric(P0_TIMEOUT).await >= 5.0,
        "p0's attempts timed out"
    );
    gw.stop().await;
}

/// The value of one sample in a metrics exposition (0 if absent).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_timed_out_attempt_fails_over_before_the_same_target_is_retried() {
    let p0_extra = format!(
        "{NO_BREAKER}    timeouts: {{ first_byte: 1s, idle: 500ms, body: 1s, total: 30s }}\n"
    );
    let retry = "    retry: { max_attempts: 3, initial_backoff: 10ms, max_backoff: 20ms }\n";
    let routes = route_yaml("m", &["p0", "p1"], retry) + &route_yaml("alone", &["p0"], retry);
    let (p0, _p1, gw) = pair(&p0_extra, &routes).await;
    // Each fault with the timeout that cuts it.
    let faults = [
        (Fault::Trickle(Duration::from_millis(100)), 1000),
        (Fault::StreamStall, 500),
        (Fault::Hang, 1000),
    ];
    for (fault, timeout_ms) in faults {
        p0.set(fault.clone());
        let before = p0.calls();
        let start = Instant::now();
        let r = within(10, gw.chat("m", "hi")).await;
        let took = start.elapsed();
        assert_eq!(r.status(), 200, "{fault:?}");
        assert_eq!(r.headers()["x-switchyard-provider"], "p1", "{fault:?}");
        assert_eq!(p0.calls() - before, 1, "{fault:?}: p0 was tried once");
        let bound = Duration::from_millis(timeout_ms * 3 / 2);
        assert!(
            took < bound,
            "{fault:?}: p1 answered after {took:?}, not within one attempt's timeout"
        );
    }
    // Alone, a timed-out target is still retried: it is the only chance.
    p0.set(Fault::Trickle(Duration::from_millis(100)));
    let before = p0.calls();
    let r = within(10, gw.chat("alone", "hi")).await;
    assert_eq!(r.status(), 504);
    assert_eq!(p0.calls() - before, 3);
    gw.stop().await;
}

/// An upstream that holds every request until `release` is notified.
async fn held(release: Arc<Notify>) -> FakeUpstream {
    FakeUpstream::start(move |s, _| {
        let release = Arc::clone(&release);
        async move {
            release.notified().await;
            Reply::Json(200, chat_reply(&s.body, "held"))
        }
    })
    .await
}

#[tokio::test]
async fn a_provider_at_its_limit_spills_to_the_next_target_and_the_last_target_waits() {
    let release = Arc::new(Notify::new());
    let (p0, p1) = (
        held(Arc::clone(&release)).await,
        FakeUpstream::openai().await,
    );
    let yaml = format!(
        "{}routes:\n  m:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n\
         \x20 alone:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(
            &[&p0, &p1],
            "    concurrency: { max_in_flight: 2, max_wait: 400ms }\n"
        )
    );
    let gw = gateway(&yaml).await;
    let holders: Vec<_> = (0..2)
        .map(|i| {
            gw.spawn_post(
                "/v1/chat/completions",
                chat_body("m", &format!("h{i}"), false),
            )
        })
        .collect();
    eventually(async || p0.live() == 2).await;
    assert_eq!(gw.metric(P0_IN_FLIGHT).await, 2.0);
    let spilled = within(5, gw.chat("m", "third")).await;
    assert_eq!(spilled.status(), 200);
    assert_eq!(
        spilled.headers()["x-switchyard-provider"],
        "p1",
        "moved on at once"
    );
    assert_eq!(gw.metric(&refusals("at_limit")).await, 1.0);

    // The last target waits for a slot within max_wait, then gives up.
    let start = Instant::now();
    let r = within(5, gw.chat("alone", "waits in vain")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(error_of(r).await["code"], "providers_saturated");
    assert!(
        start.elapsed() >= Duration::from_millis(390),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(gw.metric(&refusals("wait_timeout")).await, 1.0);
    let waiting = gw.spawn_post("/v1/chat/completions", chat_body("alone", "waits", false));
    eventually(async || gw.metric("switchyard_requests_in_flight").await == 3.0).await;
    release.notify_one(); // one holder ends: the waiting call takes its slot
    eventually(async || p0.calls() == 3).await;
    release.notify_waiters();
    for h in holders {
        assert_eq!(h.await.unwrap().status(), 200);
    }
    let r = waiting.await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p0");
    eventually(async || gw.metric(P0_IN_FLIGHT).await == 0.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn no_provider_holds_more_than_its_share_and_a_reload_keeps_what_is_in_flight() {
    let release = Arc::new(Notify::new());
    let (p0, p1) = (
        held(Arc::clone(&release)).await,
        FakeUpstream::openai().await,
    );
    let policy = |slots: usize| {
        format!(
            "server:\n  max_concurrent_requests: {slots}\n  provider_share: 0.25\n{}routes:\n\
             \x20 m:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n",
            providers_yaml(&[&p0, &p1], "")
        )
    };
    let gw = gateway(&policy(8)).await;
    assert_eq!(gw.metric(P0_LIMIT).await, 2.0, "a quarter of 8 slots");
    let holders: Vec<_> = (0..2)
        .map(|i| {
            gw.spawn_post(
                "/v1/chat/completions",
                chat_body("m", &format!("h{i}"), false),
            )
        })
        .collect();
    eventually(async || p0.live() == 2).await;
    for i in 0..3 {
        let r = gw.chat("m", &format!("over {i}")).await;
        assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    }
    // A reload that doubles the gateway doubles the share; the two calls
    // in flight are still counted by the same limit.
    gw.write_policy("policy.yaml", &policy(16));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(gw.metric(P0_LIMIT).await, 4.0);
    assert_eq!(gw.metric(P0_IN_FLIGHT).await, 2.0);
    let more: Vec<_> = (0..2)
        .map(|i| {
            gw.spawn_post(
                "/v1/chat/completions",
                chat_body("m", &format!("m{i}"), false),
            )
        })
        .collect();
    eventually(async || p0.live() == 4).await;
    let r = gw.chat("m", "over again").await;
    assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    release.notify_waiters();
    for h in holders.into_iter().chain(more) {
        assert_eq!(h.await.unwrap().status(), 200);
    }
    eventually(async || gw.metric(P0_IN_FLIGHT).await == 0.0).await;
    gw.stop().await;
}

/// The chaos load of `faults::mixed_load_through_a_cycling_fault_sees_zero_failures`
/// with p0 at the shipped default timeouts (only its breaker is quick, so
/// that it meets every phase), cycling through trickle and stall among the
/// rest: no non-streaming request and no stream broken before its first
/// byte may fail. Streams meet mid-stream faults as a reset (see there).
#[tokio::test]
async fn chaos_with_trickle_and_stall_at_the_shipped_default_timeouts_sees_zero_failures() {
    let p0_extra = "    breaker: { failure_threshold: 3, open_for: 50ms, half_open_probes: 4 }\n";
    let routes = route_yaml("cached", &["p0", "p1"], "    cache: { enabled: true }\n")
        + &route_yaml("plain", &["p0", "p1"], "");
    let (p0, _p1, gw) = pair(p0_extra, &routes).await;
    use Fault::*;
    let ms = Duration::from_millis;
    let phases = [
        (Healthy, Healthy),
        (Trickle(ms(500)), Reset),
        (Healthy, Healthy),
        (StreamStall, Reset),
        (Status(503), Status(503)),
        (Healthy, Healthy),
        (Trickle(ms(500)), Reset),
        (Reset, Reset),
        (StreamStall, Reset),
        (Healthy, Healthy),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let clients: Vec<_> = (0..6)
        .map(|id| {
            let (http, base) = (http.clone(), gw.base.clone());
            let (stop, failures, sent) = (stop.clone(), failures.clone(), sent.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let n = sent.fetch_add(1, Ordering::SeqCst);
                    if let Err(e) = mixed_request(&http, &base, id + n, n).await {
                        failures.lock().unwrap().push(e);
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    for (plain, streams) in phases.iter().cloned() {
        p0.set_split(plain, streams);
        let from = p0.calls();
        p0.wait_until(ms(8000), |r| {
            let streams = r[from..].iter().filter(|r| r.stream).count();
            streams >= 2 && r.len() - from - streams >= 3
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let total = sent.load(Ordering::SeqCst);
    println!(
        "{total} requests in {:?}, {} failed",
        start.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} failed; first:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    let seen = p0.received();
    for fault in [Trickle(ms(500)), StreamStall] {
        assert!(
            seen.iter().any(|r| r.fault == fault && !r.stream),
            "no plain request met {fault:?}"
        );
    }
    assert!(gw.metric(P0_TIMEOUT).await > 0.0);
    // Nothing bad was cached.
    p0.set(Healthy);
    for q in 0..8 {
        expect_chat(&http, &gw.base, cached_question(q))
            .await
            .unwrap();
    }
    gw.stop().await;
}
