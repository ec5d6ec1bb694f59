//! Tests of `usage`: each dialect's usage read from a whole body and from
//! a stream, the output-token hint, and how usages add up.

use super::*;

fn u(prompt: u64, completion: u64, cached: u64) -> Usage {
    Usage {
        prompt,
        completion,
        cached,
    }
}

#[test]
fn reads_each_dialect_from_a_json_body() {
    let chat = br#"{"id":"c","choices":[{"message":{"content":"the \"usage\": {x}"}}],
        "usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,
                 "prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0}}}"#;
    assert_eq!(Usage::from_body(Dialect::OpenAi, chat), Some(u(12, 5, 4)));
    let responses = br#"{"object":"response","output":[],"usage":{"input_tokens":9,
        "input_tokens_details":{"cached_tokens":2},"output_tokens":3,"total_tokens":12}}"#;
    assert_eq!(
        Usage::from_body(Dialect::Responses, responses),
        Some(u(9, 3, 2))
    );
    let anthropic = br#"{"type":"message","content":[],"usage":{"input_tokens":50,
        "cache_creation_input_tokens":20,"cache_read_input_tokens":100,"output_tokens":30}}"#;
    assert_eq!(
        Usage::from_body(Dialect::Anthropic, anthropic),
        Some(u(170, 30, 100))
    );
    let none = br#"{"id":"c","choices":[],"usage":null}"#;
    assert_eq!(Usage::from_body(Dialect::OpenAi, none), None);
    assert_eq!(Usage::from_body(Dialect::OpenAi, b"not json"), None);
}

#[test]
fn only_an_object_valued_usage_key_counts_as_a_mention() {
    assert!(mentions_usage(br#"data: {"usage" : {"a":1}}"#));
    assert!(mentions_usage(br#"{"usage":null,"x":{"usage":{}}}"#));
    assert!(!mentions_usage(br#"data: {"choices":[],"usage":null}"#));
    assert!(!mentions_usage(br#"{"content":"say \"usage\": {}"}"#));
    assert!(!mentions_usage(b"\"usage\""));
}

#[test]
fn an_openai_stream_reports_its_usage_chunk() {
    let mut tap = UsageTap::new(Dialect::OpenAi);
    assert!(
        !tap.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n")
    );
    assert_eq!(tap.usage(), None);
    let last = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\
                \"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\ndata: [DONE]\n\n";
    assert!(tap.feed(last.as_bytes()));
    assert_eq!(tap.usage(), Some(u(7, 2, 3)));
}

#[test]
fn an_anthropic_stream_merges_message_start_and_the_cumulative_delta() {
    let mut tap = UsageTap::new(Dialect::Anthropic);
    tap.feed(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\
          \"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":30,\
          \"cache_creation_input_tokens\":5,\"output_tokens\":1}}}\n\n",
    );
    assert_eq!(tap.usage(), Some(u(45, 1, 30)));
    tap.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":15}}\n\n");
    assert_eq!(tap.usage(), Some(u(45, 15, 30)));
}

#[test]
fn a_responses_stream_reports_the_final_response_usage() {
    let mut tap = UsageTap::new(Dialect::Responses);
    tap.feed(b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n");
    assert_eq!(tap.usage(), None);
    tap.feed(
        b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\
          \"output\":[],\"usage\":{\"input_tokens\":8,\"input_tokens_details\":{\"cached_tokens\":0},\
          \"output_tokens\":4,\"total_tokens\":12}}}\n\n",
    );
    assert_eq!(tap.usage(), Some(u(8, 4, 0)));
}

#[test]
fn the_output_token_hint_reads_each_dialect_without_a_parse() {
    let chat =
        br#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens": 42,"total_tokens":51}}"#;
    assert_eq!(output_tokens_hint(chat), Some(42));
    let messages = br#"{"content":[],"usage":{"input_tokens":3,"output_tokens":7}}"#;
    assert_eq!(output_tokens_hint(messages), Some(7));
    assert_eq!(output_tokens_hint(br#"{"choices":[]}"#), None);
    assert_eq!(
        output_tokens_hint(br#"{"usage":{"completion_tokens":null}}"#),
        None
    );
    // The last of either key; other `_tokens` keys and look-alikes are
    // passed over.
    let both = br#"{"output_tokens":1,"usage":{"completion_tokens":5,"reasoning_output_tokens":2,"xoutput_tokens":3,"total_tokens":9}}"#;
    assert_eq!(output_tokens_hint(both), Some(5));
    let tail = format!(
        r#"{{"completion_tokens":1,"pad":"{}","output_tokens":6}}"#,
        "x".repeat(HINT_TAIL)
    );
    assert_eq!(output_tokens_hint(tail.as_bytes()), Some(6));
    let far = format!(
        r#"{{"completion_tokens":1,"pad":"{}"}}"#,
        "x".repeat(HINT_TAIL)
    );
    assert_eq!(
        output_tokens_hint(far.as_bytes()),
        None,
        "only the tail is read"
    );
}

/// What the hint reads, the slow way: the last `"completion_tokens"` or
/// `"output_tokens"` key in the tail, and the digits after its colon.
fn hint_by_windows(body: &[u8]) -> Option<u64> {
    let body = &body[body.len().saturating_sub(HINT_TAIL)..];
    let at = (0..body.len()).rev().find_map(|i| {
        [&b"\"completion_tokens\""[..], &b"\"output_tokens\""[..]]
            .into_iter()
            .find(|k| body[i..].starts_with(k))
            .map(|k| i + k.len())
    })?;
    let rest = body[at..]
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[test]
fn the_output_token_hint_is_the_last_key_in_any_mix_of_look_alikes() {
    // Every sequence of four pieces from keys, look-alikes and filler.
    let pieces: [&[u8]; 9] = [
        br#""completion_tokens":3,"#,
        br#""output_tokens": 17 ,"#,
        br#""prompt_tokens":5,"#,
        br#""xoutput_tokens":8,"#,
        br#""completion_tokens_details":{"a_b":1},"#,
        br#""_tokens":2,"#,
        br#""completion_tokens":null,"#,
        b"_ __ _tokens\" ",
        br#""output_tokens":"#,
    ];
    let mut seen = 0;
    for n in 0..9usize.pow(4) {
        let mut body = b"{".to_vec();
        let mut k = n;
        for _ in 0..4 {
            body.extend_from_slice(pieces[k % 9]);
            k /= 9;
        }
        body.extend_from_slice(b"\"end\":1}");
        let want = hint_by_windows(&body);
        seen += usize::from(want.is_some());
        assert_eq!(
            output_tokens_hint(&body),
            want,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    assert!(seen > 1000, "{seen}");
}

#[test]
fn cached_never_exceeds_prompt_and_sums_add_up() {
    let body = br#"{"usage":{"prompt_tokens":2,"prompt_tokens_details":{"cached_tokens":9}}}"#;
    let mut total = Usage::from_body(Dialect::OpenAi, body).unwrap();
    assert_eq!(total, u(2, 0, 2));
    total += u(3, 1, 0);
    assert_eq!(total, u(5, 1, 2));
    assert_eq!(total.uncached_prompt(), 3);
}

/// What `from_body` gave before it read a usage at the end on its own.
fn by_whole_parse(dialect: Dialect, body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<Top>(body)
        .ok()?
        .usage
        .map(|raw| raw.usage(dialect))
}

/// Bodies of members in any order (a usage last, first, twice, nested, in
/// strings, behind escapes): the usage read at the end, when it is, is the
/// one the whole parse reads, and so is every fallback.
#[test]
fn a_usage_read_at_the_end_is_the_one_the_whole_parse_reads() {
    const USAGES: [&str; 6] = [
        r#"{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1}}"#,
        r#"{"input_tokens":5,"output_tokens":6,"cache_read_input_tokens":2}"#,
        "null",
        r#"{"prompt_tokens":"many"}"#,
        "7",
        r#"{"prompt_tokens":1} , "x":2"#,
    ];
    const OTHERS: [&str; 10] = [
        r#""id":"chatcmpl-1""#,
        r#""object":"chat.completion","created":1700000000"#,
        r#""model":"gpt-4o-mini""#,
        r#""choices":[{"index":0,"message":{"role":"assistant","content":"fine"}}]"#,
        r#""choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\":1}"}}]"#,
        r#""meta":{"usage":{"prompt_tokens":99}}"#,
        r#""list":[{"usage":{"completion_tokens":8}}]"#,
        r#""end\\":"usage""#,
        r#""k\"usage":{"prompt_tokens":5}"#,
        r#""\u0075sage":{"prompt_tokens":11}"#,
    ];
    let mut rng = fastrand::Rng::with_seed(0x5EED);
    let (mut fast, mut tried) = (0, 0);
    for _ in 0..20_000 {
        let mut members: Vec<String> = (0..rng.usize(..4))
            .map(|_| OTHERS[rng.usize(..OTHERS.len())].to_string())
            .collect();
        for _ in 0..[0, 1, 1, 1, 2][rng.usize(..5)] {
            let gap = [" ", "", "\n "][rng.usize(..3)];
            let usage = format!("\"usage\"{gap}:{gap}{}", USAGES[rng.usize(..USAGES.len())]);
            members.insert(rng.usize(..=members.len()), usage);
        }
        let pad = [" ", "", "\n"][rng.usize(..3)];
        let body = format!("{pad}{{{}}}{pad}", members.join(","));
        for dialect in [Dialect::OpenAi, Dialect::Responses, Dialect::Anthropic] {
            assert_eq!(
                Usage::from_body(dialect, body.as_bytes()),
                by_whole_parse(dialect, body.as_bytes()),
                "{body}"
            );
        }
        tried += 1;
        fast += usize::from(usage_last(body.as_bytes()).is_some());
    }
    // Both ways are taken often.
    assert!(
        fast > tried / 10 && fast < tried * 9 / 10,
        "{fast} of {tried}"
    );
}

/// Usage values of every form (counts, nulls, floats, signs, huge
/// numbers, strings, details objects, fields twice, escaped and unknown
/// keys, white space, a trailing comma): wherever the cursor's read
/// vouches for one, it is the derived parse's, to the byte it stopped at;
/// and it vouches for the usual ones.
#[test]
fn the_cursor_reads_a_usage_as_the_derived_parse_does() {
    const MEMBERS: [&str; 27] = [
        r#""prompt_tokens":120"#,
        r#""prompt_tokens":null"#,
        r#""prompt_tokens":0"#,
        r#""prompt_tokens":1.5"#,
        r#""prompt_tokens":-1"#,
        r#""prompt_tokens":1e3"#,
        r#""prompt_tokens":18446744073709551615"#,
        r#""prompt_tokens":007"#,
        r#""prompt_tokens":"7""#,
        r#""completion_tokens":14"#,
        r#""total_tokens":134"#,
        r#""prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0}"#,
        r#""prompt_tokens_details":null"#,
        r#""prompt_tokens_details":{}"#,
        r#""prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}"#,
        r#""prompt_tokens_details":{"cached_tokens":null}"#,
        r#""prompt_tokens_details":7"#,
        r#""input_tokens":5"#,
        r#""output_tokens":6"#,
        r#""input_tokens_details":{ "cached_tokens" : 2 }"#,
        r#""cache_read_input_tokens":100"#,
        r#""cache_creation_input_tokens":20"#,
        r#""server_tool_use":{"web_search_requests":0}"#,
        r#""service_tier":"standard""#,
        r#""\u0070rompt_tokens":9"#,
        r#""x":[1,{"y":null},"z"]"#,
        r#""completion_tokens":12345678901234567890"#,
    ];
    let mut rng = fastrand::Rng::with_seed(0xC0A7);
    let mut gaps = fastrand::Rng::with_seed(0x9A95);
    let (mut vouched, mut tried) = (0, 0);
    for _ in 0..20_000 {
        let mut gap = || [" ", "", "\n  "][gaps.usize(..3)];
        let value = match rng.usize(..20) {
            0 => "null".to_string(),
            1 => "{}".to_string(),
            2 => "7".to_string(),
            _ => {
                let members: Vec<String> = (0..rng.usize(1..6))
                    .map(|_| {
                        let m = MEMBERS[rng.usize(..MEMBERS.len())];
                        m.replacen(':', &format!("{}:{}", gap(), gap()), 1)
                    })
                    .collect();
                let comma = if rng.usize(..30) == 0 { "," } else { "" };
                format!(
                    "{{{}{}{comma}{}}}",
                    gap(),
                    members.join(&format!(",{}", gap())),
                    gap()
                )
            }
        };
        let text = format!("{}{value}{}}}", gap(), gap());
        let bytes = text.as_bytes();
        let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<Option<Raw>>();
        let parsed = values.next().and_then(Result::ok);
        tried += 1;
        if let Some((raw, used)) = read::raw_at(bytes) {
            vouched += 1;
            assert_eq!(Some(raw), parsed, "{text}");
            assert_eq!(used, values.byte_offset(), "{text}");
        }
    }
    assert!(
        vouched > tried / 4 && vouched < tried * 9 / 10,
        "{vouched} of {tried}"
    );
}
