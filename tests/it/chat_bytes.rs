//! Chat bodies on the pass-through path: an OpenAI-compatible target gets
//! the client's own bytes with only `model` changed (and, on streams, the
//! usage request added), bodies the quick read doubts still go out as the
//! full parse would send them, a cached route still serves from its cache,
//! and bad bodies get the same errors as before, over real HTTP.

use crate::common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value, json};

/// An OpenAI-compatible upstream that records every body byte for byte.
struct Recorder {
    bodies: Mutex<Vec<Bytes>>,
    /// `Content-Length` and `Transfer-Encoding` of each request.
    framing: Mutex<Vec<(Option<String>, Option<String>)>>,
}

async fn recorder() -> (Arc<Recorder>, String) {
    let state = Arc::new(Recorder {
        bodies: Mutex::new(Vec::new()),
        framing: Mutex::new(Vec::new()),
    });
    let addr = serve_raw(Arc::clone(&state), |s, req| async move {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let framing = (header("content-length"), header("transfer-encoding"));
        s.framing.lock().unwrap().push(framing);
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        s.bodies.lock().unwrap().push(bytes);
        let model = body["model"].clone();
        if body["stream"] == true {
            let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]});
            let usage = json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
            let text = format!("data: {chunk}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
            return hyper::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Full::new(Bytes::from(text)))
                .unwrap();
        }
        let answer = json!({"id": "c", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
        hyper::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(answer.to_string())))
            .unwrap()
    })
    .await;
    (state, format!("http://{addr}/v1"))
}

fn policy(base: &str, cache: bool) -> String {
    let cache = if cache {
        "    cache: { enabled: true, ttl: 5m }\n"
    } else {
        ""
    };
    format!(
        "providers:\n  p0:\n    kind: openai\n    base_url: {base}\n    api_key_env: TEST_UPSTREAM_KEY\n\
         routes:\n  my-route:\n    targets:\n      - provider: p0\n        model: upstream-model\n{cache}"
    )
}

async fn send(gw: &TestGateway, raw: &str) -> reqwest::Response {
    gw.http
        .post(format!("{}/v1/chat/completions", gw.base))
        .header("content-type", "application/json")
        .body(raw.to_string())
        .send()
        .await
        .unwrap()
}

/// A body no serializer would write: spacing, member order, escapes and
/// numbers as a client may send them.
fn odd_body(extra: &str) -> String {
    let prompt = "x".repeat(200_000);
    format!(
        "{{ \"temperature\" : 1.50 ,\"top_p\":1e0, \"messages\" : [ {{\"role\":\"user\", \
         \"content\":\"h\\u00e9llo \\/ {prompt}\"}} ],\n  \"vendor\": {{\"z\":1,\"a\":[true,null]}},\
         \"seed\":12345678901234567890123,{extra}\t\"model\":\"my-route\" }}\n"
    )
}

#[tokio::test]
async fn upstream_gets_the_clients_bytes_with_only_model_changed() {
    let (up, base) = recorder().await;
    let gw = gateway(&policy(&base, false)).await;
    // A large body (sent as slices of the client's bytes) and a small one
    // (copied into one buffer).
    // As Python's `json.dumps` writes text (a surrogate pair for the
    // emoji), beside raw UTF-8.
    let small = "{\"messages\": [{\"role\":\"user\",\"content\":\"\\u00e9 \\ud83d\\ude00 caf\u{e9}\"}], \"n\":1.0,\"model\":\"my-route\"}";
    for (i, raw) in [odd_body(""), small.to_string()].iter().enumerate() {
        let resp = send(&gw, raw).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "ok");
        let sent = up.bodies.lock().unwrap()[i].clone();
        let want = raw.replace("\"model\":\"my-route\"", "\"model\":\"upstream-model\"");
        assert_eq!(String::from_utf8(sent.to_vec()).unwrap(), want);
        // One Content-Length request, never chunked.
        let framing = up.framing.lock().unwrap()[i].clone();
        assert_eq!(framing, (Some(want.len().to_string()), None));
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_body_sent_in_pieces_reaches_the_upstream_whole() {
    let (up, base) = recorder().await;
    let gw = gateway(&policy(&base, false)).await;
    // Chunked, in three pieces cut inside tokens: the gateway reads them
    // as three frames, the first of them alone not a body.
    let raw =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"in pieces\"}],\"model\":\"my-route\"}";
    let pieces: Vec<Result<Bytes, std::io::Error>> = [&raw[..7], &raw[7..40], &raw[40..]]
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p.as_bytes())))
        .collect();
    let resp = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "ok");
    let sent = up.bodies.lock().unwrap()[0].clone();
    let want = raw.replace("\"model\":\"my-route\"", "\"model\":\"upstream-model\"");
    assert_eq!(String::from_utf8(sent.to_vec()).unwrap(), want);
    gw.stop().await;
}

#[tokio::test]
async fn streams_get_the_clients_bytes_plus_the_usage_request() {
    let (up, base) = recorder().await;
    let gw = gateway(&policy(&base, false)).await;
    let raw = odd_body("\"stream\": true,");
    let resp = send(&gw, &raw).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"content\":\"ok\""), "{text}");
    assert!(
        !text.contains("\"usage\""),
        "usage the client did not ask for: {text}"
    );
    let sent = up.bodies.lock().unwrap()[0].clone();
    let model = raw.replace("\"model\":\"my-route\"", "\"model\":\"upstream-model\"");
    let close = model.rfind('}').unwrap();
    let want = format!(
        "{},\"stream_options\":{{\"include_usage\":true}}{}",
        &model[..close],
        &model[close..]
    );
    assert_eq!(String::from_utf8(sent.to_vec()).unwrap(), want);
    gw.stop().await;
}

#[tokio::test]
async fn bodies_the_quick_read_doubts_go_out_as_the_full_parse_sends_them() {
    let (up, base) = recorder().await;
    let gw = gateway(&policy(&base, false)).await;
    let bodies = [
        // The last `model` wins, as in every JSON object read.
        r#"{"model":"elsewhere","messages":[{"role":"user","content":"a"}],"model":"my-route"}"#,
        // An escaped top-level key.
        r#"{"model":"my-route","messages":[{"role":"user","content":"b"}],"t\u006fp_p":0.5}"#,
        // A stream whose `stream_options` is edited on the tree.
        r#"{"model":"my-route","messages":[{"role":"user","content":"c"}],"stream":true,"stream_options":null}"#,
    ];
    for (i, raw) in bodies.iter().enumerate() {
        let resp = send(&gw, raw).await;
        assert_eq!(resp.status(), 200, "{raw}");
        let _ = resp.bytes().await.unwrap();
        let sent: Map<String, Value> =
            serde_json::from_slice(&up.bodies.lock().unwrap()[i]).unwrap();
        let mut want: Map<String, Value> = serde_json::from_str(raw).unwrap();
        want.insert("model".into(), json!("upstream-model"));
        if want.get("stream") == Some(&json!(true)) {
            want.insert("stream_options".into(), json!({"include_usage": true}));
        }
        assert_eq!(sent, want, "{raw}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_cached_route_serves_the_second_ask_from_its_cache() {
    let (up, base) = recorder().await;
    let gw = gateway(&policy(&base, true)).await;
    let raw = odd_body("");
    for _ in 0..2 {
        let resp = send(&gw, &raw).await;
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await.unwrap();
    }
    // The same request with other spacing is the same cache key.
    let spaced = raw.replace("\"model\":\"my-route\"", "\"model\" : \"my-route\"");
    assert_eq!(send(&gw, &spaced).await.status(), 200);
    let bodies = up.bodies.lock().unwrap().clone();
    assert_eq!(
        bodies.len(),
        1,
        "one upstream call for three identical asks"
    );
    let want = raw.replace("\"model\":\"my-route\"", "\"model\":\"upstream-model\"");
    assert_eq!(String::from_utf8(bodies[0].to_vec()).unwrap(), want);
    gw.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_the_errors_they_always_got() {
    let (up, base) = recorder().await;
    let gw = gateway(&policy(&base, false)).await;
    let invalid_json = [
        "{",
        r#"{"model":"my-route","messages":[1e400]}"#,
        r#"{"model":"my-route","messages":[{"content":"\ud800"}]}"#,
        r#"{"model":"my-route","messages":[1]} trailing"#,
    ];
    for raw in invalid_json {
        let resp = send(&gw, raw).await;
        assert_eq!(resp.status(), 400, "{raw}");
        let e = error_of(resp).await;
        let parser = serde_json::from_str::<Value>(raw).unwrap_err();
        assert_eq!(
            e["message"],
            format!("Request body is not valid JSON: {parser}"),
            "{raw}"
        );
    }
    let shapes = [
        ("", None, "Request body is empty; expected a JSON object."),
        ("[1]", None, "Request body must be a JSON object."),
        (
            r#"{"messages":[1]}"#,
            Some("model"),
            "Missing required parameter: 'model'.",
        ),
        (
            r#"{"model":"","messages":[1]}"#,
            Some("model"),
            "'model' must be a non-empty string.",
        ),
        (
            r#"{"model":"my-route"}"#,
            Some("messages"),
            "Missing required parameter: 'messages'.",
        ),
        (
            r#"{"model":"my-route","messages":[]}"#,
            Some("messages"),
            "'messages' must contain at least one message.",
        ),
        (
            r#"{"model":"my-route","messages":{}}"#,
            Some("messages"),
            "'messages' must be an array.",
        ),
        (
            r#"{"model":"my-route","messages":5}"#,
            Some("messages"),
            "'messages' must be an array.",
        ),
        (
            r#"{"model":"my-route","messages":[1],"stream":"yes"}"#,
            Some("stream"),
            "'stream' must be a boolean.",
        ),
    ];
    for (raw, param, message) in shapes {
        let resp = send(&gw, raw).await;
        assert_eq!(resp.status(), 400, "{raw}");
        let e = error_of(resp).await;
        assert_eq!(e["message"], message, "{raw}");
        assert_eq!(e["type"], "invalid_request_error", "{raw}");
        assert_eq!(e["param"], param.map_or(Value::Null, |p| json!(p)), "{raw}");
    }
    assert!(
        up.bodies.lock().unwrap().is_empty(),
        "a bad body reached the upstream"
    );
    gw.stop().await;
}
