//! `POST /v1/completions` (legacy text completions) and `HEAD` on the GET
//! endpoints, over HTTP: passthrough of JSON and SSE to an openai-kind fake
//! (body unchanged but `model`), the mock's own answers, the cache,
//! targets that cannot serve the endpoint skipped or refused.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A `text_completion` as OpenAI answers one, for `body`.
fn completion_reply(body: &Value) -> Value {
    json!({"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": body["model"],
           "choices": [{"text": " hello there", "index": 0, "logprobs": null,
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}})
}

/// The SSE events of a streamed completion; `usage` as OpenAI sends them
/// when `stream_options.include_usage` is set: `"usage": null` on every
/// chunk and a last chunk with no choices and the counts.
fn completion_events(usage: bool) -> Vec<String> {
    let chunk = |text: &str, finish: Value| {
        let mut c = json!({"id": "cmpl-fake", "object": "text_completion", "created": 1,
                           "model": "gpt-3.5-turbo-instruct",
                           "choices": [{"text": text, "index": 0, "logprobs": null,
                                        "finish_reason": finish}]});
        if usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut events = vec![
        chunk(" hello", Value::Null),
        chunk(" there", Value::Null),
        chunk("", json!("stop")),
    ];
    if usage {
        let last = json!({"id": "cmpl-fake", "object": "text_completion", "created": 1,
                          "model": "gpt-3.5-turbo-instruct", "choices": [],
                          "usage": {"prompt_tokens": 2, "completion_tokens": 2,
                                    "total_tokens": 4}});
        events.push(format!("data: {last}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_string());
    events
}

async fn completions_upstream() -> FakeUpstream {
    FakeUpstream::start(|s, _| async move {
        if !s.path.ends_with("/completions") || s.path.ends_with("/chat/completions") {
            return default_reply(&s);
        }
        if s.body["stream"] == json!(true) {
            let usage = s.body["stream_options"]["include_usage"] == json!(true);
            Reply::Sse(completion_events(usage), Duration::ZERO)
        } else {
            Reply::Json(200, completion_reply(&s.body))
        }
    })
    .await
}

const MOCK_ROUTE: &str = "providers:
  m:
    kind: mock
routes:
  mocked:
    targets: [{provider: m, model: mock-instruct}]
";

#[tokio::test]
async fn completions_pass_through_to_an_openai_upstream_as_json_and_sse() {
    let up = completions_upstream().await;
    let yaml = format!(
        "{}routes:\n  legacy:\n    targets: [{{provider: p0, model: gpt-3.5-turbo-instruct}}]\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let sent = json!({"model": "legacy", "prompt": ["Say hi"], "max_tokens": 5,
                      "suffix": "!", "logit_bias": {"50256": -100}, "echo": false});
    let r = gw.post("/v1/completions", sent.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p0");
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["object"], "text_completion");
    assert_eq!(got["choices"][0]["text"], " hello there");
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/completions");
    let mut expected = sent.clone();
    expected["model"] = json!("gpt-3.5-turbo-instruct");
    assert_eq!(seen[0].body, expected, "only `model` is rewritten");
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Bearer {TEST_KEY}")
    );

    let mut streamed = sent.clone();
    streamed["stream"] = json!(true);
    let r = gw.post("/v1/completions", streamed.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    // What the client would get had the gateway not asked for usage.
    assert_eq!(text, completion_events(false).concat());
    let seen = up.requests();
    let mut expected = streamed;
    expected["model"] = json!("gpt-3.5-turbo-instruct");
    // The gateway asks for usage (to count tokens) and strips it again.
    expected["stream_options"] = json!({"include_usage": true});
    assert_eq!(seen[1].body, expected);
    gw.stop().await;
}

/// The `data:` payloads of an SSE body, `[DONE]` excluded (asserted last).
fn events(text: &str) -> Vec<Value> {
    let data: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn the_mock_answers_completions_with_n_echo_max_tokens_and_streamed_usage() {
    let gw = gateway(MOCK_ROUTE).await;
    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "mocked", "prompt": ["one two", "three"], "n": 2, "echo": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], "mock-instruct");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4, "{v}");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["finish_reason"], "stop");
    }
    assert!(choices[0]["text"].as_str().unwrap().starts_with("one two "));
    assert!(choices[2]["text"].as_str().unwrap().starts_with("three "));
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "mocked", "prompt": "a long prompt of many words", "max_tokens": 2}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["choices"][0]["text"], " [m] completes:");

    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "mocked", "prompt": "stream me", "stream": true,
                   "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let evs = events(&r.text().await.unwrap());
    let (last, rest) = evs.split_last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let text: String = rest
        .iter()
        .map(|e| {
            assert_eq!(e["object"], "text_completion");
            assert_eq!(e["usage"], Value::Null);
            e["choices"][0]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, " [m] completes: stream me");
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");

    // Without include_usage: no usage field and no usage chunk (the
    // gateway asked the mock for usage, and took it out again).
    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "mocked", "prompt": "x", "stream": true}),
        )
        .await;
    let evs = events(&r.text().await.unwrap());
    assert!(
        evs.iter()
            .all(|e| e.get("usage").is_none() && e["choices"].as_array().unwrap().len() == 1),
        "{evs:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn non_streaming_completions_are_cached_on_cached_routes() {
    let up = completions_upstream().await;
    let yaml = format!(
        "{}routes:\n  legacy:\n    targets: [{{provider: p0}}]\n    cache: {{enabled: true, ttl: 5m}}\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let body = json!({"model": "legacy", "prompt": "cache me", "temperature": 0});
    let first = gw.post("/v1/completions", body.clone()).await;
    assert_eq!(first.headers()["x-switchyard-cache"], "miss");
    let first: Value = first.json().await.unwrap();
    let second = gw.post("/v1/completions", body.clone()).await;
    assert_eq!(second.headers()["x-switchyard-cache"], "hit");
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    assert_eq!(up.calls(), 1);
    // Another prompt, or the same as chat, is not that entry.
    let other = gw
        .post(
            "/v1/completions",
            json!({"model": "legacy", "prompt": "other"}),
        )
        .await;
    assert_eq!(other.headers()["x-switchyard-cache"], "miss");
    let chat = gw.chat("legacy", "cache me").await;
    assert_eq!(chat.headers()["x-switchyard-cache"], "miss");
    // Streams are never cached.
    let mut stream = body;
    stream["stream"] = json!(true);
    let s = gw.post("/v1/completions", stream).await;
    assert!(s.headers().get("x-switchyard-cache").is_none());
    let _ = s.text().await.unwrap();
    assert_eq!(up.calls(), 4);
    assert_eq!(
        gw.metric("switchyard_cache_hits_total{kind=\"completions\",route=\"legacy\"}")
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn targets_without_completions_are_skipped_and_a_route_with_none_is_refused() {
    let up = completions_upstream().await;
    let yaml = format!(
        "{}  claude:
    kind: anthropic
    base_url: http://127.0.0.1:9
    api_key_env: TEST_UPSTREAM_KEY
routes:
  chat-only:
    targets: [{{provider: claude, model: claude-sonnet-4-5}}]
  mixed:
    targets: [{{provider: claude, model: claude-sonnet-4-5}}, {{provider: p0}}]
",
        providers_yaml(&[&up], "")
    );
    let gw = gateway(&yaml).await;
    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "chat-only", "prompt": "x"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let e = error_of(r).await;
    assert_eq!(e["code"], "unsupported_endpoint");
    assert_eq!(e["param"], "model");
    // The anthropic target is skipped, not tried and failed.
    let r = gw
        .post("/v1/completions", json!({"model": "mixed", "prompt": "x"}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p0");
    assert_eq!(r.headers()["x-switchyard-attempts"], "1");
    // Bad bodies get OpenAI-style 400s before any routing.
    for (body, param) in [
        (json!({"model": "mixed"}), "prompt"),
        (json!({"model": "mixed", "prompt": {}}), "prompt"),
        (
            json!({"model": "mixed", "prompt": "x", "stream": 1}),
            "stream",
        ),
    ] {
        let r = gw.post("/v1/completions", body).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_of(r).await["param"], param);
    }
    let r = gw
        .post("/v1/completions", json!({"model": "nope", "prompt": "x"}))
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(up.calls(), 1);
    let r = gw.get("/v1/completions").await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    gw.stop().await;
}

#[tokio::test]
async fn head_answers_every_get_endpoint_like_get_without_a_body() {
    let gw = gateway(MOCK_ROUTE).await;
    for path in [
        "/v1/models",
        "/v1/models/mocked",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        let get = gw.get(path).await;
        assert_eq!(get.status(), 200, "{path}");
        let get_type = get.headers()["content-type"].clone();
        let head = gw
            .http
            .head(format!("{}{path}", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(head.headers()["content-type"], get_type, "{path}");
        assert!(head.headers().contains_key("x-request-id"));
        assert_eq!(head.bytes().await.unwrap().len(), 0, "{path}");
    }
    let head = gw
        .http
        .head(format!("{}/v1/models/unknown", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    for path in [
        "/v1/models",
        "/v1/models/mocked",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        let r = gw.post(path, json!({})).await;
        assert_eq!(r.status(), 405, "{path}");
        assert_eq!(r.headers()["allow"], "GET, HEAD", "{path}");
        assert_eq!(error_of(r).await["type"], "invalid_request_error");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_failing_openai_target_fails_over_to_the_mock_for_completions() {
    let down = FakeUpstream::start(|_, _| async move {
        Reply::Json(
            503,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        )
    })
    .await;
    let yaml = format!(
        "{}  m:\n    kind: mock\nroutes:\n  legacy:\n    retry: {{max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms}}\n    targets: [{{provider: p0}}, {{provider: m}}]\n",
        providers_yaml(&[&down], "")
    );
    let gw = gateway(&yaml).await;
    for stream in [false, true] {
        let r = gw
            .post(
                "/v1/completions",
                json!({"model": "legacy", "prompt": "fail over", "stream": stream}),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-provider"], "m");
        assert_eq!(r.headers()["x-switchyard-attempts"], "3");
        let body = r.text().await.unwrap();
        let text = if stream {
            let evs = events(&body);
            evs.iter()
                .filter_map(|e| e["choices"][0]["text"].as_str())
                .collect::<String>()
        } else {
            serde_json::from_str::<Value>(&body).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(text, " [m] completes: fail over");
    }
    assert_eq!(down.calls(), 4);
    gw.stop().await;
}
