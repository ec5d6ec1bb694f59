//! The quick check of an upstream's whole chat answer: a JSON object whose
//! `choices` is an array, every byte validated, nothing built.
//!
//! Place in the pipeline: the OpenAI-wire providers call
//! [`holds_choices`] on a `200` answer before passing it on, instead of
//! `serde_json`'s parse into a shape (whose key and string reads were
//! about 5 % of a 1 KB chat request's instructions). It walks with
//! `json_check`'s cursor, which accepts nothing the parse refuses. Must
//! not decide errors: `false` only sends the caller to the parse, which
//! accepts the answer or words its fault.

use super::json_check::Cursor;

/// Whether `body` is, for certain, an object with one `choices` member
/// that is an array (any other members are checked and passed). `false`
/// for anything else, and for what the walk does not vouch for (an
/// escaped key, `choices` twice, a number or nesting beyond the cursor's
/// bounds).
pub fn holds_choices(body: &[u8]) -> bool {
    walk(body).unwrap_or(false)
}

fn walk(body: &[u8]) -> Option<bool> {
    let mut c = Cursor::new(body);
    c.ws();
    c.eat(b'{')?;
    c.ws();
    let mut choices = false;
    while c.peek()? != b'}' {
        if c.key()? == b"choices" {
            if choices || c.peek()? != b'[' {
                return None;
            }
            choices = true;
        }
        c.value()?;
        c.after_member()?;
    }
    c.eat(b'}')?;
    Some(choices && c.at_end())
}

#[cfg(test)]
mod tests {
    use super::holds_choices;
    use crate::api::changed::changed;

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
}
