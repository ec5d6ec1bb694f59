//! The OpenAI wire format as upstreams that speak it answer: the pieces the
//! `openai` and `azure` kinds share.
//!
//! Place in the pipeline: inside those providers, for one attempt. Builds
//! the chat body (the client's, plus a translated request's reasoning
//! effort as `reasoning_effort` for models that take one), checks that a
//! `200` chat answer is a chat completion, builds the embeddings and rerank
//! bodies and decodes their answers. Must not know URLs, keys or error
//! classification: those differ per kind.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::body::Limits;
use super::client::Response;
use super::pieces::Pieces;
use super::upstream::{SetupError, Upstream};
use super::{ExtSupport, UpstreamError};
use crate::api::chat::ChatRequest;
use crate::api::embeddings::{
    EmbedAnswer, EmbedReply, EncodingFormat, Prescan, parse_upstream_reply, upstream_answer,
};
use crate::api::json_write;
use crate::api::rerank::{RerankReply, scores_of};
use crate::api::usage::AnswerUsage;

/// Whether `model` (a model or deployment name) takes `reasoning_effort`:
/// every model but the OpenAI families known to refuse it (`gpt-3.5*`,
/// `gpt-4*`, `chatgpt-*`, `gpt-5-chat*`); other OpenAI-compatible servers
/// (vLLM, DeepSeek, ...) accept the field.
pub(super) fn takes_reasoning_effort(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model).as_bytes();
    ![
        "gpt-3.5",
        "gpt-4",
        "chatgpt-",
        "gpt-5-chat",
        "davinci",
        "babbage",
    ]
    .iter()
    .any(|p| {
        name.get(..p.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(p.as_bytes()))
    })
}

/// Whether an Azure deployment takes `reasoning_effort`: deployment names
/// are the operator's, so only those that name a reasoning model (a part
/// `o1`, `o3`, `o4`, or `gpt-5` (not `gpt-5-chat`), `gpt5`, `gpt-oss`,
/// `codex` in it).
pub(super) fn deployment_takes_reasoning_effort(deployment: &str) -> bool {
    let name = deployment.to_ascii_lowercase();
    let part = |p: &str| {
        name.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|t| t == p || (t.starts_with(p) && t[p.len()..].starts_with("mini")))
    };
    let chat = name.contains("gpt-5-chat") || name.contains("gpt5-chat");
    part("o1")
        || part("o3")
        || part("o4")
        || (!chat
            && ["gpt-5", "gpt5", "gpt-oss", "codex"]
                .iter()
                .any(|p| name.contains(p)))
}

/// What of a request's extension reaches `model` (for which `reasons`
/// says whether it takes `reasoning_effort`): the reasoning effort, one
/// tool call per turn, never `top_k` (the OpenAI API refuses it).
pub(super) fn ext_support(
    request: &ChatRequest,
    model: &str,
    takes_effort: fn(&str) -> bool,
) -> ExtSupport {
    ExtSupport {
        reasoning: request.reasoning().is_some() && takes_effort(model),
        top_k: false,
        serial_tool_calls: true,
    }
}

/// Client bodies at least this large go out as slices of the client's
/// bytes ([`Pieces`]); smaller ones are cheaper copied into one buffer.
const SLICED_FROM: usize = 64 * 1024;

/// The chat body for `model`: the client's, plus a translated request's
/// reasoning effort when `model` takes one (`takes_effort`, asked only of
/// a request that has one; levels above `high`, Anthropic's `max` and
/// `xhigh`, as `high`) and `parallel_tool_calls: false`. A large client
/// body that needs nothing but `model` goes out as slices of its own bytes.
pub(super) fn chat_request_body(
    request: &ChatRequest,
    model: &str,
    takes_effort: fn(&str) -> bool,
) -> Pieces {
    let reasons = request.ext.reasoning.is_some() && takes_effort(model);
    let extra = extras(request, reasons);
    if extra.is_empty()
        && request.wire_len >= SLICED_FROM
        && let Some(parts) = request.upstream_parts(model)
    {
        return Pieces::parts(parts);
    }
    request.upstream_body_with(model, &extra).into()
}

/// What a translated request adds to the body (see [`chat_request_body`]).
fn extras(request: &ChatRequest, reasons: bool) -> Vec<(&'static str, Value)> {
    let effort = request
        .ext
        .reasoning
        .as_ref()
        .and_then(|r| r.effort_level())
        .filter(|_| reasons)
        .map(|e| match e.as_str() {
            "none" | "minimal" | "low" | "medium" | "high" => Value::String(e),
            _ => Value::String("high".into()),
        });
    let mut extra = Vec::new();
    if let Some(e) = effort {
        extra.push(("reasoning_effort", e));
    }
    if request.ext.serial_tool_calls {
        extra.push(("parallel_tool_calls", Value::Bool(false)));
    }
    extra
}

/// What a chat answer must at least hold.
#[derive(Deserialize)]
struct ChatShape {
    #[allow(dead_code)]
    choices: Vec<IgnoredAny>,
}

/// A `200` chat body counts as an answer only when it is a chat completion;
/// with what the check found of its usage.
pub(super) fn check_chat_completion(body: &[u8]) -> Result<AnswerUsage, UpstreamError> {
    if let Some(usage) = crate::api::chat_answer::check(body) {
        return Ok(usage);
    }
    match serde_json::from_slice::<ChatShape>(body) {
        Ok(_) => Ok(AnswerUsage::UNKNOWN),
        Err(e) => Err(UpstreamError::Protocol(format!(
            "a 200 answer that is not a chat completion ({})",
            classify_name(&e)
        ))),
    }
}

/// A streaming answer must be `text/event-stream`.
pub(super) use super::upstream::expect_event_stream as check_event_stream;

/// The embeddings request: the client's extra fields, `model`, `input`,
/// and `format` vectors (the client's own when its answer is passed
/// through; else base64, a quarter of the bytes of decimal floats), in
/// that order, as `serde_json` would write them (`api::json_write`, which
/// copies a plain string in runs where `serde_json` looks up each byte:
/// over 2,048 inputs, the most of this body's cost).
pub(super) fn embeddings_body(
    model: &str,
    inputs: &[Value],
    extra: &Map<String, Value>,
    format: EncodingFormat,
) -> Bytes {
    // Sized for the inputs (quoted, a comma each) and a little more, so
    // 2,048 of them are not copied as the buffer doubles.
    let inputs_len: usize = inputs
        .iter()
        .map(|v| match v {
            Value::String(s) => s.len() + 3,
            _ => 16,
        })
        .sum();
    let mut out = Vec::with_capacity(inputs_len + model.len() + 256);
    out.push(b'{');
    for (k, v) in extra {
        json_write::write_str(&mut out, k);
        out.push(b':');
        json_write::write_value(&mut out, v);
        out.push(b',');
    }
    out.extend_from_slice(b"\"model\":");
    json_write::write_str(&mut out, model);
    out.extend_from_slice(b",\"input\":[");
    for (i, input) in inputs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_write::write_value(&mut out, input);
    }
    out.extend_from_slice(b"],\"encoding_format\":\"");
    out.extend_from_slice(format.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    Bytes::from(out)
}

/// Decodes an embeddings answer for `expected` inputs.
pub(super) fn embeddings_reply(body: &[u8], expected: usize) -> Result<EmbedReply, UpstreamError> {
    parse_upstream_reply(body, expected).map_err(|e| UpstreamError::Protocol(e.to_string()))
}

/// An answer to a request for `format` vectors: passed through when it is
/// the plain one, else decoded (any fault named as [`embeddings_reply`]).
/// The answer is walked while it arrives, so little is left to check
/// after its last byte.
pub(super) async fn embeddings_answer(
    upstream: &Upstream,
    response: Response,
    limits: &Limits,
    expected: usize,
    format: EncodingFormat,
) -> Result<EmbedAnswer, UpstreamError> {
    let mut prescan = Prescan::new(expected, format);
    upstream
        .read_json_pieces(response, limits, |chunk| prescan.feed(chunk))
        .await?;
    upstream_answer(expected, prescan).map_err(|e| UpstreamError::Protocol(e.to_string()))
}

/// A Jina / Cohere-style rerank body (vLLM's `/v1/rerank`): no `top_n`,
/// every document is scored.
#[derive(Serialize)]
struct RerankBody<'a> {
    model: &'a str,
    query: &'a str,
    documents: Vec<&'a str>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

pub(super) fn rerank_body(
    model: &str,
    query: &str,
    documents: &[std::sync::Arc<str>],
    extra: &Map<String, Value>,
) -> Bytes {
    let body = RerankBody {
        model,
        query,
        documents: documents.iter().map(|d| &**d).collect(),
        extra,
    };
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// Decodes a rerank answer (`results[{index, relevance_score}]`, `usage`)
/// for `expected` documents; anything else is a protocol failure.
pub(super) fn rerank_reply(body: &[u8], expected: usize) -> Result<RerankReply, UpstreamError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| UpstreamError::Protocol("a rerank answer that is not JSON".into()))?;
    let scores = scores_of(&v, expected).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    Ok(RerankReply {
        scores,
        total_tokens: v
            .pointer("/usage/total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        search_units: 0,
    })
}

/// text-embeddings-inference's rerank body: `{query, texts}`.
pub(super) fn tei_rerank_body(query: &str, documents: &[std::sync::Arc<str>]) -> Bytes {
    let texts: Vec<&str> = documents.iter().map(|d| &**d).collect();
    let body = serde_json::json!({"query": query, "texts": texts, "raw_scores": false});
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// text-embeddings-inference's rerank answer, `[{index, score}]`, read as
/// the Jina/Cohere shape so the same checks apply.
pub(super) fn tei_rerank_reply(body: &[u8], expected: usize) -> Result<RerankReply, UpstreamError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| UpstreamError::Protocol("a rerank answer that is not JSON".into()))?;
    let Some(items) = v.as_array() else {
        return Err(UpstreamError::Protocol(
            "a TEI rerank answer that is not an array".into(),
        ));
    };
    let results: Vec<Value> = items
        .iter()
        .map(|r| serde_json::json!({"index": r["index"], "relevance_score": r["score"]}))
        .collect();
    let scores = scores_of(&serde_json::json!({ "results": results }), expected)
        .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    Ok(RerankReply {
        scores,
        total_tokens: 0,
        search_units: 0,
    })
}

/// A header value holding a secret: never printed in debug output.
pub(super) fn secret_header(value: &str) -> Result<http::HeaderValue, SetupError> {
    let mut value =
        http::HeaderValue::try_from(value).map_err(|_| SetupError::Header("the API key"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn classify_name(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "no `choices`",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

#[cfg(test)]
#[path = "openai_wire_tests.rs"]
mod tests;
