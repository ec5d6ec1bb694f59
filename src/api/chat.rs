//! Chat completions on the wire: request checks and canonical form.
//!
//! Place in the pipeline: `server` parses the client body with
//! [`ChatRequest::parse`]; `cache` keys on its canonical form.
//! The body is kept as a JSON object so unknown fields pass through to the
//! upstream untouched; only `model` is rewritten per target. Must not
//! interpret sampling parameters or messages beyond basic shape checks.

use bytes::Bytes;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use super::error::GatewayError;

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub stream: bool,
    pub body: Map<String, Value>,
    /// Size of the client's body: the upstream body is about as large, so
    /// it is written into one allocation of about that size.
    pub wire_len: usize,
}

impl ChatRequest {
    pub fn parse(raw: &[u8]) -> Result<Self, GatewayError> {
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
            body,
            wire_len: raw.len(),
        })
    }

    /// The client asked for a usage chunk at the end of its stream.
    pub fn include_usage(&self) -> bool {
        include_usage(&self.body)
    }

    /// The body to send to a target serving `upstream_model`, serialized
    /// straight from the client's body (no copy of the parsed request).
    pub fn upstream_body(&self, upstream_model: &str) -> Bytes {
        body_with_model(&self.body, upstream_model, self.wire_len)
    }
}

/// `stream_options.include_usage` as a chat or completions body sends it.
pub fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Asks the upstream for a usage chunk at the end of a chat or completions
/// stream (in place: no copy of the body). A `stream_options` that is not
/// an object is left alone: the upstream judges the request as sent.
pub fn ask_for_usage(body: &mut Map<String, Value>) {
    match body.get_mut("stream_options") {
        Some(Value::Object(o)) => {
            o.insert("include_usage".into(), Value::Bool(true));
        }
        None | Some(Value::Null) => {
            let mut o = Map::new();
            o.insert("include_usage".into(), Value::Bool(true));
            body.insert("stream_options".into(), Value::Object(o));
        }
        Some(_) => {}
    }
}

/// `body` serialized with its `model` replaced, in one allocation of about
/// `size_hint` bytes (the client's body size), without copying the parsed
/// body first.
pub fn body_with_model(body: &Map<String, Value>, model: &str, size_hint: usize) -> Bytes {
    let with_model = WithModel { body, model };
    let mut out = Vec::with_capacity(size_hint + model.len() + 16);
    // Writing a JSON value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &with_model);
    Bytes::from(out)
}

/// The client's body with `model` replaced, serialized in place.
struct WithModel<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
}

impl Serialize for WithModel<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.body.len()))?;
        for (k, v) in self.body {
            if k == "model" {
                map.serialize_entry(k, self.model)?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}
