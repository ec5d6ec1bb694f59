//! The training run of the profile-guided release build (`deploy/pgo-build.sh`):
//! drives a build of the gateway made with `-Cprofile-generate` through the
//! work it does in production, so that the final build lays out and inlines
//! for those paths. Not a benchmark: it prints what it sent and fails if an
//! answer is wrong, so a broken path cannot train the profile on errors.
//!
//! Run: `SWITCHYARD_BIN=<instrumented binary> cargo bench --profile dev
//! --bench pgo_train` (the script does). `PGO_TRAIN_SCALE` multiplies every
//! count (default 1: about 45k requests, well under a minute; CI runs 0.05
//! of it on the binary its tests built, so the paths it trains on stay
//! answered).
//!
//! The mix, most requests first (PGO weighs paths by how often they run):
//! 1 KB chat completions, embeddings of 1 and 16 inputs, cache hits of
//! both, chat streams, Messages (translated to chat completions) as JSON and
//! as streams, Responses translated for an `azure` target as JSON and as
//! streams, 2,048-input embeddings, a fanned-out batch, and refusals (bad
//! JSON, unknown models). Everything runs on 127.0.0.1: the gateway and
//! the fixed-answer upstream of the proxy bench.

use futures_util::StreamExt;
use tokio::time::Instant;

#[path = "proxy_kit.rs"]
#[allow(dead_code)]
mod kit;

/// The key the `azure` provider reads (any value: the upstream ignores it).
const AZURE_KEY_ENV: &str = "PGO_TRAIN_AZURE_KEY";

fn policy(up: &str) -> String {
    format!(
        "providers:\n\
         \x20 chat: {{ kind: openai, base_url: {up}/chat/v1 }}\n\
         \x20 emb: {{ kind: openai, base_url: {up}/emb/v1, max_batch_inputs: 4096 }}\n\
         \x20 fan: {{ kind: openai, base_url: {up}/fan/v1, max_batch_inputs: 64 }}\n\
         \x20 fast: {{ kind: openai, base_url: {up}/sse-fast/v1 }}\n\
         \x20 azure: {{ kind: azure, endpoint: {up}, api_key_env: {AZURE_KEY_ENV} }}\n\
         \x20 azure-sse: {{ kind: azure, endpoint: {up}/sse-fast, api_key_env: {AZURE_KEY_ENV} }}\n\
         routes:\n\
         \x20 chat: {{ targets: [{{provider: chat}}] }}\n\
         \x20 cached: {{ targets: [{{provider: chat}}], cache: {{ enabled: true, ttl: 10m }} }}\n\
         \x20 emb: {{ targets: [{{provider: emb}}] }}\n\
         \x20 emb-cached: {{ targets: [{{provider: emb}}], cache: {{ enabled: true, ttl: 10m }} }}\n\
         \x20 fan: {{ targets: [{{provider: fan}}], fanout: {{ max_concurrency: 32 }} }}\n\
         \x20 stream: {{ targets: [{{provider: fast}}] }}\n\
         \x20 azure: {{ targets: [{{provider: azure, model: gpt-4o}}] }}\n\
         \x20 azure-stream: {{ targets: [{{provider: azure-sse, model: gpt-4o}}] }}\n"
    )
}

fn messages(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "max_tokens": 256,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
        "tools": [{"name": "lookup", "description": "Look a word up",
                   "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}}}],
        "stream": stream,
    })
    .to_string()
}

fn responses(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "instructions": "You are terse.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello."}]}],
        "max_output_tokens": 256,
        "stream": stream,
    })
    .to_string()
}

fn embeddings(model: &str, n: usize, salt: usize) -> String {
    let input: Vec<String> = (0..n)
        .map(|i| format!("document {salt} part {i}"))
        .collect();
    serde_json::json!({"model": model, "input": input}).to_string()
}

/// One kind of request, sent `count` times, `conc` at once; each answer
/// must have `status` and, when given, contain `needle`.
struct Step {
    name: &'static str,
    path: &'static str,
    count: usize,
    conc: usize,
    status: u16,
    needle: Option<&'static str>,
    body: Box<dyn Fn(usize) -> String>,
}

async fn run(client: &reqwest::Client, base: &str, step: &Step) {
    let started = Instant::now();
    let url = format!("{base}{}", step.path);
    let bodies = (0..step.count).map(|i| (step.body)(i));
    let sent = futures_util::stream::iter(bodies)
        .map(|body| {
            let (client, url) = (client.clone(), url.clone());
            async move { kit::post_json(&client, &url, body).await }
        })
        .buffer_unordered(step.conc);
    futures_util::pin_mut!(sent);
    let mut n = 0;
    while let Some((status, text)) = sent.next().await {
        assert_eq!(status, step.status, "{}: {}", step.name, text);
        if let Some(needle) = step.needle {
            assert!(
                text.contains(needle),
                "{}: no {needle:?} in {text}",
                step.name
            );
        }
        n += 1;
    }
    println!(
        "{:<28} {n:>6} requests in {:>6.2} s",
        step.name,
        started.elapsed().as_secs_f64()
    );
}

/// The first core in this process's affinity (`Cpus_allowed_list`, such
/// as `0-1` or `2,5-7`); 0 when it cannot be read.
fn first_allowed_core() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|list| {
            let first = list.trim().split([',', '-']).next()?;
            first.parse().ok()
        })
        .unwrap_or(0)
}

fn main() {
    // SAFETY: set before any other thread starts; the gateway inherits it.
    unsafe { std::env::set_var(AZURE_KEY_ENV, "pgo-train") };
    assert!(
        std::env::var_os("SWITCHYARD_BIN").is_some(),
        "SWITCHYARD_BIN names the instrumented gateway (see deploy/pgo-build.sh)"
    );
    let scale: f64 = std::env::var("PGO_TRAIN_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (up, _) = rt.block_on(kit::upstream());
    // One core, as the proxy bench runs it: the first this process may use
    // (a container's cpuset need not hold core 0). The trainer floats.
    let gw = kit::gateway(dir.path(), &policy(&up), first_allowed_core());
    let client = reqwest::Client::new();
    let c = |n: usize| ((n as f64 * scale) as usize).max(1);
    let steps = [
        Step {
            name: "chat",
            path: "/v1/chat/completions",
            count: c(20_000),
            conc: 16,
            status: 200,
            needle: Some("\"usage\""),
            body: Box::new(|_| kit::chat_body("chat", false)),
        },
        Step {
            name: "embeddings, 1 input",
            path: "/v1/embeddings",
            count: c(6_000),
            conc: 16,
            status: 200,
            needle: Some("\"embedding\""),
            body: Box::new(|i| embeddings("emb", 1, i)),
        },
        Step {
            name: "embeddings, 16 inputs",
            path: "/v1/embeddings",
            count: c(3_000),
            conc: 16,
            status: 200,
            needle: Some("\"embedding\""),
            body: Box::new(|i| embeddings("emb", 16, i)),
        },
        Step {
            name: "chat, cache hits",
            path: "/v1/chat/completions",
            count: c(6_000),
            conc: 16,
            status: 200,
            needle: Some("\"usage\""),
            body: Box::new(|_| kit::chat_body("cached", false)),
        },
        Step {
            name: "embeddings, cache hits",
            path: "/v1/embeddings",
            count: c(3_000),
            conc: 16,
            status: 200,
            needle: Some("\"embedding\""),
            body: Box::new(|i| embeddings("emb-cached", 16, i % 50)),
        },
        Step {
            name: "messages",
            path: "/v1/messages",
            count: c(3_000),
            conc: 16,
            status: 200,
            needle: Some("\"end_turn\""),
            body: Box::new(|_| messages("chat", false)),
        },
        Step {
            name: "responses (azure)",
            path: "/v1/responses",
            count: c(3_000),
            conc: 16,
            status: 200,
            needle: Some("\"completed\""),
            body: Box::new(|_| responses("azure", false)),
        },
        Step {
            name: "chat streams",
            path: "/v1/chat/completions",
            count: c(300),
            conc: 16,
            status: 200,
            needle: Some("data: [DONE]"),
            body: Box::new(|_| kit::chat_body("stream", true)),
        },
        Step {
            name: "messages streams",
            path: "/v1/messages",
            count: c(100),
            conc: 16,
            status: 200,
            needle: Some("message_stop"),
            body: Box::new(|_| messages("stream", true)),
        },
        Step {
            name: "responses streams (azure)",
            path: "/v1/responses",
            count: c(100),
            conc: 16,
            status: 200,
            needle: Some("response.completed"),
            body: Box::new(|_| responses("azure-stream", true)),
        },
        Step {
            name: "embeddings, 2,048 inputs",
            path: "/v1/embeddings",
            count: c(40),
            conc: 2,
            status: 200,
            needle: Some("\"index\":2047"),
            body: Box::new(|i| embeddings("emb", 2048, i)),
        },
        Step {
            name: "embeddings, fanned out",
            path: "/v1/embeddings",
            count: c(20),
            conc: 2,
            status: 200,
            needle: Some("\"index\":2047"),
            body: Box::new(|i| embeddings("fan", 2048, i)),
        },
        Step {
            name: "refused: bad JSON",
            path: "/v1/chat/completions",
            count: c(300),
            conc: 4,
            status: 400,
            needle: Some("\"error\""),
            body: Box::new(|_| "{\"model\":".to_string()),
        },
        Step {
            name: "refused: unknown model",
            path: "/v1/chat/completions",
            count: c(300),
            conc: 4,
            status: 404,
            needle: Some("\"error\""),
            body: Box::new(|_| kit::chat_body("no-such-route", false)),
        },
    ];
    rt.block_on(async {
        for step in &steps {
            run(&client, &gw.base, step).await;
        }
    });
    // Dropping the gateway stops it with SIGTERM: it drains and exits,
    // which is when the instrumented build writes its profile.
    drop(gw);
    println!(
        "pgo training: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
