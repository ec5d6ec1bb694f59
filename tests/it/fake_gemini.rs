//! The Gemini translation against the fake Gemini upstream over real HTTP:
//! OpenAI request -> `chat_request` -> fake -> `chat_response` /
//! `GeminiStream` / `classify_error`, and embeddings. Proves the fake speaks
//! what the translator expects and the translator sends what the fake (and
//! the reference it follows) accepts.

use crate::common;

use common::gemini::{Failure, FakeGemini, GEMINI_KEY, gemini_vector};
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard::api::sse::SseDecoder;
use switchyard::providers::gemini::{
    self as g, GeminiChatSettings, GeminiEmbedSettings, GeminiStream,
};
use switchyard::providers::translate::TranslateError;

const MODEL: &str = "gemini-2.5-flash";

async fn post(fake: &FakeGemini, path: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", fake.base_url()))
        .body(body.to_string());
    if let Some(key) = key {
        request = request.headers(g::headers(key));
    }
    request.send().await.unwrap()
}

/// Translates `openai`, sends it, returns the status and the raw body.
async fn send_chat(
    fake: &FakeGemini,
    model: &str,
    openai: &Value,
    stream: bool,
) -> reqwest::Response {
    let native = g::chat_request(
        openai.as_object().unwrap(),
        model,
        &GeminiChatSettings::default(),
    )
    .unwrap();
    post(
        fake,
        &g::chat_path(model, stream),
        Some(GEMINI_KEY),
        &native,
    )
    .await
}

async fn chat(fake: &FakeGemini, openai: Value) -> Value {
    let resp = send_chat(fake, MODEL, &openai, false).await;
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    g::chat_response(&bytes, MODEL).unwrap()
}

/// Streams `openai` through the fake and the translator; the decoded OpenAI
/// chunks (without the final `[DONE]`, which is checked).
async fn stream_chat(
    fake: &FakeGemini,
    openai: Value,
    include_usage: bool,
) -> Result<Vec<Value>, TranslateError> {
    let resp = send_chat(fake, MODEL, &openai, true).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut decoder = SseDecoder::new();
    let mut translator = GeminiStream::new(MODEL, include_usage);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        for ev in decoder.decode(&chunk.unwrap()) {
            translator.on_event(&ev, &mut out)?;
        }
    }
    translator.finish(&mut out)?;
    assert_eq!(&out.pop().unwrap()[..], b"data: [DONE]\n\n");
    Ok(out
        .iter()
        .map(|f| serde_json::from_slice(&f[b"data: ".len()..f.len() - 2]).unwrap())
        .collect())
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather", "strict": true,
        "parameters": {"type": "object", "additionalProperties": false,
                       "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
}

#[tokio::test]
async fn plain_chat_with_system_prompt() {
    let fake = FakeGemini::start().await;
    let out = chat(
        &fake,
        json!({"model": "route", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"}
        ]}),
    )
    .await;
    assert_eq!(out["choices"][0]["message"]["content"], "Echo: hello there");
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(out["id"], "chatcmpl-fake-1");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );
    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(seen.query, None);
    assert_eq!(seen.headers["x-goog-api-key"], GEMINI_KEY);
    assert_eq!(
        seen.body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
}

#[tokio::test]
async fn multipart_content_with_images() {
    let fake = FakeGemini::start().await;
    let out = chat(
        &fake,
        json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
        ]}]}),
    )
    .await;
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "Echo: What is this? (+2 media)"
    );
}

#[tokio::test]
async fn tool_call_and_tool_result_round_trip() {
    let fake = FakeGemini::start().await;
    let question = json!({"role": "user", "content": "What's the weather in Paris?"});
    let first = chat(&fake, json!({"messages": [question], "tools": weather_tools(),
                                   "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}))
    .await;
    let choice = &first["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(
        call["function"],
        json!({"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"})
    );
    assert_eq!(
        fake.requests()[0].body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );

    let second = chat(
        &fake,
        json!({"messages": [
        question,
        choice["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "{\"temp_c\": 21}"}
    ], "tools": weather_tools()}),
    )
    .await;
    assert_eq!(second["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        second["choices"][0]["message"]["content"],
        "Tool results: get_weather={\"temp_c\":21}"
    );
    let sent = &fake.requests()[1].body["contents"];
    assert_eq!(sent[1]["role"], "model");
    assert_eq!(
        sent[2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn fake_refuses_what_the_translator_must_not_send() {
    let fake = FakeGemini::start().await;
    let raw = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                     "tools": [{"functionDeclarations": [{"name": "f", "parameters":
                         {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "additionalProperties": false}}]}]});
    let resp = post(&fake, &g::chat_path(MODEL, false), Some(GEMINI_KEY), &raw).await;
    assert_eq!(resp.status(), 400);
    let class = g::classify_error(400, &resp.bytes().await.unwrap());
    assert!(!class.retryable && !class.moves_on);
    assert!(
        class.message.contains("additionalProperties"),
        "{}",
        class.message
    );

    let orphan = json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]});
    let resp = post(
        &fake,
        &g::chat_path(MODEL, false),
        Some(GEMINI_KEY),
        &orphan,
    )
    .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn streamed_text_with_usage() {
    let fake = FakeGemini::start().await;
    let chunks = stream_chat(
        &fake,
        json!({"stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "tell me a story please"}]}),
        true,
    )
    .await
    .unwrap();
    assert_eq!(fake.requests()[0].query.as_deref(), Some("alt=sse"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Echo: tell me a story please");
    assert!(
        chunks.len() > 4,
        "text arrives in several chunks: {chunks:?}"
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11})
    );
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
}

#[tokio::test]
async fn streamed_tool_call() {
    let fake = FakeGemini::start().await;
    let chunks = stream_chat(
        &fake,
        json!({"messages": [{"role": "user", "content": "weather in Paris?"}],
                                           "tools": weather_tools()}),
        false,
    )
    .await
    .unwrap();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0][0]["index"], 0);
    assert_eq!(
        calls[0][0]["function"]["arguments"],
        "{\"location\":\"Paris\"}"
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn candidates_length_and_json_mode() {
    let fake = FakeGemini::start().await;
    let out = chat(
        &fake,
        json!({"messages": [{"role": "user", "content": "one two three"}], "n": 2}),
    )
    .await;
    let contents: Vec<&Value> = out["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["message"]["content"])
        .collect();
    assert_eq!(
        contents,
        vec!["Echo: one two three", "Echo: one two three #1"]
    );

    let out = chat(
        &fake,
        json!({"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 2}),
    )
    .await;
    assert_eq!(out["choices"][0]["finish_reason"], "length");
    assert_eq!(out["choices"][0]["message"]["content"], "Echo: one");

    let out = chat(&fake, json!({"messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "e", "schema":
            {"type": "object", "properties": {"echo": {"type": "string"}}, "additionalProperties": false}}}}))
    .await;
    let parsed: Value =
        serde_json::from_str(out["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(parsed, json!({"echo": "Echo: hi"}));
}

#[tokio::test]
async fn errors_are_classified() {
    let fake = FakeGemini::start().await;
    let hello = json!({"messages": [{"role": "user", "content": "hi"}]});

    fake.fail_next(Failure::RateLimited(7));
    let resp = send_chat(&fake, MODEL, &hello, false).await;
    assert_eq!(resp.status(), 429);
    let body = resp.bytes().await.unwrap();
    let class = g::classify_error(429, &body);
    assert!(class.retryable && class.moves_on && !class.trips_breaker);
    assert_eq!(
        g::retry_delay(&body),
        Some(std::time::Duration::from_secs(7))
    );

    fake.fail_next(Failure::Overloaded);
    let resp = send_chat(&fake, MODEL, &hello, false).await;
    assert_eq!(resp.status(), 503);
    let class = g::classify_error(503, &resp.bytes().await.unwrap());
    assert!(class.retryable && class.trips_breaker);
    assert_eq!(
        class.message,
        "The model is overloaded. Please try again later."
    );

    let native = g::chat_request(
        hello.as_object().unwrap(),
        MODEL,
        &GeminiChatSettings::default(),
    )
    .unwrap();
    for (key, status, openai_status) in [(Some("AIza-wrong"), 400, 401), (None, 403, 403)] {
        let resp = post(&fake, &g::chat_path(MODEL, false), key, &native).await;
        assert_eq!(resp.status(), status);
        let class = g::classify_error(status, &resp.bytes().await.unwrap());
        assert!(!class.retryable && class.moves_on, "{class:?}");
        assert_eq!(class.openai_status, openai_status);
    }

    let resp = send_chat(&fake, "missing-model", &hello, false).await;
    assert_eq!(resp.status(), 404);
    let class = g::classify_error(404, &resp.bytes().await.unwrap());
    assert!(class.moves_on && !class.retryable);
}

#[tokio::test]
async fn broken_streams_are_bad_responses() {
    let fake = FakeGemini::start().await;
    let body = json!({"messages": [{"role": "user", "content": "a long enough answer please"}]});
    fake.fail_next(Failure::StreamError);
    let err = stream_chat(&fake, body.clone(), true).await.unwrap_err();
    assert!(
        matches!(&err, TranslateError::BadResponse(m) if m.contains("UNAVAILABLE")),
        "{err:?}"
    );
    fake.fail_next(Failure::StreamCut);
    let err = stream_chat(&fake, body, true).await.unwrap_err();
    assert!(
        matches!(&err, TranslateError::BadResponse(m) if m.contains("finishReason")),
        "{err:?}"
    );
}

#[tokio::test]
async fn embeddings_round_trip() {
    let fake = FakeGemini::start().await;
    let inputs = [json!("first text"), json!("second"), json!("third one")];
    let settings = GeminiEmbedSettings {
        task_type: Some("RETRIEVAL_DOCUMENT".into()),
    };
    let extra = json!({"dimensions": 4});
    let native = g::embed_request(
        &inputs,
        "gemini-embedding-001",
        extra.as_object().unwrap(),
        &settings,
    )
    .unwrap();
    let resp = post(
        &fake,
        &g::embed_path("gemini-embedding-001"),
        Some(GEMINI_KEY),
        &native,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let reply = g::embed_response(&resp.bytes().await.unwrap(), inputs.len()).unwrap();
    let expected: Vec<Vec<f32>> = ["first text", "second", "third one"]
        .iter()
        .map(|t| gemini_vector(t, 4))
        .collect();
    assert_eq!(reply.vectors, expected);
    assert_eq!(reply.prompt_tokens, 0);
    let seen = &fake.requests()[0];
    assert_eq!(
        seen.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(seen.body["requests"][1]["taskType"], "RETRIEVAL_DOCUMENT");

    let wrong_model =
        json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]});
    let resp = post(
        &fake,
        &g::embed_path("gemini-embedding-001"),
        Some(GEMINI_KEY),
        &wrong_model,
    )
    .await;
    assert_eq!(resp.status(), 400);
}
