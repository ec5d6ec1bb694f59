//! Tests of the OpenAI wire bodies: reasoning fields by deployment,
//! the embeddings body (byte for byte serde_json's), secret headers.

use super::*;

#[test]
fn a_translated_reasoning_effort_goes_to_models_that_take_one() {
    use crate::api::chat::Reasoning;
    let mut r =
        ChatRequest::parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#).unwrap();
    let body = |r: &ChatRequest, m: &str| -> Value {
        let sent = chat_request_body(r, m, takes_reasoning_effort);
        serde_json::from_slice(sent.as_bytes().unwrap()).unwrap()
    };
    let support = |r: &ChatRequest, m: &str| ext_support(r, m, takes_reasoning_effort);
    assert!(body(&r, "o3").get("reasoning_effort").is_none());
    r.ext.reasoning = Some(Reasoning {
        budget_tokens: Some(31999),
        ..Reasoning::default()
    });
    assert_eq!(body(&r, "o3")["reasoning_effort"], "high");
    assert_eq!(body(&r, "o3")["model"], "o3");
    assert!(body(&r, "gpt-4o").get("reasoning_effort").is_none());
    assert!(support(&r, "gpt-5-mini").reasoning);
    assert!(!support(&r, "openai/gpt-4.1").reasoning);
    // Names compared without regard to case.
    assert!(!support(&r, "GPT-4o").reasoning);
    assert!(!support(&r, "OpenAI/ChatGPT-4o-latest").reasoning);
    assert!(support(&r, "O3").reasoning);
    assert!(support(&r, "gpt").reasoning, "shorter than every prefix");
    assert!(!support(&r, "o3").top_k);
    for (deployment, reasons) in [
        ("prod-o3-mini", true),
        ("o4mini-eu", true),
        ("team-gpt-5", true),
        ("team-gpt-5-chat", false),
        ("codex-deploy", true),
        ("gpt-4o-prod", false),
        ("demo1", false),
        ("my-deployment", false),
    ] {
        assert_eq!(
            deployment_takes_reasoning_effort(deployment),
            reasons,
            "{deployment}"
        );
    }
    r.ext.reasoning = Some(Reasoning {
        effort: Some("max".into()),
        ..Reasoning::default()
    });
    assert_eq!(body(&r, "gpt-5")["reasoning_effort"], "high");
    // A chat client's own value is kept as sent.
    let own = ChatRequest::parse(
        br#"{"model":"m","reasoning_effort":"xhigh","messages":[{"role":"user","content":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(body(&own, "gpt-5")["reasoning_effort"], "xhigh");
}
use serde_json::json;

#[test]
fn chat_completion_needs_choices() {
    assert!(check_chat_completion(br#"{"choices": []}"#).is_ok());
    for (body, why) in [
        (&b"{}"[..], "no `choices`"),
        (b"<html>", "invalid JSON"),
        (b"{\"choices\": [", "truncated JSON"),
    ] {
        match check_chat_completion(body) {
            Err(UpstreamError::Protocol(m)) => assert!(m.contains(why), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn embeddings_body_keeps_extra_fields_and_asks_for_base64() {
    let extra = json!({"dimensions": 8, "user": "u"});
    let body = embeddings_body(
        "m",
        &[json!("a"), json!([1, 2])],
        extra.as_object().unwrap(),
        EncodingFormat::Base64,
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        json!({"dimensions": 8, "user": "u", "model": "m", "input": ["a", [1, 2]],
               "encoding_format": "base64"})
    );
}

/// Byte for byte what `serde_json` wrote for the same fields in the
/// same order (the derived form this body had), escapes included.
#[test]
fn embeddings_body_is_serde_jsons_bytes() {
    #[derive(Serialize)]
    struct Derived<'a> {
        #[serde(flatten)]
        extra: &'a Map<String, Value>,
        model: &'a str,
        input: &'a [Value],
        encoding_format: &'static str,
    }
    let extra = json!({"dimensions": 8, "user": "q\"u\\o\te", "x": {"k": [1.5, null]}});
    let extra = extra.as_object().unwrap();
    let inputs = [
        json!("plain"),
        json!("ca\u{e9} \n\u{1}"),
        json!([1, 2]),
        json!(7),
    ];
    for format in [EncodingFormat::Float, EncodingFormat::Base64] {
        let want = Derived {
            extra,
            model: "m\"1",
            input: &inputs,
            encoding_format: format.as_str(),
        };
        let body = embeddings_body("m\"1", &inputs, extra, format);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            serde_json::to_string(&want).unwrap()
        );
    }
}

#[test]
fn secret_headers_are_sensitive() {
    assert!(secret_header("k").unwrap().is_sensitive());
    assert!(secret_header("bad\nvalue").is_err());
}
