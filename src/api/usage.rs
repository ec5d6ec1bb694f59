//! Token usage of one answer, as every endpoint reports it, and reading it
//! from answers: whole JSON bodies and streams of SSE events, in the three
//! dialects the gateway speaks (OpenAI chat / completions / embeddings, the
//! Responses API, Anthropic Messages).
//!
//! Place in the pipeline: `server` reads it from the answer (a JSON body
//! with [`Usage::from_body`], a stream through a [`UsageTap`] that sees the
//! events it forwards, embedding sub-batches summed), and accounting reads
//! it once at the end of the request (metrics, TPM, budgets). Must not
//! price anything (prices are applied by whoever reads it) nor change an
//! answer: it only reads.

use std::ops::AddAssign;

use serde::Deserialize;

use super::sse::{SseDecoder, SseEvent};

/// How far from the end of a body [`output_tokens_hint`] looks.
pub const HINT_TAIL: usize = 4096;

/// The output tokens a whole JSON answer reports (`completion_tokens`, or
/// `output_tokens` in the Responses and Messages dialects), found by a scan
/// of the last [`HINT_TAIL`] bytes (where every dialect puts its usage)
/// rather than a parse: cheap enough for every answer, for routing's
/// latency per output token. `None` when absent.
pub fn output_tokens_hint(body: &[u8]) -> Option<u64> {
    const KEYS: [&[u8]; 2] = [b"\"completion_tokens\"", b"\"output_tokens\""];
    let body = &body[body.len().saturating_sub(HINT_TAIL)..];
    let at = KEYS
        .iter()
        .filter_map(|k| memchr::memmem::rfind(body, k).map(|i| i + k.len()))
        .max()?;
    let rest = body[at..]
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Tokens of one answer. `cached` is the part of `prompt` the provider
/// served from its own prompt cache (priced apart), not gateway cache hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt + self.completion
    }

    /// Prompt tokens not served from the provider's prompt cache.
    pub fn uncached_prompt(&self) -> u64 {
        self.prompt.saturating_sub(self.cached)
    }

    /// The usage object of a whole JSON answer in `dialect`, without
    /// building the rest of the body; `None` when it carries none.
    pub fn from_body(dialect: Dialect, body: &[u8]) -> Option<Usage> {
        let top: Top = serde_json::from_slice(body).ok()?;
        top.usage.map(|raw| raw.usage(dialect))
    }
}

/// The model a whole JSON answer names and its usage in `dialect` (for an
/// attempt's trace span); either is `None` when the answer has none.
pub fn model_and_usage(dialect: Dialect, body: &[u8]) -> (Option<String>, Option<Usage>) {
    #[derive(Deserialize)]
    struct Named {
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        usage: Option<Raw>,
    }
    match serde_json::from_slice::<Named>(body) {
        Ok(n) => (n.model, n.usage.map(|raw| raw.usage(dialect))),
        Err(_) => (None, None),
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.prompt += other.prompt;
        self.completion += other.completion;
        self.cached += other.cached;
    }
}

/// Which API's usage object an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Chat completions, text completions, embeddings: `prompt_tokens`
    /// (the cached part in `prompt_tokens_details.cached_tokens`),
    /// `completion_tokens`; a stream's usage chunk is `{"choices": [],
    /// "usage": ...}`.
    OpenAi,
    /// The Responses API: `input_tokens` (cached part in
    /// `input_tokens_details.cached_tokens`), `output_tokens`; a stream
    /// carries it in `response.usage` of its last event
    /// (`response.completed`, `.incomplete`, `.failed`).
    Responses,
    /// Anthropic Messages: `input_tokens` counts only the uncached input,
    /// `cache_read_input_tokens` and `cache_creation_input_tokens` the
    /// rest (prompt = all three, cached = the reads); `output_tokens`. A
    /// stream sends `message.usage` in `message_start`, then cumulative
    /// counts in `message_delta`'s `usage`.
    Anthropic,
}

/// The top level of a body or event: only the fields that hold usage.
#[derive(Deserialize)]
struct Top {
    #[serde(default)]
    usage: Option<Raw>,
    /// Responses API stream events.
    #[serde(default)]
    response: Option<Nested>,
    /// Anthropic `message_start`.
    #[serde(default)]
    message: Option<Nested>,
}

#[derive(Deserialize)]
struct Nested {
    #[serde(default)]
    usage: Option<Raw>,
}

/// Every dialect's usage fields; absent or `null` ones are `None`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct Raw {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<Details>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct Details {
    cached_tokens: Option<u64>,
}

impl Raw {
    fn usage(&self, dialect: Dialect) -> Usage {
        let n = |v: Option<u64>| v.unwrap_or(0);
        let cached = |d: Option<Details>| d.and_then(|d| d.cached_tokens).unwrap_or(0);
        let (prompt, completion, cached) = match dialect {
            Dialect::OpenAi => (
                n(self.prompt_tokens),
                n(self.completion_tokens),
                cached(self.prompt_tokens_details),
            ),
            Dialect::Responses => (
                n(self.input_tokens),
                n(self.output_tokens),
                cached(self.input_tokens_details),
            ),
            Dialect::Anthropic => {
                let read = n(self.cache_read_input_tokens);
                let input = n(self.input_tokens) + n(self.cache_creation_input_tokens) + read;
                (input, n(self.output_tokens), read)
            }
        };
        Usage {
            prompt,
            completion,
            cached: cached.min(prompt),
        }
    }

    /// `later` over `self`, field by field: stream counts are cumulative,
    /// and an event may repeat only some of them (Anthropic's
    /// `message_delta`).
    fn update(&mut self, later: Raw) {
        fn over<T>(to: &mut Option<T>, v: Option<T>) {
            if v.is_some() {
                *to = v;
            }
        }
        over(&mut self.prompt_tokens, later.prompt_tokens);
        over(&mut self.completion_tokens, later.completion_tokens);
        over(&mut self.prompt_tokens_details, later.prompt_tokens_details);
        over(&mut self.input_tokens, later.input_tokens);
        over(&mut self.output_tokens, later.output_tokens);
        over(&mut self.input_tokens_details, later.input_tokens_details);
        over(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        over(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
    }
}

/// Whether `bytes` may hold a usage object: a `"usage"` key whose value is
/// an object (so `"usage": null` on every chunk of a stream, and text that
/// merely mentions usage, cost no parse).
pub fn mentions_usage(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(quote) = rest.iter().position(|&b| b == b'"') {
        rest = &rest[quote + 1..];
        let Some(after) = rest.strip_prefix(b"usage\"") else {
            continue;
        };
        let mut value = after.iter().copied().filter(|b| !b.is_ascii_whitespace());
        if value.next() == Some(b':') && value.next() == Some(b'{') {
            return true;
        }
        rest = after;
    }
    false
}

/// Reads usage from a stream as its events go by, parsing only the events
/// that can carry it. Fed runs of whole events (what every provider
/// stream yields); a run that is not whole loses its torn event's usage,
/// never the forwarding of it.
#[derive(Debug)]
pub struct UsageTap {
    dialect: Dialect,
    seen: Option<Raw>,
    events: Vec<SseEvent>,
}

impl UsageTap {
    pub fn new(dialect: Dialect) -> Self {
        UsageTap {
            dialect,
            seen: None,
            events: Vec::new(),
        }
    }

    /// Takes in one run of whole events; true when it carried usage.
    pub fn feed(&mut self, run: &[u8]) -> bool {
        if !mentions_usage(run) {
            return false;
        }
        self.events.clear();
        SseDecoder::new().feed(run, &mut self.events);
        let mut found = false;
        for e in &self.events {
            if !mentions_usage(e.data.as_bytes()) {
                continue;
            }
            let Ok(top) = serde_json::from_str::<Top>(&e.data) else {
                continue;
            };
            let raw = match self.dialect {
                Dialect::OpenAi => top.usage,
                Dialect::Responses => top.response.and_then(|r| r.usage).or(top.usage),
                Dialect::Anthropic => top.message.and_then(|m| m.usage).or(top.usage),
            };
            if let Some(raw) = raw {
                self.seen.get_or_insert_with(Raw::default).update(raw);
                found = true;
            }
        }
        found
    }

    /// The usage seen so far (`None`: the stream carried none).
    pub fn usage(&self) -> Option<Usage> {
        self.seen.map(|raw| raw.usage(self.dialect))
    }
}

#[cfg(test)]
mod tests {
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
        let chat = br#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens": 42,"total_tokens":51}}"#;
        assert_eq!(output_tokens_hint(chat), Some(42));
        let messages = br#"{"content":[],"usage":{"input_tokens":3,"output_tokens":7}}"#;
        assert_eq!(output_tokens_hint(messages), Some(7));
        assert_eq!(output_tokens_hint(br#"{"choices":[]}"#), None);
        assert_eq!(
            output_tokens_hint(br#"{"usage":{"completion_tokens":null}}"#),
            None
        );
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
}
