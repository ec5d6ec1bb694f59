//! Benchmark: latency direct-to-upstream vs through the gateway,
//! embedding fan-out vs sequential sub-batches, a 2,048-input fan-out
//! against a capped upstream with an adaptive concurrency limit vs a fixed
//! width set too low or too high; then the same chat latency with
//! OpenTelemetry tracing on (OTLP/HTTP to a local sink) against the gateway
//! with tracing off, in the same run.
//!
//! Run: `cargo bench --bench gateway` (env BENCH_REQUESTS, default 2000).
//! Everything runs on 127.0.0.1: a fake OpenAI-compatible upstream (chat
//! answers at once; embeddings take EMBED_LATENCY per call), a capped one
//! (CAP calls at once, 429 to the rest) and the gateway in-process, cache
//! off so every request goes upstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use serde_json::{Value, json};
use switchyard::server::{Gateway, GatewayOptions};
use tokio_util::sync::CancellationToken;

#[path = "common.rs"]
mod common;

const EMBED_LATENCY: Duration = Duration::from_millis(20);
/// The capped upstream: calls it takes at once; more get a 429 at once.
const CAP: usize = 8;

/// Embeddings for the inputs of `body`.
fn embeddings(body: &Value) -> Value {
    let n = body["input"].as_array().map_or(1, Vec::len);
    let data: Vec<Value> = (0..n)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3, i as f32]}))
        .collect();
    json!({"object": "list", "data": data, "model": body["model"],
           "usage": {"prompt_tokens": n, "total_tokens": n}})
}

/// An upstream that serves CAP embedding calls at once (EMBED_LATENCY
/// each) and answers 429 to any beyond; returns its URL and its 429 count.
async fn capped_upstream() -> (String, Arc<AtomicUsize>) {
    let live = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&refused);
    let url = common::fake_upstream_status(move |_, bytes| {
        let (live, refused) = (Arc::clone(&live), Arc::clone(&counted));
        async move {
            if live.fetch_add(1, Ordering::SeqCst) >= CAP {
                live.fetch_sub(1, Ordering::SeqCst);
                refused.fetch_add(1, Ordering::SeqCst);
                return (
                    429,
                    json!({"error": {"message": "busy", "type": "rate_limit_error"}}),
                );
            }
            tokio::time::sleep(EMBED_LATENCY).await;
            live.fetch_sub(1, Ordering::SeqCst);
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (200, embeddings(&body))
        }
    })
    .await;
    (url, refused)
}

async fn fake_upstream() -> String {
    common::fake_upstream(|path, bytes| async move {
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if path.ends_with("/embeddings") {
            tokio::time::sleep(EMBED_LATENCY).await;
            embeddings(&body)
        } else {
            json!({"id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        }
    })
    .await
}

/// Like [`measure`], but a failed request is counted (its time kept) rather
/// than fatal: a fan-out set too wide may end in a 429.
async fn measure_or_count(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    n: usize,
) -> (Vec<Duration>, usize) {
    let (mut out, mut failed) = (Vec::with_capacity(n), 0);
    for _ in 0..n {
        let start = Instant::now();
        let r = client.post(url).json(body).send().await.unwrap();
        failed += usize::from(!r.status().is_success());
        r.bytes().await.unwrap();
        out.push(start.elapsed());
    }
    out.sort();
    (out, failed)
}

async fn measure(client: &reqwest::Client, url: &str, body: &Value, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let r = client.post(url).json(body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.bytes().await.unwrap();
        out.push(start.elapsed());
    }
    out.sort();
    out
}

fn report(name: &str, d: &[Duration]) {
    let mean = common::mean(d);
    println!(
        "{name:<28} n={:<6} mean={:>8.1?} p50={:>8.1?} p99={:>8.1?}",
        d.len(),
        mean,
        common::percentile(d, 0.5),
        common::percentile(d, 0.99)
    );
}

#[tokio::main]
async fn main() {
    let n = common::requests();
    let upstream = fake_upstream().await;
    let (capped, refused) = capped_upstream().await;
    // One provider per capped route, each with its own limit; retries are
    // generous so that a width set too high ends (late) rather than fails.
    let capped_provider = |name: &str, extra: &str| {
        format!(
            "  {name}:\n    kind: openai\n    base_url: {capped}\n    max_batch_inputs: 16\n\
             \x20   breaker: {{ failure_threshold: 100000 }}\n{extra}"
        )
    };
    let retry = "    retry: { max_attempts: 10, initial_backoff: 50ms, max_backoff: 1s,\n\
                 \x20            budget: { ratio: 10, min_per_second: 100000 } }\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bench.yaml"),
        format!(
            "limits:\n  per_client: {{ requests_per_second: 1000000, burst: 1000000 }}\n\
providers:\n  up:\n    kind: openai\n    base_url: {upstream}\n    max_batch_inputs: 16\n\
{}{}{}\
routes:\n  chat:\n    targets: [{{provider: up}}]\n\
\x20 emb-parallel:\n    targets: [{{provider: up}}]\n    fanout: {{ max_concurrency: 16 }}\n\
\x20 emb-sequential:\n    targets: [{{provider: up}}]\n    fanout: {{ max_concurrency: 1 }}\n\
\x20 capped-too-low:\n    targets: [{{provider: low}}]\n    fanout: {{ max_concurrency: 2 }}\n{retry}\
\x20 capped-too-high:\n    targets: [{{provider: high}}]\n    fanout: {{ max_concurrency: 64 }}\n{retry}\
\x20 capped-adaptive:\n    targets: [{{provider: adaptive}}]\n{retry}",
            capped_provider("low", ""),
            capped_provider("high", ""),
            capped_provider(
                "adaptive",
                "    concurrency: { adaptive: { min: 1, max: 256 } }\n"
            ),
        ),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let gw = Gateway::start(
        GatewayOptions {
            policy_dir: dir.path().to_path_buf(),
            env: switchyard::config::process_env(),
            listen: Some("127.0.0.1:0".into()),
            watch: false,
            sighup: false,
            drain_delay: Some(std::time::Duration::ZERO),
            // The load shares this process: no lane may take its worker.
            busy_poll: Duration::ZERO,
            dispatch_hook: None,
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let gateway = format!("http://{}/v1", gw.local_addr());
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let chat = json!({"model": "chat", "messages": [{"role": "user", "content": "hello"}]});

    println!("== chat latency, sequential requests, keep-alive ==");
    measure(&client, &format!("{upstream}/chat/completions"), &chat, 100).await; // warm-up
    measure(&client, &format!("{gateway}/chat/completions"), &chat, 100).await;
    let direct = measure(&client, &format!("{upstream}/chat/completions"), &chat, n).await;
    let via = measure(&client, &format!("{gateway}/chat/completions"), &chat, n).await;
    report("direct to upstream", &direct);
    report("through switchyard", &via);
    let p50 = common::percentile(&via, 0.5).saturating_sub(common::percentile(&direct, 0.5));
    println!("gateway overhead at p50: {p50:?}");

    println!(
        "\n== embeddings: 256 inputs, sub-batches of 16, upstream {EMBED_LATENCY:?} per call =="
    );
    let inputs: Vec<String> = (0..256).map(|i| format!("document number {i}")).collect();
    let rounds = 10;
    for route in ["emb-parallel", "emb-sequential"] {
        let body = json!({"model": route, "input": inputs});
        let d = measure(&client, &format!("{gateway}/embeddings"), &body, rounds).await;
        report(route, &d);
    }

    println!(
        "\n== embeddings: 2048 inputs, sub-batches of 16, an upstream that takes {CAP} calls \
         at once ({EMBED_LATENCY:?} each) and answers 429 beyond =="
    );
    let inputs: Vec<String> = (0..2048).map(|i| format!("document number {i}")).collect();
    let mut p50 = Vec::new();
    for route in ["capped-too-low", "capped-too-high", "capped-adaptive"] {
        let body = json!({"model": route, "input": inputs});
        let before = refused.load(Ordering::SeqCst);
        let url = format!("{gateway}/embeddings");
        let (d, failed) = measure_or_count(&client, &url, &body, rounds).await;
        report(route, &d);
        let refusals = refused.load(Ordering::SeqCst) - before;
        println!(
            "{:<28} upstream 429s: {:.1} a request; requests failed: {failed} of {rounds}",
            "",
            refusals as f64 / rounds as f64
        );
        p50.push(common::percentile(&d, 0.5));
    }
    let ideal = EMBED_LATENCY * (2048 / 16 / CAP) as u32;
    println!(
        "p50 time, adaptive / too low (2): {:.2}; adaptive / too high (64): {:.2}; \
         adaptive / ideal ({ideal:?} at exactly {CAP} in flight): {:.2}",
        p50[2].as_secs_f64() / p50[0].as_secs_f64(),
        p50[2].as_secs_f64() / p50[1].as_secs_f64(),
        p50[2].as_secs_f64() / ideal.as_secs_f64(),
    );
    // Tracing off (the series above: no subscriber, nothing traced) vs on:
    // the process's subscriber with the OTLP exporter (batches to a local
    // sink) and a gateway built after it (its attempt stacks have their span
    // layer). Each against direct calls measured alongside it, so that load
    // from elsewhere on the machine cancels out of the overhead.
    println!("\n== chat latency with tracing on (OTLP/HTTP to a local sink) ==");
    let sink = otlp_sink().await;
    let telemetry = switchyard::telemetry::init(
        &switchyard::telemetry::LogOptions {
            format: switchyard::telemetry::LogFormat::Text,
            level: Some("warn".into()),
        },
        Some(&switchyard::config::TracingSettings {
            protocol: switchyard::config::OtlpProtocol::HttpProtobuf,
            endpoint: format!("{sink}/v1/traces"),
            headers: Vec::new(),
            sample_ratio: 1.0,
            service_name: "bench".into(),
            timeout: Duration::from_secs(10),
        }),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    let traced_shutdown = CancellationToken::new();
    let traced = Gateway::start(
        GatewayOptions {
            policy_dir: dir.path().to_path_buf(),
            env: switchyard::config::process_env(),
            listen: Some("127.0.0.1:0".into()),
            watch: false,
            sighup: false,
            drain_delay: Some(std::time::Duration::ZERO),
            // The load shares this process: no lane may take its worker.
            busy_poll: Duration::ZERO,
            dispatch_hook: None,
        },
        traced_shutdown.clone(),
    )
    .await
    .unwrap();
    let on_url = format!("http://{}/v1/chat/completions", traced.local_addr());
    let direct_url = format!("{upstream}/chat/completions");
    measure(&client, &on_url, &chat, 100).await; // warm-up
    let (mut direct_on, mut on) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..10 {
        direct_on.extend(measure(&client, &direct_url, &chat, n / 10).await);
        on.extend(measure(&client, &on_url, &chat, n / 10).await);
    }
    direct_on.sort();
    on.sort();
    report("direct to upstream", &direct_on);
    report("through, tracing on", &on);
    let added = |d: &[Duration], base: &[Duration]| {
        common::percentile(d, 0.5).saturating_sub(common::percentile(base, 0.5))
    };
    let (off_added, on_added) = (added(&via, &direct), added(&on, &direct_on));
    println!(
        "gateway overhead at p50: tracing off {off_added:?}, on {on_added:?} (on/off {:.2})",
        on_added.as_secs_f64() / off_added.as_secs_f64().max(1e-9)
    );
    traced_shutdown.cancel();
    traced.wait().await;
    shutdown.cancel();
    gw.wait().await;
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
}

/// An OTLP/HTTP collector that takes every export and keeps nothing.
async fn otlp_sink() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let _ = req.into_body().collect().await;
                        let mut r =
                            hyper::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
                        r.headers_mut()
                            .insert("content-type", "application/x-protobuf".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(r)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    format!("http://{addr}")
}
