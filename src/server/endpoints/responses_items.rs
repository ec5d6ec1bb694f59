//! `GET /v1/responses/{id}/input_items`: the input items of a stored
//! response, a page at a time, in the API's list shape.
//!
//! Place in the pipeline: called by the router. Finds the response as
//! `responses_stored` does: first among the caller's own that the gateway
//! keeps (translated routes, `flows::stored`), answered from the state
//! store; else at the first native target of `?model=ROUTE`, which gets
//! the call with the query's `after`, `limit`, `order` and `include`
//! (checked, then written anew). For its own, the list is the conversation
//! that produced the response, every turn's input items and earlier
//! answers' output, as the target was sent them; a message whose content
//! is a string gets its content as one text part, and an item the client
//! sent without an `id` gets one made from its place and the response id,
//! the same on every read, so `after` pages through them. Must not reach
//! any other path of the upstream's API: the id is one plain segment and
//! the query is rebuilt from checked values.

use http::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::responses_stored::{from_upstream, kept_record, not_found, plain_id, query_param};
use crate::api::GatewayError;
use crate::server::access::admission;
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, ReqBody, json_response};

const SUFFIX: &str = "/input_items";

/// Whether `path` is this endpoint's.
pub(crate) fn is_items_path(path: &str) -> bool {
    path.starts_with("/v1/responses/") && path.ends_with(SUFFIX)
}

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
    full_path: &str,
) -> Result<Response<Body>, GatewayError> {
    admission::admit(rc, None, Default::default()).await?;
    let inner = full_path
        .strip_prefix("/v1/responses/")
        .and_then(|p| p.strip_suffix(SUFFIX))
        .unwrap_or_default();
    let id = plain_id(inner, full_path)?;
    let listing = Listing::from_query(req.uri().query())?;
    if let Some(record) = kept_record(rc, id).await? {
        let page = listing.page(&numbered(record.input, id))?;
        return Ok(json_response(StatusCode::OK, page.to_string()));
    }
    let route_name = query_param(req.uri().query(), "model").ok_or_else(|| not_found(id))?;
    let path = format!("/responses/{id}{SUFFIX}{}", listing.forwarded());
    from_upstream(rc, route_name, id, Method::GET, &path).await
}

/// The query of a listing: the API's parameters, checked.
#[derive(Debug, Default, PartialEq)]
struct Listing<'a> {
    after: Option<&'a str>,
    limit: Option<usize>,
    /// `Some(true)` for `asc`; the API's default is `desc`.
    ascending: Option<bool>,
    /// `include` values with the key they came under (`include` or
    /// `include[]`, as the client's library writes arrays).
    include: Vec<(&'a str, &'a str)>,
}

impl<'a> Listing<'a> {
    fn from_query(query: Option<&'a str>) -> Result<Self, GatewayError> {
        let mut l = Listing::default();
        for kv in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
            match key {
                "after" if is_word(value, b"_-") => l.after = Some(value),
                "after" => return Err(bad("after", "'after' must be an item id.")),
                "limit" => {
                    let n = value.parse().ok().filter(|n| (1..=100).contains(n));
                    l.limit = Some(n.ok_or_else(|| {
                        bad("limit", "'limit' must be an integer from 1 to 100.")
                    })?);
                }
                "order" => {
                    l.ascending = Some(match value {
                        "asc" => true,
                        "desc" => false,
                        _ => return Err(bad("order", "'order' must be 'asc' or 'desc'.")),
                    });
                }
                "include" | "include[]" | "include%5B%5D" if is_word(value, b"._") => {
                    l.include.push((key, value));
                }
                "include" | "include[]" | "include%5B%5D" => {
                    return Err(bad("include", "'include' must name fields to include."));
                }
                // `model` names the route; the rest is no business of the upstream's.
                _ => {}
            }
        }
        Ok(l)
    }

    /// The query for the upstream: the parameters given, nothing else.
    fn forwarded(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = self.after {
            parts.push(format!("after={a}"));
        }
        if let Some(n) = self.limit {
            parts.push(format!("limit={n}"));
        }
        if let Some(asc) = self.ascending {
            parts.push(format!("order={}", if asc { "asc" } else { "desc" }));
        }
        for (key, value) in &self.include {
            parts.push(format!("{key}={value}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    /// One page of `items` (in conversation order), as the API lists it.
    fn page(&self, items: &[Value]) -> Result<Value, GatewayError> {
        let ordered: Vec<&Value> = if self.ascending == Some(true) {
            items.iter().collect()
        } else {
            items.iter().rev().collect()
        };
        let start = match self.after {
            None => 0,
            Some(after) => {
                ordered
                    .iter()
                    .position(|item| item["id"] == after)
                    .ok_or_else(|| {
                        bad(
                            "after",
                            format!("No input item '{after}' in this response."),
                        )
                    })?
                    + 1
            }
        };
        let rest = &ordered[start..];
        let limit = self.limit.unwrap_or(20);
        let data = &rest[..rest.len().min(limit)];
        Ok(json!({
            "object": "list",
            "data": data,
            "first_id": data.first().map(|item| &item["id"]),
            "last_id": data.last().map(|item| &item["id"]),
            "has_more": rest.len() > limit,
        }))
    }
}

fn is_word(s: &str, also: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || also.contains(&b))
}

fn bad(param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::invalid_param(param, message)
}

/// The kept input items as the API lists them: each an object with a
/// `type` and an `id`, a message's string content as one text part.
fn numbered(input: Vec<Value>, response_id: &str) -> Vec<Value> {
    let items = input.into_iter().enumerate();
    items
        .filter_map(|(i, item)| match item {
            Value::Object(item) => Some(Value::Object(listed(item, i, response_id))),
            _ => None,
        })
        .collect()
}

fn listed(mut item: Map<String, Value>, place: usize, response_id: &str) -> Map<String, Value> {
    if !item.contains_key("type") && item.contains_key("role") {
        item.insert("type".into(), "message".into());
    }
    let message = item.get("type").and_then(Value::as_str) == Some("message");
    let part = if item.get("role").and_then(Value::as_str) == Some("assistant") {
        "output_text"
    } else {
        "input_text"
    };
    if message && let Some(Value::String(text)) = item.get_mut("content") {
        let text = std::mem::take(text);
        item.insert("content".into(), json!([{"type": part, "text": text}]));
    }
    if !matches!(item.get("id"), Some(Value::String(_))) {
        let prefix = if message { "msg" } else { "item" };
        item.insert(
            "id".into(),
            format!("{prefix}_{place}_{response_id}").into(),
        );
    }
    item
}

#[cfg(test)]
#[path = "responses_items_tests.rs"]
mod tests;
