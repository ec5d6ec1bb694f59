//! Benchmark: resident memory of a gateway whose cache is full, against
//! `cache.max_bytes`, for small chat answers and for embedding vectors.
//!
//! Run: `cargo bench --bench memory` (env MEMORY_CACHE_MB, default 32).
//! A fake OpenAI-compatible upstream runs in this process on 127.0.0.1; the
//! gateway runs as its own process (the real binary), so its RSS is read
//! from /proc alone. Each case starts a fresh gateway, measures its RSS at
//! rest, then sends distinct requests until the cache has been filled twice
//! over (so eviction runs), and reports the RSS 2 s later (and right after
//! the burst) against the target `RSS <= 1.5 x cache.max_bytes + 20 MB`. A third case sends 20
//! concurrent 15 MiB chat requests and reports the peak RSS against the
//! bytes they carry (how many times a request body is held).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

#[path = "common.rs"]
mod common;

const DIMS: usize = 1536;
const MB: u64 = 1024 * 1024;

async fn fake_upstream() -> String {
    common::fake_upstream(|path, bytes| async move {
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if path.ends_with("/embeddings") {
                            let inputs = body["input"].as_array().cloned().unwrap_or_default();
                            let data: Vec<Value> = inputs
                                .iter()
                                .enumerate()
                                .map(|(i, input)| {
                                    let seed = input.to_string().len() as f32;
                                    let v: Vec<u8> = (0..DIMS)
                                        .flat_map(|d| (seed + d as f32).to_le_bytes())
                                        .collect();
                                    let b64 = base64::engine::general_purpose::STANDARD.encode(v);
                                    json!({"object": "embedding", "index": i, "embedding": b64})
                                })
                                .collect();
                            json!({"object": "list", "data": data, "model": body["model"],
                                   "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                        } else if bytes.len() > 1024 * 1024 {
                            // A big request: hold it a while so they overlap.
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            json!({"id": "chatcmpl-big", "object": "chat.completion", "created": 1,
                                   "model": body["model"],
                                   "choices": [{"index": 0, "message": {"role": "assistant",
                                       "content": "read it"}, "finish_reason": "stop"}]})
                        } else {
                            let text = body["messages"][0]["content"].as_str().unwrap_or("");
                            json!({"id": "chatcmpl-bench", "object": "chat.completion", "created": 1,
                                   "model": body["model"],
                                   "choices": [{"index": 0, "message": {"role": "assistant",
                                       "content": format!("A short cached answer to {text}.")},
                                       "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}})
                        }
    })
    .await
}

struct Running {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_gateway(upstream: &str, cache_bytes: u64) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "cache: {{ max_bytes: {cache_bytes}, default_ttl: 1h }}\n\
         providers:\n  up:\n    kind: openai\n    base_url: {upstream}\n    max_batch_inputs: 64\n\
         routes:\n  chat:\n    targets: [{{provider: up}}]\n    cache: {{ enabled: true }}\n\
         \x20 emb:\n    targets: [{{provider: up}}]\n    cache: {{ enabled: true }}\n"
    );
    std::fs::write(dir.path().join("bench.yaml"), policy).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--policies"])
        .arg(dir.path())
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--drain-delay",
            "0s",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway binary");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Running {
        child,
        base,
        _dir: dir,
    }
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Sends `total` distinct requests, 16 at a time.
async fn fill(client: &reqwest::Client, base: &str, total: usize, embeddings: bool) {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..total)
        .map(|i| {
            let (path, body) = if embeddings {
                let input: Vec<String> =
                    (0..32).map(|j| format!("document {i} part {j}")).collect();
                ("/v1/embeddings", json!({"model": "emb", "input": input}))
            } else {
                let content = format!("question number {i}");
                (
                    "/v1/chat/completions",
                    json!({"model": "chat", "messages": [{"role": "user", "content": content}]}),
                )
            };
            let req = client.post(format!("{base}{path}")).json(&body);
            async move {
                let r = req.send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                r.bytes().await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

async fn case(upstream: &str, cache_bytes: u64, embeddings: bool) {
    let gw = start_gateway(upstream, cache_bytes).await;
    let client = reqwest::Client::new();
    let pid = gw.child.id();
    let rest = rss_bytes(pid);
    // Entry sizes: a chat answer ~0.3 KB (+ its overhead), a vector 6 KB.
    let per_request = if embeddings {
        32 * (DIMS * 4 + 400)
    } else {
        700
    };
    let requests = (2 * cache_bytes as usize / per_request).max(1);
    fill(&client, &gw.base, requests, embeddings).await;
    let cached = metric(&client, &gw.base, "switchyard_cache_bytes").await as u64;
    let entries = metric(&client, &gw.base, "switchyard_cache_entries").await as u64;
    let burst = rss_bytes(pid);
    // Judged at rest: what the allocator freed during the burst goes back
    // to the system within a second (the gateway asks mimalloc every
    // second), and is not the cache's.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_bytes(pid);
    let target = cache_bytes * 3 / 2 + 20 * MB;
    let kind = if embeddings {
        "embedding vectors"
    } else {
        "small chat answers"
    };
    println!(
        "{kind:<20} max_bytes={:>4} MB  weighed={:>5.1} MB in {entries:>6} entries  \
         RSS at rest={:>5.1} MB  full={:>6.1} MB (right after the burst {:>6.1})  RSS/max_bytes={:.2}  target<={:.1} MB: {}",
        cache_bytes / MB,
        cached as f64 / MB as f64,
        rest as f64 / MB as f64,
        rss as f64 / MB as f64,
        burst as f64 / MB as f64,
        rss as f64 / cache_bytes as f64,
        target as f64 / MB as f64,
        if rss <= target { "PASS" } else { "FAIL" }
    );
}

/// Peak RSS while 20 clients each send a 15 MiB chat request at once,
/// against the bytes those requests carry.
async fn big_requests(upstream: &str) {
    let gw = start_gateway(upstream, 16 * MB).await;
    let pid = gw.child.id();
    let rest = rss_bytes(pid);
    let content = "x".repeat(15 * MB as usize);
    let body = serde_json::to_vec(&json!({"model": "chat",
        "messages": [{"role": "user", "content": content}]}))
    .unwrap();
    let total = 20 * body.len() as u64;
    let client = reqwest::Client::new();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = std::sync::Arc::clone(&done);
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(rss_bytes(pid));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        })
    };
    let sends: Vec<_> = (0..20)
        .map(|_| {
            let req = client
                .post(format!("{}/v1/chat/completions", gw.base))
                .header("content-type", "application/json")
                .header("cache-control", "no-cache")
                .body(body.clone());
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for s in sends {
        let status = s.await.unwrap().unwrap();
        assert_eq!(status, 200);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.await.unwrap();
    println!(
        "20 x 15 MiB requests  request bytes={:>6.1} MB  RSS at rest={:>5.1} MB  peak={:>7.1} MB  \
         (peak - rest) / request bytes={:.2}",
        total as f64 / MB as f64,
        rest as f64 / MB as f64,
        peak as f64 / MB as f64,
        (peak.saturating_sub(rest)) as f64 / total as f64
    );
}

#[tokio::main]
async fn main() {
    let cache_mb: u64 = std::env::var("MEMORY_CACHE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let upstream = fake_upstream().await;
    case(&upstream, cache_mb * MB, false).await;
    case(&upstream, cache_mb * MB, true).await;
    big_requests(&upstream).await;
}
