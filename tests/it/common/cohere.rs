//! A fake Cohere API v2 on 127.0.0.1:0 over real HTTP.
//!
//! Speaks the API as the reference documents it: `POST /v2/embed` (`model`,
//! `texts` 1..=96 strings, `input_type` required, `embedding_types`,
//! `truncate`) answering `embeddings.float` in input order and
//! `meta.billed_units.input_tokens`; `POST /v2/chat` (`model`, `messages`
//! with roles system/user/assistant/tool, `tools` of type function,
//! `stream`) answering a `message` with `content` blocks or `tool_calls`, or
//! SSE events (`event:` + `data:` with `type`: `message-start`,
//! `content-start`/`-delta`/`-end`, `tool-plan-delta`,
//! `tool-call-start`/`-delta`/`-end`, `message-end` with `finish_reason` and
//! `usage`). The key must come as `Authorization: Bearer`; errors are
//! `{"id", "message"}` with the status (401 bad key, 400/422 bad body).
//!
//! Answers: with tools and "weather" in the last user text, a call of the
//! first tool with `{"location": "Paris"}` (and a `tool_plan`); after a tool
//! result, `The tool said: <result>`; otherwise `Echo: <last user text>`
//! plus ` (+N images)`; `/v2/rerank`: [`rerank`]. [`FakeCohere::fail_next`] queues failures.
#![allow(dead_code)]

pub mod rerank;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::{TEST_KEY, expected_vector};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct CohereSeen {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Value,
}

/// A failure to answer the next request with.
#[derive(Debug, Clone)]
pub enum Failure {
    /// 429 "You are using a Trial key..." with `retry-after` seconds.
    RateLimited(u64),
    /// This 5xx with a `message`.
    Server(u16),
    /// 422 "invalid request".
    Unprocessable,
    /// 200 SSE: message-end with `ERROR` after one delta.
    StreamError,
    /// 200 SSE: one delta, then EOF without message-end.
    StreamCut,
}

#[derive(Default)]
struct State {
    seen: Mutex<Vec<CohereSeen>>,
    failures: Mutex<VecDeque<Failure>>,
}

pub struct FakeCohere {
    pub addr: SocketAddr,
    state: Arc<State>,
}

type Body = BoxBody<Bytes, Infallible>;

impl FakeCohere {
    pub async fn start() -> FakeCohere {
        let state = Arc::new(State::default());
        let addr = super::serve_raw(Arc::clone(&state), |state, req| async move {
            handle(&state, req).await
        })
        .await;
        FakeCohere { addr, state }
    }

    /// The base URL (`https://api.cohere.com`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn fail_next(&self, failure: Failure) {
        self.state.failures.lock().unwrap().push_back(failure);
    }

    pub fn requests(&self) -> Vec<CohereSeen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }
}

/// The vector the fake gives `text` (the shared fake embedder's, so it can
/// be compared with an openai-kind fake's).
pub fn vector_of(text: &str) -> Vec<f32> {
    expected_vector(&Value::from(text))
}

fn json_response(code: u16, v: &Value, headers: &[(&str, String)]) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (k, v) in headers {
        r.headers_mut()
            .insert(http::HeaderName::try_from(*k).unwrap(), v.parse().unwrap());
    }
    r
}

fn error(code: u16, message: &str) -> hyper::Response<Body> {
    json_response(
        code,
        &json!({"id": "5e0d5b1a-fake", "message": message}),
        &[],
    )
}

fn sse_response(events: Vec<Value>) -> hyper::Response<Body> {
    let frames = events.into_iter().map(|e| {
        let frame = format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or(""));
        Ok::<_, Infallible>(Frame::data(Bytes::from(frame)))
    });
    let mut r = hyper::Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    r
}

async fn handle(
    state: &State,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let seen = CohereSeen {
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    state.seen.lock().unwrap().push(seen.clone());
    let auth = seen
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TEST_KEY}")) {
        return error(401, "invalid api token");
    }
    if !seen.body.is_object() {
        return error(400, "invalid request: body must be a JSON object");
    }
    let failure = state.failures.lock().unwrap().pop_front();
    match &failure {
        Some(Failure::RateLimited(secs)) => {
            return json_response(
                429,
                &json!({"id": "rl-fake", "message": "You are using a Trial key, which is limited to 40 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions"}),
                &[("retry-after", secs.to_string())],
            );
        }
        Some(Failure::Server(code)) => {
            return error(
                *code,
                "internal server error, this has been reported to our developers",
            );
        }
        Some(Failure::Unprocessable) => {
            return error(422, "invalid request: the request could not be processed");
        }
        _ => {}
    }
    match seen.path.as_str() {
        "/v2/embed" => embed(&seen.body),
        "/v2/chat" => chat(&seen.body, failure),
        "/v2/rerank" => rerank::rerank(&seen.body),
        _ => error(404, "Not Found"),
    }
}

fn embed(body: &Value) -> hyper::Response<Body> {
    if !body["model"].is_string() {
        return error(400, "invalid request: model must be a string");
    }
    let input_type = body["input_type"].as_str().unwrap_or("");
    if ![
        "search_document",
        "search_query",
        "classification",
        "clustering",
    ]
    .contains(&input_type)
    {
        return error(
            400,
            "invalid request: input_type must be one of search_document, search_query, classification, clustering, image",
        );
    }
    let Some(texts) = body["texts"].as_array() else {
        return error(
            400,
            "invalid request: one of texts, images or inputs must be specified",
        );
    };
    if texts.is_empty() || texts.len() > 96 || !texts.iter().all(Value::is_string) {
        return error(
            400,
            &format!(
                "invalid request: texts must contain 1 to 96 strings, got {}",
                texts.len()
            ),
        );
    }
    if let Some(t) = body.get("truncate")
        && !["NONE", "START", "END"].contains(&t.as_str().unwrap_or(""))
    {
        return error(
            400,
            "invalid request: truncate must be one of NONE, START, END",
        );
    }
    if !body["embedding_types"]
        .as_array()
        .is_some_and(|t| t.contains(&json!("float")))
    {
        return error(
            400,
            "invalid request: this fake answers float embeddings only",
        );
    }
    let floats: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| vector_of(t.as_str().unwrap()))
        .collect();
    let tokens: usize = texts
        .iter()
        .map(|t| t.as_str().unwrap().split_whitespace().count())
        .sum();
    json_response(
        200,
        &json!({"id": "da6e531f-fake", "texts": texts, "embeddings": {"float": floats},
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}}}),
        &[],
    )
}

fn chat(body: &Value, failure: Option<Failure>) -> hyper::Response<Body> {
    if !body["model"].is_string() {
        return error(400, "invalid request: model must be a string");
    }
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error(400, "invalid request: messages must not be empty");
    };
    for m in messages {
        let ok = match m["role"].as_str() {
            Some("system") | Some("user") => m["content"].is_string() || m["content"].is_array(),
            Some("assistant") => m["content"].is_string() || m["tool_calls"].is_array(),
            Some("tool") => m["tool_call_id"].is_string() && m["content"].is_string(),
            _ => false,
        };
        if !ok {
            return error(400, &format!("invalid request: bad message {m}"));
        }
    }
    if let Some(tools) = body.get("tools")
        && !tools.as_array().is_some_and(|t| {
            t.iter()
                .all(|t| t["type"] == "function" && t["function"]["parameters"].is_object())
        })
    {
        return error(
            400,
            "invalid request: tools must be functions with parameters",
        );
    }
    let last = messages.last().unwrap();
    let (text, images) = match &messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| &m["content"])
    {
        Some(Value::String(s)) => (s.clone(), 0),
        Some(Value::Array(parts)) => (
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            parts
                .iter()
                .filter(|p| p["type"] == "image_url" && p["image_url"]["url"].is_string())
                .count(),
        ),
        _ => (String::new(), 0),
    };
    let tool = body["tools"][0]["function"]["name"]
        .as_str()
        .filter(|_| body["tool_choice"] != "NONE");
    let call = match tool {
        Some(name) if text.contains("weather") && last["role"] != "tool" => Some(name.to_string()),
        _ => None,
    };
    let content = if last["role"] == "tool" {
        format!("The tool said: {}", last["content"].as_str().unwrap_or(""))
    } else if images > 0 {
        format!("Echo: {text} (+{images} images)")
    } else {
        format!("Echo: {text}")
    };
    let finish = if call.is_some() {
        "TOOL_CALL"
    } else {
        "COMPLETE"
    };
    let words = content.split(' ').count();
    let usage = json!({"billed_units": {"input_tokens": 5, "output_tokens": words},
                       "tokens": {"input_tokens": 71, "output_tokens": words}});
    if body["stream"] != true {
        let message = match &call {
            Some(name) => json!({"role": "assistant", "tool_plan": "I will look up the weather.",
                "tool_calls": [{"id": "get_weather_fake01", "type": "function",
                                "function": {"name": name, "arguments": "{\"location\":\"Paris\"}"}}]}),
            None => json!({"role": "assistant", "content": [{"type": "text", "text": content}]}),
        };
        return json_response(
            200,
            &json!({"id": "c14c80c3-fake", "message": message, "finish_reason": finish, "usage": usage}),
            &[],
        );
    }
    let mut events = vec![json!({"type": "message-start", "id": "29f14a5a-fake",
        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})];
    match &call {
        Some(name) => {
            events.push(json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look up the weather."}}}));
            events.push(json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
                "id": "get_weather_fake01", "type": "function", "function": {"name": name, "arguments": ""}}}}}));
            for part in ["{\"location\":", "\"Paris\"}"] {
                events.push(json!({"type": "tool-call-delta", "index": 0,
                    "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}}}));
            }
            events.push(json!({"type": "tool-call-end", "index": 0}));
        }
        None => {
            events.push(json!({"type": "content-start", "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}}}));
            for (i, word) in content.split(' ').enumerate() {
                let piece = if i == 0 {
                    word.to_string()
                } else {
                    format!(" {word}")
                };
                events.push(json!({"type": "content-delta", "index": 0,
                    "delta": {"message": {"content": {"text": piece}}}}));
                if i == 0 {
                    match failure {
                        Some(Failure::StreamCut) => return sse_response(events),
                        Some(Failure::StreamError) => {
                            events.push(
                                json!({"type": "message-end", "delta": {"finish_reason": "ERROR",
                                "error": "internal error while generating"}}),
                            );
                            return sse_response(events);
                        }
                        _ => {}
                    }
                }
            }
            events.push(json!({"type": "content-end", "index": 0}));
        }
    }
    events.push(json!({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage}}));
    sse_response(events)
}
