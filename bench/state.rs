//! Benchmark: what the Redis state backend adds per request, against the
//! in-memory default, in one run.
//!
//! Run: `cargo bench --bench state` (env BENCH_REQUESTS, default 2000).
//! Needs `redis-server` (PATH or /usr/bin); started on a free 127.0.0.1
//! port and stopped at the end. Everything is on loopback: a fake
//! OpenAI-compatible upstream answering at once, and four gateways
//! in-process: memory, and two replicas (a, b) plus one more sharing Redis.
//! Rows, each a sequence of `n` requests on keep-alive:
//! - limit check: a key with RPM and TPM limits, cache bypassed (`no-cache`):
//!   admission (one EVALSHA) and settlement (one more, off the response path).
//! - cache hit, no key (so no admission): memory hits its own cache; Redis
//!   replica b hits entries replica a wrote (a local miss, then one MGET).
//!   Printed with the direct upstream call measured in the same run.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::server::{Gateway, GatewayOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[path = "common.rs"]
mod common;

const KEY: &str = "sk-bench-0123456789abcdef0123456789";

fn redis_binary() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("redis-server"))
                .find(|p| p.is_file())
        })
        .or_else(|| {
            let p = std::path::PathBuf::from("/usr/bin/redis-server");
            p.is_file().then_some(p)
        })
}

async fn start(
    dir: &std::path::Path,
    upstream: &str,
    state: &str,
    redis: &str,
) -> (Gateway, String, CancellationToken) {
    std::fs::write(
        dir.join("bench.yaml"),
        format!(
            "{state}providers:\n  up:\n    kind: openai\n    base_url: {upstream}\n\
routes:\n  chat:\n    targets: [{{provider: up}}]\n    cache: {{enabled: true, ttl: 10m}}\n\
keys:\n  bench:\n    secret_env: BENCH_KEY\n    rpm: 100000000\n    tpm: 1000000000\n"
        ),
    )
    .unwrap();
    let redis = redis.to_string();
    let env: switchyard::config::Env = std::sync::Arc::new(move |k| match k {
        "BENCH_KEY" => Some(KEY.to_string()),
        "REDIS_URL" => Some(redis.clone()),
        _ => None,
    });
    let shutdown = CancellationToken::new();
    let gw = Gateway::start(
        GatewayOptions {
            policy_dir: dir.to_path_buf(),
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
    (gw, url, shutdown)
}

fn chat(text: &str) -> Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": text}]})
}

/// `n` sequential requests; `body(i)` is the i-th body.
async fn measure(
    client: &reqwest::Client,
    url: &str,
    no_cache: bool,
    keyed: bool,
    n: usize,
    body: impl Fn(usize) -> Value,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut r = client.post(url).json(&body(i));
        if keyed {
            r = r.bearer_auth(KEY);
        }
        if no_cache {
            r = r.header("cache-control", "no-cache");
        }
        let start = Instant::now();
        let resp = r.send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.bytes().await.unwrap();
        out.push(start.elapsed());
    }
    out.sort();
    out
}

fn p50(d: &[Duration]) -> Duration {
    common::percentile(d, 0.5)
}

fn row(name: &str, d: &[Duration], direct: Duration) {
    println!(
        "{name:<34} mean={:>8.1?} p50={:>8.1?} p99={:>8.1?}  p50/direct={:.2}",
        common::mean(d),
        p50(d),
        common::percentile(d, 0.99),
        p50(d).as_secs_f64() / direct.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let n = common::requests();
    let Some(bin) = redis_binary() else {
        println!("SKIPPED: redis-server not found (apt-get install redis-server)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = tokio::process::Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let redis_url = format!("redis://127.0.0.1:{port}/");
    let upstream = common::fake_upstream(|_, bytes| async move {
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    })
    .await;
    let shared = "state:\n  backend: redis\n  url_env: REDIS_URL\n";
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (g_mem, mem, s_mem) = start(dirs[0].path(), &upstream, "", &redis_url).await;
    let (g_a, red_a, s_a) = start(dirs[1].path(), &upstream, shared, &redis_url).await;
    let (g_b, red_b, s_b) = start(dirs[2].path(), &upstream, shared, &redis_url).await;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let direct_url = format!("{upstream}/chat/completions");
    let same = |_: usize| chat("hello");
    // Warm-up.
    for url in [&direct_url, &mem, &red_a, &red_b] {
        measure(&client, url, true, true, 100, same).await;
    }

    println!("== per-request cost of the state backend (n={n}, sequential, keep-alive) ==");
    let direct = measure(&client, &direct_url, true, false, n, same).await;
    row("direct to upstream", &direct, p50(&direct));
    let d = p50(&direct);
    let mem_limit = measure(&client, &mem, true, true, n, same).await;
    let red_limit = measure(&client, &red_a, true, true, n, same).await;
    row("limit check, memory", &mem_limit, d);
    row("limit check, redis", &red_limit, d);
    // Cache: memory hits its own entries; replica b hits what a stored.
    measure(&client, &mem, false, false, n, |i| chat(&format!("q{i}"))).await;
    measure(&client, &red_a, false, false, n, |i| chat(&format!("q{i}"))).await;
    let mem_hit = measure(&client, &mem, false, false, n, |i| chat(&format!("q{i}"))).await;
    let red_hit = measure(&client, &red_b, false, false, n, |i| chat(&format!("q{i}"))).await;
    row("cache hit, memory (own entry)", &mem_hit, d);
    row("cache hit, redis (other replica)", &red_hit, d);
    let added =
        |r: &[Duration], m: &[Duration]| (p50(r).as_secs_f64() - p50(m).as_secs_f64()) * 1e6;
    println!(
        "redis adds at p50: {:.0}us per limit check, {:.0}us per cache lookup (over memory)",
        added(&red_limit, &mem_limit),
        added(&red_hit, &mem_hit)
    );
    for (g, s) in [(g_mem, s_mem), (g_a, s_a), (g_b, s_b)] {
        s.cancel();
        g.wait().await;
    }
    let _ = redis.kill().await;
}
