//! Plain `http://` upstreams, whose connections the request's own task
//! drives (`providers::client_h1`), over real HTTP against a raw TCP
//! upstream written here: a keep-alive connection serves every request
//! after the first, whether its answers are sized or chunked; one the upstream closes while idle is dropped at once
//! and no attempt fails on it; a client that goes away closes its upstream
//! connection; a body cut short does not go back to the pool.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What the raw upstream does with each connection after reading a request.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Answers, and waits for the next request.
    KeepAlive,
    /// Answers in chunks (`transfer-encoding: chunked`), and waits for the
    /// next request.
    Chunked,
    /// Answers (without saying it will close), then closes when the test
    /// says (the connection idle in the gateway's pool by then).
    CloseWhenTold,
    /// Never answers; reports when the gateway closes the connection.
    Hold,
    /// Declares a 1,000-byte body, sends 10 bytes and closes: the first
    /// connection only; later ones answer and keep alive.
    CutFirst,
}

struct Raw {
    accepted: AtomicUsize,
    requests: AtomicUsize,
    close_now: tokio::sync::Notify,
}

const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

/// The upstream, and a channel that says each connection it saw closed
/// (by itself, or by the gateway in `Hold`).
async fn raw(mode: Mode) -> (Arc<Raw>, String, mpsc::UnboundedReceiver<()>) {
    let state = Arc::new(Raw {
        accepted: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
        close_now: tokio::sync::Notify::new(),
    });
    let (closed_tx, closed) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = Arc::clone(&state);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let nth = s.accepted.fetch_add(1, SeqCst);
            let (s, closed_tx) = (Arc::clone(&s), closed_tx.clone());
            tokio::spawn(async move {
                serve(stream, mode, nth, &s).await;
                let _ = closed_tx.send(());
            });
        }
    });
    (state, format!("http://{addr}/v1"), closed)
}

async fn serve(mut stream: TcpStream, mode: Mode, nth: usize, s: &Raw) {
    let mut buf = Vec::new();
    loop {
        if !read_request(&mut stream, &mut buf).await {
            return;
        }
        s.requests.fetch_add(1, SeqCst);
        match mode {
            Mode::Hold => {
                // The gateway closing the connection ends this read.
                let mut rest = [0u8; 64];
                while stream.read(&mut rest).await.is_ok_and(|n| n > 0) {}
                return;
            }
            Mode::CutFirst if nth == 0 => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&ANSWER.as_bytes()[..10]).await;
                return;
            }
            _ => {}
        }
        let answer = if mode == Mode::Chunked {
            let (a, b) = ANSWER.split_at(ANSWER.len() / 2);
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
        } else {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                ANSWER.len()
            )
        };
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if mode == Mode::CloseWhenTold {
            s.close_now.notified().await;
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Reads one request (head and `content-length` body) into `buf`'s
/// place; `false` at the end of the connection.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                buf.drain(..end + 4 + length);
                return true;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One target, one attempt: a failure on a connection is the client's.
fn policy(base: &str) -> String {
    format!(
        "providers:\n  p0:\n    kind: openai\n    base_url: {base}\n    timeouts: {{ connect: 2s }}\n\
         routes:\n  r:\n    retry: {{ max_attempts: 1 }}\n    targets:\n      - provider: p0\n        model: m\n"
    )
}

const CONNECTIONS: &str = r#"switchyard_provider_upstream_connections{provider="p0"}"#;

async fn chat(gw: &TestGateway) -> u16 {
    gw.chat("r", "hi").await.status().as_u16()
}

#[tokio::test]
async fn a_keep_alive_connection_serves_every_request_after_the_first() {
    let (up, base, _closed) = raw(Mode::KeepAlive).await;
    let gw = gateway(&policy(&base)).await;
    for i in 0..12 {
        assert_eq!(chat(&gw).await, 200, "request {i}");
    }
    assert_eq!(up.requests.load(SeqCst), 12);
    assert_eq!(up.accepted.load(SeqCst), 1, "one connection, reused");
    assert_eq!(gw.metric(CONNECTIONS).await, 1.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_chunked_answer_read_to_its_end_gives_its_connection_back() {
    let (up, base, _closed) = raw(Mode::Chunked).await;
    let gw = gateway(&policy(&base)).await;
    for i in 0..6 {
        assert_eq!(chat(&gw).await, 200, "request {i}");
    }
    assert_eq!(up.accepted.load(SeqCst), 1, "one connection, reused");
    gw.stop().await;
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closes_is_dropped_at_once_and_never_used() {
    let (up, base, mut closed) = raw(Mode::CloseWhenTold).await;
    let gw = gateway(&policy(&base)).await;
    for i in 0..8 {
        assert_eq!(chat(&gw).await, 200, "request {i}");
        // The upstream closes this connection, idle in the gateway's pool,
        // before the next request.
        up.close_now.notify_one();
        closed.recv().await.unwrap();
        // Dropped without waiting for a request to find it closed.
        eventually(async || gw.metric(CONNECTIONS).await == 0.0).await;
    }
    // One attempt each (no retries allowed), each on a new connection.
    assert_eq!(up.requests.load(SeqCst), 8);
    assert_eq!(up.accepted.load(SeqCst), 8);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_closes_its_upstream_connection() {
    let (up, base, mut closed) = raw(Mode::Hold).await;
    let gw = gateway(&policy(&base)).await;
    let gone = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .json(&json!({"model": "r", "messages": [{"role": "user", "content": "hi"}]}))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the upstream never answers");
    // The gateway dropped the request, and with it the connection.
    closed.recv().await.unwrap();
    assert_eq!(up.requests.load(SeqCst), 1);
    eventually(async || gw.metric(CONNECTIONS).await == 0.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_body_cut_short_fails_and_its_connection_is_not_reused() {
    let (up, base, _closed) = raw(Mode::CutFirst).await;
    let gw = gateway(&policy(&base)).await;
    assert_eq!(chat(&gw).await, 502, "the answer broke off");
    for i in 0..3 {
        assert_eq!(chat(&gw).await, 200, "request {i} after it");
    }
    assert_eq!(up.accepted.load(SeqCst), 2, "a new connection, then reused");
    gw.stop().await;
}
