//! What the `proxy` bench needs around the gateway: the fixed-answer
//! upstream (in this process), nginx as the reverse-proxy baseline, wrk as
//! the load, CPU pinning, and CPU time and RSS read from /proc.
//!
//! Everything here runs on 127.0.0.1 only.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rustix::process::Signal;

/// Dimensions of each fixed embedding vector: 2,048 of them make an answer
/// of about 2.9 MB, as in the issue's row.
const DIMS: usize = 96;
/// Chunks of each SSE answer.
pub const SSE_CHUNKS: usize = 500;
/// The measured proxy's core, and the core of everything else.
pub const GATEWAY_CORE: usize = 0;
pub const LOAD_CORE: usize = 1;

/// The client key every request of this bench carries as
/// `Authorization: Bearer`, once [`send_bearer`] set it (the peers bench,
/// for a gateway that has no anonymous mode); none until then.
static BEARER: OnceLock<String> = OnceLock::new();

/// From now on every request (wrk's and the stream clients') carries
/// `Authorization: Bearer key`, as the OpenAI and Anthropic SDKs send.
/// Only the peers bench sends one.
#[allow(dead_code)]
pub fn send_bearer(key: &str) {
    BEARER.set(key.to_owned()).expect("one client key per run");
}

/// Seconds per series (`BENCH_SECS`, default 5).
pub fn secs() -> u64 {
    std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// How many rounds each paired series runs (`BENCH_ROUNDS`, default 3;
/// 1 under `BENCH_ATTACH`).
pub fn rounds() -> usize {
    if std::env::var("BENCH_ATTACH").is_ok() {
        return 1;
    }
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// wrk against `url` from the load core while measuring the CPU of `pid`:
/// (wrk, CPU seconds per request).
pub fn load(pid: u32, url: &str, conns: usize, secs: u64, body: &Path, unique: bool) -> (Wrk, f64) {
    let (w, cpu, _) = load_split(pid, url, conns, secs, body, unique);
    (w, cpu)
}

/// [`load`], with the part of the CPU per request spent in the kernel
/// (system time): (wrk, CPU seconds per request, system seconds per
/// request).
pub fn load_split(
    pid: u32,
    url: &str,
    conns: usize,
    secs: u64,
    body: &Path,
    unique: bool,
) -> (Wrk, f64, f64) {
    let before = cpu_split(pid);
    let w = wrk(url, conns, secs, body, unique, LOAD_CORE);
    let after = cpu_split(pid);
    let n = w.requests as f64;
    let (user, sys) = (after.0 - before.0, after.1 - before.1);
    (w, (user + sys) / n, sys / n)
}

/// The upstream's connection counters.
#[derive(Default)]
pub struct Conns {
    pub open: AtomicUsize,
    pub peak: AtomicUsize,
    pub accepted: AtomicUsize,
}

impl Conns {
    pub fn reset_peak(&self) {
        self.peak
            .store(self.open.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// The fixed answers, built once.
struct Answers {
    chat: Bytes,
    messages: Bytes,
    embeddings: std::sync::Mutex<std::collections::HashMap<(usize, bool), Bytes>>,
}

/// A chat answer of about 1 KB.
fn chat_answer() -> Bytes {
    let content = "The quick brown fox jumps over the lazy dog. ".repeat(19);
    Bytes::from(format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"up-model","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":250,"completion_tokens":220,"total_tokens":470}}}}"#
    ))
}

/// An Anthropic Messages answer of about 1 KB (the shape of the Messages
/// API reference: `content` blocks, `stop_reason`, `usage`).
fn messages_answer() -> Bytes {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(19);
    Bytes::from(format!(
        r#"{{"id":"msg_bench","type":"message","role":"assistant","model":"up-model","content":[{{"type":"text","text":"{text}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":250,"output_tokens":220}}}}"#
    ))
}

/// `n` vectors, as JSON floats or (as OpenAI answers `encoding_format:
/// "base64"`) base64 of little-endian `f32`s.
fn embedding_answer(n: usize, base64: bool) -> Bytes {
    let mut s = String::with_capacity(n * 1500 + 200);
    s.push_str(r#"{"object":"list","data":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"object":"embedding","index":{i},"embedding":"#
        ));
        let values = (0..DIMS).map(|d| ((i * 31 + d * 17) % 1000) as f64 / 1000.0 - 0.5 + 1e-11);
        if base64 {
            use base64::Engine;
            let raw: Vec<u8> = values.flat_map(|v| (v as f32).to_le_bytes()).collect();
            s.push('"');
            s.push_str(&base64::engine::general_purpose::STANDARD.encode(raw));
            s.push('"');
        } else {
            s.push('[');
            for (d, v) in values.enumerate() {
                if d > 0 {
                    s.push(',');
                }
                s.push_str(&format!("{v:.10}"));
            }
            s.push(']');
        }
        s.push('}');
    }
    s.push_str(&format!(
        r#"],"model":"up-model","usage":{{"prompt_tokens":{n},"total_tokens":{n}}}}}"#
    ));
    Bytes::from(s)
}

fn sse_chunk(i: usize) -> Bytes {
    Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"up-model\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
    ))
}

fn sse_tail() -> Bytes {
    Bytes::from_static(b"data: {\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"up-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"up-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":500,\"total_tokens\":510}}\n\ndata: [DONE]\n\n")
}

/// How many `input` strings an embeddings body carries (a cheap count:
/// the bench's inputs hold no quotes or commas).
fn count_inputs(body: &[u8]) -> usize {
    let Some(start) = memchr::memmem::find(body, b"\"input\"") else {
        return 1;
    };
    let rest = &body[start..];
    let end = memchr::memchr(b']', rest).unwrap_or(rest.len());
    rest[..end].iter().filter(|&&b| b == b',').count() + 1
}

/// A chat completion request of about 1 KB on the wire, for route `model`.
pub fn chat_body(model: &str, stream: bool) -> String {
    let content = "Summarise the following paragraph in one sentence please. ".repeat(15);
    let stream = if stream { r#","stream":true"# } else { "" };
    format!(
        r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{content}"}}],"max_tokens":256,"temperature":0.2{stream}}}"#
    )
}

/// An embeddings request of 2,048 short inputs for `model` (its answer is
/// the ~2.9 MB of the issue's row).
pub fn embeddings_body(model: &str) -> String {
    let inputs: Vec<String> = (0..2048).map(|i| format!("document number {i}")).collect();
    serde_json::json!({"model": model, "input": inputs}).to_string()
}

/// An Anthropic Messages request of about 1 KB on the wire, for `model`
/// (the peers bench's; the proxy bench has no Messages row).
#[allow(dead_code)]
pub fn messages_body(model: &str) -> String {
    let content = "Summarise the following paragraph in one sentence please. ".repeat(15);
    format!(
        r#"{{"model":"{model}","max_tokens":256,"system":"You are terse.","messages":[{{"role":"user","content":"{content}"}}],"temperature":0.2}}"#
    )
}

/// POSTs `body` as JSON: the answer's status and its whole text.
pub async fn post_json(client: &reqwest::Client, url: &str, body: String) -> (u16, String) {
    let mut r = client.post(url).header("content-type", "application/json");
    if let Some(key) = BEARER.get() {
        r = r.bearer_auth(key);
    }
    let r = r.body(body).send().await.expect("the gateway answers");
    let status = r.status().as_u16();
    (status, r.text().await.expect("a whole answer"))
}

/// `n` streams at once to `url`; the CPU seconds per stream of `pid`,
/// the proxy that serves them.
pub async fn streams(pid: u32, url: &str, model: &str, n: usize) -> f64 {
    let client = reqwest::Client::new();
    let body = chat_body(model, true);
    let before = cpu_seconds(pid);
    let calls = (0..n).map(|_| {
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        async move {
            let (status, text) = post_json(&client, &url, body).await;
            assert!((200..300).contains(&status), "{status}");
            let events = text.matches("data: ").count();
            assert!(
                events > SSE_CHUNKS && text.ends_with("data: [DONE]\n\n"),
                "a stream ended early: {events} events"
            );
        }
    });
    futures_util::future::join_all(calls).await;
    (cpu_seconds(pid) - before) / n as f64
}

/// Serves the fixed answers on 127.0.0.1; the path's first segment picks
/// the behaviour: `/chat/v1/chat/completions` (1 KB JSON),
/// `/emb/v1/embeddings` (one vector per input, floats or base64 as the
/// request's `encoding_format` asks), `/fan/...` (the same after 50 ms),
/// `/sse-slow/...` (500 chunks 5 ms apart), `/sse-fast/...` (500 chunks
/// back to back), `/anthropic/v1/messages` (a 1 KB Messages answer).
pub async fn upstream() -> (String, Arc<Conns>) {
    let answers = Arc::new(Answers {
        chat: chat_answer(),
        messages: messages_answer(),
        embeddings: Default::default(),
    });
    let conns = Arc::new(Conns::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counted = Arc::clone(&conns);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let answers = Arc::clone(&answers);
            let conns = Arc::clone(&counted);
            let open = conns.open.fetch_add(1, Ordering::SeqCst) + 1;
            conns.accepted.fetch_add(1, Ordering::SeqCst);
            conns.peak.fetch_max(open, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| serve(Arc::clone(&answers), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                conns.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (format!("http://{addr}"), conns)
}

type Out = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn serve(
    answers: Arc<Answers>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Out>, Infallible> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let kind = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let json = |b: Bytes| {
        let mut r = hyper::Response::new(Full::new(b).boxed());
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    };
    let response = match kind {
        "emb" | "fan" => {
            if kind == "fan" {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let n = count_inputs(&body);
            let b64 = memchr::memmem::find(&body, br#""encoding_format":"base64""#).is_some();
            let answer = answers
                .embeddings
                .lock()
                .unwrap()
                .entry((n, b64))
                .or_insert_with(|| embedding_answer(n, b64))
                .clone();
            json(answer)
        }
        "sse-slow" | "sse-fast" => {
            let gap = (kind == "sse-slow").then(|| Duration::from_millis(5));
            let chunks = futures_util::stream::unfold(0usize, move |i| async move {
                if i > SSE_CHUNKS {
                    return None;
                }
                if i == SSE_CHUNKS {
                    return Some((Ok(Frame::data(sse_tail())), i + 1));
                }
                if let Some(gap) = gap {
                    tokio::time::sleep(gap).await;
                }
                Some((Ok(Frame::data(sse_chunk(i))), i + 1))
            });
            let mut r = hyper::Response::new(StreamBody::new(chunks).boxed());
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        }
        "anthropic" => json(answers.messages.clone()),
        _ => json(answers.chat.clone()),
    };
    Ok(response)
}

/// Runs `f` as the whole process: pins every thread of this process to
/// `core` first (threads started later inherit it).
pub fn pin_self(core: usize) {
    let pid = std::process::id().to_string();
    let ok = Command::new("taskset")
        .args(["-a", "-cp", &core.to_string(), &pid])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset failed: install util-linux");
}

/// The load side of a bench: this process (upstream, wrk, stream clients)
/// pinned to [`LOAD_CORE`], nginx and wrk installed, and the one-worker
/// runtime the upstream and the clients run on.
pub fn load_side() -> tokio::runtime::Runtime {
    pin_self(LOAD_CORE);
    ensure_tools();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Installs nginx and wrk with apt-get when either is missing (idempotent).
pub fn ensure_tools() {
    let have = |bin: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if have("nginx") && have("wrk") && have("taskset") {
        return;
    }
    eprintln!("installing nginx and wrk (apt-get)...");
    let sudo = if unsafe_uid_is_root() { "" } else { "sudo -n " };
    let script = format!(
        "{sudo}apt-get install -y -qq nginx wrk util-linux >/dev/null 2>&1 || \
         ({sudo}apt-get update -qq >/dev/null 2>&1 && {sudo}apt-get install -y -qq nginx wrk util-linux >/dev/null 2>&1)"
    );
    let ok = Command::new("sh")
        .args(["-c", &script])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && have("wrk") && (have("nginx") || Path::new("/usr/sbin/nginx").exists()),
        "could not install nginx and wrk"
    );
}

fn unsafe_uid_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// CPU time (user + system) of `pid` and of every process whose parent it
/// is, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let (user, sys) = cpu_split(pid);
    user + sys
}

/// User and system CPU time of `pid` and of every process whose parent it
/// is, in seconds.
pub fn cpu_split(pid: u32) -> (f64, f64) {
    let ticks = |p: u32| -> Option<((u64, u64), u32)> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        // Fields after the `(comm)`, which may hold spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ppid = f[1].parse().ok()?;
        let t = (f[11].parse::<u64>().ok()?, f[12].parse::<u64>().ok()?);
        Some((t, ppid))
    };
    let (mut user, mut sys) = ticks(pid).map_or((0, 0), |(t, _)| t);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && let Some(((u, s), ppid)) = ticks(child)
                && ppid == pid
            {
                user += u;
                sys += s;
            }
        }
    }
    (user as f64 / 100.0, sys as f64 / 100.0) // USER_HZ
}

pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `$BENCH_ATTACH` (a command line with `{pid}` in it, like `perf record
/// -e cpu-clock -g -o FILE -p {pid}` or `strace -c -f -o FILE -p {pid}`)
/// run on `pid` while the returned process lives (stopped with SIGINT on
/// drop, so it writes its file); `None` when `BENCH_ATTACH` is unset.
pub fn attach(pid: u32) -> Option<PerfRecord> {
    let cmd = std::env::var("BENCH_ATTACH").ok()?;
    let cmd = cmd.replace("{pid}", &pid.to_string());
    let mut words = cmd.split_whitespace();
    let child = Command::new(words.next()?)
        .args(words)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("BENCH_ATTACH command");
    std::thread::sleep(Duration::from_millis(500));
    Some(PerfRecord(child))
}

pub struct PerfRecord(Child);

impl Drop for PerfRecord {
    fn drop(&mut self) {
        signal(&self.0, Signal::INT);
        let _ = self.0.wait();
    }
}

/// Sends `sig` to `child` (which may have exited already: then nothing).
fn signal(child: &Child, sig: Signal) {
    let _ = rustix::process::kill_process(rustix::process::Pid::from_child(child), sig);
}

/// A child process killed (and reaped) on drop.
pub struct Proc {
    pub child: Child,
    pub base: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    /// SIGTERM first (nginx's master then stops its worker, which SIGKILL
    /// would leave running, holding the port and any inherited lock), then
    /// SIGKILL if it is still there after 5 s.
    fn drop(&mut self) {
        signal(&self.child, Signal::TERM);
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// `child` once it listens on `port`; if it exits first, a panic that
    /// quotes what it wrote to `log`.
    pub fn listening(mut child: Child, port: u16, log: &Path) -> Proc {
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Proc {
                    child,
                    base: format!("http://127.0.0.1:{port}"),
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                panic!(
                    "exited ({status}) before it listened on {port}; {}:\n{said}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nothing listens on {port}");
    }
}

/// nginx as a reverse proxy to `upstream` (`proxy_pass`, upstream
/// keepalive), one worker, pinned to `core`, access log buffered to a file.
/// `/v1/` is the chat upstream, `/emb/v1/` the embeddings one, and
/// `/sse-slow/v1/`, `/sse-fast/v1/` the streams, unbuffered (as nginx is
/// set up in front of SSE).
pub fn nginx(dir: &Path, upstream: &str, core: usize) -> Proc {
    let port = free_port();
    let up = upstream.trim_start_matches("http://");
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log {d}/nginx-access.log combined buffer=64k flush=1s;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         client_max_body_size 64m;\n  client_body_buffer_size 2m;\n  keepalive_requests 100000;\n\
         upstream up {{ server {up}; keepalive 64; keepalive_requests 100000; }}\n\
         server {{\n    listen 127.0.0.1:{port} backlog=4096;\n\
         location /v1/ {{ proxy_pass http://up/chat/v1/; proxy_http_version 1.1; \
         proxy_set_header Connection \"\"; proxy_buffers 64 16k; }}\n\
         location /emb/v1/ {{ proxy_pass http://up/emb/v1/; proxy_http_version 1.1; \
         proxy_set_header Connection \"\"; proxy_buffers 64 16k; }}\n\
         location /sse-slow/v1/ {{ proxy_pass http://up/sse-slow/v1/; proxy_http_version 1.1; \
         proxy_set_header Connection \"\"; proxy_buffering off; }}\n\
         location /sse-fast/v1/ {{ proxy_pass http://up/sse-fast/v1/; proxy_http_version 1.1; \
         proxy_set_header Connection \"\"; proxy_buffering off; }}\n\
         location /anthropic/v1/ {{ proxy_pass http://up/anthropic/v1/; proxy_http_version 1.1; \
         proxy_set_header Connection \"\"; proxy_buffers 64 16k; }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let nginx_bin = if Path::new("/usr/sbin/nginx").exists() {
        PathBuf::from("/usr/sbin/nginx")
    } else {
        PathBuf::from("nginx")
    };
    let child = Command::new("taskset")
        .args(["-c", &core.to_string()])
        .arg(nginx_bin)
        .args(["-e", &format!("{d}/nginx-error.log"), "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx");
    Proc::listening(child, port, &dir.join("nginx-error.log"))
}

/// The gateway binary serving `policy`, pinned to `core`, its log (the
/// default level: an access line per request) written to a file.
pub fn gateway(dir: &Path, policy: &str, core: usize) -> Proc {
    gateway_with(dir, policy, core, &[])
}

/// [`gateway`] with more arguments to `serve`.
pub fn gateway_with(dir: &Path, policy: &str, core: usize, extra: &[&str]) -> Proc {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("bench.yaml"), policy).unwrap();
    let port = free_port();
    let bin = std::env::var("SWITCHYARD_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchyard").to_string());
    let log_path = dir.join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("taskset")
        .args(["-c", &core.to_string()])
        .arg(bin)
        .args(["serve", "--policies"])
        .arg(&policies)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--drain-delay",
            "0s",
        ])
        .args(extra)
        // The key policies with an Anthropic provider name (`api_key_env`).
        .env("BENCH_UPSTREAM_KEY", "sk-bench")
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway binary");
    Proc::listening(child, port, &log_path)
}

/// What one wrk run measured.
#[derive(Debug, Default, Clone)]
pub struct Wrk {
    pub requests: u64,
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub bad: u64,
}

/// wrk on `core`: `conns` connections for `secs`, POSTing `body_file`
/// (or, with `unique`, that body with a counter spliced in after its
/// first `"content":"`, so every request differs), with the
/// `Accept-Encoding: gzip, deflate` the OpenAI and Anthropic Python SDKs
/// send (httpx's default), so a gateway that compresses pays for it here.
pub fn wrk(url: &str, conns: usize, secs: u64, body_file: &Path, unique: bool, core: usize) -> Wrk {
    let script = body_file.with_extension("lua");
    // The headers, and the client key when [`send_bearer`] set one.
    const HEAD: &str = "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Accept-Encoding\"] = \"gzip, deflate\"\n\
         local key = os.getenv(\"BENCH_BEARER\"); if key then wrk.headers[\"Authorization\"] = \"Bearer \" .. key end\n";
    let body = if unique {
        "local f = io.open(os.getenv(\"BODY_FILE\"), \"rb\"); local b = f:read(\"*a\"); f:close()\n\
         local i = string.find(b, '\"content\":\"', 1, true) + 11\n\
         local head, tail = string.sub(b, 1, i - 1), string.sub(b, i)\n\
         local tag = os.getenv(\"RUN_TAG\") or \"\"\nlocal n = 0\n\
         request = function() n = n + 1; return wrk.format(nil, nil, nil, head .. tag .. n .. \" \" .. tail) end\n"
    } else {
        "local f = io.open(os.getenv(\"BODY_FILE\"), \"rb\"); wrk.body = f:read(\"*a\"); f:close()\n"
    };
    let lua = format!("{HEAD}{body}");
    std::fs::write(&script, lua).unwrap();
    let threads = if conns >= 256 { 2 } else { 1 };
    let mut cmd = Command::new("taskset");
    match BEARER.get() {
        Some(key) => cmd.env("BENCH_BEARER", key),
        None => cmd.env_remove("BENCH_BEARER"),
    };
    let out = cmd
        .args(["-c", &core.to_string(), "wrk"])
        .args([
            &format!("-t{threads}"),
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--timeout",
            "10s",
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .env("BODY_FILE", body_file)
        .env("RUN_TAG", format!("{:x}-", fastrand::u64(..)))
        .output()
        .expect("wrk");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn parse_duration(s: &str) -> Duration {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(0.0);
    Duration::from_secs_f64(match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => v,
    })
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("50%") {
            w.p50 = parse_duration(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            w.p99 = parse_duration(v);
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().unwrap_or(0.0);
        } else if t.contains(" requests in ") {
            w.requests = t.split_whitespace().next().unwrap().parse().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            w.bad += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            w.bad += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    assert!(w.requests > 0, "wrk measured nothing:\n{out}");
    w
}
