//! The connection over real TCP against scripted upstreams: the request's
//! bytes as they arrive, answers framed every way, data given as it comes,
//! what ends a connection and what lets it carry the next request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::super::client_conn::Gauge;
use super::super::client_egress::Egress;
use super::super::client_h1::{Driven, H1Error, H1Pool};
use super::super::pieces::Pieces;

/// An upstream whose every connection is handed to the test.
async fn upstream() -> (String, mpsc::UnboundedReceiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if tx.send(stream).is_err() {
                break;
            }
        }
    });
    (base, rx)
}

/// Reads one request (head and `content-length` body) off `stream`.
async fn request(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                return got;
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the request ended early");
        got.extend_from_slice(&chunk[..n]);
    }
}

fn pool() -> Arc<H1Pool> {
    H1Pool::new(
        Egress::new(None).unwrap(),
        Arc::new(Gauge::default()),
        Duration::from_secs(5),
        Duration::from_secs(60),
    )
}

async fn send(
    pool: &Arc<H1Pool>,
    uri: &str,
    body: Pieces,
) -> Result<(http::response::Parts, Driven), H1Error> {
    let mut req = http::Request::new(body);
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri.parse().unwrap();
    req.headers_mut()
        .insert("x-key", http::HeaderValue::from_static("k"));
    let _in_flight = pool.gauge_for_tests().in_flight();
    pool.send(req).await
}

#[tokio::test]
async fn a_request_is_written_whole_and_its_answer_read() {
    let (base, mut conns) = upstream().await;
    let pool = pool();
    let body = Pieces::parts(vec![
        Bytes::from_static(b"{\"model\":"),
        Bytes::from_static(b"\"m\"}"),
    ]);
    let upstream = tokio::spawn(async move {
        let mut s = conns.recv().await.unwrap();
        let got = request(&mut s).await;
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nx-up: 1\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        (got, s)
    });
    let (head, body) = send(&pool, &format!("{base}/v1/x?q=1"), body)
        .await
        .unwrap();
    let (got, _s) = upstream.await.unwrap();
    let host = base.trim_start_matches("http://");
    assert_eq!(
        String::from_utf8(got).unwrap(),
        format!(
            "POST /v1/x?q=1 HTTP/1.1\r\nhost: {host}\r\nx-key: k\r\ncontent-length: 13\r\n\r\n{{\"model\":\"m\"}}"
        )
    );
    assert_eq!(head.status, 200, "the interim 100 skipped");
    assert_eq!(head.headers["x-up"], "1");
    assert_eq!(body.size_hint().exact(), Some(2));
    assert_eq!(body.collect().await.unwrap().to_bytes(), "ok");
    assert_eq!(
        pool.idle_for_tests(),
        1,
        "read to its end: back in the pool"
    );
}

#[tokio::test]
async fn chunked_data_is_given_as_it_arrives() {
    let (base, mut conns) = upstream().await;
    let pool = pool();
    let (go_on, mut told) = mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        let mut s = conns.recv().await.unwrap();
        request(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata: ")
            .await
            .unwrap();
        // The rest only once the client has the first piece.
        told.recv().await.unwrap();
        s.write_all(b"\r\n3\r\none\r\n0\r\n\r\n").await.unwrap();
        let _ = told.recv().await;
    });
    let (_, mut body) = send(&pool, &format!("{base}/s"), Pieces::empty())
        .await
        .unwrap();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "data: ");
    go_on.send(()).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "one");
    assert_eq!(pool.idle_for_tests(), 1);
}

/// What the upstream writes after the request, and how the client ends.
async fn answer(raw: &'static [u8], then_close: bool) -> (Result<Bytes, String>, usize) {
    let (base, mut conns) = upstream().await;
    let pool = pool();
    tokio::spawn(async move {
        let mut s = conns.recv().await.unwrap();
        request(&mut s).await;
        s.write_all(raw).await.unwrap();
        if then_close {
            drop(s);
        } else {
            // Held open until the test ends.
            let _ = s.read(&mut [0u8; 1]).await;
        }
    });
    let read = match send(&pool, &format!("{base}/a"), Pieces::empty()).await {
        Ok((_, body)) => body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| e.to_string()),
        Err(H1Error::Send(e)) => Err(e.to_string()),
        Err(H1Error::Connect(e)) => panic!("connect: {e}"),
    };
    (read, pool.idle_for_tests())
}

#[tokio::test]
async fn what_ends_a_connection_and_what_keeps_it() {
    let closed = "closed the connection before its answer was complete";
    let e = answer(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true).await;
    assert_eq!((e.0.unwrap_err().contains(closed), e.1), (true, 0));
    let e = answer(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
        true,
    )
    .await;
    assert_eq!((e.0.unwrap_err().contains(closed), e.1), (true, 0));
    let e = answer(b"HTTP/1.1 200 OK\r\ncontent-le", true).await;
    assert_eq!((e.0.unwrap_err().contains(closed), e.1), (true, 0));
    // Until the close: the whole body, the connection not kept.
    let e = answer(b"HTTP/1.1 200 OK\r\n\r\nall of it", true).await;
    assert_eq!(e, (Ok(Bytes::from_static(b"all of it")), 0));
    // Whole, but the upstream said close, or sent more than the answer.
    let e = answer(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        false,
    )
    .await;
    assert_eq!(e, (Ok(Bytes::from_static(b"ok")), 0));
    let e = answer(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1",
        false,
    )
    .await;
    assert_eq!(e, (Ok(Bytes::from_static(b"ok")), 0));
    // Kept: a length, and a chunked body with trailers.
    let e = answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false).await;
    assert_eq!(e, (Ok(Bytes::from_static(b"ok")), 1));
    let e = answer(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nt: 1\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(e, (Ok(Bytes::from_static(b"ok")), 1));
}

#[tokio::test]
async fn a_head_past_the_buffer_bound_is_refused() {
    static HUGE: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        // One header line longer than the bound, never ended.
        let mut h = b"HTTP/1.1 200 OK\r\nx-pad: ".to_vec();
        h.resize(super::READ_BUFFER_MAX + 1, b'a');
        h
    });
    let (read, idle) = answer(&HUGE, false).await;
    let e = read.unwrap_err();
    assert!(e.contains("larger than"), "{e}");
    assert_eq!(idle, 0);
}

#[tokio::test]
async fn a_large_body_is_written_and_read_in_pieces() {
    let (base, mut conns) = upstream().await;
    let pool = pool();
    let big = Bytes::from(vec![b'a'; 3 << 20]);
    let pieces = Pieces::parts(vec![
        Bytes::from_static(b"<"),
        big.clone(),
        Bytes::from_static(b">"),
    ]);
    let echo = tokio::spawn(async move {
        let mut s = conns.recv().await.unwrap();
        let got = request(&mut s).await;
        let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let body = &got[end..];
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        s
    });
    let (_, body) = send(&pool, &format!("{base}/big"), pieces).await.unwrap();
    let got = body.collect().await.unwrap().to_bytes();
    assert_eq!(got.len(), big.len() + 2);
    assert!(got.starts_with(b"<a") && got.ends_with(b"a>"));
    let _s = echo.await.unwrap();
    assert_eq!(pool.idle_for_tests(), 1);
}
