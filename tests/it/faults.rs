//! Hostile upstreams: garbage 200s, torn/stalled/unterminated streams,
//! trickled bodies, resets, hangs, 429s, key-quoting error bodies. With one
//! misbehaving provider and a healthy second one, clients see no failure.
//! All against [`FaultyUpstream`]s over real HTTP.

use crate::common;

mod chaos;
mod secrets;
mod survive;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use common::faults::*;
use common::*;
use serde_json::{Value, json};

const GARBAGE: [Fault; 3] = [
    Fault::Html200,
    Fault::MalformedJson200,
    Fault::WrongShape200,
];

#[tokio::test]
async fn garbage_chat_200s_fail_over_count_as_protocol_errors_and_are_never_cached() {
    let cached = format!("{ONE_TRY}    cache: {{ enabled: true }}\n");
    let routes = route_yaml("m", &["p0", "p1"], &cached) + &route_yaml("alone", &["p0"], &cached);
    let (p0, _p1, gw) = pair(NO_BREAKER, &routes).await;
    for (i, f) in GARBAGE.iter().enumerate() {
        p0.set(f.clone());
        let r = gw.chat("m", &format!("q{i}")).await;
        assert_eq!(r.status(), 200, "{f:?}");
        assert_eq!(r.headers()["x-switchyard-provider"], "p1", "{f:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"], "p1 answered",
            "{f:?}"
        );
    }
    assert_eq!(gw.metric(P0_PROTOCOL).await, 3.0);
    // Alone, garbage is an error for the client, never a 200, and not cached.
    for (i, f) in GARBAGE.iter().enumerate() {
        p0.set(f.clone());
        let r = gw.chat("alone", &format!("a{i}")).await;
        assert_eq!(r.status(), 502, "{f:?}");
        assert_eq!(r.headers()["x-should-retry"], "false");
        error_of(r).await;
        p0.set(Fault::Healthy);
        let r = gw.chat("alone", &format!("a{i}")).await;
        assert_eq!(r.status(), 200, "{f:?}");
        assert_eq!(
            r.headers()["x-switchyard-cache"],
            "miss",
            "{f:?} was cached"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "p0 answered");
    }
    gw.stop().await;
}

#[tokio::test]
async fn garbage_embeddings_fail_over_and_are_never_cached() {
    let cached = format!("{ONE_TRY}    cache: {{ enabled: true }}\n");
    let routes = route_yaml("m", &["p0", "p1"], &cached) + &route_yaml("alone", &["p0"], &cached);
    let (p0, p1, gw) = pair(NO_BREAKER, &routes).await;
    for (i, f) in GARBAGE.into_iter().enumerate() {
        p0.set(f.clone());
        let inputs = [format!("{f:?} one"), format!("{f:?} two")];
        let r = gw.embed("m", json!(inputs)).await;
        assert_eq!(r.status(), 200, "{f:?}");
        assert_eq!(p1.calls(), i + 1, "{f:?}: p1 served it");
        let want: Vec<_> = inputs.iter().map(|i| expected_vector(&json!(i))).collect();
        assert_eq!(vectors(&r.json().await.unwrap()), want, "{f:?}");
    }
    assert_eq!(gw.metric(P0_PROTOCOL).await, 3.0);
    for f in GARBAGE {
        p0.set(f.clone());
        let inputs = json!([format!("alone {f:?}"), format!("also {f:?}")]);
        assert_eq!(
            gw.embed("alone", inputs.clone()).await.status(),
            502,
            "{f:?}"
        );
        p0.set(Fault::Healthy);
        let r = gw.embed("alone", inputs.clone()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-switchyard-cache"],
            "miss",
            "{f:?} was cached"
        );
        let want: Vec<_> = inputs
            .as_array()
            .unwrap()
            .iter()
            .map(expected_vector)
            .collect();
        assert_eq!(vectors(&r.json().await.unwrap()), want);
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_answered_with_the_wrong_content_type_fails_over_before_the_first_byte() {
    let (p0, _p1, gw) = pair(NO_BREAKER, &route_yaml("m", &["p0", "p1"], ONE_TRY)).await;
    for f in GARBAGE {
        p0.set(f.clone());
        let r = gw
            .post("/v1/chat/completions", chat_body("m", "hi", true))
            .await;
        assert_eq!(r.status(), 200, "{f:?}");
        assert_eq!(r.headers()["x-switchyard-provider"], "p1", "{f:?}");
        let p = read_sse(r).await;
        assert!(
            p.done && p.invalid.is_empty() && p.errors.is_empty(),
            "{f:?}: {}",
            p.raw
        );
        assert_eq!(p.content, "p1 answered");
    }
    assert_eq!(gw.metric(P0_PROTOCOL).await, 3.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_ended_without_done_ends_with_an_error_event() {
    let (p, _, interrupted, _) = broken_stream(Fault::StreamNoDone, "").await;
    assert_eq!(
        p.content, "p0 answered",
        "every event before the end arrived"
    );
    assert_ends_with_interruption(&p);
    assert_eq!(interrupted, 1.0);
}

#[tokio::test]
async fn a_stream_torn_mid_event_keeps_whole_events_valid_then_reports_the_break() {
    let (p, _, interrupted, p0) = broken_stream(Fault::StreamCutMidEvent, "").await;
    let sent = sse_events(&p0.received()[0].body["model"], "p0");
    assert!(p.raw.starts_with(&sent[..2].concat()), "{:?}", p.raw);
    assert_eq!(p.content, "p0");
    assert_ends_with_interruption(&p);
    assert_eq!(interrupted, 1.0);
}

#[tokio::test]
async fn a_stream_silent_mid_way_ends_within_idle_not_total() {
    let t = "    timeouts: { first_byte: 5s, idle: 300ms, total: 30s }\n";
    let (p, took, interrupted, _) = broken_stream(Fault::StreamStall, t).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(p.content, "p0");
    assert_ends_with_interruption(&p);
    assert_eq!(interrupted, 1.0);
}

#[tokio::test]
async fn a_trickled_body_trips_the_body_timeout_not_idle_and_fails_over() {
    // One byte every 100ms never trips `idle`; `body` cuts it at 1s.
    let t = "    timeouts: { first_byte: 1s, idle: 300ms, body: 1s, total: 30s }\n";
    let (took, timeouts) = fails_over(Fault::Trickle(Duration::from_millis(100)), t).await;
    assert!(
        took >= Duration::from_millis(950),
        "cut before `body`: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(timeouts, 1.0);
}

#[tokio::test]
async fn a_body_gone_silent_trips_idle_and_fails_over() {
    let t = "    timeouts: { first_byte: 1s, idle: 300ms, body: 10s, total: 30s }\n";
    let (took, timeouts) = fails_over(Fault::StreamStall, t).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(timeouts, 1.0);
}

#[tokio::test]
async fn resets_hangs_slow_first_bytes_and_5xx_fail_over_for_every_endpoint() {
    let t = format!("{NO_BREAKER}    timeouts: {{ first_byte: 300ms, idle: 300ms, body: 1s }}\n");
    let (p0, _p1, gw) = pair(&t, &route_yaml("m", &["p0", "p1"], ONE_TRY)).await;
    let faults = [
        Fault::Reset,
        Fault::Hang,
        Fault::SlowFirstByte(Duration::from_secs(2)),
        Fault::Status(503),
    ];
    let (http, base) = (&gw.http, gw.base.as_str());
    for f in faults {
        p0.set(f.clone());
        let h = expect_chat(http, base, chat_body("m", "x", false))
            .await
            .unwrap();
        assert_eq!(h["x-switchyard-provider"], "p1", "{f:?}");
        expect_stream(http, base, chat_body("m", "x", true))
            .await
            .unwrap();
        expect_embeddings(http, base, "m", &["e".into()])
            .await
            .unwrap();
    }
    assert_eq!(p0.calls(), 12);
    assert_eq!(gw.metric(P0_TIMEOUT).await, 6.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_429_fails_over_at_once_and_waits_only_when_no_target_is_left_or_told_to() {
    let retry = "    retry: { max_attempts: 3, initial_backoff: 10ms, max_retry_after: 10s }\n";
    let wait = "    retry: { max_attempts: 3, initial_backoff: 10ms, on_rate_limit: wait }\n";
    let routes = route_yaml("m", &["p0", "p1"], retry)
        + &route_yaml("alone", &["p0"], retry)
        + &route_yaml("patient", &["p0", "p1"], wait);
    let (p0, p1, gw) = pair(NO_BREAKER, &routes).await;
    p0.set(Fault::RateLimited {
        retry_after_secs: 5,
    });
    let start = Instant::now();
    let r = within(4, gw.chat("m", "hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "slept on p0: {:?}",
        start.elapsed()
    );
    assert_eq!(p0.calls(), 1);

    // Last target: the Retry-After is waited out; so it is with `wait`.
    p0.set(Fault::Healthy);
    for route in ["alone", "patient"] {
        p0.script([Fault::RateLimited {
            retry_after_secs: 1,
        }]);
        let (before0, before1) = (p0.calls(), p1.calls());
        let start = Instant::now();
        let r = within(4, gw.chat(route, "hi")).await;
        assert_eq!(r.status(), 200, "{route}");
        assert_eq!(r.headers()["x-switchyard-provider"], "p0", "{route}");
        assert!(
            start.elapsed() >= Duration::from_millis(950),
            "{route}: did not wait"
        );
        assert_eq!(
            (p0.calls() - before0, p1.calls() - before1),
            (2, 0),
            "{route}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn rate_limits_count_towards_the_breaker_unless_told_not_to() {
    let breaker = "    breaker: { failure_threshold: 2, open_for: 1h";
    for (counted, p0_calls, state) in [("", 2, 1.0), (", count_rate_limits: false", 5, 0.0)] {
        let extra = format!("{breaker}{counted} }}\n");
        let (p0, _p1, gw) = pair(&extra, &route_yaml("m", &["p0", "p1"], ONE_TRY)).await;
        p0.set(Fault::RateLimited {
            retry_after_secs: 0,
        });
        for _ in 0..5 {
            let r = gw.chat("m", "hi").await;
            assert_eq!(r.headers()["x-switchyard-provider"], "p1");
        }
        assert_eq!(p0.calls(), p0_calls, "{counted}");
        let open = gw
            .metric(r#"switchyard_breaker_state{provider="p0"}"#)
            .await;
        assert_eq!(open, state, "{counted}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn the_retry_budget_bounds_same_target_retries_but_not_failover() {
    // Tower-style: a reserve of min_per_second x window = 10 retries, plus
    // 10% of the requests (8 calls: under one more); each failing call
    // wants 2 retries on each of its 2 targets.
    let retry = "    retry: { max_attempts: 3, initial_backoff: 1ms, max_backoff: 2ms, jitter: false,\n\
                 \x20            budget: { ratio: 0.1, min_per_second: 1, window: 10s } }\n";
    let route = route_yaml("m", &["p0", "p1"], retry);
    let (p0, p1, gw) = pair_with(NO_BREAKER, NO_BREAKER, &route).await;
    p0.set(Fault::Status(500));
    p1.set(Fault::Status(500));
    let mut counts = vec![];
    for i in 0..8 {
        let tag = format!("budget call #{i}#");
        let r = gw.chat("m", &tag).await;
        assert_eq!(r.status(), 502);
        assert_eq!(r.headers()["x-should-retry"], "false");
        let (a, b) = (p0.calls_mentioning(&tag), p1.calls_mentioning(&tag));
        assert!(
            a >= 1 && b >= 1,
            "failover is not budgeted: call {i}: p0 {a}, p1 {b}"
        );
        counts.push(a + b);
    }
    println!("upstream calls per failing client call: {counts:?}");
    assert_eq!(counts[0], 6, "the budget starts with retries: {counts:?}");
    assert!(counts.iter().all(|&c| c <= 6), "{counts:?}");
    assert!(
        counts[5..].iter().all(|&c| c == 2),
        "budget spent: {counts:?}"
    );
    let retries = counts.iter().sum::<usize>() - 2 * counts.len();
    assert!(retries <= 10, "{retries} retries: {counts:?}");
    assert_eq!(
        gw.metric(r#"switchyard_retries_total{provider="p0",route="m"}"#)
            .await
            + gw.metric(r#"switchyard_retries_total{provider="p1",route="m"}"#)
                .await,
        retries as f64
    );
    gw.stop().await;
}

#[tokio::test]
async fn final_gateway_5xx_errors_tell_sdks_not_to_retry() {
    let routes = route_yaml("m", &["p0"], ONE_TRY)
        + &route_yaml("late", &["p1"], &format!("{ONE_TRY}    deadline: 150ms\n"))
        + &route_yaml("hung", &["p1"], ONE_TRY);
    let p0 = "    breaker: { failure_threshold: 1, open_for: 1h }\n";
    let p1 = format!("{NO_BREAKER}    timeouts: {{ first_byte: 300ms }}\n");
    let (a, b, gw) = pair_with(p0, &p1, &routes).await;
    a.set(Fault::Status(500));
    b.set(Fault::Hang);
    let cases = [
        ("m", 502, "upstream_error"),
        ("m", 503, "circuit_open"),
        ("late", 504, "deadline_exceeded"),
        ("hung", 504, "upstream_timeout"),
    ];
    for (route, status, code) in cases {
        let r = gw.chat(route, "hi").await;
        assert_eq!(r.status(), status, "{code}");
        let h = r.headers().get("x-should-retry").cloned();
        assert_eq!(
            h.as_ref().map(|v| v.to_str().unwrap()),
            Some("false"),
            "{code}"
        );
        assert_eq!(error_of(r).await["code"], code);
    }
    gw.stop().await;
}

#[tokio::test]
async fn upstream_error_bodies_quoting_the_provider_key_reach_the_client_scrubbed() {
    let (p0, _p1, gw) = pair(NO_BREAKER, &route_yaml("m", &["p0"], ONE_TRY)).await;
    let requests = [
        ("/v1/chat/completions", chat_body("m", "hi", false)),
        ("/v1/embeddings", json!({"model": "m", "input": ["x"]})),
        ("/v1/chat/completions", chat_body("m", "hi", true)),
    ];
    for (upstream, client) in [(400, 400), (500, 502)] {
        p0.set(Fault::EchoKey(upstream));
        for (path, body) in &requests {
            let (status, headers, text) = whole(gw.post(path, body.clone()).await).await;
            assert_eq!(status, client, "{upstream} {body}: {text}");
            let leak = key_fragment_in(&format!("{headers}\n{text}"));
            assert_eq!(
                leak, None,
                "{upstream} {body} leaks the key: {headers}\n{text}"
            );
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(v["error"]["message"].is_string(), "{text}");
        }
    }
    let auth = format!("Bearer {TEST_KEY}");
    assert!(
        p0.received().iter().all(|r| r.authorization == auth),
        "the upstream saw the key"
    );
    assert_eq!(p0.calls(), 6);
    gw.stop().await;
}

/// p0 cycles through every fault, with healthy periods in between, while
/// concurrent clients send cached and uncached chat, embeddings and
/// streams; p1 stays healthy. No client may see a failure.
///
/// A stream that breaks AFTER its first byte reached the client cannot fail
/// over. So that "zero failures" is honest, streaming requests meet only
/// faults that strike before the first byte (5xx, 429, reset, hang, slow
/// first byte, wrong content type, 401): while p0 is in a mid-stream fault
/// (torn, stalled, unterminated or trickled stream), its streaming requests
/// get a reset instead. Mid-stream faults have their own tests above, where
/// the client sees the error event.
#[tokio::test]
async fn mixed_load_through_a_cycling_fault_sees_zero_failures() {
    let p0_extra = "    timeouts: { connect: 200ms, first_byte: 300ms, idle: 200ms, body: 500ms, total: 5s }\n\
                    \x20   breaker: { failure_threshold: 3, open_for: 50ms, half_open_probes: 4 }\n";
    let retry = "    retry: { max_attempts: 2, initial_backoff: 5ms, max_backoff: 20ms }\n";
    let routes = route_yaml(
        "cached",
        &["p0", "p1"],
        &format!("{retry}    cache: {{ enabled: true }}\n"),
    ) + &route_yaml("plain", &["p0", "p1"], retry);
    let (p0, _p1, gw) = pair(p0_extra, &routes).await;
    use Fault::*;
    let ms = Duration::from_millis;
    let mid_stream = |f: Fault| (f, Reset);
    let same = |f: Fault| (f.clone(), f);
    let phases = [
        same(Healthy),
        same(Status(500)),
        same(RateLimited {
            retry_after_secs: 5,
        }),
        same(Healthy),
        same(Reset),
        same(Hang),
        same(SlowFirstByte(ms(800))),
        same(Healthy),
        mid_stream(Trickle(ms(50))),
        same(MalformedJson200),
        same(Html200),
        same(WrongShape200),
        same(Healthy),
        mid_stream(StreamCutMidEvent),
        mid_stream(StreamStall),
        mid_stream(StreamNoDone),
        same(EchoKey(401)),
        same(Healthy),
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let clients: Vec<_> = (0..6)
        .map(|id| {
            let (http, base) = (http.clone(), gw.base.clone());
            let (stop, failures, sent) = (stop.clone(), failures.clone(), sent.clone());
            tokio::spawn(async move {
                // Bounded, but never the end of the schedule: the phases
                // end the load (a fast gateway got through 6 x 1,000
                // before the last phase began).
                for i in 0..10_000 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let n = sent.fetch_add(1, Ordering::SeqCst);
                    let result = mixed_request(&http, &base, id + i, n).await;
                    if let Err(e) = result {
                        failures.lock().unwrap().push(e);
                    }
                }
            })
        })
        .collect();

    // Each phase lasts until p0 met three streaming and three other requests
    // in it (its breaker lets probes through), at most 5s.
    let (start, mut summary) = (Instant::now(), vec![]);
    for (plain, streams) in phases.iter().cloned() {
        p0.set_split(plain.clone(), streams);
        let from = p0.calls();
        let t = Instant::now();
        p0.wait_until(ms(5000), |r| {
            let streams = r[from..].iter().filter(|r| r.stream).count();
            streams >= 3 && r.len() - from - streams >= 3
        })
        .await;
        let n = p0.calls() - from;
        summary.push(format!("{plain:?}: {n} in {:?}", t.elapsed()));
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let took = start.elapsed();
    let failures = failures.lock().unwrap().clone();
    let total = sent.load(Ordering::SeqCst);
    println!(
        "{total} requests in {took:?}, {} failed; p0 per phase: {summary:?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    // The schedule really put every fault in front of p0's requests.
    let seen = p0.received();
    for (plain, streams) in &phases {
        for (fault, stream) in [(plain, false), (streams, true)] {
            let hit = seen.iter().any(|r| &r.fault == fault && r.stream == stream);
            assert!(
                hit,
                "no {} request met {fault:?}",
                if stream { "stream" } else { "plain" }
            );
        }
    }
    assert!(gw.metric(P0_PROTOCOL).await > 0.0);
    assert!(gw.metric(P0_TIMEOUT).await > 0.0);

    // Nothing bad was cached: p0 healthy again, every cached request is valid.
    p0.set(Healthy);
    for q in 0..8 {
        expect_chat(&http, &gw.base, cached_question(q))
            .await
            .unwrap();
    }
    for n in 0..12 {
        expect_embeddings(&http, &gw.base, "cached", &embedding_inputs(n))
            .await
            .unwrap();
    }
    gw.stop().await;
}
