//! Upstream connections, over real HTTP: a burst of N clients never holds
//! more than N connections to the upstream (bursts after the first reuse
//! them), and a connection the upstream closes gives its place back; the
//! metrics count the connections open.

use crate::common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::sync::Notify;

/// An OpenAI-compatible upstream that counts the connections it accepts and
/// answers a request only once `hold` requests have arrived (so a burst
/// really is concurrent), closing each connection after one answer when
/// `close`.
struct Counting {
    accepted: AtomicUsize,
    arrived: AtomicUsize,
    hold: usize,
    all_in: Notify,
    close: bool,
}

async fn counting(hold: usize, close: bool) -> (Arc<Counting>, String) {
    let state = Arc::new(Counting {
        accepted: AtomicUsize::new(0),
        arrived: AtomicUsize::new(0),
        hold,
        all_in: Notify::new(),
        close,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = Arc::clone(&state);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            s.accepted.fetch_add(1, SeqCst);
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let s = Arc::clone(&s);
                    async move { Ok::<_, Infallible>(answer(&s).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (state, format!("http://{addr}/v1"))
}

async fn answer(s: &Counting) -> hyper::Response<Full<Bytes>> {
    let notified = s.all_in.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let n = s.arrived.fetch_add(1, SeqCst) + 1;
    if n.is_multiple_of(s.hold) {
        s.all_in.notify_waiters();
    } else {
        notified.await;
    }
    let body = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
    let mut answer = hyper::Response::builder().header("content-type", "application/json");
    if s.close {
        answer = answer.header("connection", "close");
    }
    answer
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

const CONNECTIONS: &str = r#"switchyard_provider_upstream_connections{provider="p0"}"#;

fn policy(base: &str) -> String {
    format!(
        "providers:\n  p0:\n    kind: openai\n    base_url: {base}\n    timeouts: {{ connect: 2s }}\n\
         routes:\n  r:\n    targets:\n      - provider: p0\n        model: m\n"
    )
}

async fn chat(gw: &TestGateway) -> u16 {
    gw.chat("r", "hi").await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_n_clients_hold_at_most_n_upstream_connections() {
    const N: usize = 16;
    let (up, base) = counting(N, false).await;
    let gw = gateway(&policy(&base)).await;
    for burst in 0..6 {
        let calls = futures_util::future::join_all((0..N).map(|_| chat(&gw))).await;
        assert_eq!(calls, vec![200; N], "burst {burst}");
    }
    // The first burst needed N at once; every later one reused them.
    assert_eq!(up.arrived.load(SeqCst), 6 * N);
    assert_eq!(up.accepted.load(SeqCst), N);
    // The gateway's own count of them, at scrape time.
    assert_eq!(gw.metric(CONNECTIONS).await, N as f64);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_clients_in_a_closed_loop_hold_at_most_k_upstream_connections() {
    // Each client sends its next request as soon as it has its answer,
    // often before the gateway's connection is back in its pool.
    const K: usize = 32;
    let (up, base) = counting(1, false).await;
    let gw = gateway(&policy(&base)).await;
    let client = |_| async {
        for _ in 0..40 {
            assert_eq!(chat(&gw).await, 200);
        }
    };
    futures_util::future::join_all((0..K).map(client)).await;
    assert_eq!(up.arrived.load(SeqCst), 40 * K);
    let accepted = up.accepted.load(SeqCst);
    assert!(accepted <= K, "{accepted} connections for {K} clients");
    gw.stop().await;
}

#[tokio::test]
async fn a_connection_the_upstream_closes_gives_its_place_back() {
    let (up, base) = counting(1, true).await;
    let gw = gateway(&policy(&base)).await;
    for i in 0..20 {
        assert_eq!(chat(&gw).await, 200, "request {i}");
    }
    assert_eq!(up.accepted.load(SeqCst), 20, "one connection per answer");
    // Each closed connection was dropped, its place given back.
    eventually(async || gw.metric(CONNECTIONS).await == 0.0).await;
    gw.stop().await;
}
