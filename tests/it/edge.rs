//! The edge layers, end to end over real HTTP: catch-panic, request ids on
//! every answer, CORS (and its reload), and the trace span in log lines.
//! Compression and encoded bodies are in `edge_encoding.rs`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::faults::*;
use common::logs::capture_logs;
use common::raw_http::read_response;
use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn policy(server: &str, up: &FakeUpstream) -> String {
    format!(
        "server:\n  reload_interval: 1h\n{server}{}routes:\n  m:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[up], "")
    )
}

const CORS: &str = "  cors:\n    allowed_origins: [https://app.example]\n    allowed_headers: [authorization, content-type]\n    max_age: 10m\n";

#[tokio::test]
async fn a_panicking_handler_gets_an_openai_500_and_connection_and_gateway_serve_on() {
    let up = FakeUpstream::openai().await;
    let hook: switchyard::server::DispatchHook = Arc::new(|_path, headers| {
        if headers.contains_key("x-test-panic") {
            panic!("test hook: panic in a handler");
        }
    });
    let gw = gateway_hooked(&policy("", &up), false, Some(Duration::ZERO), Some(hook)).await;
    let mut sock = TcpStream::connect(gw.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let panics =
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nx-test-panic: 1\r\nx-request-id: boom-1\r\n\r\n";
    sock.write_all(panics.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut sock).await;
    assert!(head.starts_with("http/1.1 500"), "{head}");
    assert!(head.contains("x-request-id: boom-1\r\n"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(
        body,
        json!({"error": {"message": "The gateway failed while handling this request.",
                         "type": "server_error", "param": null, "code": "internal_error"}})
    );
    // The same connection serves the next request...
    let fine = "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n";
    sock.write_all(fine.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut sock).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body["data"][0]["id"], "m");
    // ...and so does the gateway, which counted the 500 once.
    assert_eq!(gw.chat("m", "hi").await.status(), 200);
    let counted = r#"switchyard_requests_total{endpoint="other",route="_unknown",status="500"}"#;
    assert_eq!(gw.metric(counted).await, 1.0);
    gw.stop().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&policy(CORS, &up)).await;
    let url = |p: &str| format!("{}{p}", gw.base);
    let c = &gw.http;
    let answers = [
        c.get(url("/v1/models")),
        c.get(url("/nowhere")),
        c.get(url("/v1/chat/completions")),
        c.post(url("/v1/chat/completions")).body("{not json"),
        c.post(url("/v1/chat/completions"))
            .header("content-encoding", "snappy")
            .body("x"),
        c.request(reqwest::Method::OPTIONS, url("/v1/chat/completions"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST"),
    ];
    let mut statuses = vec![];
    for (i, req) in answers.into_iter().enumerate() {
        let r = req.send().await.unwrap();
        statuses.push(r.status().as_u16());
        let id = r.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 32, "answer {i}: fresh id {id}");
        let sent = format!("client-id-{i}");
        let req = c.get(url("/nowhere")).header("x-request-id", &sent);
        let r = req.send().await.unwrap();
        assert_eq!(r.headers()["x-request-id"], sent.as_str());
    }
    assert_eq!(statuses, [200, 404, 405, 400, 415, 204]);
    gw.stop().await;
}

#[tokio::test]
async fn cors_preflights_skip_the_limit_and_only_allowed_origins_are_allowed() {
    // Answers only once the test opens the gate.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let slow = FakeUpstream::start(move |s, _| {
        let held = held.clone();
        async move {
            held.acquire().await.unwrap().forget();
            Reply::Json(200, chat_reply(&s.body, "slow"))
        }
    })
    .await;
    let server = format!("  max_concurrent_requests: 1\n{CORS}");
    let gw = gateway(&policy(&server, &slow)).await;
    // One request fills the limit...
    let busy = gw.spawn_post("/v1/chat/completions", chat_body("m", "hold", false));
    eventually(async || slow.live() == 1).await;
    assert_eq!(gw.chat("m", "shed").await.status(), 503);
    // ...and a preflight is still answered, by the edge.
    let pre = gw
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/chat/completions", gw.base),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization,content-type"
    );
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h.contains_key("x-request-id"));
    gate.add_permits(100);
    assert_eq!(busy.await.unwrap().status(), 200);
    // Actual requests: the allow header for allowed origins only.
    for (origin, allowed) in [
        ("https://app.example", true),
        ("https://evil.example", false),
    ] {
        let r = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.base))
            .header("origin", origin)
            .json(&chat_body("m", "hi", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let allow = r.headers().get("access-control-allow-origin");
        assert_eq!(allow.is_some(), allowed, "{origin}");
        if allowed {
            let exposed = r.headers()["access-control-expose-headers"]
                .to_str()
                .unwrap();
            for name in [
                "x-request-id",
                "x-switchyard-cache",
                "x-switchyard-provider",
                "x-switchyard-attempts",
                "retry-after",
            ] {
                assert!(exposed.contains(name), "{exposed}");
            }
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn cors_follows_policy_reloads() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&policy("", &up)).await;
    let preflight = async || {
        let r = gw
            .http
            .request(reqwest::Method::OPTIONS, format!("{}/v1/models", gw.base))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        let allow = r.headers().get("access-control-allow-origin").cloned();
        (r.status().as_u16(), allow)
    };
    assert_eq!(
        preflight().await,
        (405, None),
        "CORS off: OPTIONS is routed"
    );
    gw.write_policy("policy.yaml", &policy(CORS, &up));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    let (status, allow) = preflight().await;
    assert_eq!(
        (status, allow.unwrap()),
        (204, "https://app.example".parse().unwrap())
    );
    gw.write_policy("policy.yaml", &policy("", &up));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(preflight().await, (405, None));
    gw.stop().await;
}

#[tokio::test]
async fn log_lines_inside_a_request_carry_its_id() {
    let logs = capture_logs();
    let (bad, good, torn) = (
        FaultyUpstream::start("bad").await,
        FaultyUpstream::start("good").await,
        FaultyUpstream::start("torn").await,
    );
    bad.set(Fault::Status(500));
    torn.set(Fault::StreamCutMidEvent);
    let retry = "    retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms}\n";
    let yaml = format!(
        "{}routes:\n{}{}{}",
        faulty_providers_yaml(&[&bad, &good, &torn], &[]),
        route_yaml("failover", &["p0", "p1"], retry),
        route_yaml(
            "cached",
            &["p0", "p1"],
            &format!("{retry}    cache: {{enabled: true}}\n")
        ),
        route_yaml("torn", &["p2"], ""),
    );
    let gw = gateway(&yaml).await;
    for (id, model, stream) in [
        ("span-failover-1", "failover", false),
        ("span-cached-2", "cached", false),
        ("span-torn-3", "torn", true),
    ] {
        let r = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.base))
            .header("x-request-id", id)
            .json(&chat_body(model, id, stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
        let _ = r.bytes().await;
    }
    let marked = |needle: &str, id: &str| {
        let lines = logs.lines_with(needle);
        assert!(!lines.is_empty(), "no {needle:?} line");
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("request{{id={id}"))),
            "{lines:#?}"
        );
    };
    marked("retrying", "span-failover-1");
    // The access line too, though the connection writes it after the answer.
    for id in ["span-failover-1", "span-cached-2", "span-torn-3"] {
        marked("switchyard::access", id);
    }
    marked("target failed", "span-failover-1");
    marked("target failed", "span-cached-2");
    marked("upstream stream failed mid-way", "span-torn-3");
    // The span also names the route and, once known, the provider.
    let failover = logs.lines_with("request{id=span-failover-1");
    assert!(
        failover.iter().any(|l| l.contains("route=failover")),
        "{failover:#?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn http2_requests_get_their_access_lines_in_their_spans() {
    let logs = capture_logs();
    let yaml = "providers:\n  m:\n    kind: mock\nroutes:\n  chat:\n    targets: [{provider: m}]\n";
    let gw = gateway(yaml).await;
    // Cleartext HTTP/2 (prior knowledge): every request is a stream of one
    // connection, answered by a task of its own.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let ids = ["h2-line-1", "h2-line-2", "h2-line-3"];
    let sent = ids.map(|id| {
        h2.post(format!("{}/v1/chat/completions", gw.base))
            .header("x-request-id", id)
            .json(&chat_body("chat", id, id.ends_with('2')))
            .send()
    });
    for r in futures_util::future::join_all(sent).await {
        let r = r.unwrap();
        assert_eq!(
            (r.version(), r.status()),
            (reqwest::Version::HTTP_2, reqwest::StatusCode::OK)
        );
        assert!(!r.bytes().await.unwrap().is_empty());
    }
    // The connection writes the lines right after it has written the
    // answers, in the same turn: they are there before the client reads.
    let access = logs.lines_with("switchyard::access");
    for id in ids {
        let line = access
            .iter()
            .find(|l| l.contains(&format!("request_id=\"{id}\"")))
            .unwrap_or_else(|| panic!("no access line for {id}: {access:#?}"));
        assert!(line.contains(&format!("request{{id={id}")), "{line}");
        assert!(
            line.contains("status=200") && line.contains("outcome=\"complete\""),
            "{line}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_access_log_names_the_key_by_alias_never_by_secret() {
    let logs = capture_logs();
    const SECRET: &str = "sk-logged-0123456789abcdef0123456789";
    let yaml = "providers:\n  m:\n    kind: mock\nroutes:\n  chat:\n    targets: [{provider: m}]\nkeys:\n  search-team:\n    secret_env: LOGGED_KEY\n";
    let gw = gateway_env(yaml, &[("LOGGED_KEY", SECRET)]).await;
    for (id, key) in [
        ("keyed-1", SECRET),
        ("keyed-2", "sk-someone-else-000000000000"),
    ] {
        let r = gw
            .http
            .post(format!("{}/v1/chat/completions", gw.base))
            .header("x-request-id", id)
            .bearer_auth(key)
            .json(&chat_body("chat", id, false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
        r.bytes().await.unwrap();
    }
    // The access line is written when the body ends, which may be just
    // after the client has read it.
    let mut lines = Vec::new();
    for id in ["keyed-1", "keyed-2"] {
        let needle = format!("request_id=\"{id}\"");
        eventually(async || logs.lines_with(&needle).len() == 1).await;
        lines.push(logs.lines_with(&needle).remove(0));
    }
    assert!(lines[0].contains("key=\"search-team\""), "{}", lines[0]);
    // An open gateway serves unknown keys; they log as one label.
    assert!(lines[1].contains("key=\"_unknown\""), "{}", lines[1]);
    let all = logs.text();
    assert!(!all.contains(SECRET) && !all.contains("sk-someone-else"));
    assert!(!all.contains(&switchyard::config::key_hash(SECRET)[7..]));
    gw.stop().await;
}
