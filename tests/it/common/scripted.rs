//! A scripted SSE upstream: each request hands the test a sender for its
//! body, so a test decides when each event arrives and when the stream ends
//! (or breaks), and sees the gateway drop it (`tx.closed()`).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;

/// An upstream whose streams the test writes: each request hands the test
/// a sender for its body (dropping it ends the body).
pub struct Scripted {
    pub base: String,
    pub requests: mpsc::UnboundedReceiver<mpsc::UnboundedSender<String>>,
    calls: Arc<Mutex<usize>>,
}

impl Scripted {
    pub async fn start() -> Scripted {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let (to_test, requests) = mpsc::unbounded_channel();
        let calls = Arc::new(Mutex::new(0));
        let counter = Arc::clone(&calls);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (to_test, counter) = (to_test.clone(), Arc::clone(&counter));
                let svc = hyper::service::service_fn(move |_req| {
                    *counter.lock().unwrap() += 1;
                    let (tx, rx) = mpsc::unbounded_channel::<String>();
                    let _ = to_test.send(tx);
                    let body = tokio_stream_of(rx)
                        .map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from(s))));
                    let mut r = hyper::Response::new(BodyExt::boxed(StreamBody::new(body)));
                    r.headers_mut()
                        .insert("content-type", "text/event-stream".parse().unwrap());
                    async move { Ok::<_, Infallible>(r) }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(conn), svc)
                        .await;
                });
            }
        });
        Scripted {
            base,
            requests,
            calls,
        }
    }

    pub fn calls(&self) -> usize {
        *self.calls.lock().unwrap()
    }
}

fn tokio_stream_of(
    mut rx: mpsc::UnboundedReceiver<String>,
) -> impl futures_util::Stream<Item = String> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
