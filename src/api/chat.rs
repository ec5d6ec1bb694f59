//! Chat completions on the wire: request checks and canonical form.
//!
//! Place in the pipeline: `server` parses the client body with
//! [`ChatRequest::parse`]; `cache` keys on its canonical form.
//! The body is kept as the client's bytes ([`ChatBody`]): unknown fields
//! pass through to the upstream untouched, only `model` is rewritten per
//! target (spliced into the bytes), and the JSON tree is built only when a
//! feature needs it (translation, the cache key). A request
//! translated from another API (Messages, Responses) also carries
//! [`ChatExt`]: what the client asked that OpenAI chat has no standard
//! field for (a reasoning budget, `top_k`), for the provider kinds that
//! have one. Must not interpret sampling parameters or messages beyond
//! basic shape checks.

use bytes::Bytes;
use serde_json::{Map, Value};

pub use super::chat_body::{ChatBody, ask_for_usage, include_usage};
use super::error::GatewayError;
use super::ignored::Ignored;

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub stream: bool,
    /// Derefs to the JSON object (parsed on first use, once per request).
    pub body: ChatBody,
    /// Size of the client's body: the upstream body is about as large, so
    /// it is written into one allocation of about that size.
    pub wire_len: usize,
    /// Set by the Messages and Responses translations; empty for chat
    /// clients.
    pub ext: ChatExt,
}

/// What a request translated from another API asked that OpenAI chat has
/// no standard field for. Never serialized as it is: each provider kind
/// maps it to its own control, or leaves it out (and the endpoint says so).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatExt {
    pub reasoning: Option<Reasoning>,
    /// Sample from the `top_k` likeliest tokens only.
    pub top_k: Option<u64>,
    /// At most one tool call per turn (Messages
    /// `disable_parallel_tool_use`, Responses `parallel_tool_calls: false`).
    pub serial_tool_calls: bool,
}

/// Which parts of a request's [`ChatExt`] (and a chat client's
/// `reasoning_effort`) a provider sends for one model: the rest is left
/// out, and the endpoint names it in `x-switchyard-ignored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtSupport {
    /// The reasoning control is sent (as the kind's own: `reasoning_effort`,
    /// `thinking`, `thinkingConfig`, `additionalModelRequestFields`).
    pub reasoning: bool,
    /// `top_k` is sent.
    pub top_k: bool,
    /// One tool call per turn is enforced.
    pub serial_tool_calls: bool,
}

/// A chat request translated from another API (Messages, Responses), with
/// what the translation accepted and left out.
#[derive(Debug, Clone)]
pub struct Translated {
    pub chat: ChatRequest,
    /// Accepted, not sent to any target.
    pub ignored: Ignored,
    /// The client's fields the reasoning control came from: named when the
    /// serving target has no reasoning control.
    pub reasoning_from: Vec<&'static str>,
    /// The client's `top_k` field, when it sent one.
    pub top_k_from: Option<&'static str>,
    /// The client's field that asked for one tool call per turn.
    pub serial_from: Option<&'static str>,
}

impl Translated {
    /// What was ignored on a target that sends what `support` says.
    pub fn ignored_on(&self, support: ExtSupport) -> Ignored {
        let mut out = self.ignored.clone();
        if !support.reasoning {
            self.reasoning_from.iter().for_each(|f| out.field(f));
        }
        if !support.top_k
            && let Some(f) = self.top_k_from
        {
            out.field(f);
        }
        if !support.serial_tool_calls
            && let Some(f) = self.serial_from
        {
            out.field(f);
        }
        out
    }
}

/// How much the model should reason before it answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reasoning {
    /// OpenAI's effort level (`minimal`, `low`, `medium`, `high`, ...);
    /// `None` with `adaptive` lets the model decide.
    pub effort: Option<String>,
    /// A token budget, when the client gave one (Messages
    /// `thinking.budget_tokens`).
    pub budget_tokens: Option<u64>,
    /// The model decides how much to reason (Messages `thinking: adaptive`).
    pub adaptive: bool,
    /// The client wants the reasoning text back (thinking blocks, reasoning
    /// items).
    pub show: bool,
}

/// Tokens a reasoning effort level stands for, for kinds that take a budget.
pub fn effort_budget(effort: &str) -> u64 {
    match effort {
        "none" => 0,
        "minimal" => 1024,
        "low" => 2048,
        "medium" => 8192,
        "high" => 16384,
        // `max` (Anthropic), `xhigh` (OpenAI) and anything above high.
        _ => 32768,
    }
}

/// The effort level nearest to a token budget, for kinds that take a level.
pub fn budget_effort(budget: u64) -> &'static str {
    match budget {
        0..=1024 => "minimal",
        1025..=4096 => "low",
        4097..=12288 => "medium",
        _ => "high",
    }
}

impl Reasoning {
    /// The effort level to send a kind that takes one: the client's, else
    /// the one nearest its budget (`None`: the model's default).
    pub fn effort_level(&self) -> Option<String> {
        match (&self.effort, self.budget_tokens) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(b)) => Some(budget_effort(b).to_string()),
            (None, None) => None,
        }
    }

    /// The budget to send a kind that takes one: the client's, else the
    /// one its effort level stands for (`None`: adaptive, no level).
    pub fn budget(&self) -> Option<u64> {
        self.budget_tokens
            .or_else(|| self.effort.as_deref().map(effort_budget))
    }
}

impl ChatRequest {
    /// [`ChatRequest::parse_bytes`] of a copy of `raw`.
    pub fn parse(raw: &[u8]) -> Result<Self, GatewayError> {
        Self::parse_bytes(&Bytes::copy_from_slice(raw))
    }

    /// Reads what routing needs and keeps the client's bytes (no tree);
    /// what the quick read cannot vouch for is parsed fully, which also
    /// words every error.
    pub fn parse_bytes(raw: &Bytes) -> Result<Self, GatewayError> {
        let Some(mut head) = super::chat_body::scan(raw) else {
            return Self::parse_tree(raw);
        };
        Ok(ChatRequest {
            model: std::mem::take(&mut head.model),
            stream: head.stream,
            body: ChatBody::from_raw(raw.clone(), head),
            wire_len: raw.len(),
            ext: ChatExt::default(),
        })
    }

    /// The full parse (what every body went through before the quick
    /// read): the tree is the body.
    pub(crate) fn parse_tree(raw: &[u8]) -> Result<Self, GatewayError> {
        let value: Value = super::parse_json(raw)?;
        let Value::Object(body) = value else {
            return Err(GatewayError::invalid("Request body must be a JSON object."));
        };
        let model = super::required_model(&body)?;
        match body.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => {}
            Some(Value::Array(_)) => {
                return Err(GatewayError::invalid_param(
                    "messages",
                    "'messages' must contain at least one message.",
                ));
            }
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "messages",
                    "'messages' must be an array.",
                ));
            }
            None => {
                return Err(GatewayError::invalid_param(
                    "messages",
                    "Missing required parameter: 'messages'.",
                ));
            }
        }
        let stream = super::stream_flag(&body)?;
        Ok(ChatRequest {
            model,
            stream,
            body: body.into(),
            wire_len: raw.len(),
            ext: ChatExt::default(),
        })
    }

    /// The reasoning asked for (see [`reasoning_of`]).
    pub fn reasoning(&self) -> Option<Reasoning> {
        let Some(head) = self.body.head().filter(|_| self.ext.reasoning.is_none()) else {
            return reasoning_of(&self.body, &self.ext);
        };
        let effort = head.reasoning_effort.as_deref()?;
        (effort != "none").then(|| Reasoning {
            effort: Some(effort.to_string()),
            ..Reasoning::default()
        })
    }

    /// `top_k` asked for (see [`top_k_of`]).
    pub fn top_k(&self) -> Option<u64> {
        match self.body.head() {
            Some(head) => self.ext.top_k.or(head.top_k),
            None => top_k_of(&self.body, &self.ext),
        }
    }

    /// The client asked for a usage chunk at the end of its stream (after
    /// [`ChatRequest::ask_for_usage`]: the upstream is asked).
    pub fn include_usage(&self) -> bool {
        self.body.include_usage()
    }

    /// Asks the upstream for a usage chunk at the end of the stream (see
    /// [`ask_for_usage`]).
    pub fn ask_for_usage(&mut self) {
        self.body.ask_for_usage();
    }

    /// `max_completion_tokens`, `max_tokens` or `max_output_tokens`, times
    /// `n` (see `estimate::max_output_tokens`).
    pub fn max_output_tokens(&self) -> u64 {
        match self.body.head() {
            Some(head) => head.max_output_tokens(),
            None => super::estimate::max_output_tokens(&self.body),
        }
    }

    /// `store: true`: the upstream keeps the answer.
    pub fn stores(&self) -> bool {
        match self.body.head() {
            Some(head) => head.store,
            None => self.body.get("store").and_then(Value::as_bool) == Some(true),
        }
    }

    /// The body to send to a target serving `upstream_model`: the client's
    /// bytes with `model` spliced in while nothing edited the tree, else
    /// serialized straight from the tree (no copy of the parsed request).
    pub fn upstream_body(&self, upstream_model: &str) -> Bytes {
        match self.body.with_model(upstream_model) {
            Some(bytes) => bytes,
            None => body_with_model(&self.body, upstream_model, self.wire_len),
        }
    }

    /// [`ChatRequest::upstream_body`] as slices of the client's bytes around
    /// the new `model` (no copy of a large body); `None` once the tree is
    /// what is sent.
    pub fn upstream_parts(&self, upstream_model: &str) -> Option<Vec<Bytes>> {
        self.body.with_model_parts(upstream_model)
    }

    /// [`ChatRequest::upstream_body`] plus `extra` members the body does
    /// not have (a translated request's reasoning effort).
    pub fn upstream_body_with(&self, upstream_model: &str, extra: &[(&str, Value)]) -> Bytes {
        if extra.is_empty() {
            return self.upstream_body(upstream_model);
        }
        let mut out = Vec::with_capacity(self.wire_len + upstream_model.len() + 64);
        write_with_model(&mut out, &self.body, upstream_model, extra);
        Bytes::from(out)
    }
}

/// The reasoning asked for: the translation's, else the body's
/// `reasoning_effort` (a chat client's own; `none` asks for none).
pub fn reasoning_of(body: &Map<String, Value>, ext: &ChatExt) -> Option<Reasoning> {
    if let Some(r) = &ext.reasoning {
        return Some(r.clone());
    }
    let effort = body.get("reasoning_effort")?.as_str()?;
    (effort != "none").then(|| Reasoning {
        effort: Some(effort.to_string()),
        ..Reasoning::default()
    })
}

/// `top_k` asked for: the translation's, else the body's (a common
/// extension of chat).
pub fn top_k_of(body: &Map<String, Value>, ext: &ChatExt) -> Option<u64> {
    ext.top_k
        .or_else(|| body.get("top_k").and_then(Value::as_u64))
}

/// `body` serialized with its `model` replaced, in one allocation of about
/// `size_hint` bytes (the client's body size), without copying the parsed
/// body first.
pub fn body_with_model(body: &Map<String, Value>, model: &str, size_hint: usize) -> Bytes {
    let mut out = Vec::with_capacity(size_hint + model.len() + 16);
    write_with_model(&mut out, body, model, &[]);
    Bytes::from(out)
}

/// The client's body with `model` replaced (and `extra` members it does
/// not have), written as `serde_json` would write it, only faster (see
/// `json_write`).
fn write_with_model(
    out: &mut Vec<u8>,
    body: &Map<String, Value>,
    model: &str,
    extra: &[(&str, Value)],
) {
    super::json_write::write_object(out, body, |k| (k == "model").then_some(model), extra);
}

/// Chat reads its bounds without the tree (see `chat_body`); the tree is
/// built only when a conversation key needs it.
impl super::estimate::Routed for ChatRequest {
    fn model(&self) -> &str {
        &self.model
    }
    fn max_output_tokens(&self) -> u64 {
        ChatRequest::max_output_tokens(self)
    }
    fn body(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        Some(&self.body)
    }
}
