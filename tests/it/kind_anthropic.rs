//! Provider kind `anthropic` end to end: OpenAI clients -> the real gateway
//! over HTTP -> the fake Anthropic Messages API (`tests/it/common/anthropic.rs`)
//! and back, with routing, retries, failover and `switchyard check`.

use crate::common;

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::api::sse::SseDecoder;

use common::anthropic::{FAKE_KEY, Failure, FakeAnthropic, KEY_ENV, gateway};
use common::{FakeUpstream, error_of};

/// Provider `claude` (kind anthropic, `keys` added to it) and route
/// `claude` on it alone, then `rest` (more providers and routes).
fn policy(fake: &FakeAnthropic, keys: &str, retry: &str, rest: &str) -> String {
    format!(
        "providers:\n  claude:\n    kind: anthropic\n    base_url: {}\n    api_key_env: {KEY_ENV}\n{keys}\
         \n  backup:\n    kind: mock\n\
         routes:\n  claude:\n    targets:\n      - provider: claude\n        model: claude-fake-1\n\
         \x20   retry: {{max_attempts: {retry}, initial_backoff: 1ms, max_backoff: 2ms}}\n{rest}",
        fake.base_url()
    )
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Current weather", "parameters": {"type": "object",
        "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
}

/// A streamed answer read chunk by chunk: every HTTP chunk must end on an
/// event boundary; returns each event's JSON (or the `[DONE]` marker).
async fn sse(mut resp: reqwest::Response) -> Vec<Value> {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (mut decoder, mut events, mut out) = (SseDecoder::new(), Vec::new(), Vec::new());
    while let Some(chunk) = resp.chunk().await.unwrap() {
        decoder.feed(&chunk, &mut events);
        assert!(decoder.at_boundary(), "a torn event: {chunk:?}");
        for ev in events.drain(..) {
            assert!(ev.event.is_empty() || ev.event == "message", "{ev:?}");
            out.push(if ev.data == "[DONE]" {
                Value::String("[DONE]".into())
            } else {
                serde_json::from_str(&ev.data).unwrap_or_else(|e| panic!("{e}: {}", ev.data))
            });
        }
    }
    out
}

/// Asserts the events are valid OpenAI chunks of one completion ending in
/// `[DONE]`, each with `usage: null` when `usage` is asked (except the last
/// usage chunk), and returns the chunks (without `[DONE]`).
fn chunks(events: &[Value], usage: bool) -> &[Value] {
    let (done, chunks) = events.split_last().expect("no events");
    assert_eq!(done, "[DONE]");
    let id = &chunks[0]["id"];
    assert!(
        id.as_str().is_some_and(|s| s.starts_with("msg_fake_")),
        "{id}"
    );
    for c in chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(&c["id"], id);
        assert_eq!(c["model"], "claude-fake-1");
        assert!(c["created"].is_u64());
        let is_usage = c["choices"] == json!([]);
        if !is_usage {
            assert_eq!(c["choices"][0]["index"], 0, "{c}");
            assert!(c["choices"][0]["delta"].is_object(), "{c}");
        }
        match usage {
            true if is_usage => assert!(c["usage"]["total_tokens"].is_u64(), "{c}"),
            true => assert!(c["usage"].is_null() && c.get("usage").is_some(), "{c}"),
            false => assert!(c.get("usage").is_none() && !is_usage, "{c}"),
        }
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    chunks
}

fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn finish_reason(chunks: &[Value]) -> Vec<&str> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect()
}

#[tokio::test]
async fn plain_chat_is_translated_both_ways() {
    let fake = FakeAnthropic::start().await;
    let keys =
        "    beta: [prompt-caching-2024-07-31, output-128k-2025-02-19]\n    default_max_tokens: 64";
    let gw = gateway(&policy(&fake, keys, "1", "")).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello there"}], "temperature": 0.5,
                "stop": ["never"], "user": "u-1"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "claude");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "msg_fake_1");
    assert_eq!(body["model"], "claude-fake-1");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "Fake Claude heard: hello there"
    );
    assert_eq!(choice["finish_reason"], "stop");
    // Request texts: "Be brief." + "hello there" = 4 words; answer 5 words.
    assert_eq!(body["usage"]["prompt_tokens"], 4);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 9);

    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], FAKE_KEY);
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        seen.headers["anthropic-beta"],
        "prompt-caching-2024-07-31,output-128k-2025-02-19"
    );
    assert_eq!(seen.body["model"], "claude-fake-1");
    assert_eq!(seen.body["max_tokens"], 64, "the configured default");
    assert_eq!(seen.body["system"], "Be brief.");
    assert_eq!(seen.body["stop_sequences"], json!(["never"]));
    assert_eq!(seen.body["metadata"]["user_id"], "u-1");
    assert!(seen.body.get("stream").is_none());

    // The client's max_tokens wins over the default and cuts the answer.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": user("one two three four five"),
                   "max_tokens": 3}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Fake Claude heard:"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(fake.requests()[1].body["max_tokens"], 3);
    gw.stop().await;
}

#[tokio::test]
async fn streaming_with_and_without_usage() {
    let fake = FakeAnthropic::start().await;
    let gw = gateway(&policy(&fake, "", "1", "")).await;
    let ask = |usage: Option<bool>| {
        let mut body = json!({"model": "claude", "stream": true,
                              "messages": user("stream this please")});
        if let Some(u) = usage {
            body["stream_options"] = json!({"include_usage": u});
        }
        gw.post("/v1/chat/completions", body)
    };
    let events = sse(ask(Some(true)).await).await;
    let c = chunks(&events, true);
    assert_eq!(content(c), "Fake Claude heard: stream this please");
    assert_eq!(finish_reason(c), ["stop"]);
    let last = c.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9,
               "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}})
    );
    // The fake split the text in two deltas: streamed, not buffered whole.
    let deltas = c
        .iter()
        .filter(|c| c["choices"][0]["delta"]["content"].is_string());
    assert!(deltas.count() >= 2);
    let seen = &fake.requests()[0];
    assert_eq!(seen.body["stream"], true);
    assert!(seen.body.get("stream_options").is_none());

    for usage in [None, Some(false)] {
        let events = sse(ask(usage).await).await;
        let c = chunks(&events, false);
        assert_eq!(content(c), "Fake Claude heard: stream this please");
    }
    gw.stop().await;
}

#[tokio::test]
async fn tool_calls_not_streamed_then_answered() {
    let fake = FakeAnthropic::start().await;
    let gw = gateway(&policy(&fake, "", "1", "")).await;
    let mut messages = user("What is the weather in Paris?");
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": messages, "tools": weather_tools()}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["content"], "Let me check.");
    let call = &message["tool_calls"][0];
    assert_eq!(call["id"], "toolu_fake_01");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "Paris"}));
    let sent = &fake.requests()[0].body;
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["input_schema"]["type"], "object");

    // The tool's answer goes back as a tool_result to the same call.
    let messages = messages.as_array_mut().unwrap();
    messages.push(message.clone());
    messages
        .push(json!({"role": "tool", "tool_call_id": "toolu_fake_01", "content": "18C and sunny"}));
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": messages, "tools": weather_tools()}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Tool said: 18C and sunny"
    );

    // A forced choice of a named tool.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": user("anything"), "tools": weather_tools(),
                   "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                   "parallel_tool_calls": false}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"].is_null(), "{body}");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let sent = &fake.requests()[2].body;
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
    );
    gw.stop().await;
}

#[tokio::test]
async fn tool_calls_streamed() {
    let fake = FakeAnthropic::start().await;
    let gw = gateway(&policy(&fake, "", "1", "")).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "stream": true, "tools": weather_tools(),
                   "messages": user("weather in Paris?")}),
        )
        .await;
    let events = sse(r).await;
    let c = chunks(&events, false);
    assert_eq!(content(c), "Let me check.");
    assert_eq!(finish_reason(c), ["tool_calls"]);
    let calls: Vec<&Value> = c
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert!(calls.len() >= 3, "a head and argument fragments: {calls:?}");
    assert!(calls.iter().all(|t| t["index"] == 0));
    assert_eq!(calls[0]["id"], "toolu_fake_01");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: String = calls
        .iter()
        .filter_map(|t| t["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "Paris"})
    );
    gw.stop().await;
}

#[tokio::test]
async fn images_become_image_blocks() {
    let fake = FakeAnthropic::start().await;
    let gw = gateway(&policy(&fake, "", "1", "")).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Fake Claude heard: What is in these?"
    );
    let sent = &fake.requests()[0].body["messages"][0]["content"];
    assert_eq!(
        sent[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(
        sent[2],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
    );

    // An image type Anthropic cannot take is refused before any call.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAAA"}}]}]}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let e = error_of(r).await;
    assert_eq!(e["code"], "unsupported_feature");
    assert!(e["message"].as_str().unwrap().contains("anthropic"), "{e}");
    assert_eq!(fake.requests().len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn no_embeddings_on_anthropic_routes() {
    let fake = FakeAnthropic::start().await;
    // A route mixing anthropic with mock is valid (both chat), but serves no
    // embeddings: the anthropic target has none.
    let rest = "  mixed:\n    targets:\n      - provider: claude\n      - provider: backup\n";
    let gw = gateway(&policy(&fake, "", "1", rest)).await;
    for route in ["claude", "mixed"] {
        let r = gw.embed(route, json!(["a", "b"])).await;
        assert_eq!(r.status(), 400, "{route}");
        let e = error_of(r).await;
        assert_eq!(e["code"], "unsupported_endpoint", "{route}");
        assert_eq!(e["param"], "model");
        assert!(e["message"].as_str().unwrap().contains(route), "{e}");
    }
    assert!(fake.requests().is_empty());
    // The mixed route still chats.
    let r = gw.chat("mixed", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "claude");
    gw.stop().await;
}

#[tokio::test]
async fn refused_and_rejected_requests_are_not_retried() {
    let fake = FakeAnthropic::start().await;
    let rest = "  both:\n    targets:\n      - provider: claude\n      - provider: backup\n";
    let gw = gateway(&policy(&fake, "", "3", rest)).await;
    // The translator refuses what Anthropic cannot do: no upstream call.
    for (body, code, needle) in [
        (json!({"n": 2}), "unsupported_feature", "n > 1"),
        (json!({"logprobs": true}), "unsupported_feature", "logprobs"),
        (
            json!({"temperature": 1.5}),
            "unsupported_feature",
            "temperature above 1",
        ),
        (json!({"temperature": 7}), "invalid_request", "temperature"),
    ] {
        let mut req = json!({"model": "both", "messages": user("hi")});
        req.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let r = gw.post("/v1/chat/completions", req).await;
        assert_eq!(r.status(), 400, "{body}");
        let e = error_of(r).await;
        assert_eq!(e["code"], code, "{e}");
        assert!(e["message"].as_str().unwrap().contains(needle), "{e}");
    }
    assert!(fake.requests().is_empty());
    // Anthropic's own 400 (top_p out of range) reaches the client in the
    // OpenAI envelope, neither retried nor failed over to the mock.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "both", "messages": user("hi"), "top_p": 1.5}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let e = error_of(r).await;
    assert_eq!(
        e,
        json!({"message": "top_p: Input should be between 0 and 1",
               "type": "invalid_request_error", "param": null, "code": "invalid_request_error"})
    );
    assert_eq!(fake.requests().len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn overloaded_and_rate_limited_are_retried() {
    let fake = FakeAnthropic::start().await;
    let gw = gateway(&policy(&fake, "", "3", "")).await;
    fake.fail_next(Failure::Overloaded);
    fake.fail_next(Failure::RateLimited(0));
    let r = gw.chat("claude", "again").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-attempts"], "3");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Fake Claude heard: again"
    );
    assert_eq!(
        gw.metric(r#"switchyard_upstream_requests_total{outcome="status_5xx",provider="claude"}"#)
            .await,
        1.0
    );
    assert_eq!(
        gw.metric(r#"switchyard_upstream_requests_total{outcome="status_429",provider="claude"}"#)
            .await,
        1.0
    );
    // A malformed 200 is a protocol failure: retried too.
    fake.fail_next(Failure::NotAMessage);
    let r = gw.chat("claude", "again").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    assert_eq!(
        gw.metric(
            r#"switchyard_upstream_requests_total{outcome="protocol_error",provider="claude"}"#
        )
        .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn exhausted_rate_limits_and_overloads_reach_the_client() {
    let fake = FakeAnthropic::start().await;
    let gw = gateway(&policy(&fake, "", "2", "")).await;
    fake.fail_next(Failure::RateLimited(0));
    fake.fail_next(Failure::RateLimited(3));
    let r = gw.chat("claude", "x").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3", "Anthropic's retry-after");
    let e = error_of(r).await;
    assert_eq!(e["type"], "rate_limit_error");
    assert_eq!(e["code"], "upstream_rate_limited");
    assert_eq!(fake.requests().len(), 2);

    fake.fail_next(Failure::Overloaded);
    fake.fail_next(Failure::Overloaded);
    let r = gw.chat("claude", "x").await;
    assert_eq!(r.status(), 502);
    let e = error_of(r).await;
    assert_eq!(e["code"], "upstream_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("claude: status 503"),
        "{e}"
    );
    assert_eq!(fake.requests().len(), 4);
    gw.stop().await;
}

#[tokio::test]
async fn fails_over_from_anthropic_to_mock_and_openai() {
    let fake = FakeAnthropic::start().await;
    let openai = FakeUpstream::openai().await;
    let rest = "  to-mock:\n    targets:\n      - provider: claude\n      - provider: backup\n        model: m\n\
         \x20   retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 2ms, max_retry_after: 1s, \
         on_rate_limit: wait}\n\
         \x20 to-openai:\n    targets:\n      - provider: claude\n      - provider: oai\n        model: gpt\n\
         \x20   retry: {max_attempts: 1}\n";
    let yaml = policy(&fake, "", "1", rest).replace(
        "  backup:\n",
        &format!(
            "  oai:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n  backup:\n",
            openai.base_url()
        ),
    );
    let gw = gateway(&yaml).await;
    // Overloaded twice (retried once): the mock answers.
    fake.fail_next(Failure::Overloaded);
    fake.fail_next(Failure::Overloaded);
    let r = gw.chat("to-mock", "hello").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "backup");
    assert_eq!(r.headers()["x-switchyard-attempts"], "3");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "[backup] You said: hello"
    );
    assert_eq!(fake.requests().len(), 2);
    // A Retry-After longer than the route's cap leaves the target at once
    // (the route would wait out a shorter one on the same target).
    fake.fail_next(Failure::RateLimited(30));
    let r = gw.chat("to-mock", "hello").await;
    assert_eq!(r.headers()["x-switchyard-provider"], "backup");
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    assert_eq!(fake.requests().len(), 3);
    // An api_error (500) fails over too.
    fake.fail_next(Failure::ApiError);
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "to-openai", "stream": false, "messages": user("hi")}),
        )
        .await;
    assert_eq!(r.headers()["x-switchyard-provider"], "oai");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "fake answered");
    assert_eq!(openai.requests()[0].body["model"], "gpt");
    assert_eq!(
        gw.metric(r#"switchyard_failovers_total{route="to-openai"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn fails_over_from_another_kind_to_anthropic() {
    let fake = FakeAnthropic::start().await;
    let broken = FakeUpstream::start(|_, _| async {
        common::Reply::Json(
            503,
            json!({"error": {"message": "down", "type": "server_error", "param": null, "code": null}}),
        )
    })
    .await;
    let rest = "  to-claude:\n    targets:\n      - provider: flaky\n      - provider: oai\n      \
                - provider: claude\n        model: claude-fake-1\n    retry: {max_attempts: 1}\n";
    let yaml = policy(&fake, "", "1", rest).replace(
        "  backup:\n    kind: mock\n",
        &format!(
            "  flaky:\n    kind: mock\n    failure_rate: 1\n    failure_status: 503\n\
             \x20 oai:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n",
            broken.base_url()
        ),
    );
    let gw = gateway(&yaml).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "to-claude", "stream": true, "messages": user("over here"),
                   "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(r.headers()["x-switchyard-provider"], "claude");
    assert_eq!(r.headers()["x-switchyard-attempts"], "3");
    let events = sse(r).await;
    let c = chunks(&events, true);
    assert_eq!(content(c), "Fake Claude heard: over here");
    assert_eq!(broken.calls(), 1);
    assert_eq!(fake.requests().len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn an_authentication_failure_moves_on() {
    let fake = FakeAnthropic::start().await;
    // The fake refuses any key but its own: this one is the openai fake's.
    let rest = "  wrong-key:\n    targets:\n      - provider: bad\n      - provider: backup\n    \
                retry: {max_attempts: 3}\n";
    let yaml = policy(&fake, "", "1", rest).replace(
        "  backup:\n",
        &format!(
            "  bad:\n    kind: anthropic\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n  backup:\n",
            fake.base_url()
        ),
    );
    let gw = gateway(&yaml).await;
    let r = gw.chat("wrong-key", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "backup");
    assert_eq!(
        r.headers()["x-switchyard-attempts"],
        "2",
        "a 401 is not retried"
    );
    assert_eq!(fake.requests()[0].headers["x-api-key"], common::TEST_KEY);
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_failing_after_it_started_ends_with_an_error_event() {
    let fake = FakeAnthropic::start().await;
    let gw = gateway(&policy(&fake, "", "3", "")).await;
    for (failure, why) in [
        (Failure::StreamError, "Overloaded"),
        (Failure::StreamCut, "before message_stop"),
    ] {
        fake.fail_next(failure);
        let r = gw
            .post(
                "/v1/chat/completions",
                json!({"model": "claude", "stream": true, "messages": user("hi")}),
            )
            .await;
        assert_eq!(r.headers()["x-switchyard-attempts"], "1");
        let events = sse(r).await;
        let (last, chunks) = events.split_last().unwrap();
        assert!(
            !events.contains(&Value::String("[DONE]".into())),
            "{events:?}"
        );
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(content(chunks), "Partial");
        assert_eq!(last["error"]["code"], "stream_interrupted", "{last}");
        let message = last["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
    }
    assert_eq!(
        gw.metric(r#"switchyard_stream_interruptions_total{provider="claude",route="claude"}"#)
            .await,
        2.0
    );
    gw.stop().await;
}

/// A translated stream is read under the idle timeout (one timer for the
/// stream, re-armed per chunk): one that stalls after its first content
/// ends with an error event, long before the total timeout.
#[tokio::test]
async fn a_translated_stream_that_stalls_ends_at_the_idle_timeout() {
    let fake = FakeAnthropic::start().await;
    let timeouts = "    timeouts: {idle: 300ms, total: 60s}\n";
    let gw = gateway(&policy(&fake, timeouts, "1", "")).await;
    fake.fail_next(Failure::StreamStall);
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "claude", "stream": true, "messages": user("hi")}),
        )
        .await;
    let events = tokio::time::timeout(Duration::from_secs(30), sse(r))
        .await
        .expect("the stream ended before the total timeout");
    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(content(chunks), "Partial");
    assert_eq!(last["error"]["code"], "stream_interrupted", "{last}");
    let message = last["error"]["message"].as_str().unwrap();
    assert!(message.contains("idle"), "{message}");
    gw.stop().await;
}

#[tokio::test]
async fn upstream_timeouts_apply() {
    // A fake that never answers in time: the first-byte timeout fails over.
    let slow = FakeUpstream::start(|_, _| async {
        common::Reply::After(
            Duration::from_secs(5),
            Box::new(common::Reply::Json(200, json!({}))),
        )
    })
    .await;
    let yaml = format!(
        "providers:\n  slow:\n    kind: anthropic\n    base_url: http://{}\n    api_key_env: {KEY_ENV}\n    \
         timeouts: {{first_byte: 100ms}}\n  backup:\n    kind: mock\n\
         routes:\n  r:\n    targets:\n      - provider: slow\n      - provider: backup\n    retry: {{max_attempts: 1}}\n",
        slow.addr
    );
    let gw = gateway(&yaml).await;
    let r = gw.chat("r", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "backup");
    assert_eq!(
        gw.metric(r#"switchyard_upstream_requests_total{outcome="timeout",provider="slow"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}

/// `switchyard check` on a folder with `policy`: (success, stdout + stderr).
fn check(policy: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("check")
        .arg(dir.path())
        .env(KEY_ENV, FAKE_KEY)
        .env("ANTHROPIC_API_KEY", "sk-ant-example")
        .env_remove("NOT_SET_ANYWHERE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn switchyard_check_reports_each_bad_key_at_its_line() {
    let (ok, text) = check(&format!(
        "providers:\n  a:\n    kind: anthropic\n    api_key_env: {KEY_ENV}\n    default_max_tokens: 0\n\
         \x20   api_version: 2023-06-01\n  b:\n    kind: anthropic\n    beta: [x]\n  c:\n    kind: anthropic\n\
         \x20   api_key_env: NOT_SET_ANYWHERE\n    version: 2023-06\n\
         routes:\n  r:\n    targets: [{{provider: a}}, {{provider: b}}, {{provider: c}}]\n"
    ));
    assert!(!ok, "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    let expected = [
        "policy.yaml:5: providers.a.default_max_tokens: must be at least 1",
        "policy.yaml:6: providers.a.api_version: unknown field `api_version` for kind anthropic",
        "policy.yaml:8: providers.b.api_key_env: is required for kind anthropic",
        "policy.yaml:12: providers.c.api_key_env: environment variable NOT_SET_ANYWHERE is not set",
        "policy.yaml:13: providers.c.version: \"2023-06\" is not an Anthropic API version",
    ];
    assert_eq!(lines.len(), expected.len(), "{text}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.contains(want),
            "{line:?} should contain {want:?}\n{text}"
        );
    }
    assert!(!text.contains(FAKE_KEY));

    // Valid: anthropic with the mock (both chat) in one route.
    let (ok, text) = check(&format!(
        "providers:\n  a:\n    kind: anthropic\n    api_key_env: {KEY_ENV}\n    beta: [b-1]\n  m:\n    kind: mock\n\
         routes:\n  r:\n    targets: [{{provider: a, model: claude-sonnet-4-5}}, {{provider: m}}]\n"
    ));
    assert!(ok, "{text}");
    assert!(
        text.contains("OK (2 providers, 1 routes, 0 keys)"),
        "{text}"
    );
}

#[test]
fn the_example_policy_passes_check() {
    let example = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies/anthropic.yaml"
    ));
    let (ok, text) = check(example);
    assert!(ok, "{text}");
    assert!(
        text.contains("OK (2 providers, 2 routes, 0 keys)"),
        "{text}"
    );
}
