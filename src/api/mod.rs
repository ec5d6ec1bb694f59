//! OpenAI wire format: request parsing, response shapes, the error envelope.
//!
//! Place in the pipeline: used by `server` (client side) and `providers`
//! (upstream side). Pure data and encoding: must not do I/O, routing or
//! status-code mapping (that is `server`'s job).

pub mod affinity;
#[cfg(test)]
mod changed;
pub mod chat;
pub mod chat_answer;
pub mod chat_body;
mod chat_scan;
pub mod completions;
pub mod continuation;
pub mod embeddings;
pub mod error;
pub mod estimate;
pub mod ignored;
mod json_check;
pub mod json_write;
pub mod messages;
pub mod rerank;
pub mod responses;
pub mod sse;
pub mod sse_cut;
pub mod stream_content;
pub mod usage;

pub use error::{ErrorKind, GatewayError};

use serde_json::{Map, Value, json};

pub(crate) fn parse_json(body: &[u8]) -> Result<Value, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::invalid(
            "Request body is empty; expected a JSON object.",
        ));
    }
    // A body that is UTF-8 as a whole (nearly every one) is checked once
    // and read as text, so `serde_json` does not check each string again
    // (over 2,048 embedding inputs, a quarter of the parse's work). Any
    // other is read as bytes, whose parse words the fault.
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
    .map_err(|e| GatewayError::invalid(format!("Request body is not valid JSON: {e}")))
}

pub(crate) fn required_model(body: &Map<String, Value>) -> Result<String, GatewayError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        Some(_) => Err(GatewayError::invalid_param(
            "model",
            "'model' must be a non-empty string.",
        )),
        None => Err(GatewayError::invalid_param(
            "model",
            "Missing required parameter: 'model'.",
        )),
    }
}

/// The optional `stream` flag: absent or null is false; anything but a
/// boolean is a 400.
pub(crate) fn stream_flag(body: &Map<String, Value>) -> Result<bool, GatewayError> {
    match body.get("stream") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(GatewayError::invalid_param(
            "stream",
            "'stream' must be a boolean.",
        )),
    }
}

/// Writes `map` as JSON with object keys sorted at every level, to any
/// writer (a `String`, or a hasher adapter so nothing is buffered).
pub fn write_canonical_map<W: std::fmt::Write>(map: &Map<String, Value>, out: &mut W) {
    write_canonical_map_without(map, &[], out)
}

/// [`write_canonical_map`] leaving out the top-level keys in `skip`.
pub fn write_canonical_map_without<W: std::fmt::Write>(
    map: &Map<String, Value>,
    skip: &[&str],
    out: &mut W,
) {
    let mut keys: Vec<&String> = map.keys().filter(|k| !skip.contains(&k.as_str())).collect();
    keys.sort();
    let _ = out.write_char('{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            let _ = out.write_char(',');
        }
        write_scalar(&Value::String(k.clone()), out);
        let _ = out.write_char(':');
        write_canonical(&map[k], out);
    }
    let _ = out.write_char('}');
}

fn write_scalar<W: std::fmt::Write>(v: &Value, out: &mut W) {
    // `Value`'s Display is its compact JSON.
    let _ = write!(out, "{v}");
}

/// Writes `v` as JSON with object keys sorted at every level.
pub fn write_canonical<W: std::fmt::Write>(v: &Value, out: &mut W) {
    match v {
        Value::Object(map) => write_canonical_map(map, out),
        Value::Array(items) => {
            let _ = out.write_char('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    let _ = out.write_char(',');
                }
                write_canonical(item, out);
            }
            let _ = out.write_char(']');
        }
        other => write_scalar(other, out),
    }
}

/// `GET /v1/models` body: one entry per route.
pub fn models_body<'a>(routes: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let data: Vec<Value> = routes
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"}))
        .collect();
    serde_json::to_vec(&json!({"object": "list", "data": data})).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read as text or as bytes, a body gives the same value or the same
    /// words.
    #[test]
    fn a_body_parses_as_its_bytes_would() {
        for body in [
            &br#"{"model":"m","input":["caf\u00e9","\u4e2d","x\ny"]}"#[..],
            "{\"input\":[\"caf\u{e9}\",\"\u{1F600}\"]}".as_bytes(),
            br#"{"input":["a",]}"#,
            br#"{"input":"\ud800"}"#,
            b"{\"input\":\"\xff\"}",
            b"{\"input\":\"\xc3\"}",
            b"[1, 2",
        ] {
            let bytes = serde_json::from_slice::<Value>(body);
            match (parse_json(body), bytes) {
                (Ok(v), Ok(w)) => assert_eq!(v, w),
                (Err(e), Err(w)) => {
                    assert_eq!(e.message, format!("Request body is not valid JSON: {w}"));
                }
                (got, want) => panic!("{got:?} vs {want:?} for {body:?}"),
            }
        }
    }
}
