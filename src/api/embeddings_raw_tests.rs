//! Tests of the pass-through scan: what it takes (byte for byte), what it
//! refuses, that a refused answer reads as before (an answer scanned as it
//! arrives, in chunks: `embeddings_prescan_tests`).

use bytes::Bytes;
use serde_json::{Value, json};

use super::super::{EmbedAnswer, EncodingFormat, ReplyError, parse_upstream_reply};
use super::Prescan;

/// The answer as the provider hands it on, scanned whole.
fn upstream_answer(
    body: Bytes,
    expected: usize,
    format: EncodingFormat,
) -> Result<EmbedAnswer, ReplyError> {
    let mut prescan = Prescan::new(expected, format);
    prescan.feed(body);
    super::super::upstream_answer(expected, prescan)
}

/// The whole answer scanned at once.
pub(super) fn scan(
    body: Bytes,
    expected: usize,
    format: EncodingFormat,
) -> Option<super::RawEmbed> {
    let mut prescan = Prescan::new(expected, format);
    prescan.feed(body);
    prescan.finish().ok()
}

pub(super) const FLOAT: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-2e-3,3]},{"object":"embedding","index":1,"embedding":[ 1.5 , 2 ]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":7,"total_tokens":9}}"#;

pub(super) const BASE64: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPwAAAEA="},{"object":"embedding","index":1,"embedding":"AABAQA=="}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#;

fn joined(r: super::RawEmbed, model: &str) -> String {
    let parts = r.into_parts(model);
    String::from_utf8(parts.concat()).unwrap()
}

fn raw(body: &str, expected: usize, format: EncodingFormat) -> Option<super::RawEmbed> {
    scan(Bytes::copy_from_slice(body.as_bytes()), expected, format)
}

#[test]
fn the_plain_answer_passes_with_only_model_rewritten() {
    for (body, format) in [
        (FLOAT, EncodingFormat::Float),
        (BASE64, EncodingFormat::Base64),
    ] {
        let r = raw(body, 2, format).expect(body);
        assert_eq!(r.to_bytes(), body.as_bytes());
        let out = joined(r.clone(), "route \"x\"");
        let mut want: Value = serde_json::from_str(body).unwrap();
        want["model"] = json!("route \"x\"");
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), want);
        // Every byte but the model's is the upstream's.
        let at = body.find(r#""model":"#).unwrap() + 8;
        assert_eq!(out[..at], body[..at]);
        let tail = &body[at + 1..];
        let tail = &tail[tail.find('"').unwrap() + 1..];
        assert!(out.ends_with(tail), "{out}");
    }
    let r = raw(FLOAT, 2, EncodingFormat::Float).unwrap();
    assert_eq!((r.count, r.prompt_tokens, r.total_tokens), (2, 7, 9));
}

#[test]
fn keys_in_any_order_and_white_space_are_taken() {
    let body = "\n { \"usage\" : {\"prompt_tokens\": 4} ,\"data\" : [ { \"embedding\" : [1] , \"index\" : 0 , \"extra\": {\"a\": [\"]\"]} } ] , \"object\":\"list\" } \n";
    let r = raw(body, 1, EncodingFormat::Float).expect("taken");
    assert_eq!((r.prompt_tokens, r.total_tokens), (4, 4));
    // No `model`: one is added first.
    let out = joined(r, "emb");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "emb");
    assert_eq!(v["data"][0]["embedding"], json!([1]));
}

#[test]
fn an_escaped_model_is_replaced_whole() {
    let body = r#"{"data":[{"index":0,"embedding":[1]}],"model":"a\"b\u00e9","usage":{}}"#;
    let out = joined(raw(body, 1, EncodingFormat::Float).expect("taken"), "emb");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "emb");
}

#[test]
fn anything_else_is_refused() {
    let refused = [
        // Not what was asked for: base64 for floats and the reverse.
        (BASE64, EncodingFormat::Float),
        (FLOAT, EncodingFormat::Base64),
        // Items out of order, without an index, an index twice.
        (
            r#"{"data":[{"index":1,"embedding":[1]},{"index":0,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"embedding":[1]},{"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"index":0,"embedding":[1]},{"index":1,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        // The wrong count.
        (
            r#"{"data":[{"index":0,"embedding":[1]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        // No usage, a usage that is not an object, an error, no data.
        (
            r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]}]}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]}],"usage":null}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]}],"usage":{},"error":{"message":"quota"}}"#,
            EncodingFormat::Float,
        ),
        (r#"{"error":{"message":"quota"}}"#, EncodingFormat::Float),
        (r#"{"usage":{}}"#, EncodingFormat::Float),
        // Broken or trailing bytes, a repeated key, not an object.
        (
            r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]}],"usage":{}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]}],"usage":{}}x"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]}],"usage":{},"model":"a","model":"b"}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]},],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1],},{"index":1,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[[1],[2]]},{"index":1,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":"A\"A"},{"index":1,"embedding":"AA"}],"usage":{}}"#,
            EncodingFormat::Base64,
        ),
        // Anything it passes on is checked JSON, skipped values too.
        (
            "{\"data\":[{\"index\":0,\"embedding\":[1]},{\"index\":1,\"embedding\":[2]}],\"object\":\"li\u{1}st\",\"usage\":{}}",
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1],"x":"\ud800"},{"index":1,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]}],"x":[1,],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":00,"embedding":[1]},{"index":1,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        // Not numbers in a vector.
        (
            r#"{"data":[{"index":0,"embedding":[1,null]},{"index":1,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[NaN]},{"index":1,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1,"2"]},{"index":1,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (
            r#"{"data":[{"index":0,"embedding":[1,{}]},{"index":1,"embedding":[2]}],"usage":{}}"#,
            EncodingFormat::Float,
        ),
        (r#"[{"index":0,"embedding":[1]}]"#, EncodingFormat::Float),
        ("", EncodingFormat::Float),
        ("{}", EncodingFormat::Float),
        ("not json", EncodingFormat::Float),
    ];
    for (body, format) in refused {
        assert_eq!(raw(body, 2, format), None, "{body}");
    }
}

#[test]
fn a_refused_answer_is_read_as_before() {
    // Another encoding than asked: decoded, the same vectors.
    let via = upstream_answer(
        Bytes::from_static(BASE64.as_bytes()),
        2,
        EncodingFormat::Float,
    );
    let tree = parse_upstream_reply(BASE64.as_bytes(), 2).map(EmbedAnswer::Vectors);
    assert_eq!(via, tree);
    assert!(matches!(via, Ok(EmbedAnswer::Vectors(_))));
    // A fault is named as before.
    for body in [
        r#"{"error":{"message":"quota"}}"#,
        r#"{"data":[{"index":0,"embedding":[1]}],"usage":{}}"#,
        "not json",
    ] {
        let via = upstream_answer(
            Bytes::from_static(body.as_bytes()),
            2,
            EncodingFormat::Float,
        );
        let tree = parse_upstream_reply(body.as_bytes(), 2);
        assert!(tree.is_err());
        assert_eq!(via, tree.map(EmbedAnswer::Vectors), "{body}");
    }
    // The plain answer comes as it came, and reads as the tree reads it.
    let via = upstream_answer(
        Bytes::from_static(FLOAT.as_bytes()),
        2,
        EncodingFormat::Float,
    );
    let Ok(answer @ EmbedAnswer::Raw(_)) = via else {
        panic!("{via:?}")
    };
    assert_eq!(answer.count(), 2);
    assert_eq!(
        answer.into_vectors(),
        parse_upstream_reply(FLOAT.as_bytes(), 2)
    );
}

#[test]
fn numbers_stop_at_the_first_byte_no_number_holds() {
    let long = "0.125,-3e-7, 1E+2,\n".repeat(40);
    for (text, want) in [
        (format!("{long}]"), long.len()),
        (format!("{long}null]"), long.len()),
        (format!("{}x{long}", &long[..33]), 33),
        ("]".to_string(), 0),
        (String::new(), 0),
    ] {
        assert_eq!(super::numbers::numbers(text.as_bytes()), want, "{text}");
    }
    // Compact blocks, then (anywhere) white space, then a byte no number
    // holds: the count stops there in either mode.
    // With exponents, and with digits and `+,-./` alone (the quickest
    // blocks, and where `e` or a space is the one byte they do not take).
    for list in ["0.125,-3e-7,1E+2,", "0.125,-3.5/42,+1,"] {
        let compact = list.repeat(60).into_bytes();
        for space in [None, Some(0), Some(63), Some(64), Some(130)] {
            for (stop, byte) in [
                (1, b'x'),
                (64, 0x01),
                (65, b'"'),
                (300, b'['),
                (600, b'\x80'),
                (700, b'*'),
                (701, b':'),
            ] {
                let mut text = compact.clone();
                if let Some(at) = space.filter(|at| *at < stop) {
                    text[at] = b'\n';
                }
                text[stop] = byte;
                assert_eq!(
                    super::numbers::numbers(&text),
                    stop,
                    "{list} {space:?} {stop}"
                );
            }
        }
        // An exponent in an otherwise plain block is taken.
        let mut text = compact.clone();
        text[200] = b'e';
        text[260] = b'E';
        text[700] = b']';
        assert_eq!(super::numbers::numbers(&text), 700, "{list}");
    }
}
