//! Switchyard side by side with peer Rust gateways (agentgateway, AISIX)
//! and with nginx: the same fixed-answer upstream, the same load, each
//! proxy pinned to core 0 in turn (the upstream, wrk and the stream clients
//! on core 1), in rounds, each row the median of the rounds.
//!
//! Run: `AGENTGATEWAY_BIN=/path/to/agentgateway AISIX_BIN=/path/to/aisix
//! cargo bench --bench peers` (either or both; `BENCH_SECS`, default 5,
//! per series; `BENCH_ROUNDS`, default 3). The peers' binaries are not
//! shipped: `bench/agentgateway-build.sh` and `bench/aisix-build.sh` build
//! them offline (docs/benchmarks.md, "Side by side with agentgateway and
//! AISIX"). Without either the bench says that it skipped and why, and
//! stops.
//!
//! Each proxy runs as its makers ship it, with one worker thread (the core
//! it is pinned to) and an access line per request written to a file:
//! switchyard on a policy with one provider per upstream path; agentgateway
//! in its `llm` mode with one model per upstream path (`hostOverride` and
//! `pathPrefix`, `maxBufferSize` raised to 64 MiB: its 2 MiB default
//! refuses the 2.9 MB embeddings answer); AISIX from a resources file with
//! one provider key and one model per upstream path and the one client key
//! it needs (it has no anonymous mode), its other settings its defaults
//! (thread per core: one worker under the pin); nginx as in the `proxy`
//! bench. Every request carries `Authorization: Bearer` with that client
//! key, as the SDKs send one, whichever proxy it goes to.
//! Rows: CPU per 1 KB chat request at c=64; latency added at c=1;
//! throughput at c=16 and c=512; one 2,048-input embeddings request at
//! c=1; 500-chunk streams back to back (4 x 64) and 5 ms apart (48); RSS
//! idle and after the load. Everything runs on 127.0.0.1.

use std::path::Path;
use std::process::{Command, Stdio};

#[path = "proxy_kit.rs"]
#[allow(dead_code)]
mod kit;

use kit::{
    GATEWAY_CORE as PROXY_CORE, LOAD_CORE, Proc, Wrk, load, ms, rounds, rss_bytes, secs, wrk,
};

/// One proxy under test and where it takes each kind of request.
struct Proxy {
    name: &'static str,
    proc: Proc,
    chat: String,
    emb: String,
    /// Where the back-to-back (`sse-fast`) and the slow (`sse-slow`)
    /// streams go.
    fast: String,
    slow: String,
}

/// What one round measured for one proxy.
#[derive(Clone, Default)]
struct Figures {
    chat_cpu_us: f64,
    chat_rps: f64,
    c1: Wrk,
    c16_rps: f64,
    c512_rps: f64,
    emb: Wrk,
    emb_cpu_ms: f64,
    fast_ms: f64,
    slow_ms: f64,
    bad: u64,
}

/// `bin` pinned to `core`, in `dir`, with `env`, `args` and then the path
/// of `config` written to `dir/{name}.yaml` (the last of `args` is the
/// flag that takes it), its stdout and stderr to `dir/{name}.log`;
/// returned once it listens on `port`.
fn start(
    bin: &Path,
    name: &str,
    config: &str,
    args: &[&str],
    env: (&str, &str),
    dir: &Path,
    (port, core): (u16, usize),
) -> Proc {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, config).unwrap();
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new("taskset");
    // AISIX reads every AISIX_* variable as a setting and refuses unknown
    // ones: this bench's own AISIX_BIN must not reach it.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AISIX_") {
            cmd.env_remove(name);
        }
    }
    let child = cmd
        .args(["-c", &core.to_string()])
        .arg(bin)
        .args(args)
        .arg(&path)
        .env(env.0, env.1)
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    Proc::listening(child, port, &log_path)
}

/// agentgateway in its `llm` mode in front of `up`, pinned to `core`.
fn agentgateway(bin: &Path, dir: &Path, up: &str, core: usize) -> Proc {
    let port = kit::free_port();
    let host = up.trim_start_matches("http://");
    let models: String = PATHS
        .iter()
        .map(|name| {
            format!(
                "  - name: {name}\n    provider: openAI\n    params:\n      hostOverride: {host}\n      \
                 pathPrefix: /{name}/v1\n      apiKey: sk-bench\n"
            )
        })
        .collect();
    let config = format!(
        "config:\n  adminAddr: 127.0.0.1:{}\n  statsAddr: 127.0.0.1:{}\n  readinessAddr: 127.0.0.1:{}\n\
         frontendPolicies:\n  http:\n    maxBufferSize: 67108864\n\
         llm:\n  port: {port}\n  models:\n{models}",
        kit::free_port(),
        kit::free_port(),
        kit::free_port(),
    );
    start(
        bin,
        "agentgateway",
        &config,
        &["-f"],
        ("WORKER_THREADS", "1"),
        dir,
        (port, core),
    )
}

/// The client key AISIX is given, which every request carries.
const CLIENT_KEY: &str = "sk-bench-client";

/// The upstream paths, each one model (or provider) in every proxy.
const PATHS: [&str; 4] = ["chat", "emb", "sse-fast", "sse-slow"];

/// AISIX (`aisix --config`) in front of `up`, pinned to `core`: a resources
/// file with one provider key and one model per upstream path (and one for
/// the Anthropic path) and the one client key; its admin and metrics
/// listeners on free local ports.
fn aisix(bin: &Path, dir: &Path, up: &str, core: usize) -> Proc {
    let port = kit::free_port();
    let mut res = String::from("_format_version: \"1\"\nprovider_keys:\n");
    for name in PATHS {
        res += &format!(
            "  - display_name: {name}-key\n    provider: openai\n    adapter: openai\n    \
             api_base: \"{up}/{name}/v1\"\n    api_key: sk-bench\n"
        );
    }
    res += &format!(
        "  - display_name: claude-key\n    provider: anthropic\n    api_base: \"{up}/anthropic\"\n    \
         api_key: sk-bench\nmodels:\n  - display_name: claude-bench\n    provider: anthropic\n    \
         model_name: claude-bench\n    provider_key: claude-key\n"
    );
    for name in PATHS {
        res += &format!(
            "  - display_name: {name}\n    provider: openai\n    model_name: {name}\n    \
             provider_key: {name}-key\n"
        );
    }
    res += "api_keys:\n  - display_name: bench\n    key_env: BENCH_AISIX_KEY\n    \
            allowed_models: [\"*\"]\n";
    let resources = dir.join("resources.yaml");
    std::fs::write(&resources, res).unwrap();
    let config = format!(
        "resources_file: \"{}\"\nproxy:\n  addr: \"127.0.0.1:{port}\"\nadmin:\n  \
         addr: \"127.0.0.1:{}\"\n  admin_keys: [\"bench-admin\"]\nobservability:\n  \
         metrics:\n    prometheus:\n      addr: \"127.0.0.1:{}\"\n",
        resources.display(),
        kit::free_port(),
        kit::free_port(),
    );
    start(
        bin,
        "aisix",
        &config,
        &["--config"],
        ("BENCH_AISIX_KEY", CLIENT_KEY),
        dir,
        (port, core),
    )
}

/// litellm-rust (`lite serve`) in front of `up`'s Anthropic path, pinned
/// to `core`, one worker thread, its log to a file.
fn litellm_rust(bin: &Path, dir: &Path, up: &str, core: usize) -> Proc {
    let port = kit::free_port();
    let config = format!(
        "model_list:\n  - model_name: claude-bench\n    litellm_params:\n      \
         model: anthropic/claude-bench\n      api_key: sk-bench\n      api_base: {up}/anthropic\n"
    );
    let port_arg = port.to_string();
    start(
        bin,
        "litellm-rust",
        &config,
        &[
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port_arg,
            "--config",
        ],
        ("TOKIO_WORKER_THREADS", "1"),
        dir,
        (port, core),
    )
}

/// The Messages API (1 KB request, Anthropic's shape) through nginx,
/// switchyard and the peers that serve it (litellm-rust serves Messages and
/// Responses only; AISIX passes Messages to an Anthropic upstream as is):
/// CPU per request and requests per second at c=64, latency added at c=1.
fn messages_series(targets: &[(&str, u32, String)], direct: &str, body: &Path) {
    let mut rows: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); targets.len()];
    let mut direct50 = Vec::new();
    for (_, _, url) in targets {
        wrk(url, 64, 1, body, false, LOAD_CORE);
    }
    for _ in 0..rounds() {
        direct50.push(ms(wrk(direct, 1, secs(), body, false, LOAD_CORE).p50));
        for (i, (name, pid, url)) in targets.iter().enumerate() {
            let (w, cpu) = load(*pid, url, 64, secs(), body, false);
            let (w1, _) = load(*pid, url, 1, secs(), body, false);
            assert_eq!(w.bad + w1.bad, 0, "{name} refused a Messages request");
            rows[i].push((cpu * 1e6, w.rps, ms(w1.p50)));
        }
    }
    let d50 = median(&direct50, |d| *d);
    println!(
        "\nMessages API, 1 KB request (median of {} rounds)  CPU/req c=64   req/s c=64   added p50 c=1",
        rounds()
    );
    for (i, (name, _, _)) in targets.iter().enumerate() {
        println!(
            "{:<48} {:>10.1} us {:>12.0} {:>11.3} ms",
            name,
            median(&rows[i], |r| r.0),
            median(&rows[i], |r| r.1),
            median(&rows[i], |r| r.2) - d50
        );
    }
}

fn switchyard_policy(up: &str) -> String {
    let mut p = String::from("providers:\n");
    for name in PATHS {
        let batch = if name == "emb" {
            ", max_batch_inputs: 4096"
        } else {
            ""
        };
        p += &format!("  {name}: {{ kind: openai, base_url: {up}/{name}/v1{batch} }}\n");
    }
    p += &format!(
        "  claude: {{ kind: anthropic, base_url: {up}/anthropic, api_key_env: BENCH_UPSTREAM_KEY }}\n"
    );
    p += "routes:\n";
    for name in PATHS {
        p += &format!("  {name}: {{ targets: [{{provider: {name}}}] }}\n");
    }
    p + "  claude-bench: { targets: [{provider: claude}] }\n"
}

/// One round of every series through `p`.
fn round(rt: &tokio::runtime::Runtime, p: &Proxy, chat: &Path, emb: &Path) -> Figures {
    let pid = p.proc.pid();
    let (w64, cpu) = load(pid, &p.chat, 64, secs(), chat, false);
    let (c1, _) = load(pid, &p.chat, 1, secs(), chat, false);
    let (c16, _) = load(pid, &p.chat, 16, secs(), chat, false);
    let (c512, _) = load(pid, &p.chat, 512, secs(), chat, false);
    let (e, ecpu) = load(pid, &p.emb, 1, secs(), emb, false);
    let (fast, slow) = rt.block_on(async {
        let mut fast = 0.0;
        for _ in 0..4 {
            fast += kit::streams(pid, &p.fast, "sse-fast", 64).await;
        }
        (fast / 4.0, kit::streams(pid, &p.slow, "sse-slow", 48).await)
    });
    Figures {
        chat_cpu_us: cpu * 1e6,
        chat_rps: w64.rps,
        bad: w64.bad + c1.bad + c16.bad + c512.bad + e.bad,
        c1,
        c16_rps: c16.rps,
        c512_rps: c512.rps,
        emb: e,
        emb_cpu_ms: ecpu * 1e3,
        fast_ms: fast * 1e3,
        slow_ms: slow * 1e3,
    }
}

/// The resident memory of `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    rss_bytes(pid) as f64 / 1048576.0
}

/// The median of `f` over the rounds.
fn median<T>(rounds: &[T], f: impl Fn(&T) -> f64) -> f64 {
    let mut v: Vec<f64> = rounds.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let agw_bin = std::env::var_os("AGENTGATEWAY_BIN");
    let aisix_bin = std::env::var_os("AISIX_BIN");
    if agw_bin.is_none() && aisix_bin.is_none() {
        println!(
            "peers bench: skipped: neither AGENTGATEWAY_BIN nor AISIX_BIN is set (the paths of \
             an agentgateway and an AISIX binary; docs/benchmarks.md, \"Side by side with \
             agentgateway and AISIX\", builds both offline)"
        );
        return;
    }
    kit::send_bearer(CLIENT_KEY);
    let rt = kit::load_side();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (up, _) = rt.block_on(kit::upstream());
    let chat = d.join("chat.json");
    std::fs::write(&chat, kit::chat_body("chat", false)).unwrap();
    let emb = d.join("emb.json");
    let emb_body = kit::embeddings_body("emb");
    std::fs::write(&emb, &emb_body).unwrap();

    let mk = |name| {
        let p = d.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let ngx = kit::nginx(&mk("nginx"), &up, PROXY_CORE);
    let sy = kit::gateway(&mk("switchyard"), &switchyard_policy(&up), PROXY_CORE);
    let openai = |proc: Proc, name| Proxy {
        name,
        chat: format!("{}/v1/chat/completions", proc.base),
        emb: format!("{}/v1/embeddings", proc.base),
        fast: format!("{}/v1/chat/completions", proc.base),
        slow: format!("{}/v1/chat/completions", proc.base),
        proc,
    };
    let nginx = Proxy {
        name: "nginx",
        chat: format!("{}/v1/chat/completions", ngx.base),
        emb: format!("{}/emb/v1/embeddings", ngx.base),
        fast: format!("{}/sse-fast/v1/chat/completions", ngx.base),
        slow: format!("{}/sse-slow/v1/chat/completions", ngx.base),
        proc: ngx,
    };
    let mut proxies = vec![nginx, openai(sy, "switchyard")];
    if let Some(bin) = &agw_bin {
        let agw = agentgateway(Path::new(bin), &mk("agentgateway"), &up, PROXY_CORE);
        proxies.push(openai(agw, "agentgateway"));
    }
    if let Some(bin) = &aisix_bin {
        proxies.push(openai(
            aisix(Path::new(bin), &mk("aisix"), &up, PROXY_CORE),
            "aisix",
        ));
    }
    let idle: Vec<f64> = proxies.iter().map(|p| rss_mib(p.proc.pid())).collect();
    println!(
        "peers bench: each proxy on core {PROXY_CORE}, load and upstream on core {LOAD_CORE}; \
         {}s per series, {} rounds",
        secs(),
        rounds()
    );
    let client = reqwest::Client::new();
    for p in &proxies {
        // Warm-up, and a check that each answers every kind of request,
        // the embeddings one with all 2,048 vectors.
        wrk(&p.chat, 64, 1, &chat, false, LOAD_CORE);
        let e = wrk(&p.emb, 1, 1, &emb, false, LOAD_CORE);
        assert_eq!(e.bad, 0, "{} refused the embeddings request", p.name);
        let (status, answer) = rt.block_on(kit::post_json(&client, &p.emb, emb_body.clone()));
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        let vectors = answer["data"].as_array().map_or(0, |d| {
            d.iter()
                .filter(|v| v["embedding"].as_array().is_some_and(|e| !e.is_empty()))
                .count()
        });
        assert!(
            status == 200 && vectors == 2048,
            "{}: embeddings answer {status} with {vectors} vectors",
            p.name
        );
    }
    let direct_chat = format!("{up}/chat/v1/chat/completions");
    let direct_emb = format!("{up}/emb/v1/embeddings");
    let mut direct = Vec::new();
    let mut figures: Vec<Vec<Figures>> = vec![Vec::new(); proxies.len()];
    for r in 0..rounds() {
        let c1 = wrk(&direct_chat, 1, secs(), &chat, false, LOAD_CORE);
        let e = wrk(&direct_emb, 1, secs(), &emb, false, LOAD_CORE);
        direct.push((ms(c1.p50), ms(c1.p99), ms(e.p50)));
        for (i, p) in proxies.iter().enumerate() {
            let f = round(&rt, p, &chat, &emb);
            println!(
                "round {}: {:>12}: c=64 {:.0} req/s {:.1} us CPU/req; c=1 p50 {:.3} ms; \
                 c=16 {:.0} -> c=512 {:.0} req/s; emb p50 {:.2} ms {:.2} ms CPU; \
                 SSE {:.2} / {:.1} ms CPU/stream; {} bad",
                r + 1,
                p.name,
                f.chat_rps,
                f.chat_cpu_us,
                ms(f.c1.p50),
                f.c16_rps,
                f.c512_rps,
                ms(f.emb.p50),
                f.emb_cpu_ms,
                f.fast_ms,
                f.slow_ms,
                f.bad
            );
            figures[i].push(f);
        }
    }
    let (d50, d99, demb) = (
        median(&direct, |d| d.0),
        median(&direct, |d| d.1),
        median(&direct, |d| d.2),
    );
    let per =
        |g: &dyn Fn(&[Figures]) -> f64| -> Vec<f64> { figures.iter().map(|f| g(f)).collect() };
    let rows: Vec<(&str, usize, Vec<f64>)> = vec![
        (
            "CPU per 1 KB chat request, c=64 (us)",
            1,
            per(&|f| median(f, |x| x.chat_cpu_us)),
        ),
        (
            "requests per second, c=64",
            0,
            per(&|f| median(f, |x| x.chat_rps)),
        ),
        (
            "added latency c=1, p50 (ms)",
            3,
            per(&|f| median(f, |x| ms(x.c1.p50)) - d50),
        ),
        (
            "added latency c=1, p99 (ms)",
            3,
            per(&|f| median(f, |x| ms(x.c1.p99)) - d99),
        ),
        (
            "requests per second, c=16",
            0,
            per(&|f| median(f, |x| x.c16_rps)),
        ),
        (
            "requests per second, c=512",
            0,
            per(&|f| median(f, |x| x.c512_rps)),
        ),
        (
            "2,048-input embeddings, p50 vs direct (x)",
            2,
            per(&|f| median(f, |x| ms(x.emb.p50)) / demb),
        ),
        (
            "2,048-input embeddings, CPU per request (ms)",
            2,
            per(&|f| median(f, |x| x.emb_cpu_ms)),
        ),
        (
            "SSE 500 chunks back to back, CPU per stream (ms)",
            2,
            per(&|f| median(f, |x| x.fast_ms)),
        ),
        (
            "SSE 500 chunks 5 ms apart, CPU per stream (ms)",
            1,
            per(&|f| median(f, |x| x.slow_ms)),
        ),
        ("RSS idle (MiB)", 1, idle),
    ];
    println!(
        "\ndirect upstream: c=1 p50 {d50:.3} ms, p99 {d99:.3} ms; embeddings p50 {demb:.2} ms"
    );
    let mut head = format!("{:<50}", "row (median round)");
    for p in &proxies {
        head += &format!(" {:>12}", p.name);
    }
    for p in &proxies[2..] {
        head += &format!(" {:>18}", format!("sy / {}", p.name));
    }
    println!("{head}");
    for (name, digits, v) in &rows {
        let mut line = format!("{name:<50}");
        for x in v {
            line += &format!(" {x:>12.digits$}");
        }
        for x in &v[2..] {
            line += &format!(" {:>17.2}x", v[1] / x);
        }
        println!("{line}");
    }
    let after: Vec<String> = proxies
        .iter()
        .map(|p| format!("{} {:.1} MiB", p.name, rss_mib(p.proc.pid())))
        .collect();
    println!("RSS after the load: {}", after.join(", "));
    let bad: Vec<String> = (0..proxies.len())
        .map(|i| {
            format!(
                "{} {}",
                proxies[i].name,
                figures[i].iter().map(|f| f.bad).sum::<u64>()
            )
        })
        .collect();
    println!("bad answers (non-2xx or socket errors): {}", bad.join(", "));

    let lite_bin = std::env::var_os("LITELLM_RUST_BIN");
    if lite_bin.is_none() {
        println!(
            "Messages series: litellm-rust skipped: LITELLM_RUST_BIN is not set (the path of a \
             litellm-rust binary, `cargo build --release` of LiteLLM-Labs/litellm-rust)"
        );
    }
    let mut targets = vec![
        (
            "nginx",
            proxies[0].proc.pid(),
            format!("{}/anthropic/v1/messages", proxies[0].proc.base),
        ),
        (
            "switchyard",
            proxies[1].proc.pid(),
            format!("{}/v1/messages", proxies[1].proc.base),
        ),
    ];
    let lite =
        lite_bin.map(|bin| litellm_rust(Path::new(&bin), &mk("litellm-rust"), &up, PROXY_CORE));
    if let Some(lite) = &lite {
        targets.push((
            "litellm-rust",
            lite.pid(),
            format!("{}/v1/messages", lite.base),
        ));
    }
    if let Some(p) = proxies.iter().find(|p| p.name == "aisix") {
        targets.push((
            "aisix",
            p.proc.pid(),
            format!("{}/v1/messages", p.proc.base),
        ));
    }
    if targets.len() == 2 {
        println!("Messages series: skipped: neither litellm-rust nor AISIX is measured");
        return;
    }
    let msgs = d.join("messages.json");
    std::fs::write(&msgs, kit::messages_body("claude-bench")).unwrap();
    messages_series(&targets, &format!("{up}/anthropic/v1/messages"), &msgs);
    let after: Vec<String> = targets[1..]
        .iter()
        .map(|(name, pid, _)| format!("{name} {:.1} MiB", rss_mib(*pid)))
        .collect();
    println!("RSS after the Messages load: {}", after.join(", "));
}
