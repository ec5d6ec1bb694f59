//! Benchmark: latency direct-to-upstream vs through the gateway, and
//! embedding fan-out vs sequential sub-batches; then the same chat latency
//! with OpenTelemetry tracing on (OTLP/HTTP to a local sink) against the
//! gateway with tracing off, in the same run.
//!
//! Run: `cargo bench --bench gateway` (env BENCH_REQUESTS, default 2000).
//! Everything runs on 127.0.0.1: a fake OpenAI-compatible upstream (chat
//! answers at once; embeddings take EMBED_LATENCY per call) and the gateway
//! in-process, cache off so every request goes upstream.

use std::time::Duration;
use tokio::time::Instant;

use serde_json::{Value, json};
use switchyard::server::{Gateway, GatewayOptions};
use tokio_util::sync::CancellationToken;

#[path = "common.rs"]
mod common;

const EMBED_LATENCY: Duration = Duration::from_millis(20);

async fn fake_upstream() -> String {
    common::fake_upstream(|path, bytes| async move {
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if path.ends_with("/embeddings") {
            tokio::time::sleep(EMBED_LATENCY).await;
            let n = body["input"].as_array().map_or(1, Vec::len);
            let data: Vec<Value> = (0..n)
                .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3, i as f32]}))
                .collect();
            json!({"object": "list", "data": data, "model": body["model"],
                   "usage": {"prompt_tokens": n, "total_tokens": n}})
        } else {
            json!({"id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        }
    })
    .await
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
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bench.yaml"),
        format!(
            "limits:\n  per_client: {{ requests_per_second: 1000000, burst: 1000000 }}\n\
providers:\n  up:\n    kind: openai\n    base_url: {upstream}\n    max_batch_inputs: 16\n\
routes:\n  chat:\n    targets: [{{provider: up}}]\n\
\x20 emb-parallel:\n    targets: [{{provider: up}}]\n    fanout: {{ max_concurrency: 16 }}\n\
\x20 emb-sequential:\n    targets: [{{provider: up}}]\n    fanout: {{ max_concurrency: 1 }}\n"
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
