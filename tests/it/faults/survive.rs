//! Streams that survive: a stream that breaks or opens with an error
//! before any content fails over unseen (the first events are held); with
//! `stream_continuation`, one that breaks, stalls or errors after content
//! is continued by the next target and reads as one stream; a stream too
//! slow after its first token is a stall.

use crate::common;

use common::faults::*;
use common::*;
use serde_json::{Value, json};

const CONTINUED: &str = "    retry: { max_attempts: 1 }\n    stream_continuation: true\n\
                         \x20   stream_min_rate: { tokens_per_second: 2, window: 500ms }\n";

async fn stream(gw: &TestGateway, route: &str) -> (reqwest::header::HeaderMap, Parsed) {
    let r = within(
        10,
        gw.post("/v1/chat/completions", chat_body(route, "hi", true)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    (headers, within(10, read_sse(r)).await)
}

/// The chunks of a parsed stream (every event but `[DONE]`).
fn chunks(p: &Parsed) -> Vec<Value> {
    p.data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn a_stream_that_breaks_or_errors_before_content_fails_over_unseen() {
    let routes = route_yaml("m", &["p0", "p1"], ONE_TRY) + &route_yaml("alone", &["p0"], ONE_TRY);
    let (p0, p1, gw) = pair(NO_BREAKER, &routes).await;
    for (i, f) in [Fault::StreamCutBeforeContent, Fault::FirstEventError]
        .into_iter()
        .enumerate()
    {
        p0.set(f.clone());
        let (h, p) = stream(&gw, "m").await;
        assert_eq!(h["x-switchyard-provider"], "p1", "{f:?}");
        assert!(
            p.done && p.errors.is_empty() && p.invalid.is_empty(),
            "{f:?}: {}",
            p.raw
        );
        assert_eq!(p.content, "p1 answered", "{f:?}");
        assert_eq!(p1.calls(), i + 1);
        // Alone, it is an error status, as for a request that is not
        // streamed: never a 200 from the bad provider, never the key.
        let r = gw
            .post("/v1/chat/completions", chat_body("alone", "hi", true))
            .await;
        let (status, headers, text) = whole(r).await;
        assert_eq!(status, 502, "{f:?}: {text}");
        assert!(
            headers.contains("content-type: application/json"),
            "{headers}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], "upstream_error", "{text}");
        assert_eq!(key_leak_in(&text), None, "{text}");
    }
    // Both failed the attempt where they happened: counted, fed the breaker.
    let protocol = gw.metric(P0_PROTOCOL).await;
    let status = gw
        .metric(r#"switchyard_upstream_requests_total{outcome="status_5xx",provider="p0"}"#)
        .await;
    assert_eq!((protocol, status), (2.0, 2.0));
    assert_eq!(
        gw.metric(P0_INTERRUPTED).await,
        0.0,
        "no stream was interrupted"
    );
    gw.stop().await;
}

#[tokio::test]
async fn with_continuation_a_stream_broken_after_content_is_finished_by_the_next_target() {
    let routes = route_yaml("m", &["p0", "p1"], CONTINUED);
    let (p0, p1, gw) = pair(NO_BREAKER, &routes).await;
    let faults = [
        Fault::StreamCutMidEvent,
        Fault::StreamStall,
        Fault::Echo(Encoding::Raw, Place::SseEvent),
    ];
    for (i, f) in faults.into_iter().enumerate() {
        p0.set(f.clone());
        let (h, p) = stream(&gw, "m").await;
        // The answer started on p0 and reads as one stream.
        assert_eq!(h["x-switchyard-provider"], "p0", "{f:?}");
        assert!(
            p.done && p.errors.is_empty() && p.invalid.is_empty(),
            "{f:?}: {}",
            p.raw
        );
        assert_eq!(p.content, "p0 answered", "{f:?}");
        let chunks = chunks(&p);
        assert!(
            chunks.iter().all(|c| c["id"] == "chatcmpl-s"),
            "{f:?}: {}",
            p.raw
        );
        let roles = chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"]["role"].is_string())
            .count();
        assert_eq!(roles, 1, "one role chunk: {}", p.raw);
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            last["switchyard"],
            json!({"continued": 1, "providers": ["p0", "p1"]}),
            "{f:?}"
        );
        // p1 was asked to go on from the partial answer (as context: an
        // openai-kind target is not prefilled).
        let asked = &p1.received()[i].body["messages"];
        assert_eq!(
            asked[1],
            json!({"role": "assistant", "content": "p0"}),
            "{asked}"
        );
        assert_eq!(asked[2]["role"], "user");
        assert_eq!(
            p0.received()[i].body["messages"].as_array().unwrap().len(),
            1
        );
    }
    let continued = r#"switchyard_stream_continuations_total{provider="p0",route="m"}"#;
    assert_eq!(gw.metric(continued).await, 3.0);
    let stalls = r#"switchyard_stream_stalls_total{provider="p0",route="m"}"#;
    assert_eq!(gw.metric(stalls).await, 1.0, "the stall was one");
    assert_eq!(gw.metric(P0_INTERRUPTED).await, 0.0);

    // An answer that was whole but lost its `[DONE]` is ended, not continued.
    p0.set(Fault::StreamNoDone);
    let (_, p) = stream(&gw, "m").await;
    assert!(p.done && p.errors.is_empty(), "{}", p.raw);
    assert_eq!(p.content, "p0 answered");
    assert!(chunks(&p).iter().all(|c| c.get("switchyard").is_none()));
    assert_eq!(p1.calls(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn without_continuation_a_slow_stream_is_a_stall_and_ends_with_an_error_event() {
    let guard = "    retry: { max_attempts: 1 }\n\
                 \x20   stream_min_rate: { tokens_per_second: 2, window: 300ms }\n";
    let (p0, p1, gw) = pair(NO_BREAKER, &route_yaml("m", &["p0", "p1"], guard)).await;
    p0.set(Fault::StreamStall);
    let started = tokio::time::Instant::now();
    let (_, p) = stream(&gw, "m").await;
    // Cut after one window of silence, not the 30s idle timeout.
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(p.content, "p0");
    assert_ends_with_interruption(&p);
    let stalls = r#"switchyard_stream_stalls_total{provider="p0",route="m"}"#;
    assert_eq!(gw.metric(stalls).await, 1.0);
    assert_eq!(gw.metric(P0_INTERRUPTED).await, 1.0);
    assert_eq!(p1.calls(), 0, "not continued");
    // A healthy stream is not slowed down or cut by the guard.
    p0.set(Fault::Healthy);
    let (_, p) = stream(&gw, "m").await;
    assert!(p.done && p.errors.is_empty(), "{}", p.raw);
    gw.stop().await;
}
