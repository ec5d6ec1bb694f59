//! The fake Cohere's `POST /v2/rerank`, as the API v2 reference documents
//! it: `model`, `query` and `documents` (1..=1000 strings) required,
//! `top_n` and `max_tokens_per_doc` optional positive integers, no other
//! field (v2 has no `return_documents`). Answers `{"id", "results":
//! [{"index", "relevance_score"}], "meta": {"api_version", "billed_units":
//! {"search_units"}}}` with results sorted by relevance, cut to `top_n`, and
//! one search unit per 100 documents.
//!
//! Scores are [`score_of`]: the share of the query's words found in the
//! document, so tests can predict the order.

use serde_json::{Value, json};

use super::{Body, error, json_response};

const FIELDS: &[&str] = &["model", "query", "documents", "top_n", "max_tokens_per_doc"];

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The fake's relevance of `document` to `query`: the fraction of the
/// query's words that occur in the document, in 0..=1.
pub fn score_of(query: &str, document: &str) -> f64 {
    let q = words(query);
    let d = words(document);
    if q.is_empty() {
        return 0.0;
    }
    q.iter().filter(|w| d.contains(w)).count() as f64 / q.len() as f64
}

fn positive(body: &Value, key: &str) -> Result<Option<u64>, String> {
    match body.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| format!("invalid request: {key} must be a positive integer")),
    }
}

pub(super) fn rerank(body: &Value) -> hyper::Response<Body> {
    if let Some(unknown) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| !FIELDS.contains(&k.as_str())))
    {
        return error(400, &format!("invalid request: unknown field {unknown}"));
    }
    if !body["model"].is_string() {
        return error(400, "invalid request: model must be a string");
    }
    let Some(query) = body["query"].as_str().filter(|q| !q.is_empty()) else {
        return error(400, "invalid request: query must be a non-empty string");
    };
    let docs: Vec<&str> = match body["documents"].as_array() {
        Some(d) if !d.is_empty() && d.len() <= 1000 && d.iter().all(Value::is_string) => {
            d.iter().filter_map(Value::as_str).collect()
        }
        _ => {
            return error(
                400,
                "invalid request: documents must be a list of 1 to 1000 strings",
            );
        }
    };
    let (top_n, _) = match (
        positive(body, "top_n"),
        positive(body, "max_tokens_per_doc"),
    ) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(e), _) | (_, Err(e)) => return error(400, &e),
    };
    let mut results: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (i, score_of(query, d)))
        .collect();
    results.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    results.truncate(top_n.map_or(usize::MAX, |n| n as usize));
    let results: Vec<Value> = results
        .into_iter()
        .map(|(index, score)| json!({"index": index, "relevance_score": score}))
        .collect();
    json_response(
        200,
        &json!({
            "id": "07734bd2-2473-4f07-94e1-0d9f0e6843cf",
            "results": results,
            "meta": {"api_version": {"version": "2"},
                     "billed_units": {"search_units": docs.len().div_ceil(100)}},
        }),
        &[],
    )
}
