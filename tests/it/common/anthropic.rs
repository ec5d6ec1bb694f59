//! A fake Anthropic Messages API (`POST /v1/messages`) on 127.0.0.1:0, built
//! on [`FakeUpstream`], so translation code can be tested over real HTTP.
//!
//! It checks what the real API checks and answers Anthropic's own error
//! shape (`{"type":"error","error":{type,message},"request_id"}`): path,
//! `x-api-key` (must be [`FAKE_KEY`]), `anthropic-version`, JSON content
//! type, no unknown top-level fields, `model`, positive `max_tokens`,
//! strictly alternating roles (stricter than the real API, to prove the
//! translator merges turns; mid-conversation `system` turns where the API
//! allows them), well-formed content blocks (thinking blocks in assistant
//! turns), tool_result blocks first and answering the previous turn's
//! tool_use ids, `tools` required when tool blocks appear, temperature and
//! top_p within 0..=1, valid tools and tool_choice, and the reasoning
//! controls and context management (`thinking.rs`).
//!
//! Answers: a tool call of the named / first tool with `{"location":
//! "Paris"}` when tool_choice forces one, or when tools are given, the choice
//! is not `none` and the last user text mentions "weather" (after a short
//! text block, as Claude does); `Tool said: <result>` after a tool_result;
//! otherwise `Fake Claude heard: <last user text>`, cut at a stop sequence or
//! at `max_tokens` words; with thinking on, a thinking block first
//! (`Fake Claude thinks about: <last user text>`, signed). Usage:
//! input_tokens = words in the request texts, output_tokens = words
//! answered. JSON or SSE (events split mid-way across
//! writes). [`FakeAnthropic::fail_next`] queues failures. `POST /v1/messages/count_tokens` answers
//! `{"input_tokens": <words>}`. [`gateway`] starts
//! the gateway with [`FAKE_KEY`] in `ANTHROPIC_TEST_KEY`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{FakeUpstream, Reply, Seen, TestGateway};

mod check;
mod thinking;

/// The only key the fake accepts.
pub const FAKE_KEY: &str = "sk-ant-fake-TEST-key-0001";

/// What the next request gets instead of an answer.
#[derive(Debug, Clone)]
pub enum Failure {
    /// 429 `rate_limit_error` with `retry-after` in seconds.
    RateLimited(u64),
    /// 529 `overloaded_error`.
    Overloaded,
    /// 500 `api_error`.
    ApiError,
    /// 200 stream: some text, then an `error` event (`overloaded_error`).
    /// A non-streaming request gets a 529 instead.
    StreamError,
    /// 200 stream that ends before `message_stop` (non-streaming: 500).
    StreamCut,
    /// 200 SSE: the same events as `StreamCut`, then nothing, the body
    /// left open (a stalled stream).
    StreamStall,
    /// 200 JSON that is not a Messages API message (streaming too).
    NotAMessage,
}

pub struct FakeAnthropic {
    pub upstream: FakeUpstream,
    failures: Arc<Mutex<VecDeque<Failure>>>,
}

impl FakeAnthropic {
    pub async fn start() -> FakeAnthropic {
        let failures = Arc::new(Mutex::new(VecDeque::new()));
        let queue = failures.clone();
        let upstream = FakeUpstream::start(move |seen, n| {
            let failure = queue.lock().unwrap().pop_front();
            async move { handle(&seen, n, failure) }
        })
        .await;
        FakeAnthropic { upstream, failures }
    }

    /// The next request (only) fails this way.
    pub fn fail_next(&self, failure: Failure) {
        self.failures.lock().unwrap().push_back(failure);
    }

    /// Like `https://api.anthropic.com`: the Messages path goes after it.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.upstream.addr)
    }

    pub fn messages_url(&self) -> String {
        format!("{}/v1/messages", self.base_url())
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.upstream.requests()
    }
}

/// The environment variable that holds [`FAKE_KEY`] for [`gateway`].
pub const KEY_ENV: &str = "ANTHROPIC_TEST_KEY";

/// Like [`super::gateway`], with [`KEY_ENV`] set to [`FAKE_KEY`] as well as
/// `TEST_UPSTREAM_KEY` (for `openai`-kind fakes in the same policy).
pub async fn gateway(yaml: &str) -> TestGateway {
    super::gateway_env(yaml, &[(KEY_ENV, FAKE_KEY)]).await
}

pub fn error_body(kind: &str, message: &str, n: usize) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message},
           "request_id": format!("req_fake_{n}")})
}

fn handle(s: &Seen, n: usize, failure: Option<Failure>) -> Reply {
    if s.path == "/v1/messages/count_tokens" {
        // Messages' token counter: the key is checked, the count is the words.
        if s.headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(FAKE_KEY) {
            return Reply::Json(
                401,
                error_body("authentication_error", "invalid x-api-key", n),
            );
        }
        return Reply::Json(200, json!({"input_tokens": words_in_request(&s.body)}));
    }
    let streaming = s.body["stream"] == true;
    let err = |status: u16, kind: &str, msg: &str| Reply::Json(status, error_body(kind, msg, n));
    match failure {
        Some(Failure::RateLimited(secs)) => {
            let body = error_body(
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
                n,
            );
            return Reply::JsonHeaders(429, body, vec![("retry-after", secs.to_string())]);
        }
        Some(Failure::Overloaded) => return err(529, "overloaded_error", "Overloaded"),
        Some(Failure::ApiError) => return err(500, "api_error", "Internal server error"),
        Some(Failure::NotAMessage) => return Reply::Json(200, json!({"hello": "world"})),
        Some(Failure::StreamError) if !streaming => {
            return err(529, "overloaded_error", "Overloaded");
        }
        Some(Failure::StreamCut | Failure::StreamStall) if !streaming => {
            return err(500, "api_error", "Internal server error");
        }
        Some(f @ (Failure::StreamError | Failure::StreamCut | Failure::StreamStall)) => {
            let mut events = vec![
                message_start(n, &s.body, 3),
                sse(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                sse(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Partial"}}),
                ),
            ];
            if matches!(f, Failure::StreamError) {
                events.push(sse("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})));
            }
            if matches!(f, Failure::StreamStall) {
                return Reply::Stalls(events);
            }
            return Reply::Sse(events, Duration::ZERO);
        }
        None => {}
    }
    if let Err((status, kind, msg)) = check::check(s) {
        return err(status, kind, &msg);
    }
    let (mut blocks, stop_reason, stop_sequence) = answer(&s.body);
    if thinking::thinking_on(&s.body) {
        let last = s.body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .map(|m| texts(&m["content"]).join(" "))
            .unwrap_or_default();
        let thought = format!("Fake Claude thinks about: {last}");
        blocks.insert(
            0,
            json!({"type": "thinking", "thinking": thought, "signature": "fake-signature"}),
        );
    }
    let input_tokens = words_in_request(&s.body);
    let output_tokens: u64 = blocks.iter().map(block_words).sum();
    if !streaming {
        return Reply::Json(
            200,
            json!({
                "id": format!("msg_fake_{n}"), "type": "message", "role": "assistant",
                "model": s.body["model"], "content": blocks, "stop_reason": stop_reason,
                "stop_sequence": stop_sequence,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            }),
        );
    }
    let mut events = vec![message_start(n, &s.body, input_tokens)];
    for (i, b) in blocks.iter().enumerate() {
        let start = match b["type"].as_str() {
            Some("text") => json!({"type": "text", "text": ""}),
            Some("thinking") => json!({"type": "thinking", "thinking": "", "signature": ""}),
            _ => json!({"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}),
        };
        events.push(sse(
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": start}),
        ));
        if i == 0 {
            events.push(sse("ping", json!({"type": "ping"})));
        }
        let (kind, key, whole) = match (b["text"].as_str(), b["thinking"].as_str()) {
            (Some(t), _) => ("text_delta", "text", t.to_string()),
            (_, Some(t)) => ("thinking_delta", "thinking", t.to_string()),
            _ => ("input_json_delta", "partial_json", b["input"].to_string()),
        };
        let cut = whole
            .char_indices()
            .nth(whole.chars().count() / 2)
            .map_or(0, |(c, _)| c);
        for piece in [&whole[..cut], &whole[cut..]] {
            events.push(sse("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": kind, key: piece}})));
        }
        if b["type"] == "thinking" {
            events.push(sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i,
                "delta": {"type": "signature_delta", "signature": b["signature"]}}),
            ));
        }
        events.push(sse(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    events.push(sse(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": {"output_tokens": output_tokens}}),
    ));
    events.push(sse("message_stop", json!({"type": "message_stop"})));
    // Split every event mid-way across two writes.
    let halves = events
        .into_iter()
        .flat_map(|e| {
            let cut = e.len() / 2;
            let cut = (cut..e.len())
                .find(|&c| e.is_char_boundary(c))
                .unwrap_or(e.len());
            [e[..cut].to_string(), e[cut..].to_string()]
        })
        .collect();
    Reply::Sse(halves, Duration::ZERO)
}

fn sse(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn message_start(n: usize, body: &Value, input_tokens: u64) -> String {
    sse(
        "message_start",
        json!({"type": "message_start", "message": {
        "id": format!("msg_fake_{n}"), "type": "message", "role": "assistant", "content": [],
        "model": body["model"], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
    )
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn block_words(b: &Value) -> u64 {
    b["text"]
        .as_str()
        .or(b["thinking"].as_str())
        .map_or(5, words)
}

/// All text of a `content` / `system` value: a string or blocks.
fn texts(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(blocks) => blocks
            .iter()
            .flat_map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().into_iter().collect(),
                Some("tool_result") => texts(&b["content"]),
                _ => vec![],
            })
            .collect(),
        _ => vec![],
    }
}

fn words_in_request(body: &Value) -> u64 {
    let mut all = texts(&body["system"]);
    for m in body["messages"].as_array().into_iter().flatten() {
        all.extend(texts(&m["content"]));
    }
    all.into_iter().map(words).sum()
}

/// A value of the JSON schema's shape (every property, by type), as
/// structured outputs (`output_config.format`) promise.
fn example_of(schema: &Value) -> Value {
    match schema["type"].as_str() {
        Some("object") => Value::Object(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), example_of(v)))
                .collect(),
        ),
        Some("array") => json!([example_of(&schema["items"])]),
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        _ => json!("example"),
    }
}

/// The answer's content blocks, stop_reason and stop_sequence.
fn answer(body: &Value) -> (Vec<Value>, &'static str, Value) {
    let format = &body["output_config"]["format"];
    if format["type"] == "json_schema" {
        let text = example_of(&format["schema"]).to_string();
        return (
            vec![json!({"type": "text", "text": text})],
            "end_turn",
            Value::Null,
        );
    }
    // The last turn that is not a mid-conversation system message.
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] != "system"))
        .cloned()
        .unwrap_or_default();
    let last_text = texts(&last["content"]).join(" ");
    let results: Vec<&Value> = last["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .collect();
    if !results.is_empty() {
        let said: Vec<String> = results
            .iter()
            .map(|r| texts(&r["content"]).join(" "))
            .collect();
        return (
            vec![json!({"type": "text", "text": format!("Tool said: {}", said.join("; "))})],
            "end_turn",
            Value::Null,
        );
    }
    let tools = body["tools"].as_array().filter(|t| !t.is_empty());
    let choice = body["tool_choice"]["type"].as_str().unwrap_or("auto");
    if let Some(tools) = tools {
        let forced = matches!(choice, "any" | "tool");
        if forced || (choice == "auto" && last_text.to_lowercase().contains("weather")) {
            let name = if choice == "tool" {
                body["tool_choice"]["name"].clone()
            } else {
                tools[0]["name"].clone()
            };
            let call = json!({"type": "tool_use", "id": "toolu_fake_01", "name": name, "input": {"location": "Paris"}});
            let blocks = if forced {
                vec![call]
            } else {
                vec![json!({"type": "text", "text": "Let me check."}), call]
            };
            return (blocks, "tool_use", Value::Null);
        }
    }
    let mut text = format!("Fake Claude heard: {last_text}");
    for stop in body["stop_sequences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Some(at) = text.find(stop) {
            text.truncate(at);
            return (
                vec![json!({"type": "text", "text": text})],
                "stop_sequence",
                json!(stop),
            );
        }
    }
    let max = body["max_tokens"].as_u64().unwrap_or(u64::MAX) as usize;
    if words(&text) as usize > max {
        let cut: Vec<&str> = text.split_whitespace().take(max).collect();
        return (
            vec![json!({"type": "text", "text": cut.join(" ")})],
            "max_tokens",
            Value::Null,
        );
    }
    (
        vec![json!({"type": "text", "text": text})],
        "end_turn",
        Value::Null,
    )
}
