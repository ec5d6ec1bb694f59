//! Streaming chat through the cache: stored and replayed, served from and
//! as whole answers, usage handling, what is never stored, coalescing of
//! identical concurrent streams, and `Cache-Control: no-cache`.

use crate::common;

use std::time::Duration;

use common::logs::capture_logs;
use common::scripted::Scripted;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

const ROUTE: &str =
    "routes:\n  r:\n    targets: [{provider: p0}]\n    cache: { enabled: true, ttl: 5m }\n";

fn chunk(delta: Value, finish: Value) -> String {
    let c = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 5, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

/// An OpenAI stream of `words`, with a usage chunk when the request asked.
fn stream_events(body: &Value, words: &[&str]) -> Vec<String> {
    let mut e = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    e.extend(
        words
            .iter()
            .map(|w| chunk(json!({"content": w}), Value::Null)),
    );
    e.push(chunk(json!({}), json!("stop")));
    if body["stream_options"]["include_usage"] == true {
        let u = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 5, "model": "m",
                       "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}});
        e.push(format!("data: {u}\n\n"));
    }
    e.push("data: [DONE]\n\n".into());
    e
}

fn request(stream: bool, usage: bool) -> Value {
    let mut r =
        json!({"model": "r", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    if usage {
        r["stream_options"] = json!({"include_usage": true});
    }
    r
}

/// The `data:` payloads of an SSE body, in order.
async fn events(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

fn chunks(events: &[String]) -> Vec<Value> {
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let out: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    for c in &out {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
    }
    out
}

fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

async fn cached_gateway(up: &FakeUpstream, cache: &str) -> TestGateway {
    gateway(&format!("{cache}{}{ROUTE}", providers_yaml(&[up], ""))).await
}

#[tokio::test]
async fn a_stream_is_stored_and_replayed() {
    let up = FakeUpstream::start(|s, _| async move {
        Reply::Sse(stream_events(&s.body, &["Hel", "lo"]), Duration::ZERO)
    })
    .await;
    let gw = cached_gateway(&up, "").await;
    let first = gw.post("/v1/chat/completions", request(true, false)).await;
    assert_eq!(first.headers()["x-switchyard-cache"], "miss");
    let first = events(first).await;
    assert_eq!(
        up.requests()[0].body["stream_options"]["include_usage"],
        true,
        "asked upstream"
    );
    let parsed = chunks(&first);
    assert_eq!(content(&parsed), "Hello");
    assert!(
        parsed.iter().all(|c| c.get("usage").is_none()),
        "usage stripped: {first:?}"
    );
    let again = gw.post("/v1/chat/completions", request(true, false)).await;
    assert_eq!(again.headers()["x-switchyard-cache"], "hit");
    assert_eq!(again.headers()["x-switchyard-provider"], "p0");
    assert_eq!(events(again).await, first, "the replay is the same events");
    // A client asking for usage gets it from the stored stream.
    let with_usage = events(gw.post("/v1/chat/completions", request(true, true)).await).await;
    let parsed = chunks(&with_usage);
    let last = parsed.last().unwrap();
    assert_eq!(last["usage"]["total_tokens"], 6);
    assert_eq!(last["choices"], json!([]));
    assert_eq!(up.calls(), 1);
    let hits = r#"switchyard_cache_hits_total{kind="chat_stream",route="r"}"#;
    assert_eq!(gw.metric(hits).await, 2.0);
    let misses = r#"switchyard_cache_misses_total{kind="chat_stream",route="r"}"#;
    assert_eq!(gw.metric(misses).await, 1.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_whole_answer_is_served_from_a_stored_stream_with_tool_calls() {
    let up = FakeUpstream::start(|s, _| async move {
        let call = |f: Value| chunk(json!({"tool_calls": [f]}), Value::Null);
        let mut e = vec![chunk(
            json!({"role": "assistant", "content": null}),
            Value::Null,
        )];
        e.push(call(json!({"index": 0, "id": "call_a", "type": "function",
                            "function": {"name": "lookup", "arguments": "{\"q\":"}})));
        e.push(call(
            json!({"index": 0, "function": {"arguments": "\"x\"}"}}),
        ));
        e.push(chunk(json!({}), json!("tool_calls")));
        let tail = stream_events(&s.body, &[]);
        e.extend(tail.into_iter().skip(2));
        Reply::Sse(e, Duration::ZERO)
    })
    .await;
    let gw = cached_gateway(&up, "").await;
    let streamed =
        chunks(&events(gw.post("/v1/chat/completions", request(true, false)).await).await);
    assert_eq!(
        streamed.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
    let whole = gw.post("/v1/chat/completions", request(false, false)).await;
    assert_eq!(whole.headers()["x-switchyard-cache"], "hit");
    let v: Value = whole.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"], "chatcmpl-s");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["role"], "assistant");
    assert_eq!(m["tool_calls"][0]["id"], "call_a");
    assert_eq!(m["tool_calls"][0]["function"]["name"], "lookup");
    assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"q\":\"x\"}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["total_tokens"], 6, "usage the gateway asked for");
    assert_eq!(up.calls(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_is_served_from_a_stored_whole_answer() {
    let up = FakeUpstream::openai().await;
    let gw = cached_gateway(&up, "").await;
    let whole = gw.post("/v1/chat/completions", request(false, false)).await;
    assert_eq!(whole.headers()["x-switchyard-cache"], "miss");
    let r = gw.post("/v1/chat/completions", request(true, true)).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    let parsed = chunks(&events(r).await);
    assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(content(&parsed), "fake answered");
    assert!(parsed.iter().all(|c| c["id"] == "chatcmpl-test"));
    let n = parsed.len();
    assert_eq!(parsed[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(parsed[n - 1]["choices"], json!([]));
    assert_eq!(parsed[n - 1]["usage"]["total_tokens"], 5);
    let plain = chunks(&events(gw.post("/v1/chat/completions", request(true, false)).await).await);
    assert!(plain.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(content(&plain), "fake answered");
    assert_eq!(up.calls(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn errored_torn_and_oversized_streams_are_not_stored() {
    let up = FakeUpstream::start(|s, n| async move {
        let mut e = stream_events(&s.body, &["a", "b"]);
        match n {
            // Torn: no [DONE].
            1 => e.truncate(e.len() - 1),
            // An in-band error event before [DONE].
            2 => e.insert(
                2,
                "data: {\"error\":{\"message\":\"overloaded\"}}\n\n".into(),
            ),
            _ => {}
        }
        Reply::Sse(e, Duration::ZERO)
    })
    .await;
    let gw = cached_gateway(&up, "").await;
    let torn = events(gw.post("/v1/chat/completions", request(true, false)).await).await;
    assert!(
        torn.last().unwrap().contains("stream_interrupted"),
        "{torn:?}"
    );
    let errored = events(gw.post("/v1/chat/completions", request(true, false)).await).await;
    assert!(errored.iter().any(|e| e.contains("overloaded")));
    let good = gw.post("/v1/chat/completions", request(true, false)).await;
    assert_eq!(good.headers()["x-switchyard-cache"], "miss");
    assert_eq!(content(&chunks(&events(good).await)), "ab");
    let hit = gw.post("/v1/chat/completions", request(true, false)).await;
    assert_eq!(hit.headers()["x-switchyard-cache"], "hit");
    assert_eq!(up.calls(), 3, "only the good stream was stored");
    gw.stop().await;
    // Over max_entry_bytes: served whole, never stored.
    let big = "x".repeat(400);
    let up = FakeUpstream::start(move |s, _| {
        let big = big.clone();
        async move { Reply::Sse(stream_events(&s.body, &[&big, &big]), Duration::ZERO) }
    })
    .await;
    let gw = cached_gateway(&up, "cache:\n  max_entry_bytes: 600\n").await;
    for _ in 0..2 {
        let r = gw.post("/v1/chat/completions", request(true, false)).await;
        assert_eq!(r.headers()["x-switchyard-cache"], "miss");
        assert_eq!(content(&chunks(&events(r).await)).len(), 800);
    }
    assert_eq!(up.calls(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn no_cache_bypasses_the_stream_cache() {
    let up = FakeUpstream::start(|s, _| async move {
        Reply::Sse(stream_events(&s.body, &["hi"]), Duration::ZERO)
    })
    .await;
    let gw = cached_gateway(&up, "").await;
    for _ in 0..2 {
        let r = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.base))
            .header("cache-control", "no-cache")
            .json(&request(true, false))
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("x-switchyard-cache").is_none());
        assert_eq!(content(&chunks(&events(r).await)), "hi");
    }
    assert_eq!(up.calls(), 2);
    assert_eq!(
        up.requests()[0].body["stream_options"],
        json!({"include_usage": true}),
        "every stream asks for usage, for accounting"
    );
    gw.stop().await;
}

async fn scripted_gateway(up: &Scripted) -> TestGateway {
    gateway(&format!(
        "providers:\n  p0:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n{ROUTE}",
        up.base
    ))
    .await
}

const COALESCED: &str = r#"switchyard_coalesced_requests_total{kind="chat_stream",route="r"}"#;

#[tokio::test]
async fn identical_concurrent_streams_share_one_upstream_stream() {
    let mut up = Scripted::start().await;
    let gw = scripted_gateway(&up).await;
    let wire = stream_events(
        &json!({"stream_options": {"include_usage": true}}),
        &["one", " two"],
    );
    let leader = gw.spawn_post("/v1/chat/completions", request(true, false));
    let tx = up.requests.recv().await.unwrap();
    for e in &wire[..2] {
        tx.send(e.clone()).unwrap();
    }
    // Followers join mid-stream and still get it from the start.
    let followers: Vec<_> = (0..4)
        .map(|i| gw.spawn_post("/v1/chat/completions", request(true, i % 2 == 0)))
        .collect();
    eventually(async || gw.metric(COALESCED).await == 4.0).await;
    for e in &wire[2..] {
        tx.send(e.clone()).unwrap();
    }
    drop(tx);
    let leader = leader.await.unwrap();
    assert_eq!(leader.headers()["x-switchyard-cache"], "miss");
    let expected = events(leader).await;
    assert_eq!(content(&chunks(&expected)), "one two");
    for (i, f) in followers.into_iter().enumerate() {
        let f = f.await.unwrap();
        assert_eq!(f.headers()["x-switchyard-cache"], "hit");
        let got = events(f).await;
        if i % 2 == 0 {
            assert_eq!(chunks(&got).last().unwrap()["usage"]["total_tokens"], 6);
            assert_eq!(got.len(), expected.len() + 1);
        } else {
            assert_eq!(got, expected);
        }
    }
    assert_eq!(up.calls(), 1);
    // Stored: a later request is a hit without an upstream call.
    let r = gw.post("/v1/chat/completions", request(true, false)).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    assert_eq!(events(r).await, expected);
    assert_eq!(up.calls(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn followers_keep_going_when_the_leader_leaves_and_share_its_failure() {
    let mut up = Scripted::start().await;
    let gw = scripted_gateway(&up).await;
    let wire = stream_events(&json!({}), &["a", "b", "c"]);
    // The answer starts once content arrived (the role chunk is held).
    let leader = gw.spawn_post("/v1/chat/completions", request(true, false));
    let tx = up.requests.recv().await.unwrap();
    tx.send(wire[0].clone()).unwrap();
    tx.send(wire[1].clone()).unwrap();
    let mut leader_body = leader.await.unwrap().bytes_stream();
    assert!(leader_body.next().await.unwrap().is_ok());
    let follower = gw.spawn_post("/v1/chat/completions", request(true, false));
    eventually(async || gw.metric(COALESCED).await == 1.0).await;
    drop(leader_body);
    let done = r#"switchyard_requests_total{endpoint="chat",route="r",status="200"}"#;
    eventually(async || gw.metric(done).await == 1.0).await;
    for e in &wire[2..] {
        tx.send(e.clone()).unwrap();
    }
    drop(tx);
    let got = chunks(&events(follower.await.unwrap()).await);
    assert_eq!(content(&got), "abc");
    assert_eq!(up.calls(), 1);

    // A stream that breaks after content: leader and follower both get the
    // error event, and nothing is stored.
    let mut other = request(true, false);
    other["messages"][0]["content"] = json!("other");
    let leader = gw.spawn_post("/v1/chat/completions", other.clone());
    let tx = up.requests.recv().await.unwrap();
    tx.send(wire[0].clone()).unwrap();
    tx.send(wire[1].clone()).unwrap();
    let follower = gw.spawn_post("/v1/chat/completions", other.clone());
    eventually(async || gw.metric(COALESCED).await == 2.0).await;
    drop(tx);
    for r in [leader, follower] {
        let got = events(r.await.unwrap()).await;
        assert!(
            got.last().unwrap().contains("stream_interrupted"),
            "{got:?}"
        );
    }
    let retry = gw.spawn_post("/v1/chat/completions", other);
    let tx = up.requests.recv().await.unwrap();
    for e in &wire {
        tx.send(e.clone()).unwrap();
    }
    drop(tx);
    let retry = retry.await.unwrap();
    assert_eq!(retry.headers()["x-switchyard-cache"], "miss");
    assert_eq!(content(&chunks(&events(retry).await)), "abc");
    assert_eq!(up.calls(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn an_abandoned_stream_is_cancelled_upstream() {
    let logs = capture_logs();
    let mut up = Scripted::start().await;
    let gw = scripted_gateway(&up).await;
    let leader = gw.spawn_post("/v1/chat/completions", request(true, false));
    let tx = up.requests.recv().await.unwrap();
    tx.send(chunk(json!({"content": "x"}), Value::Null))
        .unwrap();
    let mut body = leader.await.unwrap().bytes_stream();
    assert!(body.next().await.unwrap().is_ok());
    drop(body);
    // The gateway drops the upstream body once no reader is left.
    tokio::time::timeout(Duration::from_secs(10), tx.closed())
        .await
        .expect("upstream stream cancelled");
    eventually(async || gw.metric("switchyard_requests_in_flight").await == 0.0).await;
    // Its access line says so, in the request's span like every other
    // (the body was dropped outside it).
    let gone = logs
        .lines_with("switchyard::access")
        .into_iter()
        .find(|l| l.contains("outcome=\"client_gone\""))
        .unwrap_or_else(|| panic!("no client_gone line in\n{}", logs.text()));
    assert!(gone.contains(" request{id="), "{gone}");
    gw.stop().await;
}
