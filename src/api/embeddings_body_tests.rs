//! Tests of the walk of a client's embeddings body: what it takes reads as
//! the full parse reads it, what it refuses goes to the full parse, and
//! what goes upstream is the client's bytes with only `model` set.

use bytes::Bytes;
use serde_json::Value;

use super::*;

/// What the walk read must be what the full parse reads of the same bytes:
/// `model`, each input (as a value), the encoding.
fn same_as_parsed(raw: &[u8]) -> Option<ClientBody> {
    let bytes = Bytes::copy_from_slice(raw);
    let walked = scan(&bytes)?;
    let parsed = EmbeddingsRequest::parse(raw)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(raw)));
    assert_eq!(walked.model, parsed.model);
    assert_eq!(walked.format, parsed.encoding_format);
    let inputs: Vec<Value> = walked
        .inputs()
        .map(|t| serde_json::from_slice(t).expect("an input is a JSON string"))
        .collect();
    assert_eq!(inputs, parsed.inputs, "{}", String::from_utf8_lossy(raw));
    assert_eq!(walked.len(), parsed.inputs.len());
    // The values built from the walk are the whole parse's.
    let built = walked.values().expect("built from the walk");
    assert_eq!(built.model, parsed.model);
    assert_eq!(built.inputs, parsed.inputs);
    assert_eq!(built.encoding_format, parsed.encoding_format);
    assert_eq!(
        built.extra,
        parsed.extra,
        "{}",
        String::from_utf8_lossy(raw)
    );
    Some(walked)
}

#[test]
fn a_body_of_strings_is_walked_and_reads_as_parsed() {
    for raw in [
        r#" { "input" : [ "a" , "b\n\u00e9 \ud83d\ude00" ] , "model" : "m\u00e9" } "#,
        r#"{"model":"m","input":["document number 1","document number 2"],"encoding_format":"base64"}"#,
        r#"{"model":"m","input":["x"],"encoding_format":"float","dimensions":256,"user":"u-1"}"#,
        r#"{"extra":{"a":[1,2.5e3,null,true]},"model":"m","input":["a very long input that runs past every short path of the cursor, on and on"]}"#,
    ] {
        assert!(same_as_parsed(raw.as_bytes()).is_some(), "{raw}");
    }
}

/// Token ids, keys the walk does not follow and values it does not vouch
/// for go to the full parse, which takes the valid ones and words the
/// rest as before.
#[test]
fn what_the_walk_does_not_vouch_for_is_parsed_whole() {
    for (raw, valid) in [
        (r#"{"model":"m","input":"hello"}"#, true),
        (r#"{"model":"m","input":[1,2,3]}"#, true),
        (r#"{"model":"m","input":[[1,2],[3]]}"#, true),
        (r#"{"model":"m","input":["a"],"model":"n"}"#, true),
        (r#"{"mod\u0065l":"m","input":["a"]}"#, true),
        (
            r#"{"model":"m","input":["a"],"encoding_format":null}"#,
            true,
        ),
        (
            r#"{"model":"m","input":["a"],"encoding_format":"\u0066loat"}"#,
            true,
        ),
        (r#"{"model":"m","input":["a"],"dimensions":0}"#, false),
        (r#"{"model":"m","input":["a"],"dimensions":2.5}"#, false),
        (r#"{"model":"m","input":["a"],"dimensions":-3}"#, false),
        (
            r#"{"model":"m","input":["a"],"encoding_format":"hex"}"#,
            false,
        ),
        (r#"{"model":"m","input":[]}"#, false),
        (r#"{"model":"m","input":""}"#, false),
        (r#"{"model":"m","input":["a",""]}"#, false),
        (r#"{"model":"m","input":["a",null]}"#, false),
        (r#"{"model":"","input":["a"]}"#, false),
        (r#"{"input":["a"]}"#, false),
        (r#"{"model":"m"}"#, false),
        (r#"{"model":"m","input":["a"],}"#, false),
        (r#"{"model":"m","input":["a",]}"#, false),
        (r#"{"model":"m","input":["a"]} x"#, false),
        (r#"["m"]"#, false),
    ] {
        assert!(scan(&Bytes::from(raw)).is_none(), "{raw}");
        let body = EmbeddingsBody::parse(&Bytes::from(raw));
        assert_eq!(body.is_ok(), valid, "{raw}: {body:?}");
        if let Err(e) = body {
            let today = EmbeddingsRequest::parse(raw.as_bytes()).unwrap_err();
            assert_eq!(e.body(), today.body(), "{raw}");
        }
    }
}

/// What goes upstream is the client's bytes with only `model` changed (and
/// the encoding said when the client left it out): the same value a body
/// written anew would be.
#[test]
fn the_upstream_body_is_the_clients_with_model_set() {
    for raw in [
        r#"{"model":"m","input":["a","b"],"user":"u"}"#,
        r#"{"input":["one"],"model":"old","encoding_format":"base64"}  "#,
        r#"{ "model" : "m" , "input" : ["\"quoted\""] , "dimensions" : 8 }"#,
    ] {
        let body = same_as_parsed(raw.as_bytes()).expect("walked");
        let sent: Vec<u8> = body.upstream("new \"model\"").concat();
        let mut want: serde_json::Map<String, Value> = serde_json::from_str(raw).unwrap();
        want.insert("model".into(), "new \"model\"".into());
        want.entry("encoding_format").or_insert("float".into());
        let got: serde_json::Map<String, Value> = serde_json::from_slice(&sent).unwrap();
        assert_eq!(got, want, "{}", String::from_utf8_lossy(&sent));
        // Every input's bytes are the client's.
        let inputs = body.inputs().map(<[u8]>::to_vec).collect::<Vec<_>>();
        for input in inputs {
            assert!(memchr::memmem::find(&sent, &input).is_some());
        }
    }
}

/// Bodies with one byte changed, cut short or a piece let in, at random
/// (a fixed seed): the walk never panics, and what it takes the full parse
/// takes too, reading the same model, inputs and encoding.
#[test]
fn changed_bodies_are_walked_as_the_full_parse_reads_them() {
    let bodies = [
        r#"{"model":"emb","input":["doc \u00e9 1","doc 2","doc\n3"],"encoding_format":"base64","dimensions":64}"#,
        r#"{"input":["one long input, past the short read of sixteen bytes"],"model":"m","x":[1.5e3,null,{}]}"#,
    ];
    const PIECES: [&[u8]; 14] = [
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\\",
        b"5",
        b"0",
        b"-",
        b" ",
        b"\"input\":\"z\"",
        b"\"\"",
    ];
    let mut taken = 0;
    for doc in crate::api::changed::changed(&bodies, &PIECES, 0x9E37_79B9_7F4A_7C15, 20_000) {
        if same_as_parsed(&doc).is_some() {
            taken += 1;
        }
    }
    assert!(taken > 1_000, "{taken}");
}
