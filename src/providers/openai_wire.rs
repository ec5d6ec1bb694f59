//! The OpenAI wire format as upstreams that speak it answer: the pieces the
//! `openai` and `azure` kinds share.
//!
//! Place in the pipeline: inside those providers, for one attempt, after
//! [`super::upstream::Upstream`] got a successful response. Checks that a
//! `200` chat answer is a chat completion, builds the embeddings and rerank
//! bodies and decodes their answers. Must not know URLs, keys or error
//! classification: those differ per kind.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::UpstreamError;
use super::upstream::SetupError;
use crate::api::embeddings::{EmbedReply, parse_upstream_reply};
use crate::api::rerank::{RerankReply, scores_of};

/// What a chat answer must at least hold.
#[derive(Deserialize)]
struct ChatShape {
    #[allow(dead_code)]
    choices: Vec<IgnoredAny>,
}

/// A `200` chat body counts as an answer only when it is a chat completion.
pub(super) fn check_chat_completion(body: &[u8]) -> Result<(), UpstreamError> {
    match serde_json::from_slice::<ChatShape>(body) {
        Ok(_) => Ok(()),
        Err(e) => Err(UpstreamError::Protocol(format!(
            "a 200 answer that is not a chat completion ({})",
            classify_name(&e)
        ))),
    }
}

/// A streaming answer must be `text/event-stream`.
pub(super) use super::upstream::expect_event_stream as check_event_stream;

/// The embeddings request: the client's extra fields, `model`, `input`, and
/// base64 vectors (a quarter of the bytes of decimal floats).
pub(super) fn embeddings_body(model: &str, inputs: &[Value], extra: &Map<String, Value>) -> Bytes {
    let mut body = extra.clone();
    body.insert("model".into(), Value::String(model.to_string()));
    body.insert("input".into(), Value::Array(inputs.to_vec()));
    body.insert("encoding_format".into(), Value::String("base64".into()));
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// Decodes an embeddings answer for `expected` inputs.
pub(super) fn embeddings_reply(body: &[u8], expected: usize) -> Result<EmbedReply, UpstreamError> {
    parse_upstream_reply(body, expected).map_err(|e| UpstreamError::Protocol(e.to_string()))
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
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_completion_needs_choices() {
        assert!(check_chat_completion(br#"{"choices": []}"#).is_ok());
        for (body, why) in [
            (&b"{}"[..], "no `choices`"),
            (b"<html>", "invalid JSON"),
            (b"{\"choices\": [", "truncated JSON"),
        ] {
            match check_chat_completion(body) {
                Err(UpstreamError::Protocol(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn embeddings_body_keeps_extra_fields_and_asks_for_base64() {
        let extra = json!({"dimensions": 8, "user": "u"});
        let body = embeddings_body(
            "m",
            &[json!("a"), json!([1, 2])],
            extra.as_object().unwrap(),
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"dimensions": 8, "user": "u", "model": "m", "input": ["a", [1, 2]],
                   "encoding_format": "base64"})
        );
    }

    #[test]
    fn secret_headers_are_sensitive() {
        assert!(secret_header("k").unwrap().is_sensitive());
        assert!(secret_header("bad\nvalue").is_err());
    }
}
