//! Chat completions on the wire: request checks and canonical form.
//!
//! Place in the pipeline: `server` parses the client body with
//! [`ChatRequest::parse`]; `cache` keys on [`ChatRequest::canonical`].
//! The body is kept as a JSON object so unknown fields pass through to the
//! upstream untouched; only `model` is rewritten per target. Must not
//! interpret sampling parameters or messages beyond basic shape checks.

use serde_json::{Map, Value};

use super::error::GatewayError;

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub stream: bool,
    pub body: Map<String, Value>,
}

impl ChatRequest {
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        let value: Value = super::parse_json(body)?;
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
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "stream",
                    "'stream' must be a boolean.",
                ));
            }
        };
        Ok(ChatRequest {
            model,
            stream,
            body,
        })
    }

    /// The body to send to a target serving `upstream_model`.
    pub fn upstream_body(&self, upstream_model: &str) -> Value {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(upstream_model.to_string()));
        Value::Object(body)
    }

    /// The full request in canonical form (object keys sorted at every level),
    /// so that two requests differing only in key order or whitespace match.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        super::write_canonical(&Value::Object(self.body.clone()), &mut out);
        out
    }
}
