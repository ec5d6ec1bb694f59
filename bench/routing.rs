//! Benchmark: routing on what the gateway sees.
//!
//! Run: `cargo bench --bench routing` (env BENCH_REQUESTS, default 2000).
//! Everything on 127.0.0.1: fake OpenAI-compatible upstreams and the gateway
//! in-process, cache off. Rows:
//! - hedging: p50 / p99 with and without `hedge` against a heavy-tailed
//!   target (1 answer in 20 takes 20x longer), and the extra upstream calls;
//! - least_latency vs weighted against a slow (50ms) and a fast (10ms)
//!   target: the share the fast one got, p50 and p99;
//! - the strategies' CPU cost: ordering a route's targets (ns per call, in
//!   a loop), and the whole chat hot path per request (the CPU time of
//!   every thread of the process, Linux `/proc/self/task/*/schedstat`:
//!   client, gateway and fake upstream together) for each strategy against
//!   an instant upstream, as a ratio to `failover` measured in the same
//!   run, rounds interleaved so drift hits every strategy alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::server::{Gateway, GatewayOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[path = "common.rs"]
mod common;

const CONCURRENCY: usize = 8;

fn chat_answer(body: &Value) -> Value {
    json!({"id": "c", "object": "chat.completion", "created": 1, "model": body["model"],
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
}

/// An upstream answering after `latency`; every `tail_every`th request
/// (0: none) waits 20x as long. Returns its base URL and its call count.
async fn upstream(latency: Duration, tail_every: usize) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let url = common::fake_upstream(move |_, bytes| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let wait = if tail_every > 0 && n.is_multiple_of(tail_every) {
                latency * 20
            } else {
                latency
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            chat_answer(&body)
        }
    })
    .await;
    (url, calls)
}

struct Started {
    url: String,
    shutdown: CancellationToken,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

async fn start(policy: String) -> Started {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bench.yaml"), policy).unwrap();
    let shutdown = CancellationToken::new();
    let gw = Gateway::start(
        GatewayOptions {
            policy_dir: dir.path().to_path_buf(),
            env: switchyard::config::process_env(),
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
    Started {
        url: format!("http://{}/v1/chat/completions", gw.local_addr()),
        shutdown,
        gw,
        _dir: dir,
    }
}

fn providers(urls: &[&str]) -> String {
    let mut y = String::from(
        "server:\n  max_concurrent_requests: 100000\nlimits:\n  per_client: { requests_per_second: 1000000, burst: 1000000 }\nproviders:\n",
    );
    for (i, u) in urls.iter().enumerate() {
        y.push_str(&format!("  p{i}:\n    kind: openai\n    base_url: {u}\n"));
    }
    y
}

/// `n` requests to `model`, `concurrency` at a time: each one's latency
/// and the provider that served it.
async fn run(
    client: &reqwest::Client,
    url: &str,
    model: &str,
    n: usize,
    concurrency: usize,
) -> Vec<(Duration, String)> {
    let left = Arc::new(AtomicUsize::new(n));
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hello"}]});
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body, left) = (
                client.clone(),
                url.to_string(),
                body.clone(),
                Arc::clone(&left),
            );
            tokio::spawn(async move {
                let mut out = Vec::new();
                while left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                    .is_ok()
                {
                    let start = Instant::now();
                    let r = client.post(&url).json(&body).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    let who = r.headers()["x-switchyard-provider"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    r.bytes().await.unwrap();
                    out.push((start.elapsed(), who));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all
}

fn latencies(results: &[(Duration, String)]) -> Vec<Duration> {
    let mut d: Vec<Duration> = results.iter().map(|(d, _)| *d).collect();
    d.sort();
    d
}

async fn hedging(client: &reqwest::Client, n: usize) {
    println!(
        "== hedging: target p0 answers in 20ms, 1 in 20 answers in 400ms; {CONCURRENCY} at a time =="
    );
    let (tailed, tailed_calls) = upstream(Duration::from_millis(20), 20).await;
    let (steady, steady_calls) = upstream(Duration::from_millis(20), 0).await;
    let g = start(format!(
        "{}routes:\n  plain:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n  \
         hedged:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n    \
         retry: {{ budget: {{ ratio: 0.1, min_per_second: 1 }} }}\n    \
         hedge: {{ delay: 60ms, max_per_second: 100 }}\n",
        providers(&[&tailed, &steady])
    ))
    .await;
    let calls = || tailed_calls.load(Ordering::SeqCst) + steady_calls.load(Ordering::SeqCst);
    for route in ["plain", "hedged"] {
        let before = calls();
        let r = run(client, &g.url, route, n, CONCURRENCY).await;
        let extra = (calls() - before) as f64 / n as f64 - 1.0;
        let d = latencies(&r);
        println!(
            "{route:<8} n={n:<5} p50={:>8.1?} p99={:>8.1?} extra upstream calls={:>5.1}%",
            common::percentile(&d, 0.5),
            common::percentile(&d, 0.99),
            extra * 100.0
        );
    }
    g.shutdown.cancel();
    g.gw.wait().await;
}

async fn split(client: &reqwest::Client, n: usize) {
    println!(
        "\n== least_latency vs weighted: p0 answers in 50ms, p1 in 10ms; {CONCURRENCY} at a time =="
    );
    let (slow, _) = upstream(Duration::from_millis(50), 0).await;
    let (fast, _) = upstream(Duration::from_millis(10), 0).await;
    let g = start(format!(
        "{}routes:\n  weighted:\n    strategy: weighted\n    targets: [{{provider: p0}}, {{provider: p1}}]\n  \
         least_latency:\n    strategy: least_latency\n    targets: [{{provider: p0}}, {{provider: p1}}]\n",
        providers(&[&slow, &fast])
    ))
    .await;
    for route in ["weighted", "least_latency"] {
        let r = run(client, &g.url, route, n, CONCURRENCY).await;
        let fast_share = r.iter().filter(|(_, p)| p == "p1").count() as f64 / n as f64;
        let d = latencies(&r);
        println!(
            "{route:<14} n={n:<5} to the fast target={:>5.1}% p50={:>8.1?} p99={:>8.1?}",
            fast_share * 100.0,
            common::percentile(&d, 0.5),
            common::percentile(&d, 0.99)
        );
    }
    g.shutdown.cancel();
    g.gw.wait().await;
}

/// This process's CPU time so far: the sum over its threads of the time
/// each ran (`/proc/self/task/*/schedstat`, nanoseconds; Linux only).
fn cpu_time() -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(path) else {
            continue; // a thread that just ended
        };
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

const STRATEGIES: [&str; 5] = [
    "failover",
    "weighted",
    "least_latency",
    "least_busy",
    "cost",
];

fn ordering_cost() {
    use switchyard::routing::strategy::{Ask, Candidate, order};
    println!("\n== ordering three targets: CPU per call, in a loop ==");
    let policy = format!(
        "{}prices:\n  m: {{input: 1, output: 2}}\nroutes:\n  r:\n    targets: [{{provider: p0, model: m}}, \
         {{provider: p1, model: m}}, {{provider: p2, model: m}}]\n",
        providers(&[
            "http://127.0.0.1:9/v1",
            "http://127.0.0.1:9/v1",
            "http://127.0.0.1:9/v1"
        ])
    );
    let env = switchyard::config::process_env();
    let sources = [switchyard::config::Source {
        name: "bench.yaml".into(),
        text: policy,
    }];
    let policy =
        switchyard::config::load_sources(&sources, &env, switchyard::providers::check_kind)
            .unwrap();
    let metrics = Arc::new(switchyard::metrics::Metrics::new());
    let store = switchyard::state::Store::memory(Arc::clone(&metrics));
    let table =
        switchyard::routing::RouteTable::build(&policy, None, &metrics, &env, &store).unwrap();
    let route = &table.routes["r"];
    let cands: Vec<Candidate> = route
        .spec
        .targets
        .iter()
        .map(|t| Candidate {
            target: t,
            handle: &table.providers[&t.provider],
        })
        .collect();
    let ask = Ask {
        pace: switchyard::routing::Pace::PerToken,
        decay: Duration::from_secs(10),
        input_tokens: 100,
        output_tokens: 0,
    };
    let rounds = 200_000;
    for name in STRATEGIES {
        let strategy = switchyard::config::Strategy::parse(name).unwrap();
        let start = Instant::now();
        let mut sum = 0usize;
        for _ in 0..rounds {
            sum += order(strategy, &cands, &ask, &table.prices)[0];
        }
        std::hint::black_box(sum);
        println!(
            "{name:<14} {:>7.0} ns per call",
            start.elapsed().as_nanos() as f64 / rounds as f64
        );
    }
}

async fn hot_path(client: &reqwest::Client, n: usize) {
    let (instant, _) = upstream(Duration::ZERO, 0).await;
    let mut routes = String::from("prices:\n  m: {input: 1, output: 2}\nroutes:\n");
    for s in STRATEGIES {
        routes.push_str(&format!(
            "  {s}:\n    strategy: {s}\n    targets: [{{provider: p0, model: m}}, {{provider: p1, model: m}}]\n"
        ));
    }
    let g = start(format!("{}{routes}", providers(&[&instant, &instant]))).await;
    let rounds = 20;
    let per_round = (n / rounds).max(50);
    println!(
        "\n== chat hot path per strategy: {} sequential requests each, {rounds} interleaved rounds, each starting with another strategy ==",
        per_round * rounds
    );
    let mut cpu = [Duration::ZERO; STRATEGIES.len()];
    let mut wall: Vec<Vec<Duration>> = vec![Vec::new(); STRATEGIES.len()];
    run(client, &g.url, "failover", 200, 1).await; // warm-up
    for round in 0..rounds {
        // Each round starts with another strategy, so no one always goes first.
        for k in 0..STRATEGIES.len() {
            let i = (round + k) % STRATEGIES.len();
            let s = STRATEGIES[i];
            let before = cpu_time();
            let r = run(client, &g.url, s, per_round, 1).await;
            if let (Some(b), Some(a)) = (before, cpu_time()) {
                cpu[i] += a.saturating_sub(b);
            }
            wall[i].extend(r.into_iter().map(|(d, _)| d));
        }
    }
    let total = (per_round * rounds) as f64;
    let base_cpu = cpu[0].as_secs_f64() / total;
    let mut base_p50 = Duration::ZERO;
    for (i, s) in STRATEGIES.iter().enumerate() {
        wall[i].sort();
        let p50 = common::percentile(&wall[i], 0.5);
        if i == 0 {
            base_p50 = p50;
        }
        let cpu_per = cpu[i].as_secs_f64() / total;
        println!(
            "{s:<14} CPU/request={:>6.1}µs ({:.3}x failover)  p50={:>7.1?} ({:.3}x failover)",
            cpu_per * 1e6,
            cpu_per / base_cpu.max(f64::MIN_POSITIVE),
            p50,
            p50.as_secs_f64() / base_p50.as_secs_f64().max(f64::MIN_POSITIVE)
        );
    }
    g.shutdown.cancel();
    g.gw.wait().await;
}

#[tokio::main]
async fn main() {
    let n = common::requests();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    hedging(&client, n).await;
    split(&client, n).await;
    ordering_cost();
    hot_path(&client, n).await;
}
