//! Rerank on the wire (the Cohere / Jina / vLLM shape): request parsing,
//! upstream answer checking, the client's answer.
//!
//! Place in the pipeline: `server` parses `POST /v1/rerank` here and writes
//! the answer from here; providers read an upstream's `results` with
//! [`scores_of`]. Documents are normalised to one string each (a string, or
//! an object's `text`), so the cache and the upstream call work per
//! document. Must not decide routing or caching, and must not reorder
//! scores: an upstream's scores are returned in the order documents were
//! sent, whatever order it listed them in.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::error::GatewayError;

/// `POST /v1/rerank`, parsed.
#[derive(Debug, Clone)]
pub struct RerankRequest {
    pub model: String,
    pub query: Arc<str>,
    /// One text per document, in the client's order.
    pub documents: Vec<Arc<str>>,
    /// How many results to answer; all when absent.
    pub top_n: Option<usize>,
    /// Echo each document's text in its result.
    pub return_documents: bool,
    /// Other fields (`max_tokens_per_doc`, vendor extensions): they may
    /// change the scores, so they are sent upstream and part of the cache key.
    pub extra: Map<String, Value>,
}

/// What one upstream rerank call answered: one score per document sent, in
/// the order sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RerankReply {
    pub scores: Vec<f64>,
    /// Tokens the upstream reported (`usage.total_tokens`), 0 if none.
    pub total_tokens: u64,
    /// Cohere's billed `search_units`, 0 if none.
    pub search_units: u64,
}

/// An upstream rerank answer that does not follow the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed rerank answer: {0}")]
pub struct MalformedRerank(pub String);

fn bad(param: &str, message: &str) -> GatewayError {
    GatewayError::invalid_param(param, message.to_string())
}

fn document(item: Value) -> Result<Arc<str>, GatewayError> {
    match item {
        Value::String(s) => Ok(Arc::from(s)),
        Value::Object(mut o) => match o.remove("text") {
            Some(Value::String(s)) => Ok(Arc::from(s)),
            _ => Err(bad(
                "documents",
                "A document object must have a string 'text'.",
            )),
        },
        _ => Err(bad(
            "documents",
            "'documents' items must be strings or objects with a string 'text'.",
        )),
    }
}

impl RerankRequest {
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        let Value::Object(mut body) = super::parse_json(body)? else {
            return Err(GatewayError::invalid("Request body must be a JSON object."));
        };
        let model = super::required_model(&body)?;
        body.remove("model");
        let query = match body.remove("query") {
            Some(Value::String(q)) if !q.is_empty() => Arc::from(q),
            None | Some(Value::Null) => {
                return Err(bad("query", "Missing required parameter: 'query'."));
            }
            Some(_) => return Err(bad("query", "'query' must be a non-empty string.")),
        };
        let documents = match body.remove("documents") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .into_iter()
                .map(document)
                .collect::<Result<Vec<_>, _>>()?,
            None | Some(Value::Null) => {
                return Err(bad("documents", "Missing required parameter: 'documents'."));
            }
            Some(_) => {
                return Err(bad("documents", "'documents' must be a non-empty array."));
            }
        };
        let top_n = match body.remove("top_n") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => return Err(bad("top_n", "'top_n' must be a positive integer.")),
            },
        };
        let return_documents = match body.remove("return_documents") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => {
                return Err(bad(
                    "return_documents",
                    "'return_documents' must be a boolean.",
                ));
            }
        };
        Ok(RerankRequest {
            model,
            query,
            documents,
            top_n,
            return_documents,
            extra: body,
        })
    }

    /// The fields that change scores, in canonical form (part of the cache key).
    pub fn canonical_params(&self) -> String {
        let mut out = String::new();
        super::write_canonical_map(&self.extra, &mut out);
        out
    }
}

/// The scores in `answer["results"]` for `sent` documents, in the order
/// sent: every index in range, each exactly once, each score a number.
pub fn scores_of(answer: &Value, sent: usize) -> Result<Vec<f64>, MalformedRerank> {
    let results = answer
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| MalformedRerank("no `results` array".into()))?;
    let mut scores: Vec<Option<f64>> = vec![None; sent];
    for r in results {
        let index = r
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < sent)
            .ok_or_else(|| MalformedRerank(format!("a result index out of range (0..{sent})")))?;
        let score = r
            .get("relevance_score")
            .and_then(Value::as_f64)
            .ok_or_else(|| {
                MalformedRerank("a result without a numeric `relevance_score`".into())
            })?;
        if scores[index].replace(score).is_some() {
            return Err(MalformedRerank(format!("index {index} scored twice")));
        }
    }
    scores
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.ok_or_else(|| MalformedRerank(format!("document {i} was not scored"))))
        .collect()
}

/// Documents ranked by score (highest first, ties in document order), cut
/// to `top_n`: `(index, score)` pairs.
pub fn rank(scores: &[f64], top_n: Option<usize>) -> Vec<(usize, f64)> {
    let mut ranked: Vec<(usize, f64)> = scores.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top_n.unwrap_or(usize::MAX));
    ranked
}

/// The client's answer: `{id, model, results: [{index, relevance_score,
/// document?}], usage}`.
pub fn response_body(
    id: &str,
    model: &str,
    ranked: &[(usize, f64)],
    documents: Option<&[Arc<str>]>,
    usage: (u64, u64),
) -> Vec<u8> {
    let results: Vec<Value> = ranked
        .iter()
        .map(|&(index, score)| {
            let mut r = json!({"index": index, "relevance_score": score});
            if let Some(text) = documents.and_then(|d| d.get(index)) {
                r["document"] = json!({"text": &**text});
            }
            r
        })
        .collect();
    let body = json!({
        "id": id,
        "model": model,
        "results": results,
        "usage": {"total_tokens": usage.0, "search_units": usage.1},
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strings_and_text_objects() {
        let r = RerankRequest::parse(
            br#"{"model":"m","query":"q","documents":["a",{"text":"b","id":7}],
                 "top_n":1,"return_documents":true,"max_tokens_per_doc":64}"#,
        )
        .unwrap();
        let docs: Vec<&str> = r.documents.iter().map(|d| &**d).collect();
        assert_eq!(docs, ["a", "b"]);
        assert_eq!(r.top_n, Some(1));
        assert!(r.return_documents);
        assert_eq!(r.canonical_params(), r#"{"max_tokens_per_doc":64}"#);
    }

    #[test]
    fn refuses_bad_input() {
        for body in [
            r#"{"model":"m","documents":["a"]}"#,
            r#"{"model":"m","query":"","documents":["a"]}"#,
            r#"{"model":"m","query":"q","documents":[]}"#,
            r#"{"model":"m","query":"q","documents":[1]}"#,
            r#"{"model":"m","query":"q","documents":[{"title":"x"}]}"#,
            r#"{"model":"m","query":"q","documents":["a"],"top_n":0}"#,
            r#"{"model":"m","query":"q","documents":["a"],"return_documents":"yes"}"#,
        ] {
            assert!(RerankRequest::parse(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn scores_come_back_in_sent_order_and_garbage_is_refused() {
        let ok = json!({"results": [{"index": 1, "relevance_score": 0.9},
                                    {"index": 0, "relevance_score": 0.1}]});
        assert_eq!(scores_of(&ok, 2).unwrap(), vec![0.1, 0.9]);
        for bad in [
            json!({"data": []}),
            json!({"results": [{"index": 2, "relevance_score": 0.1}, {"index": 0, "relevance_score": 0.1}]}),
            json!({"results": [{"index": 0, "relevance_score": 0.1}, {"index": 0, "relevance_score": 0.1}]}),
            json!({"results": [{"index": 0, "relevance_score": "high"}, {"index": 1, "relevance_score": 0.1}]}),
            json!({"results": [{"index": 0, "relevance_score": 0.1}]}),
        ] {
            assert!(scores_of(&bad, 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranks_highest_first_ties_in_order_and_cuts() {
        assert_eq!(
            rank(&[0.5, 0.9, 0.5, 0.1], Some(3)),
            vec![(1, 0.9), (0, 0.5), (2, 0.5)]
        );
    }
}
