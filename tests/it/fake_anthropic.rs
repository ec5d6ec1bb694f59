//! The fake Anthropic upstream against the `anthropic` translation, over
//! real HTTP: OpenAI request -> `chat_request` -> fake -> `chat_response` /
//! `AnthropicStream` / `classify_error`. Proves the fake speaks what the
//! translator expects, and the translator produces what the fake (modelled
//! on the public API reference) accepts.

use crate::common;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use switchyard::api::sse::SseDecoder;
use switchyard::providers::anthropic::{
    self, AnthropicChatSettings, AnthropicStream, chat_request, chat_response, classify_error,
};
use switchyard::providers::translate::TranslateError;

use common::anthropic::{FAKE_KEY, Failure, FakeAnthropic};

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn translate(openai: Value) -> Value {
    chat_request(
        &object(openai),
        "claude-fake-1",
        &AnthropicChatSettings::default(),
    )
    .unwrap()
}

async fn send(fake: &FakeAnthropic, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(fake.messages_url())
        .headers(anthropic::headers(key, anthropic::DEFAULT_VERSION))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// Sends an OpenAI request through the translation and returns the
/// translated OpenAI completion.
async fn chat(fake: &FakeAnthropic, openai: Value) -> Value {
    let resp = send(fake, FAKE_KEY, &translate(openai)).await;
    assert_eq!(resp.status(), 200);
    chat_response(&resp.bytes().await.unwrap(), "client-model").unwrap()
}

struct Streamed {
    frames: Vec<Value>,
    error: Option<TranslateError>,
    class: Option<switchyard::providers::Classification>,
}

/// Streams an OpenAI request through the translation, chunk by chunk as
/// the fake writes them.
async fn stream(fake: &FakeAnthropic, openai: Value, include_usage: bool) -> Streamed {
    let resp = send(fake, FAKE_KEY, &translate(openai)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let (mut decoder, mut events) = (SseDecoder::new(), Vec::new());
    let mut s = AnthropicStream::new("client-model", include_usage);
    let mut out: Vec<Bytes> = Vec::new();
    let mut error = None;
    'read: while let Some(chunk) = body.next().await {
        decoder.feed(&chunk.unwrap(), &mut events);
        for ev in events.drain(..) {
            if let Err(e) = s.on_event(&ev, &mut out) {
                error = Some(e);
                break 'read;
            }
        }
    }
    if error.is_none() {
        error = s.finish(&mut out).err();
    }
    let frames = out
        .iter()
        .map(|f| {
            let text = std::str::from_utf8(f).unwrap();
            let payload = text
                .strip_prefix("data: ")
                .unwrap()
                .strip_suffix("\n\n")
                .unwrap();
            serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.into()))
        })
        .collect();
    Streamed {
        frames,
        error,
        class: s.upstream_error().cloned(),
    }
}

fn content_of(frames: &[Value]) -> String {
    frames
        .iter()
        .filter_map(|f| f["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"]}}}])
}

#[tokio::test]
async fn plain_chat_round_trip() {
    let fake = FakeAnthropic::start().await;
    let out = chat(
        &fake,
        json!({"model": "client-model", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"},
        ], "user": "u-1"}),
    )
    .await;
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "client-model");
    assert_eq!(out["id"], "msg_fake_1");
    let choice = &out["choices"][0];
    assert_eq!(
        choice["message"]["content"],
        "Fake Claude heard: Hello there"
    );
    assert_eq!(choice["finish_reason"], "stop");
    // 4 request words (system + user), 5 answered.
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9,
               "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}})
    );
    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], FAKE_KEY);
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.body["system"], "Be brief.");
    assert_eq!(seen.body["max_tokens"], 4096);
    assert_eq!(seen.body["model"], "claude-fake-1");
    assert_eq!(seen.body["metadata"], json!({"user_id": "u-1"}));
}

#[tokio::test]
async fn merged_turns_and_dropped_fields_make_a_valid_request() {
    let fake = FakeAnthropic::start().await;
    let out = chat(
        &fake,
        json!({"model": "m", "seed": 3, "store": true, "stream_options": null,
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "second"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        ]}),
    )
    .await;
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "Fake Claude heard: first second"
    );
    let seen = &fake.requests()[0].body;
    assert_eq!(seen["messages"].as_array().unwrap().len(), 1);
    assert_eq!(
        seen["messages"][0]["content"][2]["source"]["media_type"],
        "image/png"
    );
}

#[tokio::test]
async fn stop_sequences_and_max_tokens() {
    let fake = FakeAnthropic::start().await;
    let msgs = json!([{"role": "user", "content": "one two three four"}]);
    let out = chat(
        &fake,
        json!({"model": "m", "messages": msgs, "stop": ["three"]}),
    )
    .await;
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "Fake Claude heard: one two "
    );
    let out = chat(
        &fake,
        json!({"model": "m", "messages": msgs, "max_completion_tokens": 2}),
    )
    .await;
    assert_eq!(out["choices"][0]["finish_reason"], "length");
    assert_eq!(out["choices"][0]["message"]["content"], "Fake Claude");
    assert_eq!(fake.requests()[1].body["max_tokens"], 2);
}

#[tokio::test]
async fn tool_call_round_trip() {
    let fake = FakeAnthropic::start().await;
    let mut messages = vec![json!({"role": "user", "content": "What's the weather in Paris?"})];
    let out = chat(
        &fake,
        json!({"model": "m", "messages": messages, "tools": weather_tools(), "tool_choice": "auto"}),
    )
    .await;
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me check.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "Paris"}));
    // Send the call back with its result, as an OpenAI client does.
    messages.push(choice["message"].clone());
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "15 C and sunny"}));
    let out = chat(
        &fake,
        json!({"model": "m", "messages": messages, "tools": weather_tools()}),
    )
    .await;
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "Tool said: 15 C and sunny"
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    let second = &fake.requests()[1].body;
    assert_eq!(second["messages"][1]["content"][1]["type"], "tool_use");
    assert_eq!(
        second["messages"][2]["content"][0]["tool_use_id"],
        call["id"]
    );
}

#[tokio::test]
async fn streamed_text_with_usage() {
    let fake = FakeAnthropic::start().await;
    let s = stream(
        &fake,
        json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "Stream me, please"}]}),
        true,
    )
    .await;
    assert_eq!(s.error, None);
    let frames = &s.frames;
    assert_eq!(frames[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(content_of(frames), "Fake Claude heard: Stream me, please");
    let n = frames.len();
    assert_eq!(frames[n - 3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(frames[n - 2]["choices"], json!([]));
    assert_eq!(
        frames[n - 2]["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9,
               "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}})
    );
    assert_eq!(frames[n - 1], "[DONE]");
    assert!(frames[..n - 1].iter().all(|f| f["id"] == "msg_fake_1"));
}

#[tokio::test]
async fn streamed_tool_call() {
    let fake = FakeAnthropic::start().await;
    let s = stream(
        &fake,
        json!({"model": "m", "stream": true, "tools": weather_tools(),
               "messages": [{"role": "user", "content": "weather in Paris?"}]}),
        false,
    )
    .await;
    assert_eq!(s.error, None);
    assert_eq!(content_of(&s.frames), "Let me check.");
    let calls: Vec<&Value> = s
        .frames
        .iter()
        .filter_map(|f| f["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    // Anthropic block 1, OpenAI tool call 0.
    assert!(calls.iter().all(|c| c["index"] == 0), "{calls:?}");
    assert_eq!(calls[0]["id"], "toolu_fake_01");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "Paris"})
    );
    let n = s.frames.len();
    assert_eq!(s.frames[n - 2]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(s.frames[n - 1], "[DONE]");
}

#[tokio::test]
async fn the_fake_rejects_what_anthropic_rejects() {
    let fake = FakeAnthropic::start().await;
    let good = translate(json!({"messages": [{"role": "user", "content": "hi"}]}));
    // Wrong key: 401, moves on to another target without retry.
    let resp = send(&fake, "sk-ant-wrong", &good).await;
    assert_eq!(resp.status(), 401);
    let class = classify_error(401, &resp.bytes().await.unwrap());
    assert!(!class.retryable && class.moves_on);
    assert_eq!(class.message, "invalid x-api-key");
    // No anthropic-version header.
    let resp = reqwest::Client::new()
        .post(fake.messages_url())
        .header("x-api-key", FAKE_KEY)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    // What the translator never sends: unknown fields, same-role turns,
    // orphan tool results, a missing max_tokens.
    let mut bad = Vec::new();
    let mut with = |key: &str, value: Value| {
        let mut b = good.clone();
        b[key] = value;
        bad.push(b);
    };
    with("seed", json!(1));
    with(
        "messages",
        json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
    );
    with(
        "messages",
        json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x"}]}]),
    );
    with("max_tokens", Value::Null);
    for body in bad {
        let resp = send(&fake, FAKE_KEY, &body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let class = classify_error(400, &resp.bytes().await.unwrap());
        assert!(!class.retryable && !class.moves_on, "{body}");
        assert_eq!(class.openai_type, "invalid_request_error");
    }
}

#[tokio::test]
async fn failures_are_classified() {
    let fake = FakeAnthropic::start().await;
    let good = translate(json!({"messages": [{"role": "user", "content": "hi"}]}));
    fake.fail_next(Failure::RateLimited(7));
    let resp = send(&fake, FAKE_KEY, &good).await;
    assert_eq!(resp.status(), 429);
    let after = switchyard::providers::parse_retry_after(resp.headers());
    assert_eq!(after, Some(std::time::Duration::from_secs(7)));
    let class = classify_error(429, &resp.bytes().await.unwrap());
    assert!(class.retryable && class.moves_on && !class.trips_breaker);
    for (failure, status, openai_status) in [
        (Failure::Overloaded, 529, 503),
        (Failure::ApiError, 500, 500),
    ] {
        fake.fail_next(failure);
        let resp = send(&fake, FAKE_KEY, &good).await;
        assert_eq!(resp.status(), status);
        let class = classify_error(status, &resp.bytes().await.unwrap());
        assert!(class.retryable && class.moves_on && class.trips_breaker);
        assert_eq!(class.openai_status, openai_status);
    }
    // The queue is spent: the next request succeeds.
    assert_eq!(send(&fake, FAKE_KEY, &good).await.status(), 200);
}

#[tokio::test]
async fn in_stream_error_and_early_eof() {
    let fake = FakeAnthropic::start().await;
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    fake.fail_next(Failure::StreamError);
    let s = stream(&fake, body.clone(), true).await;
    assert_eq!(content_of(&s.frames), "Partial");
    assert!(
        matches!(s.error, Some(TranslateError::BadResponse(_))),
        "{:?}",
        s.error
    );
    let class = s.class.unwrap();
    assert!(class.retryable && class.moves_on);
    assert_eq!(class.openai_type, "service_unavailable_error");
    assert!(!s.frames.iter().any(|f| f == "[DONE]"));

    fake.fail_next(Failure::StreamCut);
    let s = stream(&fake, body, true).await;
    assert_eq!(content_of(&s.frames), "Partial");
    assert!(
        matches!(s.error, Some(TranslateError::BadResponse(ref m)) if m.contains("message_stop"))
    );
    assert!(s.class.is_none());
    assert!(!s.frames.iter().any(|f| f == "[DONE]"));
}
