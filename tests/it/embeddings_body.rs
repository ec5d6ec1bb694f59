//! An embeddings request passed through goes upstream as the client wrote
//! it: an OpenAI-wire target gets the client's own bytes with only `model`
//! set (and `"encoding_format":"float"` said when the client left it out),
//! escapes, spacing, key order and extra fields untouched; a target of
//! another kind, reached by failover, gets the same inputs read from those
//! bytes. Against fake upstreams over real HTTP.

use serde_json::{Value, json};

use crate::common::cohere::FakeCohere;
use crate::common::{self, FakeUpstream, TestGateway, expected_vector};

/// A client body as a client may write it: spaces, `model` last, escapes
/// in the inputs, fields the gateway does not read.
const BODY: &str = r#"{ "input" : ["doc \u00e9 one", "doc\ttwo", "\"three\""],"user":"u-1",
  "x_vendor":{"k":[1,2.5e3,null]} , "dimensions": 8 ,"model":"emb" }"#;

fn inputs() -> Vec<Value> {
    vec![json!("doc é one"), json!("doc\ttwo"), json!("\"three\"")]
}

async fn post(gw: &TestGateway, body: String) -> Value {
    let r = gw
        .http
        .post(format!("{}/v1/embeddings", gw.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Each answered vector, as floats (decoded from base64 when asked so).
fn vectors(answer: &Value) -> Vec<Vec<f32>> {
    let data = answer["data"].as_array().unwrap();
    data.iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            match &d["embedding"] {
                Value::String(b64) => switchyard::api::embeddings::decode_base64(b64).unwrap(),
                v => serde_json::from_value(v.clone()).unwrap(),
            }
        })
        .collect()
}

#[tokio::test]
async fn the_clients_bytes_go_upstream_with_only_model_set() {
    let up = FakeUpstream::start(|s, _| async move { common::embeddings_reply(&s.body) }).await;
    let yaml = common::providers_yaml(&[&up], "")
        + "routes:\n  emb:\n    targets: [{provider: p0, model: up-emb}]\n";
    let gw = common::gateway(&yaml).await;
    let want: Vec<Vec<f32>> = inputs().iter().map(expected_vector).collect();

    // No `encoding_format`: floats, and the upstream is told so.
    let answer = post(&gw, BODY.to_string()).await;
    assert_eq!(vectors(&answer), want);
    assert_eq!(answer["model"], "emb");
    let seen = up.requests().pop().unwrap();
    let sent = BODY.replace(
        r#""model":"emb" }"#,
        r#""model":"up-emb" ,"encoding_format":"float"}"#,
    );
    assert_eq!(String::from_utf8_lossy(&seen.raw), sent);

    // The client's own `encoding_format`: nothing but `model` changes.
    let body = BODY.replace(
        r#""user":"u-1""#,
        r#""encoding_format" : "base64","user":"u-1""#,
    );
    let answer = post(&gw, body.clone()).await;
    assert_eq!(vectors(&answer), want);
    assert!(answer["data"][0]["embedding"].is_string());
    let seen = up.requests().pop().unwrap();
    let sent = body.replace(r#""model":"emb""#, r#""model":"up-emb""#);
    assert_eq!(String::from_utf8_lossy(&seen.raw), sent);
    assert_eq!(up.calls(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_target_of_another_kind_gets_the_inputs_after_failover() {
    let down = FakeUpstream::down(503).await;
    let cohere = FakeCohere::start().await;
    let yaml = common::providers_yaml(&[&down], "")
        + &format!(
            "  co:\n    kind: cohere\n    base_url: {}\n    api_key_env: TEST_UPSTREAM_KEY\n",
            cohere.base_url()
        )
        + "routes:\n  emb:\n    targets: [{provider: p0, model: up-emb}, {provider: co, model: embed-v4.0}]\n";
    let gw = common::gateway(&yaml).await;
    // Without the fields Cohere has no word for (it refuses them).
    let body = r#"{ "input" : ["doc \u00e9 one", "doc\ttwo", "\"three\""], "model":"emb" }"#;
    let answer = post(&gw, body.to_string()).await;
    let want: Vec<Vec<f32>> = inputs().iter().map(expected_vector).collect();
    assert_eq!(vectors(&answer), want);
    assert!(down.calls() >= 1, "the first target was tried");
    // The OpenAI-wire target got the client's bytes; Cohere its texts.
    let tried = down.requests().pop().unwrap();
    assert!(String::from_utf8_lossy(&tried.raw).contains(r#""doc\ttwo""#));
    let seen = cohere.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body["texts"], Value::Array(inputs()));
    assert_eq!(seen[0].body["model"], "embed-v4.0");
    gw.stop().await;
}

/// The same inputs sent again get the same answer, whichever way they
/// went: one request that repeats an input (the per-item flow, which
/// parses) answers each input as the plain request does.
#[tokio::test]
async fn a_repeated_input_is_answered_as_the_plain_request_is() {
    let up = FakeUpstream::start(|s, _| async move { common::embeddings_reply(&s.body) }).await;
    let yaml = common::providers_yaml(&[&up], "")
        + "routes:\n  emb:\n    targets: [{provider: p0, model: up-emb}]\n";
    let gw = common::gateway(&yaml).await;
    let body = BODY.replace(r#""\"three\""]"#, r#""\"three\"", "doc\ttwo"]"#);
    let answer = post(&gw, body).await;
    let mut want: Vec<Vec<f32>> = inputs().iter().map(expected_vector).collect();
    want.push(want[1].clone());
    assert_eq!(vectors(&answer), want);
    // Sent once each, written anew (the repeat is not sent).
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.body["input"], Value::Array(inputs()));
    assert_eq!(seen.body["model"], "up-emb");
    gw.stop().await;
}
