//! What the benchmarks share: a fake OpenAI-compatible upstream on
//! 127.0.0.1:0 that answers each request with `answer(path, body bytes)`,
//! the request count and duration statistics.

// Each bench is its own crate and uses only part of this.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// Serves `answer` (a JSON value per request) on loopback; returns the
/// OpenAI-style base URL (`http://addr/v1`).
pub async fn fake_upstream<F, Fut>(answer: F) -> String
where
    F: Fn(String, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Value> + Send + 'static,
{
    let answer = Arc::new(answer);
    fake_upstream_status(move |path, body| {
        let answer = Arc::clone(&answer);
        async move { (200, answer(path, body).await) }
    })
    .await
}

/// [`fake_upstream`] whose answers carry their own status.
pub async fn fake_upstream_status<F, Fut>(answer: F) -> String
where
    F: Fn(String, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (u16, Value)> + Send + 'static,
{
    let answer = Arc::new(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let answer = Arc::clone(&answer);
                        async move {
                            let path = req.uri().path().to_string();
                            let bytes = req.into_body().collect().await.unwrap().to_bytes();
                            let (status, reply) = answer(path, bytes).await;
                            let mut r =
                                hyper::Response::new(Full::new(Bytes::from(reply.to_string())));
                            *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            r.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, Infallible>(r)
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}/v1")
}

/// `BENCH_REQUESTS` (default 2000): requests per measured series.
pub fn requests() -> usize {
    std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn mean(d: &[std::time::Duration]) -> std::time::Duration {
    d.iter().sum::<std::time::Duration>() / d.len() as u32
}
