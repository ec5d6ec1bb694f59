//! The quick check of an upstream's whole chat answer: a JSON object whose
//! `choices` is an array, every byte validated, nothing built; its
//! top-level `usage` read on the way.
//!
//! Place in the pipeline: the OpenAI-wire providers call [`check`] on a
//! `200` answer before passing it on, instead of `serde_json`'s parse into
//! a shape (whose key and string reads were about 5 % of a 1 KB chat
//! request's instructions). It walks with `json_check`'s cursor, which
//! accepts nothing the parse refuses, and reads the answer's `usage` where
//! it passes it (`usage::TopUsage`): the usage charged and the output
//! tokens routing times are taken from there, not searched for in the
//! body again. Must not decide errors: `None` only sends the caller to the
//! parse, which accepts the answer or words its fault.

use super::json_check::Cursor;
use super::usage::{AnswerUsage, TopUsage};

/// `Some` when `body` is, for certain, an object with one `choices` member
/// that is an array (any other members are checked and passed), with what
/// the walk found of its usage. `None` for anything else, and for what the
/// walk does not vouch for (an escaped key, `choices` twice, a number or
/// nesting beyond the cursor's bounds).
pub fn check(body: &[u8]) -> Option<AnswerUsage> {
    let mut c = Cursor::new(body);
    c.ws();
    let mut choices = false;
    let mut usage = TopUsage::default();
    c.object(|c, key| {
        if key == b"choices" {
            if choices || c.peek()? != b'[' {
                return None;
            }
            choices = true;
        }
        if !usage.member(c, key)? {
            c.value()?;
        }
        Some(())
    })?;
    (choices && c.at_end()).then(|| usage.found())
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::api::changed::changed;

    /// Whether the walk vouches for `body` (the tests' older question).
    fn holds_choices(body: &[u8]) -> bool {
        check(body).is_some()
    }

    /// What the parse the providers fell back on says of `body`.
    fn parse_says(body: &[u8]) -> bool {
        #[derive(serde::Deserialize)]
        struct Shape {
            #[allow(dead_code)]
            choices: Vec<serde::de::IgnoredAny>,
        }
        serde_json::from_slice::<Shape>(body).is_ok()
    }

    const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"A short answer, \"quoted\", caf\u00e9 \u00e9t\u00e9."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":14,"total_tokens":134,"prompt_tokens_details":{"cached_tokens":0}},"system_fingerprint":"fp_1"}"#;

    #[test]
    fn answers_the_parse_takes_are_vouched_for() {
        for body in [
            ANSWER,
            r#"{"choices":[]}"#,
            " {\n \"choices\" : [ 1 , {\"a\":[]} ] , \"x\" : -1.5e3 }\n",
            r#"{"a":{"choices":1},"choices":[null]}"#,
            r#"{"choices":[],"choices2":"x"}"#,
        ] {
            assert!(holds_choices(body.as_bytes()), "{body}");
            assert!(parse_says(body.as_bytes()), "{body}");
        }
    }

    #[test]
    fn anything_else_goes_to_the_parse() {
        for body in [
            "",
            "{}",
            "[]",
            "[[1]]",
            r#"{"choices":null}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":"[]"}"#,
            r#"{"choices":[],"choices":[]}"#,
            r#"{"ch\u006fices":[]}"#,
            r#"{"choices":[],}"#,
            r#"{"choices":[] "a":1}"#,
            r#"{"choices":[]}x"#,
            r#"{"choices":[]"#,
            r#"{"choices":[01]}"#,
            "{\"choices\":[\"\u{1}\"]}",
            r#"{"choices":[],"x":"\ud800"}"#,
            "<html>",
        ] {
            assert!(!holds_choices(body.as_bytes()), "{body}");
        }
        // Invalid UTF-8 in a value.
        assert!(!holds_choices(b"{\"choices\":[\"\xff\"]}"));
    }

    /// Whatever the walk vouches for, the parse takes: over thousands of
    /// randomly changed answers.
    #[test]
    fn the_walk_never_takes_what_the_parse_refuses() {
        let (mut vouched, mut seen) = (0, 0);
        let pieces: &[&[u8]] = &[
            b"\"",
            b",",
            b"}",
            b"]",
            b"[",
            b":",
            b"\\",
            b"\\u00e9",
            b"\\ud800",
            b"\xff",
            b"\x01",
            b" ",
            b"1e999",
            b"-0",
            b"01",
            b"\"choices\":[],",
            b"null",
            b"tru",
            b"{\"choices\":1}",
            b"\"choices\"",
        ];
        let bodies = [
            ANSWER,
            r#"{"choices":[{"a":[1,2.5,true,false,null]}],"b":"c"}"#,
        ];
        for body in changed(&bodies, pieces, 0x5eed_c401, 20_000) {
            seen += 1;
            if holds_choices(&body) {
                vouched += 1;
                assert!(parse_says(&body), "{}", String::from_utf8_lossy(&body));
            }
        }
        // The changes leave many answers whole: the walk is tried on them.
        assert!(vouched > seen / 20, "{vouched} of {seen}");
    }

    /// The usage the walk reads on its way is the one the body's own read
    /// (`Usage::from_body`) finds, in every dialect, over thousands of
    /// changed answers: usage first, last, twice, `null`, beside members
    /// the top-level parse also reads (`message`, `response`).
    #[test]
    fn the_usage_read_on_the_way_is_the_bodys_own() {
        use crate::api::usage::{AnswerUsage, Dialect, Usage, output_tokens_hint};
        let bodies = [
            ANSWER,
            r#"{"usage":{"prompt_tokens":7,"completion_tokens":2},"choices":[],"id":"x"}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}"#,
            r#"{"usage":{"prompt_tokens":3},"choices":[],"message":"x"}"#,
            r#"{"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":1},"response":{"usage":null},"choices":[{}]}"#,
            r#"{"choices":[],"usage":null}"#,
            r#"{"choices":[{"message":{"content":"usage"}}],"usage":{"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":1}}}"#,
        ];
        let pieces: &[&[u8]] = &[
            b"\"usage\":{\"prompt_tokens\":5},",
            b"\"usage\":null,",
            b"\"message\":{},",
            b"\"response\":1,",
            b"\"completion_tokens\":3,",
            b"\"prompt_tokens\":2.5,",
            b"\"prompt_tokens\":-1,",
            b"\"cached_tokens\":4,",
            b"null",
            b"12",
            b",",
            b"}",
            b"\"",
            b"\\u0041",
        ];
        let dialects = [Dialect::OpenAi, Dialect::Responses, Dialect::Anthropic];
        let (mut known, mut seen) = (0, 0);
        for body in changed(&bodies, pieces, 0x05a9_e4c1, 20_000) {
            let Some(found) = check(&body) else {
                continue;
            };
            seen += 1;
            if found != AnswerUsage::UNKNOWN {
                known += 1;
            }
            for d in dialects {
                assert_eq!(
                    found.of(d, &body),
                    Usage::from_body(d, &body),
                    "{d:?}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
        // Most answers the walk vouches for have their usage read on the
        // way; the rest (twice, beside `message`) are read from the body.
        assert!(known > seen / 2 && known < seen, "{known} of {seen}");
        for body in bodies {
            let found = check(body.as_bytes()).expect(body);
            if found != AnswerUsage::UNKNOWN {
                assert_eq!(
                    found.output_tokens(body.as_bytes()),
                    output_tokens_hint(body.as_bytes()),
                    "{body}"
                );
            }
        }
    }
}
