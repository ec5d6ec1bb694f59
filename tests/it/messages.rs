//! `POST /v1/messages` and `/v1/messages/count_tokens` through the gateway:
//! passed through to the Anthropic fake (body, headers, key), translated to
//! an OpenAI-kind fake and to the mock (JSON, SSE, tools), failover across
//! the two ways, and errors in Anthropic's shape.

use crate::common;

use common::FakeUpstream;
use common::anthropic::{FAKE_KEY, Failure, FakeAnthropic, KEY_ENV, gateway};
use common::chat_tools::chat_fake;
use serde_json::{Value, json};

/// Routes: `claude` (anthropic fake), `gpt` (chat fake), `mocked` (mock),
/// `both` (anthropic fake first, then the chat fake).
fn policy(fake: &FakeAnthropic, chat: &FakeUpstream) -> String {
    format!(
        "providers:\n  claude:\n    kind: anthropic\n    base_url: {}\n    api_key_env: {KEY_ENV}\n\
         \x20 oai:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n\
         \x20 m:\n    kind: mock\n\
         routes:\n\
         \x20 claude:\n    targets:\n      - provider: claude\n        model: claude-fake-1\n    retry: {{max_attempts: 1}}\n\
         \x20 gpt:\n    targets:\n      - provider: oai\n        model: gpt-up\n    retry: {{max_attempts: 1}}\n\
         \x20 mocked:\n    targets:\n      - provider: m\n\
         \x20 both:\n    targets:\n      - provider: claude\n        model: claude-fake-1\n      - provider: oai\n        model: gpt-up\n    retry: {{max_attempts: 1}}\n",
        fake.base_url(),
        chat.base_url()
    )
}

async fn setup() -> (FakeAnthropic, FakeUpstream, common::TestGateway) {
    let fake = FakeAnthropic::start().await;
    let chat = chat_fake().await;
    let gw = gateway(&policy(&fake, &chat)).await;
    (fake, chat, gw)
}

async fn post(gw: &common::TestGateway, path: &str, body: Value) -> reqwest::Response {
    gw.http
        .post(format!("{}{path}", gw.base))
        .header("x-api-key", "sk-client-SECRET-must-not-leak")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "fake-beta-2025-01-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn weather_tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                             "required": ["location"]}}])
}

/// Named SSE events of a response, each with its JSON data.
async fn events(r: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, serde_json::from_str(&data).unwrap_or(Value::Null))
        })
        .collect()
}

fn names(ev: &[(String, Value)]) -> Vec<&str> {
    ev.iter().map(|(n, _)| n.as_str()).collect()
}

fn text_of(ev: &[(String, Value)], kind: &str, key: &str) -> String {
    ev.iter()
        .filter(|(_, d)| d["delta"]["type"] == kind)
        .map(|(_, d)| d["delta"][key].as_str().unwrap().to_string())
        .collect()
}

/// The Anthropic error of a response, asserting its shape.
async fn anthropic_error(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    v["error"].clone()
}

#[tokio::test]
async fn passthrough_json_sends_the_body_the_headers_and_the_providers_key() {
    let (fake, chat, gw) = setup().await;
    let r = post(
        &gw,
        "/v1/messages",
        json!({
        "model": "claude", "max_tokens": 50, "top_k": 5,
        "messages": [{"role": "user", "content": "hello there"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "claude");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Fake Claude heard: hello there");
    assert_eq!(
        v["usage"]["cache_read_input_tokens"], 0,
        "native fields kept: {v}"
    );
    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], FAKE_KEY);
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.headers["anthropic-beta"], "fake-beta-2025-01-01");
    assert!(seen.headers.get("authorization").is_none());
    assert_eq!(seen.body["model"], "claude-fake-1");
    assert_eq!(seen.body["top_k"], 5, "the body goes as the client sent it");
    assert_eq!(chat.calls(), 0);
}

#[tokio::test]
async fn passthrough_stream_forwards_anthropic_events() {
    let (fake, _chat, gw) = setup().await;
    let r = post(&gw, "/v1/messages", json!({
        "model": "claude", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "what is the weather"}], "tools": weather_tools()})).await;
    assert_eq!(r.status(), 200);
    let ev = events(r).await;
    assert_eq!(ev[0].0, "message_start");
    assert_eq!(ev.last().unwrap().0, "message_stop");
    assert_eq!(text_of(&ev, "text_delta", "text"), "Let me check.");
    let args: Value =
        serde_json::from_str(&text_of(&ev, "input_json_delta", "partial_json")).unwrap();
    assert_eq!(args, json!({"location": "Paris"}));
    let delta = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(fake.requests()[0].body["stream"], true);
}

#[tokio::test]
async fn translated_json_with_tools_round_trips_through_openai_chat() {
    let (fake, chat, gw) = setup().await;
    let first = json!({"role": "user", "content": "weather in Paris?"});
    let r = post(
        &gw,
        "/v1/messages",
        json!({
        "model": "gpt", "max_tokens": 100, "system": "Be brief.", "tools": weather_tools(),
        "tool_choice": {"type": "auto"}, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
        "messages": [first]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "oai");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["content"][0],
        json!({"type": "text", "text": "Let me check."})
    );
    assert_eq!(
        v["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}})
    );
    assert_eq!(v["usage"], json!({"input_tokens": 12, "output_tokens": 6}));
    let sent = &chat.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.headers["authorization"],
        format!("Bearer {}", common::TEST_KEY)
    );
    assert_eq!(sent.body["model"], "gpt-up");
    assert_eq!(
        sent.body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        sent.body["tools"][0]["function"]["parameters"]["required"],
        json!(["location"])
    );
    assert_eq!(sent.body["tool_choice"], "auto");
    assert_eq!(sent.body["stop"], json!(["END"]));
    assert_eq!(sent.body["user"], "u-1");
    // Second turn: the tool_use and its tool_result.
    let r = post(&gw, "/v1/messages", json!({
        "model": "gpt", "max_tokens": 100, "tools": weather_tools(),
        "messages": [first, {"role": "assistant", "content": v["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C and sunny"}]}]})).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "Tool said: 18C and sunny");
    assert_eq!(v["stop_reason"], "end_turn");
    let sent = &chat.requests()[1].body["messages"];
    assert_eq!(
        sent[1]["tool_calls"][0]["function"]["arguments"],
        "{\"location\":\"Paris\"}"
    );
    assert_eq!(
        sent[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"})
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn translated_stream_is_the_anthropic_event_sequence() {
    let (_fake, chat, gw) = setup().await;
    let r = post(
        &gw,
        "/v1/messages",
        json!({
        "model": "gpt", "max_tokens": 100, "stream": true, "tools": weather_tools(),
        "messages": [{"role": "user", "content": "weather?"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let ev = events(r).await;
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(text_of(&ev, "text_delta", "text"), "Let me check.");
    let args: Value =
        serde_json::from_str(&text_of(&ev, "input_json_delta", "partial_json")).unwrap();
    assert_eq!(args, json!({"location": "Paris"}));
    assert_eq!(
        ev[6].1["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}})
    );
    assert_eq!(ev[10].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev[10].1["usage"]["output_tokens"], 6);
    let sent = &chat.requests()[0].body;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn the_mock_serves_messages_as_json_and_stream() {
    let (_fake, _chat, gw) = setup().await;
    let body = json!({"model": "mocked", "max_tokens": 20, "messages": [{"role": "user", "content": "ping pong"}]});
    let v: Value = post(&gw, "/v1/messages", body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "[m] You said: ping pong");
    assert_eq!(v["stop_reason"], "end_turn");
    let mut body = body;
    body["stream"] = json!(true);
    let ev = events(post(&gw, "/v1/messages", body).await).await;
    assert_eq!(
        text_of(&ev, "text_delta", "text"),
        "[m] You said: ping pong"
    );
    assert_eq!(ev.last().unwrap().0, "message_stop");
}

#[tokio::test]
async fn a_route_fails_over_from_the_native_way_to_the_translated_one() {
    let (fake, chat, gw) = setup().await;
    fake.fail_next(Failure::Overloaded);
    let r = post(
        &gw,
        "/v1/messages",
        json!({
        "model": "both", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "oai");
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "Hello there");
    assert_eq!((fake.requests().len(), chat.calls()), (1, 1));
}

#[tokio::test]
async fn errors_are_written_in_anthropics_shape() {
    let (fake, chat, gw) = setup().await;
    let msg = json!([{"role": "user", "content": "hi"}]);
    let e = anthropic_error(
        post(
            &gw,
            "/v1/messages",
            json!({"model": "nope", "max_tokens": 5, "messages": msg}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(e["type"], "not_found_error");
    let e = anthropic_error(
        post(&gw, "/v1/messages", json!({"model": "gpt"})).await,
        400,
    )
    .await;
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"].as_str().unwrap().contains("messages"));
    let server_tool = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let e = anthropic_error(
        post(
            &gw,
            "/v1/messages",
            json!({"model": "gpt", "max_tokens": 5, "tools": server_tool, "messages": msg}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(e["type"], "invalid_request_error");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("web_search_20250305") && m.contains("`gpt`"),
        "{e}"
    );
    // `top_k` has no place on an OpenAI target: accepted, named, not sent.
    let r = post(
        &gw,
        "/v1/messages",
        json!({"model": "gpt", "max_tokens": 5, "top_k": 3, "messages": msg}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-ignored"], "top_k");
    assert!(chat.requests().last().unwrap().body.get("top_k").is_none());
    // The Anthropic upstream's own verdict keeps its type.
    let e = anthropic_error(
        post(
            &gw,
            "/v1/messages",
            json!({"model": "claude", "max_tokens": 0, "messages": msg}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(fake.requests().len(), 1);
    fake.fail_next(Failure::Overloaded);
    let e = anthropic_error(
        post(
            &gw,
            "/v1/messages",
            json!({"model": "claude", "max_tokens": 5, "messages": msg}),
        )
        .await,
        502,
    )
    .await;
    assert_eq!(e["type"], "api_error");
    let e = anthropic_error(gw.get("/v1/messages").await, 405).await;
    assert_eq!(e["type"], "invalid_request_error");
    // Chat keeps the OpenAI envelope.
    let v: Value = gw.chat("nope", "hi").await.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn a_stream_failing_mid_way_ends_with_an_anthropic_error_event() {
    let (fake, _chat, gw) = setup().await;
    fake.fail_next(Failure::StreamCut);
    let r = post(&gw, "/v1/messages", json!({
        "model": "claude", "max_tokens": 20, "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(r.status(), 200);
    let ev = events(r).await;
    let (name, data) = ev.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert_eq!(text_of(&ev, "text_delta", "text"), "Partial");
}

#[tokio::test]
async fn count_tokens_passes_through_to_anthropic_and_is_estimated_elsewhere() {
    let (fake, chat, gw) = setup().await;
    let body = |model: &str| json!({"model": model, "system": "one two", "messages": [{"role": "user", "content": "three four five"}]});
    let r = post(&gw, "/v1/messages/count_tokens", body("claude")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-switchyard-token-count").is_none());
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"input_tokens": 5}));
    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/v1/messages/count_tokens");
    assert_eq!(seen.headers["x-api-key"], FAKE_KEY);
    assert_eq!(seen.body["model"], "claude-fake-1");
    // A route without a counting target: the estimate admission uses
    // (bytes / 4, rounded up), said to be one.
    let sent = body("gpt");
    let r = post(&gw, "/v1/messages/count_tokens", sent.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-token-count"], "estimate");
    let expected = sent.to_string().len().div_ceil(4);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"input_tokens": expected})
    );
    // A bigger prompt, a bigger estimate.
    let long =
        json!({"model": "gpt", "messages": [{"role": "user", "content": "word ".repeat(400)}]});
    let r = post(&gw, "/v1/messages/count_tokens", long).await;
    let n = r.json::<Value>().await.unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    assert!(n >= 500, "{n}");
    assert_eq!(chat.calls(), 0, "nothing went upstream");
    assert_eq!(fake.requests().len(), 1);
}
