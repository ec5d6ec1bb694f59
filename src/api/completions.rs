//! Legacy text completions (`POST /v1/completions`) on the wire.
//!
//! Place in the pipeline: `server` parses the client body with
//! [`CompletionRequest::parse`]; the body is passed through to targets that
//! serve the endpoint as it is (only `model` rewritten), and `cache` keys on
//! its canonical form. `prompt: null` is accepted, as the API reference
//! allows (the upstream then completes from a new document's start). Must
//! not interpret the prompt or sampling parameters beyond basic shape
//! checks.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::GatewayError;

/// The upstream path of this endpoint, below a provider's base URL.
pub const PATH: &str = "/completions";

#[derive(Debug, Clone)]
pub struct CompletionRequest {
    pub model: String,
    pub stream: bool,
    /// The client's body, shared with every attempt (never copied).
    pub body: Arc<Map<String, Value>>,
    /// Size of the client's body, to size the upstream body's buffer.
    pub wire_len: usize,
}

impl CompletionRequest {
    pub fn parse(raw: &[u8]) -> Result<Self, GatewayError> {
        let Value::Object(body) = super::parse_json(raw)? else {
            return Err(GatewayError::invalid("Request body must be a JSON object."));
        };
        let model = super::required_model(&body)?;
        match body.get("prompt") {
            // Nullable in the reference (default `<|endoftext|>`).
            Some(Value::String(_) | Value::Null) => {}
            Some(Value::Array(items)) if !items.is_empty() && items.iter().all(prompt_item) => {}
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "prompt",
                    "'prompt' must be a string, an array of strings, an array of tokens or an \
                     array of token arrays.",
                ));
            }
            None => {
                return Err(GatewayError::invalid_param(
                    "prompt",
                    "Missing required parameter: 'prompt'.",
                ));
            }
        }
        let stream = super::stream_flag(&body)?;
        Ok(CompletionRequest {
            model,
            stream,
            body: Arc::new(body),
            wire_len: raw.len(),
        })
    }
}

fn prompt_item(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Number(n) => n.is_u64(),
        Value::Array(tokens) => tokens.iter().all(|t| t.as_u64().is_some()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_of_every_shape_parse_and_others_are_refused() {
        for ok in [
            r#"{"model":"m","prompt":"hi"}"#,
            r#"{"model":"m","prompt":["a","b"],"stream":true}"#,
            r#"{"model":"m","prompt":[1,2,3]}"#,
            r#"{"model":"m","prompt":[[1],[2,3]]}"#,
            r#"{"model":"m","prompt":null}"#,
        ] {
            assert!(CompletionRequest::parse(ok.as_bytes()).is_ok(), "{ok}");
        }
        let stream = CompletionRequest::parse(br#"{"model":"m","prompt":"x","stream":true}"#);
        assert!(stream.is_ok_and(|r| r.stream && r.model == "m"));
        for bad in [
            r#"{"model":"m"}"#,
            r#"{"model":"m","prompt":{}}"#,
            r#"{"model":"m","prompt":[]}"#,
            r#"{"model":"m","prompt":"x","stream":"yes"}"#,
            r#"{"prompt":"x"}"#,
            r#"[1]"#,
        ] {
            let e = CompletionRequest::parse(bad.as_bytes());
            assert!(e.is_err(), "{bad}");
        }
    }
}
