//! Tests of the pass-through scan: what it takes (byte for byte), what it
//! refuses, that a refused answer reads as before, and that an answer
//! scanned as it arrives, in pieces of any size, is taken or refused
//! exactly as when scanned whole.

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
    super::super::upstream_answer(body, expected, Prescan::new(expected, format))
}

/// The whole answer scanned at once.
fn scan(body: Bytes, expected: usize, format: EncodingFormat) -> Option<super::RawEmbed> {
    Prescan::new(expected, format).finish(body)
}

const FLOAT: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-2e-3,3]},{"object":"embedding","index":1,"embedding":[ 1.5 , 2 ]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":7,"total_tokens":9}}"#;

const BASE64: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPwAAAEA="},{"object":"embedding","index":1,"embedding":"AABAQA=="}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#;

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
        assert_eq!(r.bytes(), body.as_bytes());
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
        assert_eq!(super::numbers(text.as_bytes()), want, "{text}");
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
                assert_eq!(super::numbers(&text), stop, "{list} {space:?} {stop}");
            }
        }
        // An exponent in an otherwise plain block is taken.
        let mut text = compact.clone();
        text[200] = b'e';
        text[260] = b'E';
        text[700] = b']';
        assert_eq!(super::numbers(&text), 700, "{list}");
    }
}

/// A bigger answer: items with members in any order, white space, a
/// member the scan does not know (long, so pieces cut it), `usage` first.
fn bigger(items: usize, format: EncodingFormat) -> String {
    let mut data = Vec::new();
    for i in 0..items {
        let vector = match format {
            EncodingFormat::Float => format!("[{}, -0.{i}e-2,3]", i as f32 / 7.0),
            EncodingFormat::Base64 => "\"AACAPwAAAEA=\"".to_string(),
        };
        data.push(if i % 2 == 0 {
            format!(r#"{{"object":"embedding","index":{i},"embedding":{vector}}}"#)
        } else {
            format!(r#"{{ "embedding" : {vector} , "index" : {i} }}"#)
        });
    }
    let note = "x".repeat(300);
    format!(
        r#"{{"usage":{{"prompt_tokens":5,"total_tokens":5}}, "note":"{note}","object":"list","data":[{}],"model":"m"}}"#,
        data.join(",")
    )
}

#[test]
fn an_answer_scanned_as_it_arrives_is_taken_or_refused_as_when_scanned_whole() {
    let mut rng = fastrand::Rng::with_seed(24);
    let mut bodies: Vec<(String, usize, EncodingFormat)> = vec![
        (FLOAT.to_string(), 2, EncodingFormat::Float),
        (BASE64.to_string(), 2, EncodingFormat::Base64),
        (bigger(40, EncodingFormat::Float), 40, EncodingFormat::Float),
        (
            bigger(40, EncodingFormat::Base64),
            40,
            EncodingFormat::Base64,
        ),
        (
            r#"{"object":"list","data":[],"usage":{}}"#.to_string(),
            0,
            EncodingFormat::Float,
        ),
    ];
    // Each changed at random: a byte dropped, replaced or doubled.
    let changes = b"{}[],:\" 0-e1.\\x";
    for k in 0..bodies.len() {
        for _ in 0..60 {
            let (body, n, f) = bodies[k].clone();
            let mut b = body.into_bytes();
            let at = rng.usize(..b.len());
            match rng.u8(..3) {
                0 => drop(b.remove(at)),
                1 => b[at] = changes[rng.usize(..changes.len())],
                _ => b.insert(at, b[at]),
            }
            if let Ok(text) = String::from_utf8(b) {
                bodies.push((text, n, f));
            }
        }
    }
    let mut taken = 0;
    for (body, expected, format) in &bodies {
        let whole = scan(Bytes::copy_from_slice(body.as_bytes()), *expected, *format);
        taken += usize::from(whole.is_some());
        for _ in 0..20 {
            let mut p = Prescan::new(*expected, *format);
            let mut end = 0;
            while end < body.len() {
                end = (end + 1 + rng.usize(..body.len().min(200))).min(body.len());
                p.feed(&body.as_bytes()[..end]);
            }
            let pieces = p.finish(Bytes::copy_from_slice(body.as_bytes()));
            assert_eq!(pieces, whole, "{body}");
        }
    }
    // Both kinds are in the set: the changed answers are mostly refused.
    assert!(
        taken >= 5 && taken < bodies.len() / 2,
        "{taken} of {}",
        bodies.len()
    );
}

#[test]
fn a_long_member_cut_into_many_pieces_is_walked_again_a_bounded_number_of_times() {
    // One top-level member of 1 MB arriving 1 KB at a time: a try only
    // when what is not walked has doubled, about log2(1000) of them.
    let big = format!(
        r#"{{"note":"{}","data":[],"usage":{{}}}}"#,
        "y".repeat(1 << 20)
    );
    let mut p = Prescan::new(0, EncodingFormat::Float);
    let mut tries = 0;
    let mut end = 0;
    while end < big.len() {
        end = (end + 1024).min(big.len());
        let before = p.next_try;
        p.feed(&big.as_bytes()[..end]);
        tries += usize::from(p.next_try != before);
    }
    assert!(tries <= 12, "{tries} tries");
    assert!(p.finish(Bytes::from(big)).is_some());
}
