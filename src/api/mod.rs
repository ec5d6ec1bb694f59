//! OpenAI wire format: request parsing, response shapes, the error envelope.
//!
//! Place in the pipeline: used by `server` (client side) and `providers`
//! (upstream side). Pure data and encoding: must not do I/O, routing or
//! status-code mapping (that is `server`'s job).

pub mod chat;
pub mod embeddings;
pub mod error;
pub mod sse;

pub use error::{ErrorKind, GatewayError};

use serde_json::{Map, Value, json};

pub(crate) fn parse_json(body: &[u8]) -> Result<Value, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::invalid(
            "Request body is empty; expected a JSON object.",
        ));
    }
    serde_json::from_slice(body)
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

/// Writes `v` as JSON with object keys sorted at every level.
pub fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `GET /v1/models` body: one entry per route.
pub fn models_body<'a>(routes: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let data: Vec<Value> = routes
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"}))
        .collect();
    serde_json::to_vec(&json!({"object": "list", "data": data})).unwrap_or_default()
}
