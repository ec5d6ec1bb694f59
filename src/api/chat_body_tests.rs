//! The quick read of chat bodies: the same facts as the full parse, the
//! client's bytes with only `model` changed, and every doubtful body left
//! to the full parse.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::scan;
use crate::api::chat::ChatRequest;
use crate::api::estimate::max_output_tokens;

fn parse(raw: &str) -> ChatRequest {
    ChatRequest::parse_bytes(&Bytes::copy_from_slice(raw.as_bytes())).unwrap()
}

fn tree(raw: &str) -> Map<String, Value> {
    serde_json::from_str(raw).unwrap()
}

#[test]
fn only_model_changes_and_no_tree_is_built() {
    let raw = "{ \"temperature\" : 1.50, \"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9\\/\"}],\n\
               \"model\" :\t\"client-model\" , \"x\":12345678901234567890123 }";
    let r = parse(raw);
    assert!(r.body.head().is_some(), "read without the tree");
    let sent = r.upstream_body("up\"stream");
    let want = raw.replace("\"client-model\"", "\"up\\\"stream\"");
    assert_eq!(std::str::from_utf8(&sent).unwrap(), want);
    let parts = r.upstream_parts("up\"stream").unwrap();
    assert_eq!(
        parts.concat(),
        sent.to_vec(),
        "the pieces make the same body"
    );
    assert!(!r.body.is_parsed(), "the pass-through path built the tree");
    // The lazy tree is the client's object.
    assert_eq!(r.body["temperature"], json!(1.5));
    assert!(r.body.is_parsed());
}

#[test]
fn facts_match_the_full_parse() {
    let bodies = [
        r#"{"model":"m","messages":[1],"max_tokens":10,"n":3,"store":true,"top_k":4,"reasoning_effort":"low","stream":true,"stream_options":{"include_usage":true}}"#,
        r#"{"model":"m","messages":[1],"max_completion_tokens":-1,"max_tokens":7,"n":0,"store":false,"reasoning_effort":"none"}"#,
        r#"{"model":"m","messages":[1],"max_output_tokens":5.0,"n":"2","stream":null,"top_k":1e2,"stream_options":{"include_usage":true,"include_usage":false}}"#,
        r#"{"model":"m","messages":[{}],"max_completion_tokens":18446744073709551615,"n":2,"reasoning_effort":7,"stream_options":[1]}"#,
        " {\n \"model\" : \"m\" ,\t\"messages\" : [ {\"content\": \"caf\u{e9} \\ud83d\\ude00\"} ] , \"n\" : 2 } \r\n",
    ];
    for raw in bodies {
        let r = parse(raw);
        assert!(r.body.head().is_some(), "{raw}");
        let full = tree(raw);
        assert_eq!(r.max_output_tokens(), max_output_tokens(&full), "{raw}");
        assert_eq!(r.stores(), full.get("store") == Some(&Value::Bool(true)));
        assert_eq!(r.top_k(), super::super::chat::top_k_of(&full, &r.ext));
        assert_eq!(r.include_usage(), super::super::chat::include_usage(&full));
        let ext = Default::default();
        assert_eq!(r.reasoning(), super::super::chat::reasoning_of(&full, &ext));
        assert_eq!(r.stream, full.get("stream") == Some(&Value::Bool(true)));
    }
}

#[test]
fn the_usage_request_is_spliced_or_edited_as_on_the_tree() {
    for (raw, quick) in [
        (r#"{"model":"m","messages":[1],"stream":true}"#, true),
        (
            r#"{"model":"m","messages":[1],"stream_options":{"include_usage":true}} "#,
            true,
        ),
        (
            r#"{"model":"m","messages":[1],"stream_options":null}"#,
            false,
        ),
        (
            r#"{"model":"m","messages":[1],"stream_options":{"x":1}}"#,
            false,
        ),
        (
            r#"{"model":"m","messages":[1],"stream_options":"no"}"#,
            true,
        ),
    ] {
        let mut r = parse(raw);
        r.ask_for_usage();
        assert_eq!(r.body.head().is_some(), quick, "{raw}");
        let mut want = tree(raw);
        super::super::chat::ask_for_usage(&mut want);
        want.insert("model".into(), json!("u"));
        let sent: Map<String, Value> = serde_json::from_slice(&r.upstream_body("u")).unwrap();
        assert_eq!(sent, want, "{raw}");
        if let Some(parts) = r.upstream_parts("u") {
            assert_eq!(parts.concat(), r.upstream_body("u").to_vec(), "{raw}");
        }
        assert_eq!(r.include_usage(), super::super::chat::include_usage(&want));
        // The tree, when read, carries the edit too.
        assert_eq!(r.body.get("stream_options"), want.get("stream_options"));
    }
}

#[test]
fn doubtful_bodies_go_to_the_full_parse() {
    for raw in [
        // Duplicate and escaped top-level keys: the tree decides.
        r#"{"model":"a","messages":[1],"model":"b"}"#,
        r#"{"mod\u0065l":"a","messages":[1]}"#,
        // Invalid in ways a lenient skip would let through.
        r#"{"model":"a","messages":["\ud800"]}"#,
        r#"{"model":"\ud800","messages":[1]}"#,
        r#"{"model":"a","messages":[1e400]}"#,
        r#"{"model":"a","messages":[1]} x"#,
        r#"{"model":"a","messages":[1],}"#,
        r#"{"model":"a","messages":[1] "n":1}"#,
        "{\"model\":\"a\",\"messages\":[\"\u{1}\"]}",
        // Shape errors.
        r#"{"model":"","messages":[1]}"#,
        r#"{"model":1,"messages":[1]}"#,
        r#"{"messages":[1]}"#,
        r#"{"model":"a","messages":[]}"#,
        r#"{"model":"a","messages":[ ]}"#,
        r#"{"model":"a","messages":{}}"#,
        r#"{"model":"a","messages":5}"#,
        r#"{"model":"a","messages":"x"}"#,
        r#"{"model":"a"}"#,
        r#"{"model":"a","messages":[1],"stream":"yes"}"#,
        "[1]",
        "",
    ] {
        assert!(scan(raw.as_bytes()).is_none(), "{raw}");
    }
    let deep = format!(
        "{{\"model\":\"a\",\"messages\":[{}{}]}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(scan(deep.as_bytes()).is_none());
    // A duplicate key still parses (fully): the last `model` wins.
    let r = parse(r#"{"model":"a","messages":[1],"model":"b"}"#);
    assert_eq!((r.model.as_str(), r.body.head().is_none()), ("b", true));
}

#[test]
fn bad_bodies_get_the_full_parse_errors() {
    for raw in [
        "",
        "{",
        r#"{"model":"a","messages":[1e400]}"#,
        r#"{"model":"a","messages":["\ud800"]}"#,
        r#"{"model":"","messages":[1]}"#,
        r#"{"model":"a","messages":[]}"#,
        r#"{"model":"a","messages":[1],"stream":1}"#,
        "[]",
    ] {
        let quick = ChatRequest::parse(raw.as_bytes()).unwrap_err();
        let today = ChatRequest::parse_tree(raw.as_bytes()).unwrap_err();
        assert_eq!(quick.body(), today.body(), "{raw}");
    }
}

/// Chat bodies with one byte changed, cut short or a piece let in, at
/// random (a fixed seed): the scan never panics, and what it takes the
/// full parse takes too, with the same `model` and `stream`.
#[test]
fn changed_bodies_are_scanned_as_the_tree_reads_them() {
    let bodies = [
        r#"{"model":"gpt","messages":[{"role":"user","content":"hi \u00e9"}],"stream":true,"n":2}"#,
        r#"{"messages":[[]],"model":"m","max_tokens":5,"stream_options":{"include_usage":true},"x":[1.5e3,null,{}]}"#,
    ];
    const PIECES: [&[u8]; 12] = [
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\\",
        b"5",
        b"-",
        b" ",
        b"\"model\":\"z\"",
    ];
    let mut taken = 0;
    for doc in crate::api::changed::changed(&bodies, &PIECES, 0x2545_F491_4F6C_DD1D, 20_000) {
        let Some(head) = scan(&doc) else { continue };
        taken += 1;
        let tree: Map<String, Value> = serde_json::from_slice(&doc)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&doc)));
        assert_eq!(Some(head.model.as_str()), tree["model"].as_str());
        assert_eq!(head.stream, tree.get("stream") == Some(&Value::Bool(true)));
    }
    assert!(taken > 1_000, "{taken}");
}
