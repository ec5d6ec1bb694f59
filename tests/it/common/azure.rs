//! A fake Azure OpenAI resource on 127.0.0.1:0 over real HTTP.
//!
//! Speaks the data-plane inference API as the reference documents it:
//! `POST /openai/deployments/{deployment}/chat/completions?api-version=...`
//! and `/embeddings?api-version=...`, the key in the `api-key` header (a
//! request with `Authorization` is refused: a key is never a bearer token
//! here), errors as `{"error": {"code", "message"}}` (401 bad key, 404
//! unknown deployment, 400 unsupported api-version or bad body), and the
//! content filter's 400 `content_filter` refusal for a prompt containing
//! "forbidden". Chat answers (JSON and SSE) carry Azure's
//! `prompt_filter_results` / `content_filter_results`, and a stream starts
//! with Azure's prompt-filter annotation chunk (`"object": ""`).
//!
//! Answers: with tools and "weather" in the last user text, a call of the
//! first tool with `{"location": "Paris"}`; after a tool result, `The tool
//! said: <result>`; otherwise `Echo: <last user text>` plus ` (+N images)`.
//! Embeddings honour `encoding_format`. [`FakeAzure::fail_next`] queues
//! failures.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::{TEST_KEY, expected_vector};

pub const API_VERSION: &str = "2024-10-21";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct AzureSeen {
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Value,
}

/// A failure to answer the next request with.
#[derive(Debug, Clone)]
pub enum Failure {
    /// 429 with `retry-after-ms` and `retry-after` (seconds, rounded up).
    RateLimited { ms: u64 },
    /// 500 `{"error": {"code": "InternalServerError"}}`.
    Internal,
    /// 200 SSE: the annotation and one chunk, then EOF without `[DONE]`.
    StreamCut,
}

#[derive(Default)]
struct State {
    seen: Mutex<Vec<AzureSeen>>,
    failures: Mutex<VecDeque<Failure>>,
    deployments: Mutex<Vec<String>>,
}

pub struct FakeAzure {
    pub addr: SocketAddr,
    state: Arc<State>,
}

type Body = BoxBody<Bytes, Infallible>;

impl FakeAzure {
    /// A resource with these deployments.
    pub async fn start(deployments: &[&str]) -> FakeAzure {
        let state = Arc::new(State::default());
        *state.deployments.lock().unwrap() = deployments.iter().map(|d| d.to_string()).collect();
        let addr = super::serve_raw(Arc::clone(&state), |state, req| async move {
            handle(&state, req).await
        })
        .await;
        FakeAzure { addr, state }
    }

    /// The resource endpoint (`https://<resource>.openai.azure.com`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn fail_next(&self, failure: Failure) {
        self.state.failures.lock().unwrap().push_back(failure);
    }

    pub fn requests(&self) -> Vec<AzureSeen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }
}

fn json_response(code: u16, v: &Value, headers: &[(&str, String)]) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r.headers_mut()
        .insert("apim-request-id", "0f6e2a51-fake".parse().unwrap());
    for (k, v) in headers {
        r.headers_mut()
            .insert(http::HeaderName::try_from(*k).unwrap(), v.parse().unwrap());
    }
    r
}

fn error(code: u16, error_code: &str, message: &str) -> hyper::Response<Body> {
    json_response(
        code,
        &json!({"error": {"code": error_code, "message": message}}),
        &[],
    )
}

fn sse_response(frames: Vec<String>) -> hyper::Response<Body> {
    let frames = frames
        .into_iter()
        .map(|f| Ok::<_, Infallible>(Frame::data(Bytes::from(f))));
    let mut r = hyper::Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
    r.headers_mut().insert(
        "content-type",
        "text/event-stream; charset=utf-8".parse().unwrap(),
    );
    r
}

fn filter_results() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe})
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
    let seen = AzureSeen {
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    state.seen.lock().unwrap().push(seen.clone());

    let key = seen.headers.get("api-key").and_then(|v| v.to_str().ok());
    if key != Some(TEST_KEY) || seen.headers.contains_key("authorization") {
        return error(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        );
    }
    let Some((deployment, operation)) = seen
        .path
        .strip_prefix("/openai/deployments/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return error(404, "404", "Resource not found");
    };
    let version = seen
        .query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("api-version=")));
    match version {
        None => return error(404, "404", "Resource not found"),
        Some(v) if v != API_VERSION => {
            return error(400, "BadRequest", "API version not supported");
        }
        Some(_) => {}
    }
    if !state
        .deployments
        .lock()
        .unwrap()
        .iter()
        .any(|d| d == deployment)
    {
        return error(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        );
    }
    let failure = state.failures.lock().unwrap().pop_front();
    match failure {
        Some(Failure::RateLimited { ms }) => {
            return json_response(
                429,
                &json!({"error": {"code": "429", "message": format!(
                    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {API_VERSION} have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after {} seconds.", ms.div_ceil(1000))}}),
                &[
                    ("retry-after-ms", ms.to_string()),
                    ("retry-after", ms.div_ceil(1000).to_string()),
                ],
            );
        }
        Some(Failure::Internal) => {
            return error(
                500,
                "InternalServerError",
                "The server had an error while processing your request. Sorry about that!",
            );
        }
        Some(Failure::StreamCut) | None => {}
    }
    match operation {
        "chat/completions" => chat(&seen.body, deployment, failure.is_some()),
        "embeddings" => embeddings(&seen.body, deployment),
        _ => error(404, "404", "Resource not found"),
    }
}

fn last_user_text(messages: &[Value]) -> (String, usize) {
    let Some(last) = messages.iter().rev().find(|m| m["role"] == "user") else {
        return (String::new(), 0);
    };
    match &last["content"] {
        Value::String(s) => (s.clone(), 0),
        Value::Array(parts) => (
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            parts.iter().filter(|p| p["type"] == "image_url").count(),
        ),
        _ => (String::new(), 0),
    }
}

fn chat(body: &Value, deployment: &str, cut: bool) -> hyper::Response<Body> {
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error(400, "BadRequest", "'messages' is a required property");
    };
    let (text, images) = last_user_text(messages);
    if text.contains("forbidden") {
        return json_response(
            400,
            &json!({"error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
                "type": null, "param": "prompt", "code": "content_filter", "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                    "hate": {"filtered": false, "severity": "safe"},
                    "self_harm": {"filtered": false, "severity": "safe"},
                    "sexual": {"filtered": false, "severity": "safe"},
                    "violence": {"filtered": true, "severity": "medium"}}}}}),
            &[],
        );
    }
    let model = format!("{deployment}-2024-08-06");
    let tool = body["tools"][0]["function"]["name"].as_str();
    let last_is_tool = messages.last().is_some_and(|m| m["role"] == "tool");
    let (content, calls) = match tool {
        Some(name) if text.contains("weather") && !last_is_tool => (
            None,
            Some(json!([{"id": "call_azure_1", "type": "function",
                         "function": {"name": name, "arguments": "{\"location\":\"Paris\"}"}}])),
        ),
        _ if last_is_tool => (
            Some(format!(
                "The tool said: {}",
                messages.last().unwrap()["content"].as_str().unwrap_or("")
            )),
            None,
        ),
        _ if images > 0 => (Some(format!("Echo: {text} (+{images} images)")), None),
        _ => (Some(format!("Echo: {text}")), None),
    };
    let finish = if calls.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    let words = content
        .as_deref()
        .map_or(1, |c| c.split(' ').count() as u64);
    let usage = json!({"prompt_tokens": 9, "completion_tokens": words, "total_tokens": 9 + words});
    if body["stream"] != true {
        let mut message = json!({"role": "assistant", "content": content});
        if let Some(calls) = &calls {
            message["tool_calls"] = calls.clone();
        }
        return json_response(
            200,
            &json!({"id": "chatcmpl-azure-1", "object": "chat.completion", "created": 1727000000,
                    "model": model, "system_fingerprint": "fp_azure",
                    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter_results()}],
                    "choices": [{"index": 0, "finish_reason": finish, "logprobs": null,
                                 "message": message, "content_filter_results": filter_results()}],
                    "usage": usage}),
            &[],
        );
    }
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-azure-1", "object": "chat.completion.chunk", "created": 1727000000,
                   "model": model, "system_fingerprint": "fp_azure",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null,
                                "content_filter_results": {}}]})
        )
    };
    let mut frames = vec![
        format!(
            "data: {}\n\n",
            json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter_results()}]})
        ),
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    ];
    if let Some(content) = &content {
        for (i, word) in content.split(' ').enumerate() {
            let piece = if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            frames.push(chunk(json!({"content": piece}), Value::Null));
            if cut {
                // Cut after the first content, before the end.
                return sse_response(frames);
            }
        }
    }
    if let Some(calls) = &calls {
        let call = &calls[0];
        frames.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                   "function": {"name": call["function"]["name"], "arguments": ""}}]}),
            Value::Null,
        ));
        for part in ["{\"location\":", "\"Paris\"}"] {
            frames.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                Value::Null,
            ));
        }
    }
    frames.push(chunk(json!({}), json!(finish)));
    // Azure's asynchronous filter annotation: not an OpenAI chunk.
    frames.push(format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {}, "finish_reason": null,
        "content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 10},
        "content_filter_results": filter_results()}], "created": 0, "id": "", "model": "", "object": ""})));
    if body["stream_options"]["include_usage"] == true {
        frames.push(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-azure-1", "object": "chat.completion.chunk",
            "created": 1727000000, "model": model, "choices": [], "usage": usage})
        ));
    }
    frames.push("data: [DONE]\n\n".to_string());
    sse_response(frames)
}

fn embeddings(body: &Value, deployment: &str) -> hyper::Response<Body> {
    let inputs = match &body["input"] {
        Value::String(s) => vec![Value::from(s.as_str())],
        Value::Array(items) if !items.is_empty() && items.len() <= 2048 => items.clone(),
        _ => return error(400, "BadRequest", "'input' is invalid"),
    };
    let base64 = body["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let v = expected_vector(input);
            let embedding = if base64 {
                Value::from(switchyard::api::embeddings::encode_base64(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens = inputs.len() as u64;
    json_response(
        200,
        &json!({"object": "list", "model": deployment, "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
        &[],
    )
}
