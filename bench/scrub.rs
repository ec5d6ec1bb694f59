//! Benchmark: what scrubbing the providers' secrets costs on the hot path,
//! as a ratio against no secrets configured, measured in the same run.
//!
//! Run: `cargo bench --bench scrub` (env BENCH_REQUESTS, default 2000).
//! 1. The scrubber alone: a 1 KB chat JSON answer (plain, and with `\u`
//!    escapes as Python servers write non-ASCII text), and a 200-event SSE
//!    stream through the stream scrubber, with an OpenAI-style key and a
//!    header value configured, against an empty scrubber.
//! 2. End to end on loopback: the same upstream behind two providers, one
//!    with a key (every body scrubbed) and one without (nothing to scrub),
//!    chat answers of 1 KB and 200-event streams, requests alternating
//!    between the two so both see the same machine.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use switchyard::providers::scrub::{ScrubStream, Scrubber};
use switchyard::server::{Gateway, GatewayOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[path = "common.rs"]
mod common;

const KEY: &str = "sk-proj-Zq81vXbT4mNc7LpRw2yHs9KdFj3GaUe6QiO0tBnVxY5MzC1r";
const HEADER: &str = "org-7Hk2Lm9Qp4Rs8Tv1";

fn answer(text: &str) -> Value {
    json!({"id": "chatcmpl-9xYz", "object": "chat.completion", "created": 1_727_000_000,
           "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                        "logprobs": null, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 25, "completion_tokens": 180, "total_tokens": 205}})
}

/// A chat answer of about 1 KB; `escaped` writes its text's non-ASCII as
/// `\uXXXX` (as `json.dumps` does).
fn chat_1k(escaped: bool) -> Bytes {
    let sentence = "The gateway routes each model name to its providers, retries \
                    with backoff and fails over; caf\u{e9} cr\u{e8}me.\n";
    let mut text = String::new();
    while text.len() < 760 {
        text.push_str(sentence);
    }
    let mut body = answer(&text).to_string();
    if escaped {
        body = body
            .replace('\u{e9}', "\\u00e9")
            .replace('\u{e8}', "\\u00e8");
    }
    Bytes::from(body)
}

fn sse_events(n: usize) -> Vec<Bytes> {
    let mut events = vec![Bytes::from(format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-9xYz", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})
    ))];
    for i in 0..n {
        events.push(Bytes::from(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-9xYz", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"content": format!(" token{i}")}, "finish_reason": null}]})
        )));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Nanoseconds per call of `f`, best of five runs of `iters`.
fn per_call(iters: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn row(name: &str, with: f64, without: f64) {
    println!(
        "{name:<34} secrets={with:>9.1}ns  none={without:>9.1}ns  ratio={:.2}  (+{:.2}µs)",
        with / without,
        (with - without) / 1000.0
    );
}

fn scrubber_alone() {
    println!("== the scrubber alone (best of 5) ==");
    let secrets = Scrubber::new([KEY, HEADER]);
    let none = Scrubber::new([]);
    for (name, body) in [
        ("1 KB chat JSON", chat_1k(false)),
        ("1 KB chat JSON with \\u escapes", chat_1k(true)),
    ] {
        let with = per_call(50_000, || {
            black_box(secrets.scrub(black_box(body.clone())));
        });
        let without = per_call(50_000, || {
            black_box(none.scrub(black_box(body.clone())));
        });
        row(name, with, without);
    }
    let events = sse_events(200);
    let (secrets, none) = (Arc::new(secrets), Arc::new(none));
    let stream = |s: &Arc<Scrubber>| {
        let mut st = ScrubStream::new(Arc::clone(s), true);
        for e in &events {
            black_box(st.chunk(e.clone()));
        }
        black_box(st.finish());
    };
    let with = per_call(300, || stream(&secrets));
    let without = per_call(300, || stream(&none));
    row("SSE stream of 200 events", with, without);
}

/// An upstream answering chat with a 1 KB JSON, or 200 SSE events.
async fn upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (json_body, events) = (chat_1k(false), Arc::new(sse_events(200)));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            let (json_body, events) = (json_body.clone(), Arc::clone(&events));
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (json_body, events) = (json_body.clone(), Arc::clone(&events));
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let stream = serde_json::from_slice::<Value>(&body)
                                .is_ok_and(|v| v["stream"] == true);
                            let mut r = if stream {
                                let frames = futures_util::stream::iter(
                                    events
                                        .iter()
                                        .cloned()
                                        .map(|b| Ok::<_, Infallible>(Frame::data(b)))
                                        .collect::<Vec<_>>(),
                                );
                                hyper::Response::new(StreamBody::new(frames).boxed())
                            } else {
                                hyper::Response::new(
                                    Full::new(json_body).map_err(|e| match e {}).boxed(),
                                )
                            };
                            let ct = if stream {
                                "text/event-stream"
                            } else {
                                "application/json"
                            };
                            r.headers_mut().insert("content-type", ct.parse().unwrap());
                            Ok::<_, Infallible>(r)
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}/v1")
}

async fn once(client: &reqwest::Client, url: &str, body: &Value) -> Duration {
    let start = Instant::now();
    let r = client.post(url).json(body).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.bytes().await.unwrap();
    start.elapsed()
}

async fn end_to_end() {
    let n = common::requests();
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bench.yaml"),
        format!(
            "providers:\n  keyed:\n    kind: openai\n    base_url: {upstream}\n    api_key_env: BENCH_KEY\n\
\x20   headers: {{OpenAI-Organization: {HEADER}}}\n\
\x20 bare:\n    kind: openai\n    base_url: {upstream}\n\
routes:\n  keyed:\n    targets: [{{provider: keyed}}]\n  bare:\n    targets: [{{provider: bare}}]\n"
        ),
    )
    .unwrap();
    let env: switchyard::config::Env =
        Arc::new(|k: &str| (k == "BENCH_KEY").then(|| KEY.to_string()));
    let shutdown = CancellationToken::new();
    let gw = Gateway::start(
        GatewayOptions {
            policy_dir: dir.path().to_path_buf(),
            env,
            listen: Some("127.0.0.1:0".into()),
            watch: false,
            sighup: false,
            drain_delay: Some(Duration::ZERO),
            // The load shares this process: no lane may take its worker.
            busy_poll: Duration::ZERO,
            dispatch_hook: None,
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let url = format!("http://{}/v1/chat/completions", gw.local_addr());
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    println!("\n== end to end, sequential keep-alive requests, n={n} per series ==");
    for stream in [false, true] {
        let body = |route: &str| json!({"model": route, "stream": stream, "messages": [{"role": "user", "content": "hello"}]});
        let (keyed, bare) = (body("keyed"), body("bare"));
        for _ in 0..100 {
            once(&client, &url, &keyed).await;
            once(&client, &url, &bare).await;
        }
        let (mut with, mut without) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            with.push(once(&client, &url, &keyed).await);
            without.push(once(&client, &url, &bare).await);
        }
        with.sort();
        without.sort();
        let (w, o) = (
            common::percentile(&with, 0.5),
            common::percentile(&without, 0.5),
        );
        let what = if stream {
            "200-event stream"
        } else {
            "1 KB chat JSON"
        };
        println!(
            "{what:<20} p50 secrets={w:>8.1?} none={o:>8.1?} ratio={:.3}  p99 secrets={:>8.1?} none={:>8.1?}",
            w.as_secs_f64() / o.as_secs_f64(),
            common::percentile(&with, 0.99),
            common::percentile(&without, 0.99),
        );
    }
    shutdown.cancel();
    gw.wait().await;
}

#[tokio::main]
async fn main() {
    scrubber_alone();
    end_to_end().await;
}
