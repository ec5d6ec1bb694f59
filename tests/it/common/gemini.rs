//! A fake Gemini API (v1beta) upstream on 127.0.0.1:0 over real HTTP.
//!
//! Speaks the native API as the reference documents it:
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`
//! (`?alt=sse`: one `data:` event per `GenerateContentResponse`, CRLF
//! framed, finishReason and full usage on the last; without it one JSON
//! array) and `:batchEmbedContents`; the key in `x-goog-api-key` (or
//! `?key=`); errors as `{"error": {code, message, status, details}}`. Request
//! shapes are checked by [`check`] (400 INVALID_ARGUMENT when wrong).
//!
//! Answers: when tools are declared (mode not NONE) and the last user text
//! mentions "weather", or the mode is ANY, it calls the first allowed
//! function with its first parameter set to "Paris"; after function
//! responses it reports them; otherwise `Echo: <last user text>` (plus
//! `(+N media)` for media parts), as JSON under JSON mode (a value of the
//! `responseSchema`'s shape when one is given), one candidate per
//! `candidateCount`, cut at `maxOutputTokens` words (MAX_TOKENS); with
//! `thinkingConfig.includeThoughts`, a thought part (`thought: true`) first
//! and `thoughtsTokenCount` in the usage. Model `missing-model` is
//! NOT_FOUND. [`FakeGemini::fail_next`] queues failures.
#![allow(dead_code)]

mod answer;
mod check;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use answer::{answer, chunks, whole};

pub const GEMINI_KEY: &str = "AIza-fake-gemini-key-0000";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct GeminiSeen {
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Value,
}

/// A failure to answer the next request with.
#[derive(Debug, Clone)]
pub enum Failure {
    /// 429 RESOURCE_EXHAUSTED with `RetryInfo.retryDelay` of this many seconds.
    RateLimited(u64),
    /// 503 UNAVAILABLE ("The model is overloaded").
    Overloaded,
    /// 500 INTERNAL.
    Internal,
    /// 200 SSE: one chunk, then an `{"error": ...}` event.
    StreamError,
    /// 200 SSE: one chunk without finishReason, then EOF.
    StreamCut,
}

#[derive(Default)]
struct State {
    seen: Mutex<Vec<GeminiSeen>>,
    failures: Mutex<VecDeque<Failure>>,
}

pub struct FakeGemini {
    pub addr: SocketAddr,
    state: Arc<State>,
}

type Body = BoxBody<Bytes, Infallible>;

impl FakeGemini {
    pub async fn start() -> FakeGemini {
        let state = Arc::new(State::default());
        let addr = super::serve_raw(Arc::clone(&state), |state, req| async move {
            handle(&state, req).await
        })
        .await;
        FakeGemini { addr, state }
    }

    /// The base URL the translation paths are relative to.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    pub fn fail_next(&self, failure: Failure) {
        self.state.failures.lock().unwrap().push_back(failure);
    }

    pub fn requests(&self) -> Vec<GeminiSeen> {
        self.state.seen.lock().unwrap().clone()
    }
}

pub fn error_body(code: u16, status: &str, message: &str, details: Value) -> Value {
    json!({"error": {"code": code, "message": message, "status": status, "details": details}})
}

fn json_response(code: u16, v: &Value) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
    r.headers_mut().insert(
        "content-type",
        "application/json; charset=UTF-8".parse().unwrap(),
    );
    r
}

fn error(code: u16, status: &str, message: &str) -> hyper::Response<Body> {
    json_response(code, &error_body(code, status, message, json!([])))
}

fn sse_response(events: Vec<Value>) -> hyper::Response<Body> {
    let frames = events
        .into_iter()
        .map(|e| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("data: {e}\r\n\r\n")))));
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
    let parsed = serde_json::from_slice::<Value>(&bytes);
    let seen = GeminiSeen {
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body: parsed.as_ref().cloned().unwrap_or(Value::Null),
    };
    state.seen.lock().unwrap().push(seen.clone());

    let query_key = seen
        .query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key=")));
    match seen
        .headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .or(query_key)
    {
        None => {
            return error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            );
        }
        Some(key) if key != GEMINI_KEY => {
            return json_response(
                400,
                &error_body(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]),
                ),
            );
        }
        Some(_) => {}
    }
    let Some((model, method)) = seen
        .path
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| rest.split_once(':'))
    else {
        return error(
            404,
            "NOT_FOUND",
            "The requested URL was not found on this server.",
        );
    };
    if parts.method != http::Method::POST {
        return error(405, "UNIMPLEMENTED", "Method not allowed.");
    }
    if model == "missing-model" {
        return error(
            404,
            "NOT_FOUND",
            &format!(
                "models/{model} is not found for API version v1beta, or is not supported for {method}."
            ),
        );
    }
    let Ok(body) = parsed else {
        return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let failure = state.failures.lock().unwrap().pop_front();
    match failure {
        Some(Failure::RateLimited(secs)) => {
            return json_response(
                429,
                &error_body(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "You exceeded your current quota, please check your plan and billing details.",
                    json!([{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                   {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")}]),
                ),
            );
        }
        Some(Failure::Overloaded) => {
            return error(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
            );
        }
        Some(Failure::Internal) => {
            return error(
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
            );
        }
        _ => {}
    }
    match method {
        "batchEmbedContents" => match check::batch_embed(&body, model) {
            Ok(items) => {
                let embeddings: Vec<Value> = items
                    .iter()
                    .map(|(text, dims)| json!({"values": gemini_vector(text, dims.unwrap_or(8) as usize)}))
                    .collect();
                json_response(200, &json!({ "embeddings": embeddings }))
            }
            Err(m) => error(400, "INVALID_ARGUMENT", &m),
        },
        "generateContent" | "streamGenerateContent" => {
            if let Err(m) = check::generate(&body, model) {
                return error(400, "INVALID_ARGUMENT", &m);
            }
            let answers = answer(&body);
            let response_id = format!("fake-{}", state.seen.lock().unwrap().len());
            if method == "generateContent" {
                return json_response(200, &whole(&answers, &body, model, &response_id));
            }
            let mut events = chunks(&answers, &body, model, &response_id);
            match failure {
                Some(Failure::StreamError) => {
                    events.truncate(1);
                    events.push(error_body(
                        503,
                        "UNAVAILABLE",
                        "The model is overloaded. Please try again later.",
                        json!([]),
                    ));
                }
                Some(Failure::StreamCut) => events.truncate(1),
                _ => {}
            }
            if seen
                .query
                .as_deref()
                .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"))
            {
                sse_response(events)
            } else {
                json_response(200, &Value::Array(events))
            }
        }
        _ => error(404, "NOT_FOUND", &format!("Method {method} not found.")),
    }
}

/// The fake's embedding of `text`: `dims` values derived from its bytes.
pub fn gemini_vector(text: &str, dims: usize) -> Vec<f32> {
    let sum: u32 = text.bytes().map(u32::from).sum();
    (0..dims)
        .map(|i| ((sum as usize + i * 31) % 1000) as f32 / 1000.0 + text.len() as f32)
        .collect()
}
