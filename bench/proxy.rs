//! Benchmark: every row of the performance table (issue 18) in one run,
//! on loopback, against nginx as a reverse proxy and against the upstream
//! called directly.
//!
//! Run: `cargo bench --bench proxy` (about 5 minutes on 2 cores; `BENCH_SECS`
//! sets the seconds of each wrk series, default 5; `BENCH_ROUNDS` how many
//! times each paired series runs, default 3: the baseline and the gateway
//! alternate, and a row reports its median round, every round's result
//! beside it; `SWITCHYARD_BIN` measures
//! another build of the gateway binary, such as the image's profile-guided
//! one, `target/pgo/switchyard` from `deploy/pgo-build.sh`; `BENCH_ONLY=ageing` runs the ageing
//! rows alone, as the allocator comparison did). nginx and wrk are installed with
//! apt-get when missing. See docs/benchmarks.md for what each row means.
//!
//! Layout: the gateway (the real binary, its own process, default logging
//! to a file) and nginx (one worker) are pinned to core 0; this process
//! (the fixed-answer upstream, the stream clients) and wrk to core 1. CPU
//! per request is the pinned process's user + system time over the run
//! (from /proc) divided by the requests wrk completed; every ratio compares
//! figures measured in the same run. wrk sends the `Accept-Encoding: gzip,
//! deflate` of the Python SDKs, as clients do. The c=1 row also runs a
//! second gateway started with `--busy-poll 0`, alternating with the
//! first, and prints its figures beside the row's. The ageing row runs a
//! control gateway beside the one it ages (the same build and policy, never
//! filled), loaded at the same time in every round, fresh and aged, and
//! reports the aged gateway's CPU over the control's against the same
//! ratio before the fill. With `BENCH_ATTACH` set (a command
//! with `{pid}`, like `perf record -e cpu-clock --call-graph dwarf -o FILE
//! -p {pid}`), that command watches the gateway through its series of 1 KB
//! chat requests at c=64 (with `BENCH_ATTACH_SERIES=sse-fast`: 20 times 64 streams
//! of 500 chunks back to back; `sse-slow`: 48 streams of 500 chunks 5 ms
//! apart; `nginx-sse-fast`, `nginx-sse-slow`: the same through nginx,
//! nginx watched; with `c1`: 1 KB chat requests at c=1; with
//! `c16` or `c512` and `BENCH_ONLY=conns`: 1 KB chat requests at that
//! many connections; with
//! `fresh` or `aged` and `BENCH_ONLY=ageing`: the ageing row's two series,
//! the bench going on to the end; with
//! `big` or `emb`, and `BENCH_ONLY` naming the same row: 1 MB chat bodies
//! or 2,048-input embedding requests at c=1), and the bench
//! stops there: how the
//! profiles in docs/benchmarks.md were taken.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

#[path = "proxy_kit.rs"]
mod kit;

use kit::{GATEWAY_CORE, LOAD_CORE, Proc, load, load_split, ms, rounds, rss_bytes, secs, wrk};

const MIB: f64 = 1024.0 * 1024.0;

/// One row of the result table.
struct Row {
    name: &'static str,
    figures: String,
    result: String,
    target: &'static str,
}

/// Runs `round` [`rounds`] times (each round measures the baseline and
/// the gateway one after the other, so a drift of the machine meets both)
/// and keeps the round whose `key` (the row's result) is the median, with
/// every round's key in run order.
fn median_round<T>(round: impl FnMut() -> T, key: impl Fn(&T) -> f64) -> (T, Vec<f64>) {
    median_of(rounds(), round, key)
}

/// [`median_round`] over `n` rounds.
fn median_of<T>(n: usize, mut round: impl FnMut() -> T, key: impl Fn(&T) -> f64) -> (T, Vec<f64>) {
    let mut all: Vec<T> = (0..n).map(|_| round()).collect();
    let keys: Vec<f64> = all.iter().map(&key).collect();
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    (all.swap_remove(order[order.len() / 2]), keys)
}

/// Every round's result, for the figures: `rounds 1.9x 2.0x 2.1x`.
fn listed(keys: &[f64], unit: &str, digits: usize) -> String {
    let each: Vec<String> = keys.iter().map(|k| format!("{k:.digits$}{unit}")).collect();
    format!("rounds {}", each.join(" "))
}

/// `BENCH_ATTACH`'s command watching `pid` when `BENCH_ATTACH_SERIES`
/// (empty when unset: the 1 KB chat series at c=64) names `series`.
fn attach_for(series: &str, pid: u32) -> Option<kit::PerfRecord> {
    let named = std::env::var("BENCH_ATTACH_SERIES").unwrap_or_default();
    (named == series).then(|| kit::attach(pid)).flatten()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn policy(up: &str, conns_up: &str, extra: &str) -> String {
    format!(
        "providers:\n\
         \x20 chat: {{ kind: openai, base_url: {up}/chat/v1 }}\n\
         \x20 conns: {{ kind: openai, base_url: {conns_up}/chat/v1 }}\n\
         \x20 emb: {{ kind: openai, base_url: {up}/emb/v1, max_batch_inputs: 4096 }}\n\
         \x20 fan: {{ kind: openai, base_url: {up}/fan/v1, max_batch_inputs: 64 }}\n\
         \x20 slow: {{ kind: openai, base_url: {up}/sse-slow/v1 }}\n\
         \x20 fast: {{ kind: openai, base_url: {up}/sse-fast/v1 }}\n\
         routes:\n\
         \x20 chat: {{ targets: [{{provider: chat}}] }}\n\
         \x20 conns: {{ targets: [{{provider: conns}}] }}\n\
         \x20 emb: {{ targets: [{{provider: emb}}] }}\n\
         \x20 fan: {{ targets: [{{provider: fan}}], fanout: {{ max_concurrency: 32 }} }}\n\
         \x20 sse-slow: {{ targets: [{{provider: slow}}] }}\n\
         \x20 sse-fast: {{ targets: [{{provider: fast}}] }}\n\
         {extra}"
    )
}

/// `n` streams at once through the gateway; each must end with `[DONE]`
/// after every chunk. Returns the gateway's CPU seconds per stream.
async fn streams(gw: &Proc, model: &str, n: usize) -> f64 {
    let url = format!("{}/v1/chat/completions", gw.base);
    kit::streams(gw.pid(), &url, model, n).await
}

/// [`streams`] through nginx, to the upstream path `model` names.
async fn nginx_streams(ngx: &Proc, model: &str, n: usize) -> f64 {
    let url = format!("{}/{model}/v1/chat/completions", ngx.base);
    kit::streams(ngx.pid(), &url, model, n).await
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn main() {
    let rt = kit::load_side();
    let started = Instant::now();
    let secs = secs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (up, _) = rt.block_on(kit::upstream());
    let (conns_up, conns) = rt.block_on(kit::upstream());
    let chat = write(d, "chat.json", &kit::chat_body("chat", false));
    let chat_conns = write(d, "chat-conns.json", &kit::chat_body("conns", false));
    let emb_body = write(d, "emb.json", &kit::embeddings_body("emb"));
    let fan_body = write(d, "fan.json", &kit::embeddings_body("fan"));
    let big = format!(
        r#"{{"model":"chat","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "lorem ipsum dolor sit amet ".repeat(1024 * 1024 / 27)
    );
    let big_body = write(d, "big.json", &big);
    let mut rows = Vec::new();
    println!(
        "proxy bench: gateway and nginx on core {GATEWAY_CORE}; wrk, upstream and clients on core {LOAD_CORE}; {secs}s per series"
    );
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", loadavg.trim());

    // `BENCH_ONLY=chat,sse,...` runs only those series (chat, conns, emb,
    // big, sse, fan, ageing).
    let only = std::env::var("BENCH_ONLY").ok();
    let want = |series: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|s| s.trim() == series))
    };
    let gw = kit::gateway(&d.join("gw"), &policy(&up, &conns_up, ""), GATEWAY_CORE);
    let direct_url = format!("{up}/chat/v1/chat/completions");
    let gw_url = format!("{}/v1/chat/completions", gw.base);

    if want("chat") {
        // --- CPU per 1 KB chat request at c=64: nginx vs the gateway.
        let ngx_dir = d.join("nginx");
        std::fs::create_dir_all(&ngx_dir).unwrap();
        let ngx = kit::nginx(&ngx_dir, &up, GATEWAY_CORE);
        let ngx_url = format!("{}/v1/chat/completions", ngx.base);
        wrk(&ngx_url, 64, 1, &chat, false, LOAD_CORE); // warm-up
        wrk(&gw_url, 64, 1, &chat, false, LOAD_CORE);
        // Streams under BENCH_ATTACH: `sse-fast`, `sse-slow`, or either
        // through nginx (`nginx-sse-fast`, `nginx-sse-slow`, nginx watched).
        let named = std::env::var("BENCH_ATTACH_SERIES").unwrap_or_default();
        let (via_nginx, series) = match named.strip_prefix("nginx-") {
            Some(s) => (true, s),
            None => (false, named.as_str()),
        };
        // (n streams at once, times: the fast series lasts long enough
        // for a profile)
        if let Some((n, times)) = [("sse-fast", 64, 20), ("sse-slow", 48, 1)]
            .into_iter()
            .find_map(|(s, n, times)| (s == series).then_some((n, times)))
            && let Some(_attached) = kit::attach(if via_nginx { ngx.pid() } else { gw.pid() })
        {
            let cpu = rt.block_on(async {
                let mut cpu = 0.0;
                for _ in 0..times {
                    cpu += if via_nginx {
                        nginx_streams(&ngx, series, n).await
                    } else {
                        streams(&gw, series, n).await
                    };
                }
                cpu / f64::from(times)
            });
            println!(
                "{:.2} ms CPU/stream (under BENCH_ATTACH); only this series runs",
                cpu * 1e3
            );
            return;
        }
        if let Some(_attached) = attach_for("", gw.pid()) {
            let (gw64, gcpu) = load(gw.pid(), &gw_url, 64, secs, &chat, false);
            println!(
                "{:.0} req/s, {:.1} us CPU/req (under BENCH_ATTACH); only this series runs",
                gw64.rps,
                gcpu * 1e6
            );
            return;
        }
        // With each one's system (kernel) time: the sockets' work, which
        // a proxy cannot shed, and which grows when its peers sleep.
        let ((nw, ncpu, nsys, gw64, gcpu, gsys), chat_rounds) = median_round(
            || {
                let (nw, ncpu, nsys) = load_split(ngx.pid(), &ngx_url, 64, secs, &chat, false);
                let (gw64, gcpu, gsys) = load_split(gw.pid(), &gw_url, 64, secs, &chat, false);
                (nw, ncpu, nsys, gw64, gcpu, gsys)
            },
            |r| r.4 / r.1,
        );
        println!(
            "chat c=64  nginx: {:>8.0} req/s {:>6.1} us CPU/req ({:.1} system, {} bad) | switchyard: {:>8.0} req/s {:>6.1} us CPU/req ({:.1} system, {} bad)",
            nw.rps,
            ncpu * 1e6,
            nsys * 1e6,
            nw.bad,
            gw64.rps,
            gcpu * 1e6,
            gsys * 1e6,
            gw64.bad
        );
        rows.push(Row {
            name: "CPU per 1 KB chat request, c=64, vs nginx",
            figures: format!(
                "{:.1} us ({:.1} user) vs nginx {:.1} us ({:.1} user); {}",
                gcpu * 1e6,
                (gcpu - gsys) * 1e6,
                ncpu * 1e6,
                (ncpu - nsys) * 1e6,
                listed(&chat_rounds, "x", 2)
            ),
            result: format!("{:.2}x", gcpu / ncpu),
            target: "<= 2x",
        });

        // --- Added latency at c=1 (vs direct; nginx alongside).
        if let Some(_attached) = attach_for("c1", gw.pid()) {
            let (_, gw1cpu) = load(gw.pid(), &gw_url, 1, secs, &chat, false);
            println!(
                "{:.1} us CPU/req at c=1 (under BENCH_ATTACH); only this series runs",
                gw1cpu * 1e6
            );
            return;
        }
        // The same gateway with busy polling off, alongside (idle while
        // the others run): what `--busy-poll` does to this row.
        let still = kit::gateway_with(
            &d.join("gw-no-busy-poll"),
            &policy(&up, &conns_up, ""),
            GATEWAY_CORE,
            &["--busy-poll", "0"],
        );
        let still_url = format!("{}/v1/chat/completions", still.base);
        wrk(&still_url, 1, 1, &chat, false, LOAD_CORE); // warm-up
        let ((direct1, ngx1, gw1, gw1cpu, still1), c1_rounds) = median_round(
            || {
                let (direct1, _) = load(gw.pid(), &direct_url, 1, secs, &chat, false);
                let (ngx1, _) = load(ngx.pid(), &ngx_url, 1, secs, &chat, false);
                let (gw1, gw1cpu) = load(gw.pid(), &gw_url, 1, secs, &chat, false);
                let (still1, _) = load(still.pid(), &still_url, 1, secs, &chat, false);
                (direct1, ngx1, gw1, gw1cpu, still1)
            },
            |r| ms(r.2.p50) - ms(r.0.p50),
        );
        drop(still);
        println!(
            "chat c=1   direct p50 {:.0} us p99 {:.0} us | nginx p50 {:.0} us p99 {:.0} us | switchyard p50 {:.0} us p99 {:.0} us ({:.1} us CPU/req) | with --busy-poll 0: p50 {:.0} us p99 {:.0} us",
            us(direct1.p50),
            us(direct1.p99),
            us(ngx1.p50),
            us(ngx1.p99),
            us(gw1.p50),
            us(gw1.p99),
            gw1cpu * 1e6,
            us(still1.p50),
            us(still1.p99),
        );
        rows.push(Row {
            name: "added latency at c=1, p50 / p99",
            figures: format!(
                "nginx +{:.0} / +{:.0} us; --busy-poll 0 +{:.0} / +{:.0} us; p50 {}",
                us(ngx1.p50) - us(direct1.p50),
                us(ngx1.p99) - us(direct1.p99),
                us(still1.p50) - us(direct1.p50),
                us(still1.p99) - us(direct1.p99),
                listed(&c1_rounds, "", 2)
            ),
            result: format!(
                "+{:.2} / +{:.2} ms",
                (ms(gw1.p50) - ms(direct1.p50)),
                (ms(gw1.p99) - ms(direct1.p99))
            ),
            target: "<= +0.10 / +0.30 ms",
        });
        drop(ngx);
    }

    if want("conns") {
        // --- Throughput from 16 to 512 connections, and the upstream
        // connections held for 512 clients (a separate upstream).
        let conns_url = format!("{}/v1/chat/completions", gw.base);
        wrk(&conns_url, 16, 1, &chat_conns, false, LOAD_CORE);
        for (series, conns) in [("c16", 16), ("c512", 512)] {
            if let Some(_attached) = attach_for(series, gw.pid()) {
                let (w, cpu) = load(gw.pid(), &conns_url, conns, secs, &chat_conns, false);
                println!(
                    "{} requests, {:.1} us CPU/req at c={conns} (under BENCH_ATTACH); only this series runs",
                    w.requests,
                    cpu * 1e6
                );
                return;
            }
        }
        // The most connections any round's 512 clients held.
        let mut peak = 0;
        let ((c16, c16cpu, c512, c512cpu), conns_rounds) = median_round(
            || {
                let (c16, c16cpu) = load(gw.pid(), &conns_url, 16, secs, &chat_conns, false);
                conns.reset_peak();
                let (c512, c512cpu) = load(gw.pid(), &conns_url, 512, secs, &chat_conns, false);
                peak = peak.max(conns.peak.load(Ordering::SeqCst));
                (c16, c16cpu, c512, c512cpu)
            },
            |r| (r.2.rps / r.0.rps - 1.0) * 100.0,
        );
        // nginx over the same loads, for how much of the fall the machine
        // itself (wrk and the upstream on one core) accounts for.
        let ngx_dir = d.join("nginx-conns");
        std::fs::create_dir_all(&ngx_dir).unwrap();
        let ngx = kit::nginx(&ngx_dir, &up, GATEWAY_CORE);
        let ngx_url = format!("{}/v1/chat/completions", ngx.base);
        wrk(&ngx_url, 16, 1, &chat, false, LOAD_CORE);
        let (n16, _) = load(ngx.pid(), &ngx_url, 16, secs, &chat, false);
        let (n512, _) = load(ngx.pid(), &ngx_url, 512, secs, &chat, false);
        drop(ngx);
        println!(
            "chat c=16 {:.0} req/s {:.1} us CPU/req ({} bad), c=512 {:.0} req/s {:.1} us CPU/req ({} bad, p99 {:.1} ms); upstream connections: peak open {peak}, opened in all {}; nginx c=16 {:.0} req/s, c=512 {:.0} req/s",
            c16.rps,
            c16cpu * 1e6,
            c16.bad,
            c512.rps,
            c512cpu * 1e6,
            c512.bad,
            ms(c512.p99),
            conns.accepted.load(Ordering::SeqCst),
            n16.rps,
            n512.rps
        );
        rows.push(Row {
            name: "throughput c=16 -> c=512 (1 KB chat)",
            figures: format!(
                "{:.0} -> {:.0} req/s; nginx {:+.0} %; {}",
                c16.rps,
                c512.rps,
                (n512.rps / n16.rps - 1.0) * 100.0,
                listed(&conns_rounds, " %", 0)
            ),
            result: format!("{:+.0} %", (c512.rps / c16.rps - 1.0) * 100.0),
            target: "falls <= 15 %",
        });
        rows.push(Row {
            name: "upstream connections for 512 clients",
            figures: format!("peak open in any round, {} bad answers", c512.bad),
            result: format!("{peak}"),
            target: "<= pool size, <= clients",
        });
    }

    if want("emb") {
        // --- One 2,048-input embedding request (~2.9 MB answer), c=1.
        let emb_direct = format!("{up}/emb/v1/embeddings");
        let emb_gw = format!("{}/v1/embeddings", gw.base);
        wrk(&emb_gw, 1, 1, &emb_body, false, LOAD_CORE);
        if let Some(_attached) = attach_for("emb", gw.pid()) {
            let (_, ecpu) = load(gw.pid(), &emb_gw, 1, secs, &emb_body, false);
            println!(
                "{:.2} ms CPU/req (under BENCH_ATTACH); only this series runs",
                ecpu * 1e3
            );
            return;
        }
        // nginx passing the same answer through, for what any proxy adds.
        let ngx_dir = d.join("nginx-emb");
        std::fs::create_dir_all(&ngx_dir).unwrap();
        let ngx = kit::nginx(&ngx_dir, &up, GATEWAY_CORE);
        let emb_ngx = format!("{}/emb/v1/embeddings", ngx.base);
        wrk(&emb_ngx, 1, 1, &emb_body, false, LOAD_CORE);
        let ((ed, en, encpu, eg, ecpu), emb_rounds) = median_round(
            || {
                let (ed, _) = load(gw.pid(), &emb_direct, 1, secs, &emb_body, false);
                let (en, encpu) = load(ngx.pid(), &emb_ngx, 1, secs, &emb_body, false);
                let (eg, ecpu) = load(gw.pid(), &emb_gw, 1, secs, &emb_body, false);
                (ed, en, encpu, eg, ecpu)
            },
            |r| ms(r.3.p50) / ms(r.0.p50),
        );
        drop(ngx);
        println!(
            "embeddings 2048 inputs c=1: direct p50 {:.2} ms | nginx p50 {:.2} ms, {:.2} ms CPU/req | switchyard p50 {:.2} ms, {:.2} ms CPU/req ({} bad)",
            ms(ed.p50),
            ms(en.p50),
            encpu * 1e3,
            ms(eg.p50),
            ecpu * 1e3,
            eg.bad
        );
        rows.push(Row {
            name: "2,048-input embedding request, c=1, p50 vs direct",
            figures: format!(
                "{:.2} vs {:.2} ms, {:.2} ms CPU/req; nginx {:.2}x; {}",
                ms(eg.p50),
                ms(ed.p50),
                ecpu * 1e3,
                ms(en.p50) / ms(ed.p50),
                listed(&emb_rounds, "x", 2)
            ),
            result: format!("{:.2}x", ms(eg.p50) / ms(ed.p50)),
            target: "<= 1.4x",
        });
    }

    if want("big") {
        // --- A 1 MB chat request body, c=1.
        if let Some(_attached) = attach_for("big", gw.pid()) {
            let (_, bcpu) = load(gw.pid(), &gw_url, 1, secs, &big_body, false);
            println!(
                "{:.2} ms CPU/req (under BENCH_ATTACH); only this series runs",
                bcpu * 1e3
            );
            return;
        }
        // nginx passing the same body on (kept in memory: its body buffer
        // is 2 MB), for what a plain proxy adds on this machine.
        let ngx_dir = d.join("nginx-big");
        std::fs::create_dir_all(&ngx_dir).unwrap();
        let ngx = kit::nginx(&ngx_dir, &up, GATEWAY_CORE);
        let ngx_url = format!("{}/v1/chat/completions", ngx.base);
        let ((bd, bn, ncpu, bg, bcpu), big_rounds) = median_round(
            || {
                let (bd, _) = load(gw.pid(), &direct_url, 1, secs, &big_body, false);
                let (bn, ncpu) = load(ngx.pid(), &ngx_url, 1, secs, &big_body, false);
                let (bg, bcpu) = load(gw.pid(), &gw_url, 1, secs, &big_body, false);
                (bd, bn, ncpu, bg, bcpu)
            },
            |r| ms(r.3.p50) - ms(r.0.p50),
        );
        drop(ngx);
        println!(
            "1 MB chat body c=1: direct p50 {:.2} ms | nginx p50 {:.2} ms, {:.2} ms CPU/req | switchyard p50 {:.2} ms, {:.2} ms CPU/req ({} bad)",
            ms(bd.p50),
            ms(bn.p50),
            ncpu * 1e3,
            ms(bg.p50),
            bcpu * 1e3,
            bg.bad
        );
        rows.push(Row {
            name: "1 MB chat request body, p50 added",
            figures: format!(
                "{:.2} ms CPU/req; nginx +{:.2} ms, {:.2} ms CPU/req; {}",
                bcpu * 1e3,
                ms(bn.p50) - ms(bd.p50),
                ncpu * 1e3,
                listed(&big_rounds, "", 2)
            ),
            result: format!("+{:.2} ms", ms(bg.p50) - ms(bd.p50)),
            target: "<= +0.5 ms",
        });
    }

    if want("sse") {
        // --- Streams: 500 chunks 5 ms apart, and back to back, through
        // nginx (unbuffered) and the gateway in turn: the rounds' median
        // of the gateway's figure, nginx's from the same round beside it.
        let ngx_dir = d.join("nginx-sse");
        std::fs::create_dir_all(&ngx_dir).unwrap();
        let ngx = kit::nginx(&ngx_dir, &up, GATEWAY_CORE);
        let ((nslow, slow), slow_rounds) = median_round(
            || {
                rt.block_on(async {
                    let nslow = nginx_streams(&ngx, "sse-slow", 48).await;
                    (nslow, streams(&gw, "sse-slow", 48).await)
                })
            },
            |r| r.1,
        );
        let (nfast, fast) = rt.block_on(async {
            nginx_streams(&ngx, "sse-fast", 8).await; // warm-up
            streams(&gw, "sse-fast", 8).await;
            let (mut ntotal, mut total) = (0.0, 0.0);
            for _ in 0..10 {
                ntotal += nginx_streams(&ngx, "sse-fast", 16).await;
                total += streams(&gw, "sse-fast", 16).await;
            }
            (ntotal / 10.0, total / 10.0)
        });
        println!(
            "SSE 500 chunks: 5 ms apart nginx {:.1} ms | switchyard {:.1} ms CPU/stream; back to back nginx {:.2} ms | switchyard {:.2} ms CPU/stream",
            nslow * 1e3,
            slow * 1e3,
            nfast * 1e3,
            fast * 1e3
        );
        rows.push(Row {
            name: "SSE, 500 chunks 5 ms apart: CPU per stream",
            figures: format!(
                "{:.1} us per chunk; nginx {:.1} ms ({:.2}x); ms {}",
                slow * 1e6 / 500.0,
                nslow * 1e3,
                slow / nslow,
                listed(
                    &slow_rounds.iter().map(|c| c * 1e3).collect::<Vec<_>>(),
                    "",
                    1
                )
            ),
            result: format!("{:.1} ms", slow * 1e3),
            target: "<= 10 ms",
        });
        rows.push(Row {
            name: "SSE, 500 chunks back to back: CPU per stream",
            figures: format!(
                "{:.1} us per chunk; nginx {:.2} ms ({:.2}x)",
                fast * 1e6 / 500.0,
                nfast * 1e3,
                fast / nfast
            ),
            result: format!("{:.2} ms", fast * 1e3),
            target: "<= 1.2 ms",
        });
    }

    if want("fan") {
        // --- Fan-out: 2,048 inputs in 32 sub-batches at 32 at once, 50 ms calls.
        let fan_url = format!("{}/v1/embeddings", gw.base);
        wrk(&fan_url, 1, 1, &fan_body, false, LOAD_CORE);
        let (fw, _) = load(gw.pid(), &fan_url, 1, secs, &fan_body, false);
        println!(
            "fan-out 2048 inputs / 32 sub-batches: p50 {:.1} ms p99 {:.1} ms ({} bad)",
            ms(fw.p50),
            ms(fw.p99),
            fw.bad
        );
        rows.push(Row {
            name: "fan-out 2,048 inputs, 32 sub-batches, 50 ms calls",
            figures: format!("p99 {:.1} ms", ms(fw.p99)),
            result: format!("{:.1} ms", ms(fw.p50)),
            target: "<= 63 ms",
        });
    }
    drop(gw);

    if want("ageing") {
        // --- Ageing: CPU per request fresh, then after a 256 MiB cache filled
        // once and expired, each against a control gateway in the same
        // rounds; RSS per cached 1 KB answer.
        ageing(&rt, d, &up, &conns_up, &chat, &mut rows, secs);
    }

    print_rows(&rows, started);
}

fn print_rows(rows: &[Row], started: Instant) {
    println!("\n{:<52} {:>22}  {:<26} figures", "row", "result", "target");
    for r in rows {
        println!(
            "{:<52} {:>22}  {:<26} {}",
            r.name, r.result, r.target, r.figures
        );
    }
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nload average at end: {}; took {:.0} s",
        loadavg.trim(),
        started.elapsed().as_secs_f64()
    );
}

fn ageing(
    rt: &tokio::runtime::Runtime,
    d: &Path,
    up: &str,
    conns_up: &str,
    chat: &Path,
    rows: &mut Vec<Row>,
    secs: u64,
) {
    let max_bytes: u64 = 256 * 1024 * 1024;
    let ttl = 20;
    let extra = format!(
        "\x20 cached: {{ targets: [{{provider: chat}}], cache: {{ enabled: true, ttl: {ttl}s }} }}\n\
         cache: {{ max_bytes: {max_bytes} }}\n"
    );
    let gw = kit::gateway(
        &d.join("gw-ageing"),
        &policy(up, conns_up, &extra),
        GATEWAY_CORE,
    );
    // The control: the same build and policy on the same core, never
    // filled. Each round loads it and the ageing gateway at once, so a
    // drift of the host between the fresh and the aged series meets both,
    // and the row compares the ageing gateway's CPU to the control's in the
    // same rounds, before and after (`Phase`).
    let ctl = kit::gateway(
        &d.join("gw-control"),
        &policy(up, conns_up, &extra),
        GATEWAY_CORE,
    );
    let url = format!("{}/v1/chat/completions", gw.base);
    let ctl_url = format!("{}/v1/chat/completions", ctl.base);
    let cached = write(d, "cached.json", &kit::chat_body("cached", false));
    // A full series first: the process's first seconds (its pools and
    // arenas growing) are not what "fresh" means.
    wrk(&url, 64, secs, chat, false, LOAD_CORE);
    let idle = rss_bytes(gw.pid());
    // Measured before the control's warm-up: an idle gateway gives
    // memory back within seconds, which is not the footprint it serves in.
    wrk(&ctl_url, 64, secs, chat, false, LOAD_CORE);
    let perf = attach_for("fresh", gw.pid());
    // Both are loaded at once (each by its own wrk, from its own copy of
    // the body: wrk's script is written beside it), so whatever the host
    // does during a series it does to both.
    let ctl_chat = write(
        d,
        "chat-control.json",
        &std::fs::read_to_string(chat).unwrap(),
    );
    let phase = || {
        Phase::measure(|| {
            std::thread::scope(|s| {
                let c = s.spawn(|| load(ctl.pid(), &ctl_url, 64, secs, &ctl_chat, false).1);
                let (w, g) = load(gw.pid(), &url, 64, secs, chat, false);
                (w, g, c.join().unwrap())
            })
        })
    };
    let fresh = phase();
    drop(perf);
    // Fill: distinct requests until the cache holds max_bytes (evicting).
    let fill_start = Instant::now();
    let mut filled = 0;
    while fill_start.elapsed() < Duration::from_secs(120) {
        let w = wrk(&url, 64, 5, &cached, true, LOAD_CORE);
        filled += w.requests;
        let bytes = rt.block_on(metric(&gw.base, "switchyard_cache_bytes"));
        if bytes >= max_bytes as f64 * 0.97 {
            break;
        }
    }
    let bytes = rt.block_on(metric(&gw.base, "switchyard_cache_bytes"));
    let entries = rt.block_on(metric(&gw.base, "switchyard_cache_entries"));
    let full = rss_bytes(gw.pid());
    println!(
        "ageing: idle RSS {:.1} MiB; {filled} distinct requests in {:.0} s; cache {:.1} MiB in {entries} entries; RSS full {:.1} MiB",
        idle as f64 / MIB,
        fill_start.elapsed().as_secs_f64(),
        bytes / MIB,
        full as f64 / MIB
    );
    // Let every entry expire, then serve the plain chat route again.
    std::thread::sleep(Duration::from_secs(ttl + 2));
    wrk(&url, 64, 1, chat, false, LOAD_CORE);
    let left = rt.block_on(metric(&gw.base, "switchyard_cache_entries"));
    let perf = attach_for("aged", gw.pid());
    let aged = phase();
    drop(perf);
    let after = rss_bytes(gw.pid());
    let live = rt.block_on(metric(&gw.base, "switchyard_cache_bytes"));
    println!(
        "ageing: fresh {:.0} req/s {:.1} us CPU/req (control {:.1}) | aged {:.0} req/s {:.1} us CPU/req (control {:.1}); entries left {left}; RSS after expiry {:.1} MiB (live cache {:.1} MiB)",
        fresh.rps,
        fresh.cpu * 1e6,
        fresh.ctl * 1e6,
        aged.rps,
        aged.cpu * 1e6,
        aged.ctl * 1e6,
        after as f64 / MIB,
        live / MIB
    );
    rows.push(Row {
        name: "CPU per request after a 256 MiB cache expired",
        figures: format!(
            "vs control {:.3} -> {:.3} ({}; {}); {:.1} -> {:.1} us ({:+.0} %), control {:.1} -> {:.1} us ({:+.0} %); req/s {:+.0} %",
            fresh.ratio,
            aged.ratio,
            listed(&fresh.ratios, "", 3),
            listed(&aged.ratios, "", 3),
            fresh.cpu * 1e6,
            aged.cpu * 1e6,
            (aged.cpu / fresh.cpu - 1.0) * 100.0,
            fresh.ctl * 1e6,
            aged.ctl * 1e6,
            (aged.ctl / fresh.ctl - 1.0) * 100.0,
            (aged.rps / fresh.rps - 1.0) * 100.0,
        ),
        result: format!("{:+.0} %", (aged.ratio / fresh.ratio - 1.0) * 100.0),
        target: "<= +5 %",
    });
    rows.push(Row {
        name: "RSS after expiry vs live cache + idle",
        figures: format!(
            "{:.1} MiB, idle {:.1} MiB, live {:.1} MiB",
            after as f64 / MIB,
            idle as f64 / MIB,
            live / MIB
        ),
        result: format!("{:.2}x", after as f64 / (idle as f64 + live * 1.0).max(1.0)),
        target: "<= 1.2x",
    });
    rows.push(Row {
        name: "RSS per cached 1 KB chat answer",
        figures: format!(
            "RSS/cache bytes {:.2}",
            (full - idle) as f64 / bytes.max(1.0)
        ),
        result: format!("{:.2} KB", (full - idle) as f64 / entries.max(1.0) / 1024.0),
        target: "keep (0.7-1.1 KB)",
    });
}

/// Rounds of each ageing phase at least: loaded at once, the two agree to
/// within 3 % a round, and the median of five keeps one odd round from
/// setting the row (docs/benchmarks.md, stop 52).
const AGEING_ROUNDS: usize = 5;

/// One phase of the ageing row: [`AGEING_ROUNDS`] rounds (one when
/// [`rounds`] is one: `BENCH_ATTACH` or `BENCH_ROUNDS=1`), each loading
/// the control and the ageing gateway at once.
struct Phase {
    /// The median round's ageing gateway CPU over the control's.
    ratio: f64,
    /// Every round's ratio, in run order.
    ratios: Vec<f64>,
    /// The median round's requests per second, CPU per request, and the
    /// control's CPU per request.
    rps: f64,
    cpu: f64,
    ctl: f64,
}

impl Phase {
    /// `round` returns (the ageing gateway's wrk, its CPU per request,
    /// the control's CPU per request).
    fn measure(round: impl FnMut() -> (kit::Wrk, f64, f64)) -> Phase {
        let n = if rounds() == 1 {
            1
        } else {
            rounds().max(AGEING_ROUNDS)
        };
        let ((w, cpu, ctl), ratios) = median_of(n, round, |r| r.1 / r.2);
        Phase {
            ratio: cpu / ctl,
            ratios,
            rps: w.rps,
            cpu,
            ctl,
        }
    }
}
