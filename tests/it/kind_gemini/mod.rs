//! `kind: gemini` end to end: OpenAI clients -> the real gateway over HTTP ->
//! the fake Gemini API (tests/it/common/gemini.rs) and back. Chat (JSON and
//! SSE, with usage), tool calls, images, embeddings fan-out under Gemini's
//! 100-input batch limit, errors in the OpenAI envelope, retries honouring
//! Gemini's `RetryInfo`, failover between kinds, and policy validation.
//! This module holds the shared helpers; the tests are in its submodules
//! (`chat`, `embed`, `failures`).

mod chat;
mod embed;
mod failures;

use crate::common;

use std::time::Duration;
use tokio::time::Instant;

use common::gemini::{Failure, FakeGemini, GEMINI_KEY, gemini_vector};
use common::{FakeUpstream, Reply, TestGateway, error_of, expected_vector};
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchyard::api::sse::SseDecoder;

const MODEL: &str = "gemini-2.5-flash";

/// A gateway on `yaml` with `GEMINI_API_KEY` and `GEMINI_BACKUP_API_KEY`
/// set to the fake's key (and `TEST_UPSTREAM_KEY`, a key the fake refuses).
async fn gateway(yaml: &str) -> TestGateway {
    match start(yaml).await {
        Ok(gw) => gw,
        Err(e) => panic!("gateway failed to start:\n{e}"),
    }
}

async fn start(yaml: &str) -> Result<TestGateway, String> {
    let env = [
        ("GEMINI_API_KEY", GEMINI_KEY),
        ("GEMINI_BACKUP_API_KEY", GEMINI_KEY),
    ];
    common::try_gateway_env(yaml, &env)
        .await
        .map_err(|e| e.to_string())
}

/// A `gemini` provider entry named `name` on `fake`, plus `extra` keys
/// (each line indented by four spaces).
fn gemini(name: &str, fake: &FakeGemini, extra: &str) -> String {
    format!(
        "  {name}:\n    kind: gemini\n    base_url: {}\n    api_key_env: GEMINI_API_KEY\n{extra}",
        fake.base_url()
    )
}

fn openai(name: &str, up: &FakeUpstream) -> String {
    format!(
        "  {name}:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n",
        up.base_url()
    )
}

/// One route `r` over `targets` (`provider` or `provider:model`), then `extra`.
fn route(targets: &[&str], extra: &str) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|t| match t.split_once(':') {
            Some((p, m)) => format!("{{provider: {p}, model: {m}}}"),
            None => format!("{{provider: {t}, model: {MODEL}}}"),
        })
        .collect();
    format!("routes:\n  r:\n    targets: [{}]\n{extra}", list.join(", "))
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "additionalProperties": false,
                       "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
}

/// Reads an SSE response chunk by chunk: every `data:` payload before
/// `[DONE]` as JSON, and whether `[DONE]` came last.
async fn sse(resp: reqwest::Response) -> (Vec<Value>, bool) {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    let mut done = false;
    while let Some(chunk) = body.next().await {
        for ev in decoder.decode(&chunk.unwrap()) {
            assert!(!done, "event after [DONE]: {}", ev.data);
            if ev.data == "[DONE]" {
                done = true;
            } else {
                events.push(serde_json::from_str(&ev.data).unwrap());
            }
        }
    }
    (events, done)
}

/// Asserts every chunk is a valid OpenAI `chat.completion.chunk` of one
/// completion.
fn assert_chunks(chunks: &[Value]) {
    let first = &chunks[0];
    assert!(
        first["id"].as_str().is_some_and(|s| !s.is_empty()),
        "{first}"
    );
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    for c in chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["id"], first["id"]);
        assert_eq!(c["created"], first["created"]);
        assert_eq!(c["model"], MODEL);
        assert!(c["choices"].is_array(), "{c}");
    }
}
