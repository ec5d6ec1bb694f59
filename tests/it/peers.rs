//! Connections per client: one peer holding every connection slot with
//! idle sockets delays another client by at most the first-request
//! timeout, and a peer past `max_per_peer` has its extra connections closed
//! at once while other peers are served. Raw sockets against the gateway.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn policy(up: &FakeUpstream, connections: &str) -> String {
    format!(
        "server:\n  connections: {{ {connections} }}\n{}routes:\n  m:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[up], "")
    )
}

fn addr_of(gw: &TestGateway) -> SocketAddr {
    gw.base.trim_start_matches("http://").parse().unwrap()
}

/// Sends a health check on `s` and reads until the gateway closes it:
/// what came back (empty when the connection had been closed).
async fn health_on(mut s: TcpStream) -> String {
    let _ = s.write_all(HEALTH).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "no answer and not closed within 10s");
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection from `ip` (any loopback address works on Linux).
async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn idle_sockets_on_every_slot_delay_another_client_by_at_most_the_first_request_timeout() {
    let up = FakeUpstream::openai().await;
    let settings =
        "max: 40, first_request_timeout: 500ms, idle_timeout: 60s, header_read_timeout: 60s";
    let gw = gateway(&policy(&up, settings)).await;
    let addr = addr_of(&gw);
    // One peer (loopback: not held to max_per_peer by default) takes every
    // slot with sockets that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let start = Instant::now();
    let answer = health_on(TcpStream::connect(addr).await.unwrap()).await;
    let took = start.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        took >= Duration::from_millis(400),
        "the slots were not all taken: answered in {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "waited {took:?}, more than the first-request timeout"
    );
    for mut s in idle {
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0) | Err(_))),
            "an idle socket stayed open"
        );
    }
    let closed = r#"switchyard_connections_closed_total{reason="first_request_timeout"}"#;
    assert!(gw.metric(closed).await >= 40.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_peer_past_max_per_peer_has_its_extra_connections_closed_and_others_are_served() {
    let up = FakeUpstream::openai().await;
    let settings = "max: 100, max_per_peer: 5, loopback_exempt: false, first_request_timeout: 30s";
    let gw = gateway(&policy(&up, settings)).await;
    let addr = addr_of(&gw);
    let mut greedy = Vec::new();
    for _ in 0..20 {
        greedy.push(connect_from("127.0.0.2", addr).await);
    }
    // Another peer is served at once.
    let start = Instant::now();
    let answer = health_on(connect_from("127.0.0.1", addr).await).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Of the greedy peer's 20, five were kept (and answer), the rest closed.
    let answers = futures_util::future::join_all(greedy.into_iter().map(health_on)).await;
    let served = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 200"))
        .count();
    let closed = answers.iter().filter(|a| a.is_empty()).count();
    assert_eq!((served, closed), (5, 15), "{answers:?}");
    let over = r#"switchyard_connections_closed_total{reason="per_peer_limit"}"#;
    assert_eq!(gw.metric(over).await, 15.0);
    // Its places come back as its connections end.
    let again = health_on(connect_from("127.0.0.2", addr).await).await;
    assert!(again.starts_with("HTTP/1.1 200"), "{again:?}");
    gw.stop().await;
}
