//! Fake AWS Bedrock Runtime on 127.0.0.1:0: Converse (JSON), ConverseStream
//! (real event-stream frames, written with the AWS SDK's own encoder,
//! aws-smithy-eventstream, and sent in small pieces so frames straddle
//! chunks) and InvokeModel embeddings (Titan and Cohere). It checks the SigV4
//! signature (recomputed for the shared test credentials), the path, the
//! content type and the request shape, answering Bedrock's own error shape
//! (`x-amzn-ErrorType` header + `{"message"}`), and can be told to fail.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchyard::providers::bedrock::{self, AwsCredentials};

pub const REGION: &str = "us-east-1";
/// Bytes per body chunk of a ConverseStream answer.
const STREAM_PIECE: usize = 7;
const ERROR_SUFFIX: &str = ":http://internal.amazon.com/coral/com.amazon.bedrock/";

/// The credentials the fake accepts.
pub fn credentials() -> AwsCredentials {
    AwsCredentials::new(
        "AKIDFAKEBEDROCK",
        "fake/secret+key",
        Some("fake-session-token".into()),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Converse,
    ConverseStream,
    Invoke,
}

/// One request the fake received (whatever its fate).
#[derive(Debug, Clone)]
pub struct BedrockSeen {
    pub operation: Option<Operation>,
    pub model_id: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Value,
}

/// A failure to answer the next request with (after the auth check).
pub enum Failure {
    Status {
        status: u16,
        error_type: &'static str,
        message: &'static str,
        retry_after: Option<u64>,
    },
    /// ConverseStream only: start the answer, then an exception frame.
    StreamException {
        exception_type: &'static str,
        message: &'static str,
    },
}

impl Failure {
    pub fn throttle() -> Failure {
        Failure::Status {
            status: 429,
            error_type: "ThrottlingException",
            message: "Too many requests, please wait before trying again.",
            retry_after: None,
        }
    }

    pub fn unavailable() -> Failure {
        Failure::Status {
            status: 503,
            error_type: "ServiceUnavailableException",
            message: "Bedrock is unable to process your request.",
            retry_after: None,
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

struct State {
    seen: Mutex<Vec<BedrockSeen>>,
    failures: Mutex<VecDeque<Failure>>,
}

pub struct FakeBedrock {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FakeBedrock {
    pub async fn start() -> FakeBedrock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            seen: Mutex::new(Vec::new()),
            failures: Mutex::new(VecDeque::new()),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeBedrock { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn fail_next(&self, failure: Failure) {
        self.state.failures.lock().unwrap().push_back(failure);
    }

    pub fn requests(&self) -> Vec<BedrockSeen> {
        self.state.seen.lock().unwrap().clone()
    }
}

/// Signs `body` for `path` with `creds` and sends it.
pub async fn send(
    client: &reqwest::Client,
    fake: &FakeBedrock,
    path: &str,
    body: &Value,
    creds: &AwsCredentials,
) -> reqwest::Response {
    let mut request = http::Request::post(format!("{}{path}", fake.base_url()))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    bedrock::sign(&mut request, creds, REGION, SystemTime::now()).unwrap();
    client
        .execute(reqwest::Request::try_from(request).unwrap())
        .await
        .unwrap()
}

fn json_response(status: u16, body: &Value, headers: &[(&str, String)]) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r.headers_mut()
        .insert("x-amzn-requestid", "fake-request-id".parse().unwrap());
    for (k, v) in headers {
        r.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

/// Bedrock's error shape.
fn error(status: u16, error_type: &str, message: &str) -> hyper::Response<Body> {
    json_response(
        status,
        &json!({ "message": message }),
        &[("x-amzn-errortype", format!("{error_type}{ERROR_SUFFIX}"))],
    )
}

fn validation(message: impl AsRef<str>) -> hyper::Response<Body> {
    error(400, "ValidationException", message.as_ref())
}

async fn handle(
    state: &State,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Body> {
    let (parts, body) = req.into_parts();
    let raw = body.collect().await.unwrap().to_bytes();
    let path = parts.uri.path().to_string();
    let segments: Vec<&str> = path.split('/').collect();
    let (model_id, operation) = match segments.as_slice() {
        ["", "model", id, op] => (
            percent_encoding::percent_decode_str(id)
                .decode_utf8_lossy()
                .into_owned(),
            match *op {
                "converse" => Some(Operation::Converse),
                "converse-stream" => Some(Operation::ConverseStream),
                "invoke" => Some(Operation::Invoke),
                _ => None,
            },
        ),
        _ => (String::new(), None),
    };
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    state.seen.lock().unwrap().push(BedrockSeen {
        operation,
        model_id: model_id.clone(),
        path: path.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let Some(operation) = operation.filter(|_| parts.method == http::Method::POST) else {
        return error(404, "UnknownOperationException", "Unknown operation");
    };
    if let Err((error_type, message)) = verify_signature(&parts, &raw) {
        return error(403, error_type, &message);
    }
    if let Some(failure) = state.failures.lock().unwrap().pop_front() {
        match failure {
            Failure::Status {
                status,
                error_type,
                message,
                retry_after,
            } => {
                let mut r = error(status, error_type, message);
                if let Some(secs) = retry_after {
                    r.headers_mut().insert("retry-after", secs.into());
                }
                return r;
            }
            Failure::StreamException {
                exception_type,
                message,
            } => {
                if operation == Operation::ConverseStream && check_converse(&body).is_ok() {
                    return stream_with_exception(&body, exception_type, message);
                }
                return validation("StreamException failure on a non-stream request");
            }
        }
    }
    if parts
        .headers
        .get("content-type")
        .is_none_or(|v| v != "application/json")
    {
        return validation("content-type must be application/json");
    }
    match operation {
        Operation::Converse | Operation::ConverseStream => {
            if let Err(message) = check_converse(&body) {
                return validation(message);
            }
            let answer = answer(&body);
            if operation == Operation::Converse {
                json_response(200, &converse_body(&answer), &[])
            } else {
                event_stream(stream_frames(&answer))
            }
        }
        Operation::Invoke => embed(&model_id, &body),
    }
}

// --- SigV4 --------------------------------------------------------------

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `YYYYMMDDTHHMMSSZ` -> time (days-from-civil, proleptic Gregorian).
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || s.as_bytes()[8] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (hh, mm, ss) = (n(9, 11)?, n(11, 13)?, n(13, 15)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Checks the Authorization header's form and scope, the session token, the
/// body hash and finally the signature itself, recomputed for the shared
/// test credentials over the request as received.
fn verify_signature(
    parts: &http::request::Parts,
    raw: &Bytes,
) -> Result<(), (&'static str, String)> {
    let creds = credentials();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        ));
    };
    let incomplete = |what: &str| {
        (
            "IncompleteSignatureException",
            format!("Authorization header: {what}"),
        )
    };
    let fields = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| incomplete("not AWS4-HMAC-SHA256"))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for field in fields.split(", ") {
        match field.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(incomplete("unexpected field")),
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete("missing Credential, SignedHeaders or Signature"));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(incomplete("malformed credential scope"));
    };
    if *key != creds.access_key_id {
        return Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        ));
    }
    let amz_date = header("x-amz-date").ok_or_else(|| incomplete("no X-Amz-Date"))?;
    let invalid = |m: &str| ("InvalidSignatureException", m.to_string());
    if !amz_date.starts_with(date) || *region != REGION || *service != "bedrock" {
        return Err(invalid(
            "Credential should be scoped to a valid date, region and service.",
        ));
    }
    let signed: Vec<&str> = signed.split(';').collect();
    let sig_ok = signature.len() == 64
        && signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") || !sig_ok {
        return Err(incomplete(
            "SignedHeaders must hold host and x-amz-date; Signature 64 hex digits",
        ));
    }
    if header("x-amz-security-token") != creds.session_token.as_deref()
        || !signed.contains(&"x-amz-security-token")
    {
        return Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        ));
    }
    if header("x-amz-content-sha256").is_some_and(|h| h != sha256_hex(raw)) {
        return Err(invalid(
            "The provided x-amz-content-sha256 header does not match the payload.",
        ));
    }
    let when = parse_amz_date(amz_date).ok_or_else(|| incomplete("bad X-Amz-Date"))?;
    let skew = SystemTime::now()
        .duration_since(when)
        .unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(300) {
        return Err(invalid("Signature expired."));
    }
    let host = header("host").ok_or_else(|| incomplete("no Host"))?;
    let mut again = http::Request::post(format!("http://{host}{}", parts.uri))
        .body(raw.clone())
        .map_err(|_| incomplete("cannot rebuild the request"))?;
    const ADDED_BY_SIGNER: &[&str] = &[
        "host",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ];
    for name in signed.iter().filter(|n| !ADDED_BY_SIGNER.contains(n)) {
        let value = parts
            .headers
            .get(*name)
            .ok_or_else(|| incomplete("a signed header is missing"))?;
        again.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.clone(),
        );
    }
    bedrock::sign(&mut again, &creds, REGION, when).map_err(|_| incomplete("cannot re-sign"))?;
    if again
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(auth)
    {
        return Err(invalid(
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(())
}

// --- Converse -----------------------------------------------------------

/// The checks Bedrock's Converse validation makes that a translator can get
/// wrong; the message is what the fake answers in its ValidationException.
fn check_converse(body: &Value) -> Result<(), String> {
    const TOP: &[&str] = &[
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "promptVariables",
        "requestMetadata",
        "performanceConfig",
    ];
    let obj = body.as_object().ok_or("body must be a JSON object")?;
    if let Some(k) = obj.keys().find(|k| !TOP.contains(&k.as_str())) {
        return Err(format!("Unknown parameter {k}"));
    }
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("messages must be a non-empty array")?;
    let mut tool_ids = Vec::new();
    let mut uses_tools = false;
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err("A conversation must start with a user message and alternate between user and assistant roles.".into());
        }
        let content = m["content"].as_array().filter(|c| !c.is_empty());
        let content = content.ok_or(format!("messages.{i}.content must be a non-empty array"))?;
        for (j, block) in content.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            let keys: Vec<&String> = block
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            match keys.as_slice() {
                [k] if *k == "text" => {
                    if block["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                        return Err(format!(
                            "The text field in the ContentBlock object at {at} is blank."
                        ));
                    }
                }
                [k] if *k == "image" => {
                    let fmt = block["image"]["format"].as_str().unwrap_or("");
                    if !["png", "jpeg", "gif", "webp"].contains(&fmt)
                        || !block["image"]["source"]["bytes"].is_string()
                    {
                        return Err(format!("{at}: invalid image block"));
                    }
                }
                [k] if *k == "toolUse" && role == "assistant" => {
                    let t = &block["toolUse"];
                    if !(t["toolUseId"].is_string()
                        && t["name"].is_string()
                        && t["input"].is_object())
                    {
                        return Err(format!("{at}: invalid toolUse block"));
                    }
                    tool_ids.push(t["toolUseId"].clone());
                    uses_tools = true;
                }
                [k] if *k == "toolResult" && role == "user" => {
                    let t = &block["toolResult"];
                    if !tool_ids.contains(&t["toolUseId"]) || !t["content"].is_array() {
                        return Err(format!("{at}: toolResult without a matching toolUse"));
                    }
                    uses_tools = true;
                }
                _ => return Err(format!("{at}: invalid content block")),
            }
        }
    }
    if let Some(system) = obj.get("system") {
        let ok = system
            .as_array()
            .is_some_and(|s| s.iter().all(|b| b["text"].is_string()));
        if !ok {
            return Err("system must be an array of text blocks".into());
        }
    }
    if let Some(config) = obj.get("inferenceConfig") {
        const KEYS: &[&str] = &["maxTokens", "temperature", "topP", "stopSequences"];
        let config = config
            .as_object()
            .ok_or("inferenceConfig must be an object")?;
        if config.keys().any(|k| !KEYS.contains(&k.as_str()))
            || config
                .get("maxTokens")
                .is_some_and(|m| m.as_u64().is_none_or(|m| m < 1))
        {
            return Err("invalid inferenceConfig".into());
        }
    }
    match obj.get("toolConfig") {
        None if uses_tools => Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".into()),
        None => Ok(()),
        Some(config) => {
            let tools = config["tools"].as_array().filter(|t| !t.is_empty()).ok_or("toolConfig.tools must be a non-empty array")?;
            let names: Vec<&Value> = tools.iter().map(|t| &t["toolSpec"]["name"]).collect();
            let valid = tools.iter().all(|t| t["toolSpec"]["name"].is_string() && t["toolSpec"]["inputSchema"]["json"].is_object());
            let choice_ok = match config.get("toolChoice") {
                None => true,
                Some(c) => c.get("auto").is_some() || c.get("any").is_some() || names.contains(&&c["tool"]["name"]),
            };
            if valid && choice_ok { Ok(()) } else { Err("invalid toolConfig".into()) }
        }
    }
}

/// What the fake model says: content blocks, stop reason.
struct Answer {
    text: Option<String>,
    tool: Option<(String, Value)>,
    stop: &'static str,
}

fn answer(body: &Value) -> Answer {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null);
    let blocks = last["content"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
    let results: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b["toolResult"]["content"][0]["text"].as_str())
        .collect();
    let config = &body["toolConfig"];
    let forced =
        config["toolChoice"].get("any").is_some() || config["toolChoice"]["tool"].is_object();
    if results.is_empty()
        && config.is_object()
        && (forced || texts.iter().any(|t| t.contains("weather")))
    {
        let name = config["toolChoice"]["tool"]["name"]
            .as_str()
            .or(config["tools"][0]["toolSpec"]["name"].as_str())
            .unwrap_or("tool")
            .to_string();
        return Answer {
            text: None,
            tool: Some((name, json!({"city": "Paris"}))),
            stop: "tool_use",
        };
    }
    let text = if results.is_empty() {
        format!("You said: {}", texts.join(" "))
    } else {
        format!("The tool said: {}", results.join(" "))
    };
    if body["inferenceConfig"]["maxTokens"]
        .as_u64()
        .is_some_and(|m| m <= 2)
    {
        return Answer {
            text: Some("You".into()),
            tool: None,
            stop: "max_tokens",
        };
    }
    Answer {
        text: Some(text),
        tool: None,
        stop: "end_turn",
    }
}

const TOOL_USE_ID: &str = "tooluse_fake_0001";

fn usage() -> Value {
    json!({"inputTokens": 11, "outputTokens": 7, "totalTokens": 18})
}

fn converse_body(a: &Answer) -> Value {
    let mut content = Vec::new();
    if let Some(text) = &a.text {
        content.push(json!({"text": text}));
    }
    if let Some((name, input)) = &a.tool {
        content.push(json!({"toolUse": {"toolUseId": TOOL_USE_ID, "name": name, "input": input}}));
    }
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": a.stop,
        "usage": usage(),
        "metrics": {"latencyMs": 42},
    })
}

fn frame(message_type: &str, kind_header: &str, kind: &str, payload: &Value) -> Vec<u8> {
    let s = |v: &str| HeaderValue::String(v.to_string().into());
    let message = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(kind_header.to_string(), s(kind)))
        .add_header(Header::new(":content-type", s("application/json")))
        .add_header(Header::new(":message-type", s(message_type)));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
    out
}

/// An event frame with Bedrock's `p` padding field.
fn event(event_type: &str, mut payload: Value) -> Vec<u8> {
    payload["p"] = json!("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ");
    frame("event", ":event-type", event_type, &payload)
}

fn stream_frames(a: &Answer) -> Vec<Vec<u8>> {
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    if let Some(text) = &a.text {
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(5) {
            let piece: String = piece.iter().collect();
            frames.push(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
            ));
        }
        frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
    }
    if let Some((name, input)) = &a.tool {
        let index = usize::from(a.text.is_some());
        frames.push(event(
            "contentBlockStart",
            json!({"contentBlockIndex": index,
            "start": {"toolUse": {"toolUseId": TOOL_USE_ID, "name": name}}}),
        ));
        let input = input.to_string();
        let (head, tail) = input.split_at(input.len() / 2);
        for fragment in [head, tail] {
            frames.push(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": index,
                "delta": {"toolUse": {"input": fragment}}}),
            ));
        }
        frames.push(event(
            "contentBlockStop",
            json!({"contentBlockIndex": index}),
        ));
    }
    frames.push(event("messageStop", json!({"stopReason": a.stop})));
    frames.push(event(
        "metadata",
        json!({"usage": usage(), "metrics": {"latencyMs": 42}}),
    ));
    frames
}

fn stream_with_exception(
    body: &Value,
    exception_type: &str,
    message: &str,
) -> hyper::Response<Body> {
    let mut frames = stream_frames(&answer(body));
    frames.truncate(2);
    frames.push(frame(
        "exception",
        ":exception-type",
        exception_type,
        &json!({"message": message}),
    ));
    event_stream(frames)
}

/// A 200 event-stream answer, its bytes sent in `STREAM_PIECE`-byte chunks.
fn event_stream(frames: Vec<Vec<u8>>) -> hyper::Response<Body> {
    let wire = Bytes::from(frames.concat());
    let pieces: Vec<Result<Frame<Bytes>, Infallible>> = (0..wire.len())
        .step_by(STREAM_PIECE)
        .map(|at| {
            Ok(Frame::data(
                wire.slice(at..(at + STREAM_PIECE).min(wire.len())),
            ))
        })
        .collect();
    let mut r = hyper::Response::new(StreamBody::new(futures_util::stream::iter(pieces)).boxed());
    r.headers_mut().insert(
        "content-type",
        "application/vnd.amazon.eventstream".parse().unwrap(),
    );
    r.headers_mut()
        .insert("x-amzn-requestid", "fake-request-id".parse().unwrap());
    r
}

// --- InvokeModel embeddings ----------------------------------------------

/// The vector for `text` (see `super::expected_vector`), resized to
/// `dimensions` when asked.
pub fn vector_for(text: &str, dimensions: Option<u64>) -> Vec<f32> {
    let mut v = super::expected_vector(&Value::String(text.to_string()));
    if let Some(d) = dimensions {
        v.resize(d as usize, 0.25);
    }
    v
}

fn embed(model_id: &str, body: &Value) -> hyper::Response<Body> {
    let Some(obj) = body.as_object() else {
        return validation("Malformed input request, please reformat your input and try again.");
    };
    if model_id.starts_with("amazon.titan-embed-text-v2") {
        if let Some(k) = obj.keys().find(|k| {
            !["inputText", "dimensions", "normalize", "embeddingTypes"].contains(&k.as_str())
        }) {
            return validation(format!(
                "Malformed input request: extraneous key [{k}] is not permitted, please reformat your input and try again."
            ));
        }
        let Some(text) = obj.get("inputText").and_then(Value::as_str) else {
            return validation(
                "Malformed input request: required key [inputText] not found, please reformat your input and try again.",
            );
        };
        let dims = obj.get("dimensions").and_then(Value::as_u64);
        if dims.is_some_and(|d| ![256, 512, 1024].contains(&d)) {
            return validation(
                "Malformed input request: dimensions must be one of 256, 512, 1024.",
            );
        }
        let v = vector_for(text, dims);
        let tokens = text.split_whitespace().count();
        return json_response(
            200,
            &json!({"embedding": v, "inputTextTokenCount": tokens, "embeddingsByType": {"float": v}}),
            &[("x-amzn-bedrock-input-token-count", tokens.to_string())],
        );
    }
    if model_id.starts_with("cohere.embed-") {
        if let Some(k) = obj.keys().find(|k| {
            ![
                "texts",
                "input_type",
                "truncate",
                "embedding_types",
                "images",
            ]
            .contains(&k.as_str())
        }) {
            return validation(format!(
                "Malformed input request: extraneous key [{k}] is not permitted, please reformat your input and try again."
            ));
        }
        let texts: Vec<&str> = obj
            .get("texts")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if texts.is_empty()
            || texts.len() > 96
            || texts.len() != obj["texts"].as_array().map_or(0, Vec::len)
        {
            return validation("Malformed input request: texts must hold 1 to 96 strings.");
        }
        let input_type = obj.get("input_type").and_then(Value::as_str).unwrap_or("");
        if ![
            "search_document",
            "search_query",
            "classification",
            "clustering",
        ]
        .contains(&input_type)
        {
            return validation(
                "Malformed input request: #/input_type: search_document|search_query|classification|clustering expected",
            );
        }
        if obj
            .get("truncate")
            .is_some_and(|t| !["NONE", "START", "END"].contains(&t.as_str().unwrap_or("")))
        {
            return validation("Malformed input request: #/truncate: NONE|START|END expected");
        }
        let embeddings: Vec<Vec<f32>> = texts.iter().map(|t| vector_for(t, None)).collect();
        let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
        return json_response(
            200,
            &json!({"embeddings": embeddings, "id": "fake-embed-id", "response_type": "embeddings_floats", "texts": texts}),
            &[("x-amzn-bedrock-input-token-count", tokens.to_string())],
        );
    }
    validation("The provided model identifier is invalid.")
}
