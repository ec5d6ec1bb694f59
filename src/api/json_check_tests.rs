//! Tests of `json_check`: what the cursor takes and refuses, long strings
//! at every block offset, and a generator checking it never takes what
//! `serde_json` refuses.

use super::*;
use serde_json::Value;

/// Whether the cursor takes `doc` as one value and nothing after it.
fn takes(doc: &[u8]) -> bool {
    let mut c = Cursor::new(doc);
    c.ws();
    c.value().is_some() && c.at_end()
}

fn parses(doc: &[u8]) -> bool {
    serde_json::from_slice::<Value>(doc).is_ok()
}

#[test]
fn takes_what_json_is() {
    for doc in [
        r#"{}"#,
        r#"[]"#,
        r#" {"a" : [1, -2, 3.25, 0, -0.5e-3, 1E+2, true, false, null, "x"] } "#,
        r#"{"s":"tab\tquote\"slash\/uni\u00e9pair\ud83d\ude00 back\\"}"#,
        "\"caf\u{e9} \u{1F600} \u{4e2d}\"",
        r#"{"a":{"b":{"c":[[[]]]}}}"#,
        "12345678901234567890123456789",
        "1e299",
        "1e-999",
    ] {
        assert!(takes(doc.as_bytes()), "{doc}");
        assert!(parses(doc.as_bytes()), "{doc}");
    }
}

#[test]
fn refuses_what_the_parse_refuses() {
    for doc in [
        "",
        "{",
        r#"{"a":1,}"#,
        r#"[1,]"#,
        r#"{"a" 1}"#,
        r#"{a:1}"#,
        "01",
        "1.",
        "-",
        "+1",
        ".5",
        "1e",
        "tru",
        "nul",
        r#""\x""#,
        r#""\u12""#,
        r#""\u12g4""#,
        r#""\udc00""#,
        r#""\ud800""#,
        r#""\ud800\u0041""#,
        "\"a\tb\"",
        "\"a\nb\"",
        "\"unclosed",
        "[1] [2]",
    ] {
        assert!(!takes(doc.as_bytes()), "took {doc:?}");
        assert!(!parses(doc.as_bytes()), "serde took {doc:?}");
    }
    // Bytes that are not UTF-8, inside a string.
    for bad in [
        &b"\"\xff\""[..],
        b"\"\xc3\"",
        b"\"\xed\xa0\x80\"",
        b"\"ok\xe2\x82\"",
    ] {
        assert!(!takes(bad), "took {bad:?}");
        assert!(!parses(bad));
    }
}

#[test]
fn refuses_what_it_cannot_vouch_for() {
    // The parse takes these; the cursor leaves them to it.
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    let long = format!("1{}", "0".repeat(MAX_NUMBER));
    for doc in [deep.as_str(), long.as_str(), "1e301", "1e1000", "12e299"] {
        assert!(!takes(doc.as_bytes()), "took {doc}");
    }
    let deep_ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(takes(deep_ok.as_bytes()));
}

/// Long strings go a block at a time: every place the end, an escape, a
/// control byte or a multi-byte character can fall within or across
/// blocks.
#[test]
fn long_strings_at_every_offset() {
    for len in [
        0, 1, 15, 16, 17, 31, 32, 33, 62, 63, 64, 65, 95, 96, 97, 127, 128, 129, 159, 160, 161,
        200, 223, 224, 225,
    ] {
        for at in 0..=len {
            let mut text = vec![b'a'; len];
            let plain = [b'"'].iter().chain(&text).chain(b"\"").copied();
            let doc: Vec<u8> = plain.collect();
            assert!(takes(&doc), "len {len}");
            if at < len {
                text[at] = 0x01;
                let doc = [&b"\""[..], &text, b"\""].concat();
                assert!(!takes(&doc), "control byte at {at} of {len}");
                text[at] = b'"';
                let doc = [&b"\""[..], &text, b"\""].concat();
                assert!(!takes(&doc), "quote at {at} of {len}");
                let mut c = Cursor::new(&doc);
                assert_eq!(c.string(), Some(0..at + 2), "the first quote ends it");
                text[at] = b'a';
                // A character of 2 bytes, then one cut short.
                let mut e = text.clone();
                e.splice(at..at + 1, "\u{e9}".bytes());
                assert!(takes(&[&b"\""[..], &e, b"\""].concat()), "é at {at}");
                e.remove(at + 1);
                assert!(!takes(&[&b"\""[..], &e, b"\""].concat()), "cut é at {at}");
                let mut e = text.clone();
                e.splice(at..at + 1, *b"\\n");
                assert!(takes(&[&b"\""[..], &e, b"\""].concat()), "escape at {at}");
            }
        }
    }
}

/// A key is read the same whether it is short plain ASCII (read a byte at
/// a time) or not (the string scan): at every length either side of where
/// the short read gives up, with each kind of byte at its start, middle and
/// end. The reference: `serde_json` reads the key, and it holds no escape.
#[test]
fn keys_read_alike_at_every_length() {
    let specials: [&[u8]; 7] = [b"a", b"\xc3\xa9", b"\x7f", b"\\n", b"\t", b"\xff", b"~"];
    for len in 0..=SHORT + 3 {
        for special in specials {
            for at in [0, len / 2, len.saturating_sub(1)] {
                let mut key: Vec<u8> = b"k".repeat(len);
                if len > 0 {
                    key.splice(at..=at, special.iter().copied());
                }
                let mut doc = b"\"".to_vec();
                doc.extend_from_slice(&key);
                doc.extend_from_slice(b"\" : 1");
                let want = serde_json::from_slice::<String>(&doc[..key.len() + 2])
                    .ok()
                    .filter(|_| !key.contains(&b'\\'))
                    .map(|_| key.clone());
                let mut c = Cursor::new(&doc);
                let got = c.key().map(<[u8]>::to_vec);
                assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&doc));
                if got.is_some() {
                    assert_eq!(c.peek(), Some(b'1'), "{:?}", String::from_utf8_lossy(&doc));
                }
            }
        }
    }
}

#[test]
fn unsigned_reads_plain_digits_that_fit() {
    for (text, want) in [
        ("0", Some(0)),
        ("7,", Some(7)),
        ("1234567890123456789", Some(1_234_567_890_123_456_789)),
        ("9999999999999999999}", Some(9_999_999_999_999_999_999)),
        ("12345678901234567890", None),
        ("01", None),
        ("", None),
        ("-1", None),
        ("x1", None),
    ] {
        let mut c = Cursor::new(text.as_bytes());
        assert_eq!(c.unsigned(), want, "{text}");
        if want.is_some() {
            assert_eq!(c.at, text.trim_end_matches([',', '}']).len(), "{text}");
        }
    }
}

/// A small generator of JSON-like bytes: valid documents, and the same
/// with one byte changed, cut or doubled. Whatever the cursor takes, the
/// parse must take too.
#[test]
fn never_takes_what_the_parse_refuses() {
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let mut next = move |n: usize| rng.usize(..n);
    const PIECES: [&str; 24] = [
        "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "d83d", "de00", "0", "-", "1", ".", "e",
        "+", "true", "null", " ", "\u{e9}", "\t", "a", "\\n",
    ];
    let (mut taken, mut tried) = (0, 0);
    for _ in 0..60_000 {
        let doc: Vec<u8> = match next(2) {
            0 => {
                let v = sample(&mut next, 3);
                let mut doc = serde_json::to_vec(&v).unwrap();
                match next(4) {
                    0 => {}
                    1 if !doc.is_empty() => {
                        let at = next(doc.len());
                        doc[at] = PIECES[next(PIECES.len())].as_bytes()[0];
                    }
                    2 => doc.truncate(next(doc.len() + 1)),
                    _ => {
                        let at = next(doc.len() + 1);
                        let piece = PIECES[next(PIECES.len())].as_bytes();
                        doc.splice(at..at, piece.iter().copied());
                    }
                }
                doc
            }
            _ => (0..next(12))
                .flat_map(|_| PIECES[next(PIECES.len())].bytes())
                .collect(),
        };
        tried += 1;
        if takes(&doc) {
            taken += 1;
            assert!(
                parses(&doc),
                "took what serde refuses: {:?}",
                String::from_utf8_lossy(&doc)
            );
        }
    }
    // The generator reaches both sides.
    assert!(taken > tried / 10 && taken < tried, "{taken} of {tried}");
}

/// A random value a few levels deep.
fn sample(next: &mut impl FnMut(usize) -> usize, depth: usize) -> Value {
    match next(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(next(2) == 1),
        2 => Value::from(next(1_000_000) as i64 - 500_000),
        3 => Value::from(next(1000) as f64 / 8.0),
        4 => {
            let chars = ["a", "\u{e9}", "\"", "\\", "\n", "\u{1F600}", "\u{1}", " "];
            Value::from(
                (0..next(80))
                    .map(|_| chars[next(chars.len())])
                    .collect::<String>(),
            )
        }
        5 => Value::Array((0..next(4)).map(|_| sample(next, depth - 1)).collect()),
        _ => Value::Object(
            (0..next(4))
                .map(|i| (format!("k{i}"), sample(next, depth - 1)))
                .collect(),
        ),
    }
}
