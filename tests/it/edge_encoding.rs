//! The edge's encodings, end to end over real HTTP: answers never
//! compressed unless the policy says so (and the setting follows reloads),
//! then compressed as the client accepts among the allowed encodings (tiny
//! ones not), event streams neither compressed nor buffered, and
//! compressed request bodies decoded before parsing, with the body limit on
//! the decoded size.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use async_compression::tokio::bufread as codec;
use bytes::Bytes;
use common::faults::*;
use common::*;
use http_body_util::StreamBody;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

fn policy(server: &str, up: &FakeUpstream) -> String {
    format!(
        "server:\n  reload_interval: 1h\n{server}{}routes:\n  m:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[up], "")
    )
}

/// A chat answer large enough to be worth compressing.
async fn big_upstream() -> FakeUpstream {
    FakeUpstream::start(|s, _| async move {
        let mut v = chat_reply(&s.body, "big");
        v["choices"][0]["message"]["content"] = json!("lorem ipsum ".repeat(300));
        Reply::Json(200, v)
    })
    .await
}

async fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => codec::GzipDecoder::new(data).read_to_end(&mut out).await,
        "br" => codec::BrotliDecoder::new(data).read_to_end(&mut out).await,
        "zstd" => codec::ZstdDecoder::new(data).read_to_end(&mut out).await,
        other => panic!("no decoder for {other}"),
    }
    .unwrap();
    out
}

async fn encode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => codec::GzipEncoder::new(data).read_to_end(&mut out).await,
        "br" => codec::BrotliEncoder::new(data).read_to_end(&mut out).await,
        "zstd" => codec::ZstdEncoder::new(data).read_to_end(&mut out).await,
        "deflate" => codec::ZlibEncoder::new(data).read_to_end(&mut out).await,
        other => panic!("no encoder for {other}"),
    }
    .unwrap();
    out
}

#[tokio::test]
async fn json_answers_are_compressed_as_accepted_and_tiny_ones_are_not() {
    let up = big_upstream().await;
    let gw = gateway(&policy("  compression: {}\n", &up)).await;
    for (accept, expected) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip;q=0.5, br;q=1", "br"),
    ] {
        let r = chat_accepting(&gw, accept).await;
        assert_eq!(r.headers()["content-encoding"], expected, "{accept}");
        assert!(
            r.headers()["vary"]
                .to_str()
                .unwrap()
                .contains("accept-encoding")
        );
        let wire = r.bytes().await.unwrap();
        let plain = decode(expected, &wire).await;
        assert!(
            wire.len() * 4 < plain.len(),
            "{accept}: actually compressed"
        );
        let v: Value = serde_json::from_slice(&plain).unwrap();
        assert!(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .starts_with("lorem")
        );
    }
    let plain = gw.chat("m", "no accept-encoding").await;
    assert_eq!(plain.headers().get("content-encoding"), None);
    assert!(
        plain.headers()["vary"]
            .to_str()
            .unwrap()
            .contains("accept-encoding"),
        "a plain answer says it would differ for another Accept-Encoding"
    );
    let v: Value = plain.json().await.unwrap();
    assert!(v["choices"][0]["message"]["content"].is_string());
    let tiny = gw
        .http
        .get(format!("{}/healthz", gw.base))
        .header("accept-encoding", "gzip");
    let tiny = tiny.send().await.unwrap();
    assert_eq!(
        tiny.headers().get("content-encoding"),
        None,
        "tiny bodies as they are"
    );
    assert_eq!(tiny.json::<Value>().await.unwrap()["status"], "ok");
    gw.stop().await;
}

/// A chat request sent with `accept-encoding: <accept>`; its answer is 200.
async fn chat_accepting(gw: &TestGateway, accept: &str) -> reqwest::Response {
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .header("accept-encoding", accept)
        .json(&chat_body("m", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{accept}");
    r
}

/// The `content-encoding` of a big chat answer for `accept`, after
/// checking that the answer (decoded) is the upstream's.
async fn encoding_for(gw: &TestGateway, accept: &str) -> Option<String> {
    let r = chat_accepting(gw, accept).await;
    let encoding = r
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    let wire = r.bytes().await.unwrap();
    let plain = match &encoding {
        Some(e) => decode(e, &wire).await,
        None => wire.to_vec(),
    };
    let v: Value = serde_json::from_slice(&plain).unwrap();
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("lorem"),
        "{accept}: {v}"
    );
    encoding
}

#[tokio::test]
async fn answers_are_sent_as_they_are_unless_the_policy_compresses_them() {
    let up = big_upstream().await;
    let gw = gateway(&policy("", &up)).await;
    let every = "gzip, deflate, br, zstd";
    assert_eq!(encoding_for(&gw, every).await, None, "off by default");
    // Reloads apply to the connection the client already holds.
    let only_gzip = "  compression: {encodings: [gzip], level: best}\n";
    gw.write_policy("policy.yaml", &policy(only_gzip, &up));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(encoding_for(&gw, every).await.as_deref(), Some("gzip"));
    assert_eq!(
        encoding_for(&gw, "br;q=1, zstd;q=1, gzip;q=0.1")
            .await
            .as_deref(),
        Some("gzip"),
        "the client chooses among the allowed encodings"
    );
    assert_eq!(encoding_for(&gw, "br, zstd").await, None);
    // Above the answer's size: sent as it is.
    let high_floor = "  compression: {min_bytes: 1000000}\n";
    gw.write_policy("policy.yaml", &policy(high_floor, &up));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(encoding_for(&gw, every).await, None);
    gw.write_policy("policy.yaml", &policy("  compression: {}\n", &up));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert!(encoding_for(&gw, every).await.is_some());
    gw.write_policy("policy.yaml", &policy("", &up));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(encoding_for(&gw, every).await, None, "off again");
    gw.stop().await;
}

#[tokio::test]
async fn event_streams_are_not_compressed_and_not_buffered() {
    // An upstream that sends the second event only when the test says so.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let svc = hyper::service::service_fn(move |_req| {
            let rx = rx.clone();
            async move {
                let rx = rx.lock().await.take().unwrap();
                let events = futures_util::stream::unfold(rx, |mut rx| async move {
                    let e = rx.recv().await?;
                    Some((
                        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(e))),
                        rx,
                    ))
                });
                let mut r = hyper::Response::new(StreamBody::new(events));
                r.headers_mut()
                    .insert("content-type", "text/event-stream".parse().unwrap());
                Ok::<_, std::convert::Infallible>(r)
            }
        });
        let io = hyper_util::rt::TokioIo::new(sock);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .await;
    });
    let events = sse_events(&json!("m"), "streamed");
    let yaml = format!(
        "server:\n  compression: {{min_bytes: 0}}\nproviders:\n  p0:\n    kind: openai\n    base_url: http://{addr}/v1\n    api_key_env: TEST_UPSTREAM_KEY\nroutes:\n  m:\n    targets: [{{provider: p0}}]\n"
    );
    let gw = gateway(&yaml).await;
    // The role chunk and the first content: the answer starts with them.
    tx.send(events[0].clone()).unwrap();
    tx.send(events[1].clone()).unwrap();
    let mut r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .header("accept-encoding", "gzip, br, zstd")
        .json(&chat_body("m", "hi", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers().get("content-encoding"), None);
    let started = events[..2].concat();
    let mut rest = String::new();
    while rest.len() < started.len() {
        let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
            .await
            .expect("the first events arrive while the upstream holds the rest")
            .unwrap()
            .unwrap();
        rest.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(rest, started);
    for e in &events[2..] {
        tx.send(e.clone()).unwrap();
    }
    drop(tx);
    while let Some(chunk) = r.chunk().await.unwrap() {
        rest.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let parsed = parse_sse(&rest);
    assert_eq!(
        (parsed.content.as_str(), parsed.done),
        ("streamed answered", true)
    );
    gw.stop().await;
}

#[tokio::test]
async fn compressed_request_bodies_are_decoded_within_the_body_limit() {
    let up = FakeUpstream::openai().await;
    let gw = gateway(&policy("  max_body_bytes: 65536\n", &up)).await;
    let send = async |encoding: &str, body: Vec<u8>| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.base))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap()
    };
    for enc in ["gzip", "br", "zstd", "deflate"] {
        let json = chat_body("m", &format!("sent as {enc}"), false).to_string();
        let r = send(enc, encode(enc, json.as_bytes()).await).await;
        assert_eq!(r.status(), 200, "{enc}");
    }
    // `identity` names no encoding: the body is read as it came.
    let json = chat_body("m", "sent as identity", false).to_string();
    let r = send("identity", json.into_bytes()).await;
    assert_eq!(r.status(), 200, "identity");
    let seen: Vec<Value> = up
        .requests()
        .iter()
        .map(|s| s.body["messages"][0]["content"].clone())
        .collect();
    assert_eq!(
        seen,
        [
            "sent as gzip",
            "sent as br",
            "sent as zstd",
            "sent as deflate",
            "sent as identity"
        ]
    );
    // A bomb: small on the wire, far over the limit once inflated.
    let huge = chat_body("m", &"a".repeat(4 * 1024 * 1024), false).to_string();
    let bomb = encode("gzip", huge.as_bytes()).await;
    assert!(bomb.len() < 65536, "{} bytes compressed", bomb.len());
    let r = send("gzip", bomb).await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_of(r).await["type"], "invalid_request_error");
    // An encoding the gateway cannot decode.
    let r = send("snappy", b"{}".to_vec()).await;
    assert_eq!(r.status(), 415);
    assert!(
        r.headers()["accept-encoding"]
            .to_str()
            .unwrap()
            .contains("gzip")
    );
    assert!(r.headers().contains_key("x-request-id"));
    let e = error_of(r).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (
            Some("invalid_request_error"),
            Some("unsupported_content_encoding")
        )
    );
    assert_eq!(up.calls(), 5, "refused bodies never went upstream");
    gw.stop().await;
}
