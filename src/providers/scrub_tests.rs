//! Unit tests of the scrubber (`scrub.rs`).

use super::*;

const KEY: &str = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn text(b: &Bytes) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn removes_whole_secrets_and_long_fragments() {
    let s = Scrubber::new([KEY, "org-12345", "x"]);
    let body = format!(
        r#"{{"error":{{"message":"bad header Authorization: Bearer {KEY} for org-12345; key starts {}..."}}}}"#,
        &KEY[..20]
    );
    let out = s.scrub(Bytes::from(body));
    let text = text(&out);
    assert!(!text.contains(&KEY[..MIN_FRAGMENT]), "{text}");
    assert!(!text.contains("org-12345"), "{text}");
    assert!(text.contains("Bearer ***"), "{text}");
    assert!(text.contains("key starts ***..."), "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(text).is_ok());
}

#[test]
fn leaves_clean_bodies_untouched_and_short_fragments_alone() {
    let s = Scrubber::new([KEY]);
    let body = Bytes::from(format!(
        "key ends with {} \\n \\u00e9 %zz 50%",
        &KEY[KEY.len() - 4..]
    ));
    let out = s.scrub(body.clone());
    assert_eq!(out, body);
    assert_eq!(out.as_ptr(), body.as_ptr(), "no copy when clean");
    assert!(Scrubber::new(["short"]).is_empty());
}

/// Every encoding of the key, alone and inside a JSON string.
fn encodings(key: &str) -> Vec<String> {
    let escaped: String = key
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let upper: String = key
        .chars()
        .map(|c| format!("\\u{:04X}", c as u32))
        .collect();
    let mixed: String = key
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 3 == 0 {
                format!("\\u{:04x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect();
    let url: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
    let url_mixed: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphabetic() && b % 2 == 0 {
                format!("%{b:02x}")
            } else {
                char::from(b).to_string()
            }
        })
        .collect();
    let mut all = vec![key.to_string(), escaped, upper, mixed, url, url_mixed];
    for prefix in ["", "x", "xy", "Bearer "] {
        for engine in [&base64::engine::general_purpose::STANDARD, &URL_SAFE_NO_PAD] {
            all.push(engine.encode(format!("{prefix}{key}")));
            all.push(engine.encode(format!("{prefix}{key}:tail")));
        }
    }
    all
}

#[test]
fn finds_the_key_in_every_encoding() {
    let s = Scrubber::new([KEY]);
    for form in encodings(KEY) {
        let body = format!(r#"{{"error":{{"message":"echo: {form} end"}}}}"#);
        let out = s.scrub(Bytes::from(body.clone()));
        let t = text(&out);
        assert!(t.contains("echo: ") && t.contains("***"), "{form}: {t}");
        assert!(!t.contains(&form), "{form} left whole: {t}");
        // What is left decodes to nothing secret either.
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(!msg.contains(&KEY[..MIN_FRAGMENT]), "{form}: {msg}");
    }
}

#[test]
fn base64_data_without_the_key_is_left_alone() {
    let s = Scrubber::new([KEY]);
    let data: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let body = Bytes::from(base64::engine::general_purpose::STANDARD.encode(&data));
    assert_eq!(s.scrub(body.clone()), body);
}

/// `body` cut at `cut` through a stream scrubber, as passed on.
fn through(s: &Arc<Scrubber>, hold_lines: bool, body: &str, cut: usize) -> String {
    let mut stream = ScrubStream::new(Arc::clone(s), hold_lines);
    let a = stream.chunk(Bytes::from(body[..cut].to_string()));
    let b = stream.chunk(Bytes::from(body[cut..].to_string()));
    let c = stream.finish();
    format!("{}{}{}", text(&a), text(&b), text(&c))
}

/// `text` with runs of masks as one (a line longer than a match's reach
/// may leave in two parts, each masked).
fn one_mask(text: &str) -> String {
    let mut t = text.to_string();
    while t.contains("******") {
        t = t.replace("******", "***");
    }
    t
}

#[test]
fn a_text_stream_split_anywhere_never_passes_any_of_the_key() {
    let s = Arc::new(Scrubber::new([KEY]));
    for form in encodings(KEY) {
        let body = format!("data: {{\"delta\":\"{form}\"}}\n\ndata: [DONE]\n\n");
        let whole = text(&s.scrub(Bytes::from(body.clone()))).to_string();
        for cut in 1..body.len() {
            let got = through(&s, true, &body, cut);
            assert_eq!(one_mask(&got), whole, "{form} cut at {cut}");
        }
    }
}

#[test]
fn a_binary_stream_split_anywhere_never_passes_the_key_whole() {
    let s = Arc::new(Scrubber::new([KEY]));
    for form in encodings(KEY) {
        let body = format!("\u{1}frame{form}\u{2}frame");
        for cut in 1..body.len() {
            let joined = through(&s, false, &body, cut);
            assert!(!joined.contains(&form), "{form} cut at {cut}: {joined}");
            assert!(!joined.contains(KEY), "cut at {cut}: {joined}");
        }
    }
}

#[test]
fn a_stream_without_secrets_passes_whole_lines_as_they_are_and_holds_only_partial_ones() {
    let s = Arc::new(Scrubber::new([KEY]));
    let mut stream = ScrubStream::new(s, true);
    let line = Bytes::from_static(b"data: {\"a\":1}\n\n");
    let out = stream.chunk(line.clone());
    assert_eq!(out.as_ptr(), line.as_ptr(), "no copy");
    assert_eq!(stream.chunk(Bytes::from_static(b"data: {\"sk-pr")), "");
    let out = stream.chunk(Bytes::from_static(b"oj-\"}\n\n"));
    assert_eq!(out, "data: {\"sk-proj-\"}\n\n");
    assert_eq!(stream.chunk(Bytes::from_static(b"partial")), "");
    assert_eq!(stream.finish(), "partial", "the rest at the end");
}
