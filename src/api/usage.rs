//! Token usage of one answer, as every endpoint reports it, and reading it
//! from answers: whole JSON bodies and streams of SSE events, in the three
//! dialects the gateway speaks (OpenAI chat / completions / embeddings, the
//! Responses API, Anthropic Messages).
//!
//! Place in the pipeline: `server` reads it from the answer (a JSON body
//! with [`Usage::from_body`], or as the provider's check of a chat answer
//! read it on the way ([`AnswerUsage`]), a stream through a [`UsageTap`]
//! that sees the events it forwards, embedding sub-batches summed), and
//! accounting reads it once at the end of the request (metrics, TPM,
//! budgets). Must not price anything (prices are applied by whoever reads
//! it) nor change an answer: it only reads.

use std::ops::AddAssign;
use std::sync::LazyLock;

use memchr::memmem::{Finder, FinderRev};
use serde::Deserialize;

use super::sse::{SseDecoder, SseEvent};
use super::sse_cut::event_spans;

/// How far from the end of a body [`output_tokens_hint`] looks.
pub const HINT_TAIL: usize = 4096;

/// The searchers the scans below use, built once (building one costs as
/// much as a search of an answer's tail).
struct Searchers {
    usage_rev: FinderRev<'static>,
    usage: Finder<'static>,
    escape: Finder<'static>,
}

const TOKENS_END: &[u8] = b"_tokens\"";
const USAGE_KEY: &[u8] = b"\"usage\"";

static SEARCHERS: LazyLock<Searchers> = LazyLock::new(|| Searchers {
    usage_rev: FinderRev::new(USAGE_KEY),
    usage: Finder::new(USAGE_KEY),
    escape: Finder::new(b"\\u"),
});

/// The output tokens a whole JSON answer reports (`completion_tokens`, or
/// `output_tokens` in the Responses and Messages dialects), found by a scan
/// of the last [`HINT_TAIL`] bytes (where every dialect puts its usage)
/// rather than a parse: cheap enough for every answer, for routing's
/// latency per output token. `None` when absent.
pub fn output_tokens_hint(body: &[u8]) -> Option<u64> {
    let body = &body[body.len().saturating_sub(HINT_TAIL)..];
    // The last `"completion_tokens"` or `"output_tokens"`: the usage is
    // near the end, so one backward search stops within a few keys. By
    // the `_` each starts with (a vector search; an answer's tail has a
    // handful), not a substring search, which costs more on a short tail.
    let at = memchr::memrchr_iter(b'_', body).find(|&i| {
        let head = &body[..i];
        body[i..].starts_with(TOKENS_END)
            && (head.ends_with(b"\"completion") || head.ends_with(b"\"output"))
    })? + TOKENS_END.len();
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
        let raw = match usage_last(body) {
            Some(raw) => raw,
            None => serde_json::from_slice::<Top>(body).ok()?.usage,
        };
        raw.map(|raw| raw.usage(dialect))
    }
}

/// The usage of a whole answer that ends with it, as most do (`..., "usage":
/// {...}}`), read without a pass over the rest: `Some` when `"usage"` occurs
/// once in the body, as the last member of the object the body is; `None`
/// (the caller parses the whole body) otherwise. An answer whose usage
/// comes earlier, may be repeated (a `\u` escape before it could spell
/// another) or is written with escapes is parsed whole. What is read here
/// is what the whole parse reads of a valid body (a test compares them).
fn usage_last(body: &[u8]) -> Option<Option<Raw>> {
    let s = &*SEARCHERS;
    let at = s.usage_rev.rfind(body)?;
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    // Once: no other `"usage"`, and no `\u` escape that could spell one.
    let before = &body[..at];
    if body[start] != b'{' || s.usage.find(before).is_some() || s.escape.find(before).is_some() {
        return None;
    }
    // A key: its opening quote not escaped, a colon after it.
    let backslashes = before.iter().rev().take_while(|&&b| b == b'\\').count();
    let rest = body[at + USAGE_KEY.len()..]
        .trim_ascii_start()
        .strip_prefix(b":")?;
    if !backslashes.is_multiple_of(2) {
        return None;
    }
    // Read where it lies (`read`), or by `serde_json` when that read
    // cannot vouch for the value.
    let (raw, used) = match read::raw_at(rest) {
        Some(read) => read,
        None => {
            let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Option<Raw>>();
            (values.next()?.ok()?, values.byte_offset())
        }
    };
    // Only the object's closing brace after it.
    let tail = rest[used..].trim_ascii();
    (tail == b"}").then_some(raw)
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
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
    // A vector search for the key (every chunk of a stream goes through
    // here, some of them more than once).
    SEARCHERS.usage.find_iter(bytes).any(|at| {
        let after = &bytes[at + USAGE_KEY.len()..];
        let mut value = after.iter().copied().filter(|b| !b.is_ascii_whitespace());
        value.next() == Some(b':') && value.next() == Some(b'{')
    })
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
        // Only the events that can carry usage are decoded.
        self.events.clear();
        for span in event_spans(run) {
            if mentions_usage(&run[span.clone()]) {
                SseDecoder::new().feed(&run[span], &mut self.events);
            }
        }
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

#[path = "usage_read.rs"]
mod read;

pub use read::AnswerUsage;
pub(super) use read::TopUsage;

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
