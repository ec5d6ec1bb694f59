//! Compact JSON of a parsed body, written faster than `serde_json` writes
//! it and byte for byte the same.
//!
//! Place in the pipeline: `api` encoding, for the bodies the gateway sends
//! upstream (a client's chat body with its `model` replaced, an embeddings
//! request's inputs). `serde_json` looks up every byte of every string in
//! its escape table; here strings are scanned eight bytes at a time, one
//! that needs no escape copied at once and any other in runs, which
//! matters for a large prompt (a 1 MB body is mostly one string) and for
//! 2,048 short inputs. Must write exactly
//! what `serde_json::to_writer` writes for the same value: same escapes
//! (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, else `\u00xx` in lower-case
//! hex, for bytes below 0x20 only), numbers through `serde_json` itself.

use serde_json::{Map, Value};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `w` is below 0x20, `"` or `\`.
#[inline]
fn needs_escape(w: u64) -> bool {
    let below = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (below | quote | backslash) & HIGHS != 0
}

/// Whether `b` holds no byte that is escaped: eight bytes at a time, the
/// last eight (overlapping) for the rest, byte by byte only when shorter.
#[inline]
fn plain(b: &[u8]) -> bool {
    match b.last_chunk::<8>() {
        Some(last) => {
            let (words, _) = b.as_chunks::<8>();
            words.iter().all(|w| !needs_escape(u64::from_le_bytes(*w)))
                && !needs_escape(u64::from_le_bytes(*last))
        }
        None => b.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\'),
    }
}

/// `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most strings (keys, names, short inputs) need no escape: one copy,
    // without the run-by-run walk below (half the cost of a 20-byte one).
    if plain(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            if !needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `v` as compact JSON.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Writing into a Vec cannot fail.
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map, |_| None, &[]),
    }
}

/// `map` as a JSON object, each member's value replaced where `replace`
/// says, then the `extra` members `map` does not have.
pub fn write_object<'a>(
    out: &mut Vec<u8>,
    map: &Map<String, Value>,
    replace: impl Fn(&str) -> Option<&'a str>,
    extra: &[(&str, Value)],
) {
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, k: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, k);
        out.push(b':');
    };
    for (k, v) in map {
        member(out, k);
        match replace(k) {
            Some(s) => write_str(out, s),
            None => write_value(out, v),
        }
    }
    for (k, v) in extra {
        if !map.contains_key(*k) {
            member(out, k);
            write_value(out, v);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn same(v: &Value) {
        let mut fast = Vec::new();
        super::write_value(&mut fast, v);
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            serde_json::to_string(v).unwrap()
        );
    }

    #[test]
    fn every_byte_escapes_as_serde_json_escapes_it() {
        let all: String = (0u8..=0x7f).map(char::from).collect();
        for shift in 0..9 {
            // Every byte at every offset within the eight-byte words.
            let s = format!("{}{all}{}", "x".repeat(shift), "ü".repeat(shift));
            same(&Value::String(s));
        }
        for s in [
            "",
            "\"",
            "\\",
            "a\"b\\c\u{1f}",
            "ünïcødé \u{7f} 😀\n",
            "12345678\"",
            "1234567\u{0}",
        ] {
            same(&json!(s));
            same(&json!({ s: s }));
        }
    }

    /// Short strings at every length either side of a word, with a byte
    /// that is escaped (or not) at every place: the one-copy check and the
    /// overlapping last word see it wherever it is.
    #[test]
    fn a_string_of_any_length_escapes_as_serde_json_escapes_it() {
        for len in 1..=20 {
            for at in 0..len {
                for special in ['"', '\\', '\u{1f}', '\n', 'a', '\u{7f}', 'é'] {
                    let mut s: Vec<char> = vec!['x'; len];
                    s[at] = special;
                    same(&Value::String(s.into_iter().collect()));
                }
            }
        }
    }

    #[test]
    fn values_come_out_as_serde_json_writes_them() {
        same(&json!({
            "model": "m", "n": 1, "t": 0.7, "big": 12345678901234567890u64, "neg": -3,
            "e": 1e-7, "f": 1.5e300, "ok": true, "no": false, "none": null,
            "messages": [{"role": "user", "content": "hi\tthere"}, [], {}, [1, [2, [3]]]],
        }));
        let mut out = Vec::new();
        let map = json!({"a": 1, "model": "old"});
        super::write_object(
            &mut out,
            map.as_object().unwrap(),
            |k| (k == "model").then_some("new\""),
            &[("a", json!(2)), ("z", json!([true]))],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":1,"model":"new\"","z":[true]}"#
        );
    }
}
