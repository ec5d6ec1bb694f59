//! The pool's idle connections over real TCP: one idle past the idle
//! timeout is closed by the watcher (the upstream sees it go, no request
//! needed), and one taken before that is reused.

use super::*;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// An upstream answering `ok` to each request on a connection, and saying
/// (with how many requests it served) when a connection closes.
async fn upstream() -> (
    String,
    mpsc::UnboundedReceiver<usize>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let tx = tx.clone();
            tokio::spawn(async move {
                let (mut buf, mut served) = (Vec::new(), 0);
                let mut chunk = [0u8; 1024];
                loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        served += 1;
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tx.send(served);
            });
        }
    });
    (base, rx, accepted)
}

fn pool(idle_timeout: Duration) -> Arc<H1Pool> {
    let egress = Egress::new(None).unwrap();
    H1Pool::new(
        egress,
        Arc::new(Gauge::default()),
        Duration::from_secs(2),
        idle_timeout,
    )
}

async fn get(pool: &Arc<H1Pool>, base: &str) -> Bytes {
    let mut req = http::Request::new(Pieces::empty());
    *req.uri_mut() = format!("{base}/x").parse().unwrap();
    // As `Client::execute` counts it, so a connection may open.
    let _in_flight = pool.gauge.in_flight();
    let (head, body) = pool.send(req).await.unwrap();
    assert_eq!(head.status, http::StatusCode::OK);
    body.collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn a_connection_idle_past_the_timeout_is_closed_by_the_watcher() {
    let (base, mut closed, accepted) = upstream().await;
    let pool = pool(Duration::from_millis(50));
    let put_back = Instant::now();
    assert_eq!(get(&pool, &base).await, "ok");
    // Nothing else is sent: the watcher alone closes it, once expired.
    let served = tokio::time::timeout(Duration::from_secs(10), closed.recv())
        .await
        .expect("the idle connection was closed")
        .unwrap();
    assert_eq!(served, 1);
    assert!(put_back.elapsed() >= Duration::from_millis(50));
    assert_eq!(pool.gauge.open(), 0, "its slot given back");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_taken_within_the_timeout_is_reused() {
    let (base, _closed, accepted) = upstream().await;
    let pool = pool(Duration::from_secs(60));
    for _ in 0..5 {
        assert_eq!(get(&pool, &base).await, "ok");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(pool.gauge.open(), 1);
}

/// A send's future holds a connection's opening boxed: inline, that rare
/// branch (connect and handshake) made every request's future above it
/// about 1 KB larger, copied whole wherever it is moved or boxed.
#[tokio::test]
async fn a_send_future_leaves_the_opening_boxed() {
    let pool = pool(Duration::from_secs(60));
    let mut req = http::Request::new(Pieces::empty());
    *req.uri_mut() = "http://127.0.0.1:9/x".parse().unwrap();
    let send = pool.send(req); // not polled: only its size is wanted
    let size = std::mem::size_of_val(&send);
    // 2,104 bytes with the opening inline, as `cargo test` builds it.
    assert!(size <= 1536, "H1Pool::send's future is {size} bytes");
}
