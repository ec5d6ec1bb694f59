//! Anthropic Messages on the wire (`POST /v1/messages`): request checks,
//! the Anthropic error shape, and translation to and from OpenAI chat.
//!
//! Place in the pipeline: `server` parses the client body with
//! [`MessagesRequest::parse`]; `routing` hands it unchanged (but for
//! `model`) to targets that speak Messages natively, and translates it with
//! [`request::to_chat`], [`response::from_chat`] and
//! [`stream::ChatToMessages`] for every other kind; `server/http.rs` writes
//! errors with [`error_body`]. Pure functions of bytes and JSON: must not do
//! I/O or know providers.

mod blocks;
pub mod request;
pub mod response;
pub mod stream;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::error::GatewayError;

/// What a Messages translation cannot do; the message is safe for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagesError {
    /// A field or block the OpenAI chat format cannot express (named as
    /// "the `x` field", "`document` blocks", ...).
    #[error("{0} cannot be translated to OpenAI chat")]
    Unsupported(String),
    /// The request is malformed in a way the translation notices.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The chat answer does not follow the OpenAI format.
    #[error("malformed chat answer: {0}")]
    BadAnswer(String),
}

/// A parsed `/v1/messages` (or `/v1/messages/count_tokens`) body.
#[derive(Debug, Clone)]
pub struct MessagesRequest {
    pub model: String,
    pub stream: bool,
    pub body: Map<String, Value>,
    /// Size of the client's body, to size the upstream body's buffer.
    pub wire_len: usize,
}

impl MessagesRequest {
    pub fn parse(raw: &[u8]) -> Result<Self, GatewayError> {
        let Value::Object(body) = super::parse_json(raw)? else {
            return Err(GatewayError::invalid("Request body must be a JSON object."));
        };
        let model = super::required_model(&body)?;
        match body.get("messages") {
            Some(Value::Array(_)) => {}
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
        Ok(MessagesRequest {
            model,
            stream,
            body,
            wire_len: raw.len(),
        })
    }
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type_for(status: u16) -> &'static str {
    match status {
        400 | 405 | 415 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// The Anthropic error body `{"type":"error","error":{"type","message"}}`
/// for `status`, from an OpenAI envelope (or an Anthropic body, kept as is).
/// An envelope `code` that is itself an Anthropic type (an Anthropic
/// upstream's verdict) is kept as the type; otherwise the type follows the
/// status and the gateway's `code` (`unsupported_feature`,
/// `model_not_found`, ...) is kept beside it, as in the OpenAI envelope
/// (Anthropic's SDKs read `type` and `message` and ignore the rest).
pub fn error_body(status: u16, openai: &[u8]) -> Bytes {
    let parsed: Option<Value> = serde_json::from_slice(openai).ok();
    if let Some(v) = &parsed
        && v.get("type").and_then(Value::as_str) == Some("error")
        && v.get("error").is_some_and(Value::is_object)
    {
        return Bytes::copy_from_slice(openai);
    }
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("The request failed.");
    let code = err.and_then(|e| e.get("code")).and_then(Value::as_str);
    let mut error = json!({"type": error_type_for(status), "message": message});
    match code {
        Some(c) if is_anthropic_type(c) => error["type"] = json!(c),
        Some(c) => error["code"] = json!(c),
        None => {}
    }
    Bytes::from(json!({"type": "error", "error": error}).to_string())
}

fn is_anthropic_type(t: &str) -> bool {
    matches!(
        t,
        "invalid_request_error"
            | "authentication_error"
            | "permission_error"
            | "not_found_error"
            | "request_too_large"
            | "rate_limit_error"
            | "api_error"
            | "overloaded_error"
            | "timeout_error"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_envelopes_become_anthropic_errors() {
        let b = error_body(404, br#"{"error":{"message":"no such model","type":"invalid_request_error","code":"model_not_found"}}"#);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v,
            json!({"type":"error","error":{"type":"not_found_error","message":"no such model",
                                           "code":"model_not_found"}})
        );
        let b = error_body(
            503,
            br#"{"error":{"message":"Overloaded","code":"overloaded_error"}}"#,
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error");
        let native = br#"{"type":"error","error":{"type":"invalid_request_error","message":"x"}}"#;
        assert_eq!(&error_body(400, native)[..], &native[..]);
        let v: Value = serde_json::from_slice(&error_body(502, b"<html>")).unwrap();
        assert_eq!(v["error"]["type"], "api_error");
    }

    #[test]
    fn parse_checks_shape() {
        let r = MessagesRequest::parse(br#"{"model":"m","messages":[],"stream":true}"#).unwrap();
        assert!(r.stream);
        assert_eq!(r.model, "m");
        assert!(MessagesRequest::parse(br#"{"model":"m"}"#).is_err());
        assert!(MessagesRequest::parse(br#"{"model":"m","messages":[],"stream":1}"#).is_err());
    }
}
