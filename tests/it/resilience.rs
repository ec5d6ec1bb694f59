//! Retries, failover, circuit breakers, rate limits, timeouts and load
//! shedding, against fake upstreams over real HTTP.

use crate::common;

use common::*;
use serde_json::json;
use std::time::Duration;

fn route(targets: &[&str], extra: &str) -> String {
    let mut y = String::from("routes:\n  m:\n    targets:\n");
    for t in targets {
        y.push_str(&format!("      - provider: {t}\n"));
    }
    y.push_str(extra);
    y
}

const FAST_RETRY: &str =
    "    retry: { max_attempts: 3, initial_backoff: 10ms, max_backoff: 50ms }\n";

#[tokio::test]
async fn retries_with_backoff_honouring_retry_after() {
    let up = FakeUpstream::start(|s, n| async move {
        if n <= 2 {
            Reply::JsonHeaders(
                503,
                json!({"error": {"message": "busy", "type": "server_error"}}),
                vec![("retry-after-ms", "30".into())],
            )
        } else {
            Reply::Json(200, chat_reply(&s.body, "third"))
        }
    })
    .await;
    let gw = gateway(&format!(
        "{}{}{FAST_RETRY}",
        providers_yaml(&[&up], ""),
        route(&["p0"], "")
    ))
    .await;
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-attempts"], "3");
    assert_eq!(up.calls(), 3);
    assert_eq!(
        gw.metric(r#"switchyard_retries_total{provider="p0",route="m"}"#)
            .await,
        2.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_upstream_requests_total{outcome="status_5xx",provider="p0"}"#)
            .await,
        2.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn retry_after_beyond_the_cap_fails_over_instead_of_waiting() {
    let slow = FakeUpstream::start(|_, _| async {
        Reply::JsonHeaders(
            429,
            json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
            vec![("retry-after", "120".into())],
        )
    })
    .await;
    let ok = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "{}{}    retry: {{ max_attempts: 3, initial_backoff: 10ms, max_retry_after: 1s }}\n",
        providers_yaml(&[&slow, &ok], ""),
        route(&["p0", "p1"], "")
    ))
    .await;
    let start = tokio::time::Instant::now();
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    assert_eq!(slow.calls(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "did not wait out Retry-After"
    );
    gw.stop().await;
}

#[tokio::test]
async fn fails_over_to_the_next_target() {
    let bad = FakeUpstream::start(|_, _| async {
        Reply::Json(
            500,
            json!({"error": {"message": "boom", "type": "server_error"}}),
        )
    })
    .await;
    let good = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "{}{}{FAST_RETRY}",
        providers_yaml(&[&bad, &good], ""),
        route(&["p0", "p1"], "")
    ))
    .await;
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    assert_eq!(r.headers()["x-switchyard-attempts"], "4");
    assert_eq!(bad.calls(), 3);
    assert_eq!(good.calls(), 1);
    assert_eq!(
        gw.metric(r#"switchyard_failovers_total{route="m"}"#).await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn all_targets_failing_is_a_502_naming_each_failure() {
    let bad = FakeUpstream::start(|_, _| async { Reply::Json(503, json!({})) }).await;
    // A port with nothing listening: connection refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let yaml = format!(
        "{}  dead:\n    kind: openai\n    base_url: http://{closed_addr}/v1\n{}    retry: {{ max_attempts: 1 }}\n",
        providers_yaml(&[&bad], ""),
        route(&["p0", "dead"], "")
    );
    let gw = gateway(&yaml).await;
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 502);
    let e = error_of(r).await;
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("p0: status 503") && msg.contains("dead: connection failed"),
        "{msg}"
    );
    assert_eq!(
        gw.metric(r#"switchyard_upstream_requests_total{outcome="connect_error",provider="dead"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn circuit_breaker_opens_and_skips_the_provider() {
    let bad = FakeUpstream::start(|_, _| async { Reply::Json(500, json!({})) }).await;
    let good = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "{}{}    retry: {{ max_attempts: 1 }}\n",
        providers_yaml(
            &[&bad, &good],
            "    breaker: { failure_threshold: 2, open_for: 1h }\n"
        ),
        route(&["p0", "p1"], "")
    ))
    .await;
    for _ in 0..5 {
        let r = gw.chat("m", "hi").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    }
    assert_eq!(
        bad.calls(),
        2,
        "after 2 failures the breaker keeps traffic off p0"
    );
    assert_eq!(
        gw.metric(r#"switchyard_breaker_state{provider="p0"}"#)
            .await,
        1.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_breaker_state{provider="p1"}"#)
            .await,
        0.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_upstream_requests_total{outcome="breaker_open",provider="p0"}"#)
            .await,
        3.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn every_breaker_open_is_a_503() {
    let bad = FakeUpstream::start(|_, _| async { Reply::Json(502, json!({})) }).await;
    let gw = gateway(&format!(
        "{}{}    retry: {{ max_attempts: 1 }}\n",
        providers_yaml(
            &[&bad],
            "    breaker: { failure_threshold: 1, open_for: 1h }\n"
        ),
        route(&["p0"], "")
    ))
    .await;
    assert_eq!(gw.chat("m", "hi").await.status(), 502);
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 503);
    assert_eq!(error_of(r).await["code"], "circuit_open");
    assert_eq!(bad.calls(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn per_client_limit_returns_429_with_retry_after() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "limits:\n  per_client: {{ requests_per_second: 0.5, burst: 2 }}\n{}{}",
        providers_yaml(&[&up], ""),
        route(&["p0"], "")
    ))
    .await;
    let send = |key: &'static str| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(key)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
            .send()
    };
    assert_eq!(send("client-a").await.unwrap().status(), 200);
    assert_eq!(send("client-a").await.unwrap().status(), 200);
    let r = send("client-a").await.unwrap();
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The bucket's 2s wait, plus up to half a refill (1s) of jitter.
    assert!((1..=3).contains(&after), "retry-after {after}");
    let e = error_of(r).await;
    assert_eq!(e["type"], "rate_limit_error");
    assert!(e["message"].as_str().unwrap().contains("client"));
    assert_eq!(
        send("client-b").await.unwrap().status(),
        200,
        "keys are limited separately"
    );
    assert_eq!(up.calls(), 3);
    assert_eq!(
        gw.metric(r#"switchyard_rate_limited_total{scope="client"}"#)
            .await,
        1.0
    );
    let m = gw.metrics().await;
    assert!(!m.contains("client-a"), "client keys are never labels");
    gw.stop().await;
}

#[tokio::test]
async fn route_limit_and_provider_limit() {
    let a = FakeUpstream::openai().await;
    let b = FakeUpstream::openai().await;
    let yaml = format!(
        "{}  p1:\n    kind: openai\n    base_url: {}\n\
routes:\n  limited:\n    targets: [{{provider: p1}}]\n    rate_limit: {{ requests_per_second: 0.1, burst: 1 }}\n\
\x20 spill:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n",
        providers_yaml(
            &[&a],
            "    rate_limit: { requests_per_second: 0.1, burst: 1 }\n"
        ),
        b.base_url()
    );
    let gw = gateway(&yaml).await;
    assert_eq!(gw.chat("limited", "1").await.status(), 200);
    let r = gw.chat("limited", "2").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(
        error_of(r).await["message"]
            .as_str()
            .unwrap()
            .contains("route")
    );

    // p0's own limit spills the second request over to p1.
    let r1 = gw.chat("spill", "1").await;
    assert_eq!(r1.headers()["x-switchyard-provider"], "p0");
    let r2 = gw.chat("spill", "2").await;
    assert_eq!(r2.status(), 200);
    assert_eq!(r2.headers()["x-switchyard-provider"], "p1");
    assert_eq!(a.calls(), 1);
    assert_eq!(
        gw.metric(r#"switchyard_rate_limited_total{scope="provider"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn first_byte_timeout_fails_over_and_alone_is_a_504() {
    let slow = FakeUpstream::start(|s, _| async move {
        Reply::After(
            Duration::from_secs(5),
            Box::new(Reply::Json(200, chat_reply(&s.body, "slow"))),
        )
    })
    .await;
    let fast = FakeUpstream::openai().await;
    let timeouts = "    timeouts: { connect: 1s, first_byte: 150ms, total: 10s }\n";
    let yaml = format!(
        "{}routes:\n  m:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n    retry: {{ max_attempts: 1 }}\n\
\x20 alone:\n    targets: [{{provider: p0}}]\n    retry: {{ max_attempts: 1 }}\n",
        providers_yaml(&[&slow, &fast], timeouts)
    );
    let gw = gateway(&yaml).await;
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    let r = gw.chat("alone", "hi").await;
    assert_eq!(r.status(), 504);
    assert_eq!(error_of(r).await["code"], "upstream_timeout");
    assert_eq!(
        gw.metric(r#"switchyard_upstream_requests_total{outcome="timeout",provider="p0"}"#)
            .await,
        2.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn total_timeout_cuts_a_stalled_body() {
    // Headers arrive at once, the JSON body then stalls past `total`.
    let up = FakeUpstream::start(|_, _| async {
        Reply::Chunks(
            "application/json",
            vec!["{\"choices\":".into(), "[]}".into()],
            Duration::from_secs(3),
        )
    })
    .await;
    let gw = gateway(&format!(
        "{}{}    retry: {{ max_attempts: 1 }}\n",
        providers_yaml(&[&up], "    timeouts: { first_byte: 5s, total: 300ms }\n"),
        route(&["p0"], "")
    ))
    .await;
    let start = tokio::time::Instant::now();
    let r = gw.chat("m", "hi").await; // non-streaming: the body must be read whole
    assert_eq!(r.status(), 504);
    assert!(start.elapsed() < Duration::from_secs(3));
    gw.stop().await;
}

#[tokio::test]
async fn upstream_429_everywhere_becomes_a_429_with_retry_after() {
    let up = FakeUpstream::start(|_, _| async {
        Reply::JsonHeaders(
            429,
            json!({"error": {"message": "quota", "type": "rate_limit_error"}}),
            vec![("retry-after", "0".into())],
        )
    })
    .await;
    let gw = gateway(&format!(
        "{}{}    retry: {{ max_attempts: 2, initial_backoff: 10ms }}\n",
        providers_yaml(&[&up], ""),
        route(&["p0"], "")
    ))
    .await;
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(up.calls(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn weighted_strategy_spreads_load() {
    let a = FakeUpstream::openai().await;
    let b = FakeUpstream::openai().await;
    let gw = gateway(&format!(
        "{}routes:\n  m:\n    strategy: weighted\n    targets:\n      - {{provider: p0, weight: 1}}\n      - {{provider: p1, weight: 1}}\n",
        providers_yaml(&[&a, &b], "")
    ))
    .await;
    for _ in 0..40 {
        assert_eq!(gw.chat("m", "hi").await.status(), 200);
    }
    // Each side is chosen with p=1/2 per request; both unused has p=2^-39.
    assert!(
        a.calls() > 0 && b.calls() > 0,
        "{} / {}",
        a.calls(),
        b.calls()
    );
    assert_eq!(a.calls() + b.calls(), 40);
    gw.stop().await;
}

#[tokio::test]
async fn gateway_concurrency_limit_sheds_load_with_503() {
    let up = FakeUpstream::start(|s, _| async move {
        Reply::After(
            Duration::from_millis(400),
            Box::new(Reply::Json(200, chat_reply(&s.body, "x"))),
        )
    })
    .await;
    let gw = gateway(&format!(
        "server:\n  max_concurrent_requests: 1\n{}{}",
        providers_yaml(&[&up], ""),
        route(&["p0"], "")
    ))
    .await;
    let first = gw.spawn_post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
    );
    eventually(async || up.calls() >= 1).await;
    let r = gw.chat("m", "second").await;
    assert_eq!(r.status(), 503);
    assert_eq!(error_of(r).await["code"], "overloaded");
    assert_eq!(first.await.unwrap().status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn open_breaker_half_opens_after_open_for_and_closes_on_success() {
    // Fails once, then recovers.
    let up = FakeUpstream::start(|s, n| async move {
        if n == 1 {
            Reply::Json(500, json!({}))
        } else {
            Reply::Json(200, chat_reply(&s.body, "back"))
        }
    })
    .await;
    let gw = gateway(&format!(
        "{}{}    retry: {{ max_attempts: 1 }}\n",
        providers_yaml(
            &[&up],
            "    breaker: { failure_threshold: 1, open_for: 300ms }\n"
        ),
        route(&["p0"], "")
    ))
    .await;
    assert_eq!(gw.chat("m", "x").await.status(), 502);
    assert_eq!(
        gw.chat("m", "x").await.status(),
        503,
        "open right after the failure"
    );
    assert_eq!(up.calls(), 1);
    let mut recovered = false;
    for _ in 0..200 {
        if gw.chat("m", "x").await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(recovered, "a half-open probe closed the breaker");
    assert_eq!(up.calls(), 2, "exactly one probe went upstream");
    assert_eq!(
        gw.metric(r#"switchyard_breaker_state{provider="p0"}"#)
            .await,
        0.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_breaker_transitions_total{provider="p0",to="half_open"}"#)
            .await,
        1.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_breaker_transitions_total{provider="p0",to="closed"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_that_stalls_mid_way_ends_with_an_sse_error_event() {
    // Content first (so the answer has started), then the stream stalls.
    let up = FakeUpstream::start(|_, _| async {
        let mut events = vec!["data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n".into()];
        events.extend(vec!["data: {\"choices\":[]}\n\n".to_string(); 2]);
        Reply::Sse(events, Duration::from_millis(250))
    })
    .await;
    let gw = gateway(&format!(
        "{}{}    retry: {{ max_attempts: 1 }}\n",
        providers_yaml(&[&up], "    timeouts: { first_byte: 5s, total: 600ms }\n"),
        route(&["p0"], "")
    ))
    .await;
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"),
        "{text}"
    );
    let last = text.trim_end().lines().last().unwrap();
    let event: serde_json::Value =
        serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(event["error"]["code"], "stream_interrupted");
    gw.stop().await;
}

#[tokio::test]
async fn route_deadline_bounds_retries_and_failover() {
    let slow = FakeUpstream::start(|s, _| async move {
        Reply::After(
            Duration::from_secs(3),
            Box::new(Reply::Json(200, chat_reply(&s.body, "late"))),
        )
    })
    .await;
    let gw = gateway(&format!(
        "{}{}    retry: {{ max_attempts: 3 }}\n    deadline: 300ms\n",
        providers_yaml(&[&slow, &slow], "    timeouts: { first_byte: 10s }\n"),
        route(&["p0", "p1"], "")
    ))
    .await;
    let start = tokio::time::Instant::now();
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 504);
    assert_eq!(error_of(r).await["code"], "deadline_exceeded");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_that_breaks_before_its_first_event_is_retried_not_answered() {
    let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": null}]});
    let up = FakeUpstream::start(move |_, n| {
        let events = if n == 1 {
            // Headers, then the body ends: not one event.
            vec![]
        } else {
            vec![format!("data: {chunk}\n\n"), "data: [DONE]\n\n".to_string()]
        };
        async move { Reply::Sse(events, Duration::from_millis(1)) }
    })
    .await;
    let gw = gateway(&format!(
        "{}{}{FAST_RETRY}",
        providers_yaml(&[&up], ""),
        route(&["p0"], "")
    ))
    .await;
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    let body = r.text().await.unwrap();
    assert!(body.contains("\"ok\"") && !body.contains("error"), "{body}");
    assert_eq!(up.calls(), 2);
    gw.stop().await;
}
