//! A fault-injecting fake OpenAI upstream, and client-side checks for what
//! the gateway hands back under faults.
//!
//! [`FaultyUpstream`] is a hand-written HTTP/1.1 responder on a raw
//! `TcpListener` (127.0.0.1:0), so it can misbehave below HTTP: close the
//! socket without answering, trickle a body byte by byte, tear a chunked SSE
//! stream in the middle of an event. It speaks the OpenAI API when healthy
//! (chat JSON, chat SSE when `"stream": true`, embeddings) and its behaviour
//! is switched at run time with [`FaultyUpstream::set`]. The only sleeps are
//! the ones that are the fault (slow first byte, trickle gap).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use tokio::time::Instant;

use super::{Reply, TEST_KEY, TestGateway, chat_reply, embeddings_reply, gateway};

/// What the upstream does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Healthy,
    /// An OpenAI error JSON with this status.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    RateLimited {
        retry_after_secs: u64,
    },
    /// Reads the request, then resets the connection (no response at all).
    Reset,
    /// Reads the request and never answers (until the gateway hangs up).
    Hang,
    /// Waits this long, then answers healthily.
    SlowFirstByte(Duration),
    /// Headers at once, then the (healthy) body one byte per gap.
    Trickle(Duration),
    /// 200, `application/json`, the healthy body cut in half (well framed).
    MalformedJson200,
    /// 200, `text/html`: a proxy's error page.
    Html200,
    /// 200, valid JSON of the wrong shape: chat without `choices` (also for
    /// streams: JSON where SSE was asked), embeddings one vector short.
    WrongShape200,
    /// Streams: two complete events, half an event, then the connection is
    /// dropped. Non-streaming: half the announced body, then dropped.
    StreamCutMidEvent,
    /// Streams: two events then silence, connection open. Non-streaming:
    /// half the announced body then silence.
    StreamStall,
    /// Streams: every event but `[DONE]`, then a clean end of the body.
    /// Non-streaming: healthy.
    StreamNoDone,
    /// An OpenAI error JSON with this status whose message quotes the
    /// `Authorization` header received (as `EchoKey(400)`: the brief's EchoKey400).
    EchoKey(u16),
    /// Streams: the role chunk, then the connection is reset: a break
    /// before any content. Non-streaming: a reset.
    StreamCutBeforeContent,
    /// Streams: an error event quoting the `Authorization` header received,
    /// as the very first event (then `[DONE]`). Non-streaming: a 500
    /// quoting it.
    FirstEventError,
    /// The `Authorization` header received, in `Encoding`, at `Place`.
    Echo(Encoding, Place),
}

/// How an echoed secret is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Encoding {
    Raw,
    /// Every character as a JSON `\uXXXX` escape.
    Escaped,
    /// Every byte as `%XX`.
    UrlEncoded,
    Base64,
}

impl Encoding {
    pub const ALL: [Encoding; 4] = [
        Encoding::Raw,
        Encoding::Escaped,
        Encoding::UrlEncoded,
        Encoding::Base64,
    ];

    /// `text` in this encoding, as it appears in a JSON string's source.
    pub fn apply(self, text: &str) -> String {
        use base64::Engine;
        match self {
            Encoding::Raw => text.to_string(),
            Encoding::Escaped => text
                .chars()
                .map(|c| format!("\\u{:04x}", c as u32))
                .collect(),
            Encoding::UrlEncoded => text.bytes().map(|b| format!("%{b:02X}")).collect(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(text),
        }
    }
}

/// Where an echoed secret is put.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place {
    /// The message of an OpenAI error JSON with this status.
    ErrorBody(u16),
    /// A field of a healthy answer (`system_fingerprint`; for a stream, of
    /// its first content chunk; for embeddings, an extra field).
    Body200,
    /// Streams: an error event after the first content, quoting it (the
    /// stream then ends). Non-streaming: as `Body200`.
    SseEvent,
    /// A response header of a healthy answer.
    Header,
}

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub authorization: String,
    pub body: Value,
    pub stream: bool,
    pub fault: Fault,
}

struct State {
    mode: Fault,
    /// Overrides `mode` for streaming chat requests.
    stream_mode: Option<Fault>,
    /// Faults for the next requests, one each, before `mode` applies again.
    script: VecDeque<Fault>,
    received: Vec<Received>,
}

pub struct FaultyUpstream {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    calls: watch::Sender<usize>,
}

impl FaultyUpstream {
    /// A healthy upstream whose answers say "`who` answered".
    pub async fn start(who: &str) -> FaultyUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            mode: Fault::Healthy,
            stream_mode: None,
            script: VecDeque::new(),
            received: Vec::new(),
        }));
        let calls = watch::Sender::new(0usize);
        let (st, tx, who) = (state.clone(), calls.clone(), who.to_string());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (st, tx, who) = (st.clone(), tx.clone(), who.clone());
                tokio::spawn(serve_connection(sock, st, tx, who));
            }
        });
        FaultyUpstream { addr, state, calls }
    }

    /// From now on every request (streaming or not) gets `fault`.
    pub fn set(&self, fault: Fault) {
        let mut s = self.state.lock().unwrap();
        s.mode = fault;
        s.stream_mode = None;
    }

    /// Non-streaming requests get `plain`, streaming chat requests `streams`.
    pub fn set_split(&self, plain: Fault, streams: Fault) {
        let mut s = self.state.lock().unwrap();
        s.mode = plain;
        s.stream_mode = Some(streams);
    }

    /// The next requests get these faults, one each, then the mode applies.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().script.extend(faults);
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn calls(&self) -> usize {
        *self.calls.borrow()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Requests whose chat messages or embedding inputs mention `text`.
    pub fn calls_mentioning(&self, text: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.received
            .iter()
            .filter(|r| r.body.to_string().contains(text))
            .count()
    }

    /// Waits until the upstream has received `n` requests in all; false if
    /// that did not happen `within`.
    pub async fn wait_calls(&self, n: usize, within: Duration) -> bool {
        let mut rx = self.calls.subscribe();
        tokio::time::timeout(within, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl FaultyUpstream {
    /// Waits until `pred` holds for the requests received so far; false if
    /// it did not `within`.
    pub async fn wait_until(
        &self,
        within: Duration,
        mut pred: impl FnMut(&[Received]) -> bool,
    ) -> bool {
        let mut rx = self.calls.subscribe();
        let check = async {
            loop {
                let holds = pred(&self.state.lock().unwrap().received);
                if holds || rx.changed().await.is_err() {
                    return holds;
                }
            }
        };
        tokio::time::timeout(within, check).await.unwrap_or(false)
    }
}

struct Request {
    path: String,
    authorization: String,
    body: Value,
}

/// Reads one request (headers, then `Content-Length` bytes of body).
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(sock, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let (mut length, mut authorization) = (0usize, String::new());
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().ok()?,
                "authorization" => authorization = v.trim().to_string(),
                "transfer-encoding" => panic!("the fake upstream reads Content-Length bodies only"),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + length {
        read_more(sock, buf).await?;
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    buf.drain(..head_end + length);
    Some(Request {
        path,
        authorization,
        body,
    })
}

async fn read_more(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match sock.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// Returns once the peer has closed the connection.
async fn until_peer_closes(sock: &mut TcpStream) {
    let mut sink = Vec::new();
    while read_more(sock, &mut sink).await.is_some() {
        sink.clear();
    }
}

async fn serve_connection(
    mut sock: TcpStream,
    state: Arc<Mutex<State>>,
    calls: watch::Sender<usize>,
    who: String,
) {
    let _ = sock.set_nodelay(true);
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut sock, &mut buf).await {
        let stream = req.path.ends_with("/chat/completions") && req.body["stream"] == true;
        let fault = {
            let mut s = state.lock().unwrap();
            let fault = match s.script.pop_front() {
                Some(f) => f,
                None if stream => s.stream_mode.clone().unwrap_or_else(|| s.mode.clone()),
                None => s.mode.clone(),
            };
            s.received.push(Received {
                path: req.path.clone(),
                authorization: req.authorization.clone(),
                body: req.body.clone(),
                stream,
                fault: fault.clone(),
            });
            fault
        };
        calls.send_modify(|n| *n += 1);
        let reply = Answer {
            req: &req,
            who: &who,
            stream,
        };
        if reply.send(&mut sock, fault).await.is_none() {
            return;
        }
    }
}

struct Answer<'a> {
    req: &'a Request,
    who: &'a str,
    stream: bool,
}

impl Answer<'_> {
    /// Answers with `fault`; `Some` if the connection can take another request.
    async fn send(&self, sock: &mut TcpStream, fault: Fault) -> Option<()> {
        let embeddings = self.req.path.ends_with("/embeddings");
        match fault {
            Fault::Healthy | Fault::StreamNoDone if !self.stream => {
                full(sock, 200, "application/json", &[], &self.healthy_body()).await
            }
            Fault::Healthy => self.sse(sock, true).await,
            Fault::StreamNoDone => self.sse(sock, false).await,
            Fault::Status(status) => {
                let e = json!({"error": {"message": "injected failure", "type": "server_error"}});
                full(
                    sock,
                    status,
                    "application/json",
                    &[],
                    e.to_string().as_bytes(),
                )
                .await
            }
            Fault::RateLimited { retry_after_secs } => {
                let e = json!({"error": {"message": "slow down", "type": "rate_limit_error"}});
                let after = [("retry-after", retry_after_secs.to_string())];
                full(
                    sock,
                    429,
                    "application/json",
                    &after,
                    e.to_string().as_bytes(),
                )
                .await
            }
            Fault::Reset => {
                let _ = sock.set_zero_linger();
                None
            }
            Fault::Hang => {
                until_peer_closes(sock).await;
                None
            }
            Fault::SlowFirstByte(wait) => {
                tokio::time::sleep(wait).await;
                Box::pin(self.send(sock, Fault::Healthy)).await
            }
            Fault::Trickle(gap) => self.trickle(sock, gap).await,
            Fault::MalformedJson200 => {
                let body = self.healthy_json();
                let half = &body[..body.len() / 2];
                full(sock, 200, "application/json", &[], half).await
            }
            Fault::Html200 => {
                let page = b"<html><head><title>502 Bad Gateway</title></head>\
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n";
                full(sock, 200, "text/html; charset=utf-8", &[], page).await
            }
            Fault::WrongShape200 if embeddings => {
                let mut v = self.healthy_value();
                v["data"].as_array_mut().unwrap().pop();
                full(sock, 200, "application/json", &[], v.to_string().as_bytes()).await
            }
            Fault::WrongShape200 => {
                let v = json!({"id": "chatcmpl-x", "object": "chat.completion", "created": 1,
                               "model": self.req.body["model"]});
                full(sock, 200, "application/json", &[], v.to_string().as_bytes()).await
            }
            Fault::StreamCutMidEvent | Fault::StreamStall if self.stream => {
                head(sock, 200, "text/event-stream", &[], None).await?;
                for e in &sse_events(&self.req.body["model"], self.who)[..2] {
                    chunk(sock, e.as_bytes()).await?;
                }
                if fault == Fault::StreamCutMidEvent {
                    chunk(sock, TORN_EVENT.as_bytes()).await?;
                    let _ = sock.set_zero_linger();
                } else {
                    until_peer_closes(sock).await;
                }
                None
            }
            Fault::StreamCutMidEvent | Fault::StreamStall => {
                let body = self.healthy_body();
                head(sock, 200, "application/json", &[], Some(body.len())).await?;
                write(sock, &body[..body.len() / 2]).await?;
                if fault == Fault::StreamStall {
                    until_peer_closes(sock).await;
                }
                None
            }
            Fault::StreamCutBeforeContent if self.stream => {
                head(sock, 200, "text/event-stream", &[], None).await?;
                chunk(
                    sock,
                    sse_events(&self.req.body["model"], self.who)[0].as_bytes(),
                )
                .await?;
                let _ = sock.set_zero_linger();
                None
            }
            Fault::StreamCutBeforeContent => {
                let _ = sock.set_zero_linger();
                None
            }
            Fault::FirstEventError => {
                let e = json!({"error": {"message": format!("Upstream failure for {}", self.req.authorization),
                                          "type": "server_error", "param": null, "code": null}});
                if !self.stream {
                    return full(sock, 500, "application/json", &[], e.to_string().as_bytes())
                        .await;
                }
                head(sock, 200, "text/event-stream", &[], None).await?;
                chunk(sock, format!("data: {e}\n\n").as_bytes()).await?;
                chunk(sock, b"data: [DONE]\n\n").await?;
                write(sock, b"0\r\n\r\n").await
            }
            Fault::Echo(encoding, place) => self.echo(sock, encoding, place).await,
            Fault::EchoKey(status) => {
                let e = json!({"error": {
                    "message": format!("Incorrect API key provided: {}. You can find your API key at https://platform.example/account/api-keys.", self.req.authorization),
                    "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
                full(
                    sock,
                    status,
                    "application/json",
                    &[],
                    e.to_string().as_bytes(),
                )
                .await
            }
        }
    }

    fn healthy_value(&self) -> Value {
        if self.req.path.ends_with("/embeddings") {
            match embeddings_reply(&self.req.body) {
                Reply::Json(_, v) => v,
                _ => unreachable!(),
            }
        } else {
            chat_reply(&self.req.body, self.who)
        }
    }

    fn healthy_json(&self) -> Vec<u8> {
        self.healthy_value().to_string().into_bytes()
    }

    /// The healthy body of this request: JSON, or the SSE events joined.
    fn healthy_body(&self) -> Vec<u8> {
        if self.stream {
            sse_events(&self.req.body["model"], self.who)
                .concat()
                .into_bytes()
        } else {
            self.healthy_json()
        }
    }

    /// The stream's events: healthy ones, or the rest of an answer another
    /// target began when the request asks for its continuation.
    fn events(&self) -> Vec<String> {
        match continued(&self.req.body) {
            Some(rest) => continuation_events(&self.req.body["model"], &rest),
            None => sse_events(&self.req.body["model"], self.who),
        }
    }

    /// The `Authorization` header received, in `encoding`, at `place`.
    async fn echo(&self, sock: &mut TcpStream, encoding: Encoding, place: Place) -> Option<()> {
        let echoed = encoding.apply(&self.req.authorization);
        const MARK: &str = "@@ECHO@@";
        let embeddings = self.req.path.ends_with("/embeddings");
        match place {
            Place::ErrorBody(status) => {
                let e = format!(
                    r#"{{"error":{{"message":"Incorrect API key provided: {echoed}.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
                );
                full(sock, status, "application/json", &[], e.as_bytes()).await
            }
            Place::Header => {
                let extra = [("x-upstream-echo", echoed)];
                if self.stream {
                    head(sock, 200, "text/event-stream", &extra, None).await?;
                    for e in self.events() {
                        chunk(sock, e.as_bytes()).await?;
                    }
                    write(sock, b"0\r\n\r\n").await
                } else {
                    full(sock, 200, "application/json", &extra, &self.healthy_body()).await
                }
            }
            Place::SseEvent if self.stream => {
                head(sock, 200, "text/event-stream", &[], None).await?;
                for e in &self.events()[..2] {
                    chunk(sock, e.as_bytes()).await?;
                }
                let e = format!(
                    r#"data: {{"error":{{"message":"Upstream rejected {echoed}","type":"server_error","code":null}}}}"#
                );
                chunk(sock, format!("{e}\n\n").as_bytes()).await?;
                write(sock, b"0\r\n\r\n").await
            }
            Place::Body200 | Place::SseEvent if self.stream => {
                head(sock, 200, "text/event-stream", &[], None).await?;
                for (i, e) in self.events().iter().enumerate() {
                    let e = if i == 1 {
                        e.replacen(
                            "\"object\"",
                            &format!("\"system_fingerprint\":\"{MARK}\",\"object\""),
                            1,
                        )
                    } else {
                        e.clone()
                    };
                    chunk(sock, e.replace(MARK, &echoed).as_bytes()).await?;
                }
                write(sock, b"0\r\n\r\n").await
            }
            Place::Body200 | Place::SseEvent => {
                let mut v = self.healthy_value();
                let field = if embeddings {
                    "echo"
                } else {
                    "system_fingerprint"
                };
                v[field] = json!(MARK);
                let body = v.to_string().replace(MARK, &echoed);
                full(sock, 200, "application/json", &[], body.as_bytes()).await
            }
        }
    }

    async fn sse(&self, sock: &mut TcpStream, done: bool) -> Option<()> {
        head(sock, 200, "text/event-stream", &[], None).await?;
        let events = self.events();
        let n = events.len() - usize::from(!done);
        for e in &events[..n] {
            chunk(sock, e.as_bytes()).await?;
        }
        write(sock, b"0\r\n\r\n").await
    }

    async fn trickle(&self, sock: &mut TcpStream, gap: Duration) -> Option<()> {
        let body = self.healthy_body();
        let (ct, len) = if self.stream {
            ("text/event-stream", None)
        } else {
            ("application/json", Some(body.len()))
        };
        head(sock, 200, ct, &[], len).await?;
        for b in body {
            tokio::time::sleep(gap).await;
            if self.stream {
                chunk(sock, &[b]).await?;
            } else {
                write(sock, &[b]).await?;
            }
        }
        if self.stream {
            write(sock, b"0\r\n\r\n").await?;
        }
        Some(())
    }
}

/// The rest of the answer a continuation request asks for: the request
/// ends with the partial answer as an assistant message (prefill), or with
/// it and the gateway's instruction to continue (context). The fake
/// completes "`<first word>` answered".
pub fn continued(body: &Value) -> Option<String> {
    use switchyard::api::continuation::CONTINUE_INSTRUCTION;
    let messages = body["messages"].as_array()?;
    let last = messages.last()?;
    let partial = if last["role"] == "assistant" {
        last["content"].as_str()?
    } else if last["content"] == CONTINUE_INSTRUCTION {
        let before = &messages[messages.len().checked_sub(2)?];
        (before["role"] == "assistant").then(|| before["content"].as_str())??
    } else {
        return None;
    };
    let word = partial.split_whitespace().next().unwrap_or("");
    let whole = format!("{word} answered");
    Some(match whole.strip_prefix(partial) {
        Some(rest) => rest.to_string(),
        None => " (continued)".to_string(),
    })
}

/// A stream that continues an answer with `rest`: role, `rest`, finish,
/// `[DONE]` (its own id, as another target's stream would have).
pub fn continuation_events(model: &Value, rest: &str) -> Vec<String> {
    let ev = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-continued", "object": "chat.completion.chunk", "created": 2,
                       "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    vec![
        ev(json!({"role": "assistant", "content": ""}), Value::Null),
        ev(json!({"content": rest}), Value::Null),
        ev(json!({}), json!("stop")),
        "data: [DONE]\n\n".to_string(),
    ]
}

/// The half event [`Fault::StreamCutMidEvent`] ends with.
pub const TORN_EVENT: &str = "data: {\"choices\":[{\"delta\":";

/// The SSE events of a healthy streamed chat answer: role, "`who`",
/// " answered", finish, `[DONE]`.
pub fn sse_events(model: &Value, who: &str) -> Vec<String> {
    let ev = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                       "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    vec![
        ev(json!({"role": "assistant", "content": ""}), Value::Null),
        ev(json!({"content": who}), Value::Null),
        ev(json!({"content": " answered"}), Value::Null),
        ev(json!({}), json!("stop")),
        "data: [DONE]\n\n".to_string(),
    ]
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// Response head; `len` `None` means a chunked body.
async fn head(
    sock: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, String)],
    len: Option<usize>,
) -> Option<()> {
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n",
        reason(status)
    );
    match len {
        Some(n) => h.push_str(&format!("content-length: {n}\r\n")),
        None => h.push_str("transfer-encoding: chunked\r\n"),
    }
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    write(sock, h.as_bytes()).await
}

async fn full(
    sock: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, String)],
    body: &[u8],
) -> Option<()> {
    head(sock, status, content_type, extra, Some(body.len())).await?;
    write(sock, body).await
}

async fn chunk(sock: &mut TcpStream, data: &[u8]) -> Option<()> {
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    write(sock, &c).await
}

async fn write(sock: &mut TcpStream, data: &[u8]) -> Option<()> {
    sock.write_all(data).await.ok()?;
    sock.flush().await.ok()
}

// ---- client side ----

/// A provider section for these upstreams, named p0, p1, ...; `extra[i]`
/// (indented provider keys) is added to provider i.
pub fn faulty_providers_yaml(ups: &[&FaultyUpstream], extra: &[&str]) -> String {
    let mut y = String::from("providers:\n");
    for (i, u) in ups.iter().enumerate() {
        y.push_str(&format!(
            "  p{i}:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n{}",
            u.base_url(),
            extra.get(i).copied().unwrap_or("")
        ));
    }
    y
}

/// One route entry (to put under `routes:`).
pub fn route_yaml(name: &str, targets: &[&str], extra: &str) -> String {
    let t: Vec<String> = targets
        .iter()
        .map(|p| format!("{{provider: {p}}}"))
        .collect();
    format!("  {name}:\n    targets: [{}]\n{extra}", t.join(", "))
}

pub fn chat_body(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
}

/// What a client parsed from an SSE answer, following the event-stream
/// rules: a blank line dispatches an event; an unterminated one at the end
/// is dropped.
#[derive(Debug, Default)]
pub struct Parsed {
    /// `data` of every dispatched event, in order.
    pub data: Vec<String>,
    /// Dispatched events whose data is neither JSON nor `[DONE]`.
    pub invalid: Vec<String>,
    /// Error events (`{"error": ...}`), their `error` object.
    pub errors: Vec<Value>,
    /// Concatenated `delta.content` of the chunks.
    pub content: String,
    /// The last dispatched event was `[DONE]`.
    pub done: bool,
    pub raw: String,
}

pub fn parse_sse(raw: &str) -> Parsed {
    let mut p = Parsed {
        raw: raw.to_string(),
        ..Parsed::default()
    };
    let mut data: Option<String> = None;
    for line in raw.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.is_empty() {
            if let Some(d) = data.take() {
                p.data.push(d);
            }
        } else if let Some(v) = line.strip_prefix("data:") {
            let v = v.strip_prefix(' ').unwrap_or(v);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(v);
                }
                None => data = Some(v.to_string()),
            }
        }
    }
    for d in &p.data {
        if d == "[DONE]" {
            continue;
        }
        match serde_json::from_str::<Value>(d) {
            Ok(v) if v.get("error").is_some() => p.errors.push(v["error"].clone()),
            Ok(v) => {
                if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                    p.content.push_str(c);
                }
            }
            Err(_) => p.invalid.push(d.clone()),
        }
    }
    p.done = p.data.last().is_some_and(|d| d == "[DONE]");
    p
}

/// Reads a streaming answer whole and parses it.
pub async fn read_sse(resp: reqwest::Response) -> Parsed {
    parse_sse(&resp.text().await.unwrap_or_default())
}

/// The first fragment (12+ characters) of the provider key found in `text`.
pub fn key_fragment_in(text: &str) -> Option<&'static str> {
    (0..=TEST_KEY.len() - 12)
        .map(|i| &TEST_KEY[i..i + 12])
        .find(|f| text.contains(f))
}

/// The provider key in any form a leak could take in `text`: a raw
/// fragment of 12+ characters, or the whole of it (or of the
/// `Authorization` header) JSON-escaped, URL-encoded or in base64.
pub fn key_leak_in(text: &str) -> Option<String> {
    if let Some(f) = key_fragment_in(text) {
        return Some(f.to_string());
    }
    let auth = format!("Bearer {TEST_KEY}");
    for secret in [TEST_KEY, auth.as_str()] {
        for e in Encoding::ALL {
            let form = e.apply(secret);
            for f in [form.clone(), form.to_lowercase()] {
                if text.contains(&f) {
                    return Some(f);
                }
            }
        }
    }
    // Base64 of the key inside a longer text, at each alignment.
    use base64::Engine;
    for prefix in ["", "x", "xy"] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{TEST_KEY}"));
        let core = &b64[4..b64.len() - 4];
        if text.contains(core) {
            return Some(core.to_string());
        }
    }
    None
}

/// Status, headers (as text) and body of a response, for leak checks.
pub async fn whole(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let mut headers = String::new();
    for (k, v) in resp.headers() {
        headers.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    (status, headers, resp.text().await.unwrap_or_default())
}

/// A valid chat completion (not an error, has `choices` with a message).
pub fn is_chat_completion(v: &Value) -> bool {
    v["choices"][0]["message"]["content"].is_string()
}

// ---- client checks for load tests: Err(description) on anything a client
// would count as a failure ----

fn who_answered(content: &str) -> bool {
    content == "p0 answered" || content == "p1 answered"
}

/// A non-streaming chat that must come back 200 with a valid completion.
pub async fn expect_chat(
    http: &reqwest::Client,
    base: &str,
    body: Value,
) -> Result<reqwest::header::HeaderMap, String> {
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("chat {body}: {e}"))?;
    let (status, headers) = (r.status(), r.headers().clone());
    let text = r.text().await.map_err(|e| format!("chat body: {e}"))?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
    if status != 200 || !who_answered(content) {
        return Err(format!("chat {body}: {status} {text}"));
    }
    Ok(headers)
}

/// Embeddings that must come back 200 with the right vector for each input.
pub async fn expect_embeddings(
    http: &reqwest::Client,
    base: &str,
    model: &str,
    inputs: &[String],
) -> Result<(), String> {
    let body = json!({"model": model, "input": inputs});
    let r = http
        .post(format!("{base}/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("embeddings {body}: {e}"))?;
    let status = r.status();
    let text = r
        .text()
        .await
        .map_err(|e| format!("embeddings body: {e}"))?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let ok = status == 200
        && v["data"].as_array().is_some_and(|d| {
            d.len() == inputs.len()
                && d.iter().zip(inputs).enumerate().all(|(i, (e, input))| {
                    let got: Option<Vec<f32>> = serde_json::from_value(e["embedding"].clone()).ok();
                    e["index"] == i && got == Some(super::expected_vector(&json!(input)))
                })
        });
    if ok {
        Ok(())
    } else {
        Err(format!("embeddings {body}: {status} {text}"))
    }
}

/// A streamed chat that must parse event by event, carry no error event and
/// end with `[DONE]`.
pub async fn expect_stream(http: &reqwest::Client, base: &str, body: Value) -> Result<(), String> {
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("stream {body}: {e}"))?;
    let status = r.status();
    let ct = r.headers().get("content-type").cloned();
    let text = r.text().await.map_err(|e| format!("stream body: {e}"))?;
    let p = parse_sse(&text);
    let ok = status == 200
        && ct.is_some_and(|c| c == "text/event-stream")
        && p.invalid.is_empty()
        && p.errors.is_empty()
        && p.done
        && who_answered(&p.content);
    if ok {
        Ok(())
    } else {
        Err(format!("stream {body}: {status} {text:?}"))
    }
}

// ---- scaffolding for tests/it/faults.rs ----

pub const P0_PROTOCOL: &str =
    r#"switchyard_upstream_requests_total{outcome="protocol_error",provider="p0"}"#;
pub const P0_TIMEOUT: &str =
    r#"switchyard_upstream_requests_total{outcome="timeout",provider="p0"}"#;
pub const P0_INTERRUPTED: &str =
    r#"switchyard_stream_interruptions_total{provider="p0",route="m"}"#;

/// The provider never opens its breaker (tests that count calls to it).
pub const NO_BREAKER: &str = "    breaker: { failure_threshold: 1000, open_for: 1s }\n";
pub const ONE_TRY: &str = "    retry: { max_attempts: 1 }\n";

pub async fn pair(p0: &str, routes: &str) -> (FaultyUpstream, FaultyUpstream, TestGateway) {
    pair_with(p0, "", routes).await
}

pub async fn pair_with(
    p0: &str,
    p1: &str,
    routes: &str,
) -> (FaultyUpstream, FaultyUpstream, TestGateway) {
    let (a, b) = (
        FaultyUpstream::start("p0").await,
        FaultyUpstream::start("p1").await,
    );
    let providers = faulty_providers_yaml(&[&a, &b], &[p0, p1]);
    let gw = gateway(&format!("{providers}routes:\n{routes}")).await;
    (a, b, gw)
}

/// The client gives up after `secs`: today's gateway may wait far longer.
pub async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("no answer within {secs}s"))
}

pub fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_value(d["embedding"].clone()).unwrap())
        .collect()
}

/// Sends one stream to route `m` (p0 alone) with p0 in `fault`: what the
/// client parsed, how long it took, `switchyard_stream_interruptions_total`.
pub async fn broken_stream(
    fault: Fault,
    p0_extra: &str,
) -> (Parsed, Duration, f64, FaultyUpstream) {
    let (p0, _p1, gw) = pair(p0_extra, &route_yaml("m", &["p0"], ONE_TRY)).await;
    p0.set(fault);
    let start = Instant::now();
    let r = within(
        5,
        gw.post("/v1/chat/completions", chat_body("m", "hi", true)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let p = within(5, read_sse(r)).await;
    let took = start.elapsed();
    let interrupted = gw.metric(P0_INTERRUPTED).await;
    gw.stop().await;
    (p, took, interrupted, p0)
}

pub fn assert_ends_with_interruption(p: &Parsed) {
    assert!(
        p.invalid.is_empty(),
        "every complete event is JSON or [DONE]: {:?}",
        p.raw
    );
    assert!(!p.done, "{:?}", p.raw);
    assert_eq!(p.errors.len(), 1, "{:?}", p.raw);
    assert_eq!(p.errors[0]["code"], "stream_interrupted", "{:?}", p.raw);
    let last: Value = serde_json::from_str(p.data.last().unwrap()).unwrap();
    assert!(
        last.get("error").is_some(),
        "the error event is the last one: {:?}",
        p.raw
    );
}

/// One chat on route `m` (p0 then p1) with p0 in `fault`: asserts p1 served
/// it; how long it took and p0's timeouts counted.
pub async fn fails_over(fault: Fault, p0_extra: &str) -> (Duration, f64) {
    let (p0, _p1, gw) = pair(p0_extra, &route_yaml("m", &["p0", "p1"], ONE_TRY)).await;
    p0.set(fault.clone());
    let start = Instant::now();
    let r = within(5, gw.chat("m", "hi")).await;
    let took = start.elapsed();
    assert_eq!(r.status(), 200, "{fault:?}");
    assert_eq!(r.headers()["x-switchyard-provider"], "p1", "{fault:?}");
    let timeouts = gw.metric(P0_TIMEOUT).await;
    gw.stop().await;
    (took, timeouts)
}

pub fn cached_question(q: usize) -> Value {
    json!({"model": "cached", "temperature": 0, "messages": [{"role": "user", "content": format!("cached question {q}")}]})
}

/// Two inputs from a pool of 12, so that batches overlap in the cache.
pub fn embedding_inputs(n: usize) -> Vec<String> {
    vec![
        format!("doc {}", n % 12),
        format!("doc {}", (n * 5 + 1) % 12),
    ]
}

/// One request of the mixed load, by `kind` (half of them streams, so that
/// p0's breaker probes meet both kinds); `n` makes it unique or picks it
/// from the cached pools.
pub async fn mixed_request(
    http: &reqwest::Client,
    base: &str,
    kind: usize,
    n: usize,
) -> Result<(), String> {
    match kind % 6 {
        0 => expect_chat(http, base, cached_question(n % 8))
            .await
            .map(drop),
        1 => expect_chat(http, base, chat_body("plain", &format!("q{n}"), false))
            .await
            .map(drop),
        2 => expect_embeddings(http, base, "cached", &embedding_inputs(n)).await,
        _ => expect_stream(http, base, chat_body("plain", &format!("s{n}"), true)).await,
    }
}
