//! Test harness: fake OpenAI-compatible upstreams and an in-process gateway,
//! both on 127.0.0.1:0 over real HTTP.

pub mod agent_fakes;
pub mod agents;
pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod browser;
pub mod chat_tools;
pub mod cohere;
pub mod dial;
pub mod faults;
pub mod gemini;
pub mod logs;
pub mod openai_strict;
pub mod otlp;
pub mod raw_http;
pub mod redis;
pub mod redis_managed;
pub mod responses;
pub mod scripted;
pub mod served;
pub mod usage;
pub mod wire_shapes;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use switchyard::server::{Gateway, GatewayOptions};
use tokio_util::sync::CancellationToken;

/// One request the fake upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    /// The query string, as sent (empty without one).
    pub query: String,
    pub headers: http::HeaderMap,
    pub body: Value,
    /// The body's bytes as they came.
    pub raw: Bytes,
}

/// What the fake upstream answers.
pub enum Reply {
    Json(u16, Value),
    JsonHeaders(u16, Value, Vec<(&'static str, String)>),
    /// SSE events, each sent as its own chunk with `gap` between them.
    Sse(Vec<String>, Duration),
    /// Chunks of a body with this content type, `gap` before each.
    Chunks(&'static str, Vec<String>, Duration),
    /// Wait, then answer.
    After(Duration, Box<Reply>),
    /// SSE events at once, then the body stays open and sends nothing.
    Stalls(Vec<String>),
}

type Handler =
    Arc<dyn Fn(Seen, usize) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

pub struct FakeUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    live: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn to_response(reply: Reply) -> Pin<Box<dyn Future<Output = hyper::Response<UpBody>> + Send>> {
    Box::pin(async move {
        match reply {
            Reply::After(d, inner) => {
                tokio::time::sleep(d).await;
                to_response(*inner).await
            }
            Reply::Json(status, v) => to_response(Reply::JsonHeaders(status, v, vec![])).await,
            Reply::JsonHeaders(status, v, headers) => {
                let mut r = hyper::Response::new(Full::new(Bytes::from(v.to_string())).boxed());
                *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                for (k, v) in headers {
                    r.headers_mut().insert(k, v.parse().unwrap());
                }
                r
            }
            Reply::Sse(events, gap) => {
                to_response(Reply::Chunks("text/event-stream", events, gap)).await
            }
            Reply::Stalls(events) => {
                let frames = events
                    .into_iter()
                    .map(|e| Ok::<_, Infallible>(Frame::data(Bytes::from(e))));
                let stream = futures_util::StreamExt::chain(
                    futures_util::stream::iter(frames),
                    futures_util::stream::pending(),
                );
                let mut r = hyper::Response::new(StreamBody::new(stream).boxed());
                r.headers_mut()
                    .insert("content-type", "text/event-stream".parse().unwrap());
                r
            }
            Reply::Chunks(content_type, events, gap) => {
                let stream =
                    futures_util::stream::unfold(events.into_iter(), move |mut it| async move {
                        let e = it.next()?;
                        tokio::time::sleep(gap).await;
                        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(e))), it))
                    });
                let mut r = hyper::Response::new(StreamBody::new(stream).boxed());
                r.headers_mut()
                    .insert("content-type", content_type.parse().unwrap());
                r
            }
        }
    })
}

struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeUpstream {
    /// Requests being answered right now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    pub async fn start<F, Fut>(f: F) -> FakeUpstream
    where
        F: Fn(Seen, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |s, n| Box::pin(f(s, n)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (s2, l2, p2) = (seen.clone(), live.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, seen, live, peak) =
                    (handler.clone(), s2.clone(), l2.clone(), p2.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (handler, seen, live, peak) =
                                (handler.clone(), seen.clone(), live.clone(), peak.clone());
                            async move {
                                let (parts, body) = req.into_parts();
                                let bytes = body.collect().await.unwrap().to_bytes();
                                let s = Seen {
                                    path: parts.uri.path().to_string(),
                                    query: parts.uri.query().unwrap_or_default().to_string(),
                                    headers: parts.headers,
                                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                                    raw: bytes,
                                };
                                let n = {
                                    let mut v = seen.lock().unwrap();
                                    v.push(s.clone());
                                    v.len()
                                };
                                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                                peak.fetch_max(now, Ordering::SeqCst);
                                // Counts down also when the caller goes away.
                                let _live = Live(live);
                                let reply = handler(s, n).await;
                                let resp = to_response(reply).await;
                                Ok::<_, Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeUpstream {
            addr,
            seen,
            live,
            peak,
        }
    }

    /// Answers chat with [`chat_reply`] and embeddings with [`embeddings_reply`].
    pub async fn openai() -> FakeUpstream {
        Self::start(|s, _| async move { default_reply(&s) }).await
    }

    /// Answers every call with `status` and an OpenAI `server_error`
    /// ("down"): a provider that is down.
    pub async fn down(status: u16) -> FakeUpstream {
        Self::start(move |_, _| async move {
            Reply::Json(
                status,
                json!({"error": {"message": "down", "type": "server_error"}}),
            )
        })
        .await
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn peak_concurrency(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

pub fn default_reply(s: &Seen) -> Reply {
    if s.path.ends_with("/embeddings") {
        embeddings_reply(&s.body)
    } else {
        Reply::Json(200, chat_reply(&s.body, "fake"))
    }
}

/// A chat completion naming the model it was sent, with an extra field.
pub fn chat_reply(body: &Value, who: &str) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1,
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("{who} answered")},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        "system_fingerprint": "fp_extra_field_kept",
    })
}

/// The vector a fake embedder gives an input: derived from its content.
pub fn expected_vector(input: &Value) -> Vec<f32> {
    let text = input.to_string();
    let sum: u32 = text.bytes().map(u32::from).sum();
    vec![text.len() as f32, sum as f32, (sum % 97) as f32 / 7.0]
}

/// Embeddings for each input, honouring encoding_format, in shuffled order
/// (reversed) to check that the gateway reorders by `index`.
pub fn embeddings_reply(body: &Value) -> Reply {
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    let base64 = body["encoding_format"] == "base64";
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let v = expected_vector(input);
            let embedding = if base64 {
                Value::String(switchyard::api::embeddings::encode_base64(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    data.reverse();
    let tokens = inputs.len() as u64 * 2;
    Reply::Json(
        200,
        json!({"object": "list", "data": data, "model": body["model"],
               "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

pub struct TestGateway {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub gateway: Option<Gateway>,
    pub http: reqwest::Client,
}

pub const TEST_KEY: &str = "sk-test-SECRET-never-leak-4242";

pub async fn gateway(yaml: &str) -> TestGateway {
    gateway_with(yaml, false).await
}

pub async fn gateway_with(yaml: &str, watch: bool) -> TestGateway {
    gateway_opts(yaml, watch, Some(Duration::ZERO)).await
}

/// `drain_delay: None` keeps the policy's `server.drain_delay`.
pub async fn gateway_opts(yaml: &str, watch: bool, drain_delay: Option<Duration>) -> TestGateway {
    gateway_hooked(yaml, watch, drain_delay, None).await
}

/// [`gateway_opts`] with a dispatch hook (to make handlers panic).
pub async fn gateway_hooked(
    yaml: &str,
    watch: bool,
    drain_delay: Option<Duration>,
    dispatch_hook: Option<switchyard::server::DispatchHook>,
) -> TestGateway {
    start_gateway(
        &[("policy.yaml", yaml)],
        watch,
        drain_delay,
        dispatch_hook,
        &[],
    )
    .await
    .unwrap_or_else(|e| panic!("gateway failed to start:\n{e}"))
}

/// [`gateway`] with more environment variables (a kind's own keys).
pub async fn gateway_env(yaml: &str, extra_env: &[(&str, &str)]) -> TestGateway {
    try_gateway_env(yaml, extra_env)
        .await
        .unwrap_or_else(|e| panic!("gateway failed to start:\n{e}"))
}

/// [`gateway_env`], returning the policy errors instead of panicking.
pub async fn try_gateway_env(
    yaml: &str,
    extra_env: &[(&str, &str)],
) -> Result<TestGateway, switchyard::config::ConfigErrors> {
    start_gateway(
        &[("policy.yaml", yaml)],
        false,
        Some(Duration::ZERO),
        None,
        extra_env,
    )
    .await
}

/// The policy files shipped in `policies/`, by name.
pub fn shipped_policies() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 3, "policies/ is missing files");
    files
}

/// A gateway running the shipped `policies/` folder as it is (but for the
/// listen address: 127.0.0.1:0).
pub async fn shipped_gateway() -> TestGateway {
    let files = shipped_policies();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    start_gateway(&files, false, Some(Duration::ZERO), None, &[])
        .await
        .unwrap_or_else(|e| panic!("the shipped policies do not load:\n{e}"))
}

async fn start_gateway(
    files: &[(&str, &str)],
    watch: bool,
    drain_delay: Option<Duration>,
    dispatch_hook: Option<switchyard::server::DispatchHook>,
    extra_env: &[(&str, &str)],
) -> Result<TestGateway, switchyard::config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut env = HashMap::new();
    env.insert("TEST_UPSTREAM_KEY".to_string(), TEST_KEY.to_string());
    env.insert(
        "TEST_ADMIN_TOKEN".to_string(),
        "admin-token-123".to_string(),
    );
    for (k, v) in extra_env {
        env.insert(k.to_string(), v.to_string());
    }
    let env: switchyard::config::Env = Arc::new(move |k| env.get(k).cloned());
    let shutdown = CancellationToken::new();
    let opts = GatewayOptions {
        policy_dir: dir.path().to_path_buf(),
        env,
        listen: Some("127.0.0.1:0".into()),
        watch,
        sighup: false,
        drain_delay,
        busy_poll: switchyard::server::DEFAULT_BUSY_POLL,
        dispatch_hook,
    };
    let gw = Gateway::start(opts, shutdown.clone()).await?;
    Ok(TestGateway {
        base: format!("http://{}", gw.local_addr()),
        dir,
        shutdown,
        gateway: Some(gw),
        http: reqwest::Client::new(),
    })
}

impl TestGateway {
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// Sends a POST on its own task, so the test can act while it is in flight.
    pub fn spawn_post(
        &self,
        path: &str,
        body: Value,
    ) -> tokio::task::JoinHandle<reqwest::Response> {
        let request = self.http.post(format!("{}{path}", self.base)).json(&body);
        tokio::spawn(async move { request.send().await.unwrap() })
    }

    pub async fn chat(&self, model: &str, text: &str) -> reqwest::Response {
        self.post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": text}]}),
        )
        .await
    }

    pub async fn embed(&self, model: &str, input: Value) -> reqwest::Response {
        self.post("/v1/embeddings", json!({"model": model, "input": input}))
            .await
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Value of one sample, e.g. `switchyard_retries_total{provider="a",route="r"}`;
    /// labels must be given in the exposition's (alphabetical) order. 0 if absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        sample_in(&self.metrics().await, sample)
    }

    pub fn write_policy(&self, name: &str, yaml: &str) {
        std::fs::write(self.dir.path().join(name), yaml).unwrap();
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(g) = self.gateway.take() {
            g.wait().await;
        }
    }
}

/// Value of one sample in a `/metrics` text (see [`TestGateway::metric`]);
/// 0 if absent.
pub fn sample_in(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Polls `f` until it holds; panics after 10s.
pub async fn eventually<F: AsyncFnMut() -> bool>(mut f: F) {
    for _ in 0..400 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached in 10s");
}

/// The error envelope of a response, asserting its shape.
pub async fn error_of(resp: reqwest::Response) -> Value {
    let ct = resp.headers().get("content-type").cloned();
    assert_eq!(ct.unwrap(), "application/json");
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["type"].is_string(), "{v}");
    v["error"].clone()
}

/// A policy with one openai provider per upstream, named p0, p1, ...
pub fn providers_yaml(upstreams: &[&FakeUpstream], extra: &str) -> String {
    let mut y = String::from("providers:\n");
    for (i, u) in upstreams.iter().enumerate() {
        y.push_str(&format!(
            "  p{i}:\n    kind: openai\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n{extra}",
            u.base_url()
        ));
    }
    y
}

/// Whether `python3` can import `module`. In CI (`CI=true`) a missing one is
/// a failure (`.ci/run` installs it); elsewhere the test says it skipped.
pub fn python_module(module: &str) -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output();
    let why = match &probe {
        Ok(out) if out.status.success() => return true,
        // The last line of the traceback, e.g. "ModuleNotFoundError: ...".
        Ok(out) => String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("no output")
            .to_string(),
        Err(e) => format!("cannot run python3: {e}"),
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "CI=true: python3 with the `{module}` package is required ({why})"
    );
    skipped(&format!(
        "python3 with the `{module}` package is not installed ({why})"
    ));
    false
}

/// Says that the running test skipped and why, as one line on the test
/// output: `SKIPPED <module>::<test>: <reason>`. libtest names each test's
/// thread after the test; the line goes straight to stderr, past libtest's
/// capture of `eprintln!`, so it shows in a passing run too.
pub fn skipped(reason: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("(unnamed test)");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// Serves `handle(state, request)` on 127.0.0.1:0 with hyper, one task per
/// connection: for fakes that read the raw request (query strings, headers)
/// and build their own responses. Returns the bound address.
pub async fn serve_raw<S, F, Fut, B>(state: Arc<S>, handle: F) -> SocketAddr
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, hyper::Request<hyper::body::Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = hyper::Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(handle(state, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}
