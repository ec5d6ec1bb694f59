//! Rerank through Cohere's `POST /v2/rerank`.
//!
//! Place in the pipeline: the `cohere` provider sends [`rerank_request`]
//! for the documents the gateway's cache missed and decodes the answer with
//! [`rerank_response`].
//!
//! Request: `{"model", "query", "documents": [string], "max_tokens_per_doc"?}`.
//! `top_n` is never sent (the gateway needs every score, and applies the
//! client's `top_n` after merging with cached scores). Any other client
//! field is Unsupported: a silently dropped field could change the scores.
//!
//! Response: `results[{index, relevance_score}]` (sorted by relevance;
//! returned here in document order, every index checked), usage from
//! `meta.billed_units.search_units`. Must not drop or reorder scores.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{bad_response, invalid, unsupported};
use crate::api::rerank::{RerankReply, scores_of};
use crate::providers::translate::TranslateError;

pub fn rerank_request(
    model: &str,
    query: &str,
    documents: &[Arc<str>],
    extra: &Map<String, Value>,
) -> Result<Value, TranslateError> {
    let mut body = json!({
        "model": model,
        "query": query,
        "documents": documents.iter().map(|d| &**d).collect::<Vec<&str>>(),
    });
    for (key, value) in extra {
        match key.as_str() {
            _ if value.is_null() => {}
            "max_tokens_per_doc" => {
                let n = value
                    .as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid("`max_tokens_per_doc` must be a positive integer"))?;
                body["max_tokens_per_doc"] = Value::from(n);
            }
            other => return Err(unsupported(format!("rerank field `{other}`"))),
        }
    }
    Ok(body)
}

pub fn rerank_response(upstream: &[u8], expected: usize) -> Result<RerankReply, TranslateError> {
    let v: Value =
        serde_json::from_slice(upstream).map_err(|e| bad_response(format!("invalid JSON: {e}")))?;
    let scores = scores_of(&v, expected).map_err(|e| bad_response(e.0))?;
    let units = v
        .pointer("/meta/billed_units/search_units")
        .and_then(Value::as_f64)
        .map_or(0, |u| u.max(0.0) as u64);
    Ok(RerankReply {
        scores,
        total_tokens: 0,
        search_units: units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_as_in_the_reference() {
        let docs: Vec<Arc<str>> = vec![Arc::from("a"), Arc::from("b")];
        let extra = json!({"max_tokens_per_doc": 512});
        let body = rerank_request("rerank-v3.5", "q", &docs, extra.as_object().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"model": "rerank-v3.5", "query": "q", "documents": ["a", "b"],
                   "max_tokens_per_doc": 512})
        );
        let bad = json!({"rank_fields": ["title"]});
        assert!(matches!(
            rerank_request("m", "q", &docs, bad.as_object().unwrap()),
            Err(TranslateError::Unsupported { .. })
        ));
        let bad = json!({"max_tokens_per_doc": 0});
        assert!(rerank_request("m", "q", &docs, bad.as_object().unwrap()).is_err());
    }

    #[test]
    fn response_in_document_order_with_search_units() {
        let answer = json!({
            "id": "07734bd2", "results": [{"index": 1, "relevance_score": 0.99},
                                         {"index": 0, "relevance_score": 0.02}],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}});
        let reply = rerank_response(answer.to_string().as_bytes(), 2).unwrap();
        assert_eq!(reply.scores, vec![0.02, 0.99]);
        assert_eq!(reply.search_units, 1);
        assert!(matches!(
            rerank_response(b"{\"results\": [{\"index\": 5}]}", 2),
            Err(TranslateError::BadResponse(_))
        ));
    }
}
