//! Client-side hostility: idle and slow connections, work that outlives its
//! client, health while saturated, drain order, and settings a reload cannot
//! or must apply.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

fn one_route(up: &FakeUpstream, server: &str, route_extra: &str) -> String {
    format!(
        "server:\n{server}{}routes:\n  m:\n    targets: [{{provider: p0}}]\n    retry: {{ max_attempts: 1 }}\n{route_extra}",
        providers_yaml(&[up], "")
    )
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

/// An upstream that holds every request until `release` is notified.
async fn held_upstream(release: Arc<Notify>, stream: bool) -> FakeUpstream {
    FakeUpstream::start(move |s, _| {
        let release = Arc::clone(&release);
        async move {
            release.notified().await;
            if stream {
                Reply::Sse(
                    vec!["data: {}\n\n".into(), "data: [DONE]\n\n".into()],
                    Duration::ZERO,
                )
            } else {
                Reply::Json(200, chat_reply(&s.body, "held"))
            }
        }
    })
    .await
}

#[tokio::test]
async fn idle_and_slow_header_connections_are_closed() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&one_route(
        &up,
        "  connections: { header_read_timeout: 300ms, idle_timeout: 400ms }\n",
        "",
    ))
    .await;
    let addr = gw.base.trim_start_matches("http://").to_string();
    let start = tokio::time::Instant::now();
    // Silent: never sends a byte.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    // Slow: headers one byte at a time, never finished.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHo")
        .await
        .unwrap();
    assert!(until_closed(&mut silent).await.is_empty());
    until_closed(&mut slow).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // A kept-alive connection is closed once idle too.
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(until_closed(&mut kept).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    eventually(async || gw.metric("switchyard_client_connections").await == 1.0).await;
    // HTTP/1 with the header-read timeout the shorter: each of the three
    // was waiting for a request head.
    let headless = r#"switchyard_connections_closed_total{reason="header_read_timeout"}"#;
    assert_eq!(gw.metric(headless).await, 3.0);
    gw.stop().await;
}

#[tokio::test]
async fn open_connections_are_capped_and_the_next_waits_its_turn() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&one_route(
        &up,
        "  connections: { max: 2, idle_timeout: 30s, header_read_timeout: 30s }\n",
        "",
    ))
    .await;
    let addr = gw.base.trim_start_matches("http://").to_string();
    let a = TcpStream::connect(&addr).await.unwrap();
    let _b = TcpStream::connect(&addr).await.unwrap();
    eventually(async || {
        // The metrics request itself needs a slot: use the two held ones' count.
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut buf))
            .await
            .is_err()
    })
    .await;
    drop(a);
    let r = gw.get("/healthz").await;
    assert_eq!(r.status(), 200, "served once a slot is free");
    gw.stop().await;
}

#[tokio::test]
async fn an_abandoned_single_flight_leader_is_cancelled_and_a_shared_one_holds_its_permit() {
    let release = Arc::new(Notify::new());
    let up = held_upstream(Arc::clone(&release), false).await;
    let gw = gateway(&one_route(
        &up,
        "  max_concurrent_requests: 4\n",
        "    cache: { enabled: true }\n",
    ))
    .await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "same"}]});
    // Alone, then gone: the upstream call is cancelled and the permit freed.
    let leader = gw.spawn_post("/v1/chat/completions", body.clone());
    eventually(async || up.calls() == 1).await;
    leader.abort();
    eventually(async || gw.metric("switchyard_requests_in_flight").await == 0.0).await;
    eventually(async || up.live() == 0).await;
    // Leader gone while another waits: the shared call goes on, holding the
    // leader's permit as well as the waiter's.
    let leader = gw.spawn_post("/v1/chat/completions", body.clone());
    eventually(async || up.calls() == 2).await;
    let follower = gw.spawn_post("/v1/chat/completions", body.clone());
    eventually(async || gw.metric("switchyard_requests_in_flight").await == 2.0).await;
    leader.abort();
    let _ = leader.await;
    assert_eq!(gw.metric("switchyard_requests_in_flight").await, 2.0);
    release.notify_waiters();
    let r = follower.await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.calls(), 2, "one upstream call for both");
    eventually(async || gw.metric("switchyard_requests_in_flight").await == 0.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn open_streams_hold_permits_and_health_stays_outside_the_limit() {
    // Two slow events: the answer starts with the first (content), then the
    // stream stays open a while.
    let up = FakeUpstream::start(|s, _| async move {
        if s.body["stream"] == true {
            let content = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n";
            Reply::Sse(
                vec![content.into(), "data: [DONE]\n\n".into()],
                Duration::from_millis(700),
            )
        } else {
            Reply::Json(200, chat_reply(&s.body, "plain"))
        }
    })
    .await;
    // The provider may take all of the two slots: the edge limit is tested here.
    let server = "  max_concurrent_requests: 2\n  provider_share: 1.0\n";
    let gw = gateway(&one_route(&up, server, "")).await;
    let stream_body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "s"}]});
    let s1 = gw.spawn_post("/v1/chat/completions", stream_body.clone());
    let s2 = gw.spawn_post("/v1/chat/completions", stream_body.clone());
    let (r1, r2) = (s1.await.unwrap(), s2.await.unwrap());
    assert_eq!((r1.status().as_u16(), r2.status().as_u16()), (200, 200));
    // Both streams are still open: they hold both permits.
    assert_eq!(gw.metric("switchyard_requests_in_flight").await, 2.0);
    let third = gw.chat("m", "no room").await;
    assert_eq!(third.status(), 503);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            gw.get(path).await.status(),
            200,
            "{path} answers at the limit"
        );
    }
    // Streams end: permits come back.
    let (t1, t2) = (r1.text().await.unwrap(), r2.text().await.unwrap());
    assert!(t1.ends_with("data: [DONE]\n\n") && t2.ends_with("data: [DONE]\n\n"));
    eventually(async || gw.metric("switchyard_requests_in_flight").await == 0.0).await;
    assert_eq!(gw.chat("m", "room again").await.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_goes_unready_first_then_stops_accepting_then_drains() {
    let up = FakeUpstream::openai().await;
    let gw = gateway_opts(&one_route(&up, "  drain_delay: 400ms\n", ""), false, None).await;
    let base = gw.base.clone();
    let http = reqwest::Client::new();
    gw.shutdown.cancel();
    let started = tokio::time::Instant::now();
    // Not ready at once, while still serving.
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "late"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "served during the drain delay");
    assert!(started.elapsed() < Duration::from_millis(400));
    gw.stop().await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn reload_applies_the_concurrency_limit_and_refuses_a_new_listen_address() {
    let release = Arc::new(Notify::new());
    let up = held_upstream(Arc::clone(&release), false).await;
    let policy = |server: &str| one_route(&up, server, "");
    let gw = gateway_opts(
        &policy("  max_concurrent_requests: 8\n"),
        false,
        Some(Duration::ZERO),
    )
    .await;
    gw.write_policy("policy.yaml", &policy("  max_concurrent_requests: 1\n"));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    let first = gw.spawn_post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "a"}]}),
    );
    eventually(async || up.calls() == 1).await;
    assert_eq!(
        gw.chat("m", "b").await.status(),
        503,
        "the new limit is in force"
    );
    release.notify_waiters();
    assert_eq!(first.await.unwrap().status(), 200);

    // gateway_opts binds 127.0.0.1:0 through an override, so write a listen
    // change into a gateway that runs on the policy's own address.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let yaml = |p: u16| {
        format!(
            "server:\n  listen: 127.0.0.1:{p}\n{}routes:\n  m:\n    targets: [{{provider: p0}}]\n",
            providers_yaml(&[&up], "")
        )
    };
    std::fs::write(dir.path().join("p.yaml"), yaml(port)).unwrap();
    let env: switchyard::config::Env =
        Arc::new(|k| (k == "TEST_UPSTREAM_KEY").then(|| TEST_KEY.to_string()));
    let token = tokio_util::sync::CancellationToken::new();
    let own = switchyard::server::Gateway::start(
        switchyard::server::GatewayOptions {
            policy_dir: dir.path().to_path_buf(),
            env,
            listen: None,
            watch: false,
            sighup: false,
            drain_delay: Some(Duration::ZERO),
            busy_poll: switchyard::server::DEFAULT_BUSY_POLL,
            dispatch_hook: None,
        },
        token.clone(),
    )
    .await
    .unwrap();
    std::fs::write(dir.path().join("p.yaml"), yaml(port + 1)).unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("server.listen") && text.contains("restart"),
        "{text}"
    );
    token.cancel();
    own.wait().await;
    gw.stop().await;
}

#[tokio::test]
async fn reverting_a_rejected_edit_marks_the_reload_gauge_healthy_again() {
    let up = FakeUpstream::openai().await;
    let good = format!(
        "server:\n  reload_interval: 50ms\n{}routes:\n  m:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[&up], "")
    );
    let gw = gateway_with(&good, true).await;
    assert_eq!(
        gw.metric("switchyard_policy_last_reload_success").await,
        1.0
    );
    gw.write_policy(
        "policy.yaml",
        "routes: {m: {targets: [{provider: nowhere}]}}\n",
    );
    eventually(async || gw.metric("switchyard_policy_last_reload_success").await == 0.0).await;
    gw.write_policy("policy.yaml", &good);
    eventually(async || gw.metric("switchyard_policy_last_reload_success").await == 1.0).await;
    assert_eq!(
        gw.metric("switchyard_policy_generation").await,
        1.0,
        "no rebuild needed"
    );
    gw.stop().await;
}

#[tokio::test]
async fn oversized_answers_are_refused_and_streams_are_timed_to_their_end() {
    // A 2 MB answer from p0 against a 1 MB cap: refused, p1 answers.
    let big = FakeUpstream::start(|s, _| async move {
        let mut reply = chat_reply(&s.body, "big");
        reply["padding"] = json!("x".repeat(2_000_000));
        Reply::Json(200, reply)
    })
    .await;
    let small = FakeUpstream::start(|s, _| async move {
        if s.body["stream"] == true {
            Reply::Sse(
                vec!["data: {}\n\n".into(), "data: [DONE]\n\n".into()],
                Duration::from_millis(400),
            )
        } else {
            Reply::Json(200, chat_reply(&s.body, "small"))
        }
    })
    .await;
    let yaml = format!(
        "{}routes:\n  m:\n    targets: [{{provider: p0}}, {{provider: p1}}]\n  solo:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[&big, &small], "    max_response_bytes: 1000000\n")
    );
    let gw = gateway(&yaml).await;
    let r = gw.chat("m", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p1");
    assert_eq!(
        gw.metric("switchyard_upstream_requests_total{outcome=\"too_large\",provider=\"p0\"}")
            .await,
        1.0,
        "not retried: the same answer would come again"
    );
    let r = gw.chat("solo", "hi").await;
    assert_eq!(r.status(), 502);
    let e = error_of(r).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("larger than 1000000 bytes"),
        "{e}"
    );
    // A stream of two events 400 ms apart: its duration counts to the end.
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "s"}]}),
        )
        .await;
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    eventually(async || {
        gw.metric("switchyard_request_duration_seconds_sum{endpoint=\"chat\",route=\"m\"}")
            .await
            >= 0.8
    })
    .await;
    gw.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn out_of_file_descriptors_backs_off_and_recovers_as_idle_connections_close() {
    // The real binary with 64 open files at most; idle connections are
    // closed after 500 ms, so it must recover while the clients still hold
    // their sockets.
    let up = FakeUpstream::openai().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        one_route(&up, "  connections: { idle_timeout: 500ms }\n", ""),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {} serve --policies {} --listen 127.0.0.1:{port} --drain-delay 0s",
            env!("CARGO_BIN_EXE_switchyard"),
            dir.path().display()
        ))
        .env("TEST_UPSTREAM_KEY", TEST_KEY)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually(async || http.get(format!("{base}/healthz")).send().await.is_ok()).await;
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(
            TcpStream::connect(format!("127.0.0.1:{port}"))
                .await
                .unwrap(),
        );
    }
    // The fd table fills up, then empties as the idle ones are closed.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    eventually(async || {
        fresh
            .get(format!("{base}/metrics"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let text = fresh
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_accept_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(
        errors >= 1.0,
        "the fd table was full at least once:\n{text}"
    );
    assert!(
        errors <= 20.0,
        "accept errors back off instead of spinning: {errors}"
    );
    drop(held);
    let _ = child.kill();
    let _ = child.wait();
}
