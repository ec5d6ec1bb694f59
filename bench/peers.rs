//! Switchyard side by side with a peer Rust gateway, agentgateway, and with
//! nginx: the same fixed-answer upstream, the same load, each proxy pinned
//! to core 0 in turn (the upstream, wrk and the stream clients on core 1),
//! in rounds, each row the median of the rounds.
//!
//! Run: `AGENTGATEWAY_BIN=/path/to/agentgateway cargo bench --bench peers`
//! (`BENCH_SECS`, default 5, per series; `BENCH_ROUNDS`, default 3). The
//! agentgateway binary is not shipped: `bench/agentgateway-build.sh` builds
//! one offline (docs/benchmarks.md, "Side by side with agentgateway").
//! Without it the bench says that it skipped and why, and stops.
//!
//! Each proxy runs as its makers ship it, with one worker thread (the core
//! it is pinned to) and an access line per request written to a file:
//! switchyard on a policy with one provider per upstream path; agentgateway
//! in its `llm` mode with one model per upstream path (`hostOverride` and
//! `pathPrefix`, `maxBufferSize` raised to 64 MiB: its 2 MiB default
//! refuses the 2.9 MB embeddings answer); nginx as in the `proxy` bench.
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

/// `bin` with `args` and `env`, pinned to `core`, in `dir`, its stdout and
/// stderr to `dir/log`; returned once it listens on `port`.
fn start(
    bin: &Path,
    args: &[&std::ffi::OsStr],
    env: (&str, &str),
    dir: &Path,
    log: &str,
    port: u16,
    core: usize,
) -> Proc {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    let child = Command::new("taskset")
        .args(["-c", &core.to_string()])
        .arg(bin)
        .args(args)
        .env(env.0, env.1)
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    kit::wait_listening(port);
    Proc {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// agentgateway in its `llm` mode in front of `up`, pinned to `core`.
fn agentgateway(bin: &Path, dir: &Path, up: &str, core: usize) -> Proc {
    let port = kit::free_port();
    let host = up.trim_start_matches("http://");
    let model = |name: &str, path: &str| {
        format!(
            "  - name: {name}\n    provider: openAI\n    params:\n      hostOverride: {host}\n      \
             pathPrefix: /{path}/v1\n      apiKey: sk-bench\n"
        )
    };
    let config = format!(
        "config:\n  adminAddr: 127.0.0.1:{}\n  statsAddr: 127.0.0.1:{}\n  readinessAddr: 127.0.0.1:{}\n\
         frontendPolicies:\n  http:\n    maxBufferSize: 67108864\n\
         llm:\n  port: {port}\n  models:\n{}{}{}{}",
        kit::free_port(),
        kit::free_port(),
        kit::free_port(),
        model("chat", "chat"),
        model("emb", "emb"),
        model("sse-fast", "sse-fast"),
        model("sse-slow", "sse-slow"),
    );
    let path = dir.join("agentgateway.yaml");
    std::fs::write(&path, config).unwrap();
    start(
        bin,
        &["-f".as_ref(), path.as_os_str()],
        ("WORKER_THREADS", "1"),
        dir,
        "agentgateway.log",
        port,
        core,
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
    let path = dir.join("litellm-rust.yaml");
    std::fs::write(&path, config).unwrap();
    let port_arg = port.to_string();
    let all: [&std::ffi::OsStr; 7] = [
        "serve".as_ref(),
        "--config".as_ref(),
        path.as_os_str(),
        "--host".as_ref(),
        "127.0.0.1".as_ref(),
        "--port".as_ref(),
        port_arg.as_ref(),
    ];
    start(
        bin,
        &all,
        ("TOKIO_WORKER_THREADS", "1"),
        dir,
        "litellm-rust.log",
        port,
        core,
    )
}

/// The Messages API (1 KB request, Anthropic's shape) through nginx,
/// switchyard and litellm-rust, which serves Messages and Responses only:
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
    for name in ["chat", "emb", "sse-fast", "sse-slow"] {
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
    for name in ["chat", "emb", "sse-fast", "sse-slow"] {
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

/// The median of `f` over the rounds.
fn median<T>(rounds: &[T], f: impl Fn(&T) -> f64) -> f64 {
    let mut v: Vec<f64> = rounds.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(agw_bin) = std::env::var_os("AGENTGATEWAY_BIN") else {
        println!(
            "peers bench: skipped: AGENTGATEWAY_BIN is not set (the path of an agentgateway \
             binary; docs/benchmarks.md, \"Side by side with agentgateway\", builds one offline)"
        );
        return;
    };
    let rt = kit::load_side();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (up, _) = rt.block_on(kit::upstream());
    let chat = d.join("chat.json");
    std::fs::write(&chat, kit::chat_body("chat", false)).unwrap();
    let emb = d.join("emb.json");
    std::fs::write(&emb, kit::embeddings_body("emb")).unwrap();

    let mk = |name| {
        let p = d.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let ngx = kit::nginx(&mk("nginx"), &up, PROXY_CORE);
    let sy = kit::gateway(&mk("switchyard"), &switchyard_policy(&up), PROXY_CORE);
    let agw = agentgateway(Path::new(&agw_bin), &mk("agentgateway"), &up, PROXY_CORE);
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
    let proxies = [nginx, openai(sy, "switchyard"), openai(agw, "agentgateway")];
    let idle: Vec<u64> = proxies.iter().map(|p| rss_bytes(p.proc.pid())).collect();
    println!(
        "peers bench: each proxy on core {PROXY_CORE}, load and upstream on core {LOAD_CORE}; \
         {}s per series, {} rounds",
        secs(),
        rounds()
    );
    for p in &proxies {
        // Warm-up, and a check that each answers every kind of request.
        wrk(&p.chat, 64, 1, &chat, false, LOAD_CORE);
        let e = wrk(&p.emb, 1, 1, &emb, false, LOAD_CORE);
        assert_eq!(e.bad, 0, "{} refused the embeddings request", p.name);
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
        (
            "RSS idle (MiB)",
            1,
            idle.iter().map(|&b| b as f64 / 1048576.0).collect(),
        ),
    ];
    println!(
        "\ndirect upstream: c=1 p50 {d50:.3} ms, p99 {d99:.3} ms; embeddings p50 {demb:.2} ms"
    );
    println!(
        "{:<50} {:>12} {:>12} {:>12} {:>10}",
        "row (median round)", "nginx", "switchyard", "agentgateway", "sy / agw"
    );
    for (name, digits, v) in &rows {
        let show = |x: f64| format!("{x:.digits$}");
        println!(
            "{:<50} {:>12} {:>12} {:>12} {:>9.2}x",
            name,
            show(v[0]),
            show(v[1]),
            show(v[2]),
            v[1] / v[2]
        );
    }
    let after: Vec<String> = proxies
        .iter()
        .map(|p| {
            format!(
                "{} {:.1} MiB",
                p.name,
                rss_bytes(p.proc.pid()) as f64 / 1048576.0
            )
        })
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

    let Some(lite_bin) = std::env::var_os("LITELLM_RUST_BIN") else {
        println!(
            "Messages series: skipped: LITELLM_RUST_BIN is not set (the path of a litellm-rust \
             binary, `cargo build --release` of LiteLLM-Labs/litellm-rust)"
        );
        return;
    };
    let lite = litellm_rust(Path::new(&lite_bin), &mk("litellm-rust"), &up, PROXY_CORE);
    let msgs = d.join("messages.json");
    std::fs::write(&msgs, kit::messages_body("claude-bench")).unwrap();
    let targets = [
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
        (
            "litellm-rust",
            lite.pid(),
            format!("{}/v1/messages", lite.base),
        ),
    ];
    messages_series(&targets, &format!("{up}/anthropic/v1/messages"), &msgs);
    println!(
        "RSS after the Messages load: switchyard {:.1} MiB, litellm-rust {:.1} MiB",
        rss_bytes(proxies[1].proc.pid()) as f64 / 1048576.0,
        rss_bytes(lite.pid()) as f64 / 1048576.0
    );
}
