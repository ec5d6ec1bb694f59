//! The OpenAI Responses API (`POST /v1/responses`) on the wire: request
//! checks, and the pure translation to and from chat completions for targets
//! that do not serve `/responses` themselves.
//!
//! Place in the pipeline: `server` parses the client body with
//! [`ResponsesRequest::parse`]; `routing` passes it through unchanged (but
//! for `model`) to targets whose provider passes `/responses` through, and
//! otherwise sends [`request::to_chat`]'s chat request and turns the answer
//! back with [`response::from_chat`] or [`stream::ChatToResponses`]. Must
//! not do I/O, and must never drop a feature silently: what a stateless chat
//! target cannot do is a [`ResponsesError::Unsupported`].

mod input;
pub mod request;
pub mod response;
pub mod stream;
pub mod tools;

use serde_json::{Map, Value};

use super::error::GatewayError;

/// A parsed `/v1/responses` body, kept whole so a passthrough target gets
/// every field, unknown ones included.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    pub model: String,
    pub stream: bool,
    pub body: Map<String, Value>,
    /// Size of the client's body, to size the upstream body's buffer.
    pub wire_len: usize,
}

impl ResponsesRequest {
    pub fn parse(raw: &[u8]) -> Result<Self, GatewayError> {
        let value: Value = super::parse_json(raw)?;
        let Value::Object(body) = value else {
            return Err(GatewayError::invalid("Request body must be a JSON object."));
        };
        let model = super::required_model(&body)?;
        match body.get("input") {
            None | Some(Value::Null) | Some(Value::String(_)) | Some(Value::Array(_)) => {}
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "input",
                    "'input' must be a string or an array of input items.",
                ));
            }
        }
        let stream = super::stream_flag(&body)?;
        Ok(ResponsesRequest {
            model,
            stream,
            body,
            wire_len: raw.len(),
        })
    }
}

/// What the Responses API object echoes of its request, taken once from the
/// client's body (small: it excludes `input`).
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub fields: Map<String, Value>,
    /// The chat names of the request's tools, to turn calls back into the
    /// client's items.
    pub tools: tools::ToolMap,
}

/// Makes a field's default value.
type MakeDefault = fn() -> Value;

/// Request fields a response object repeats, with the API's defaults.
const ECHOED: &[(&str, MakeDefault)] = &[
    ("instructions", || Value::Null),
    ("max_output_tokens", || Value::Null),
    ("metadata", || Value::Object(Map::new())),
    ("parallel_tool_calls", || Value::Bool(true)),
    ("previous_response_id", || Value::Null),
    ("reasoning", || Value::Null),
    ("service_tier", || Value::Null),
    ("temperature", || Value::Null),
    ("text", || serde_json::json!({"format": {"type": "text"}})),
    ("tool_choice", || Value::String("auto".into())),
    ("tools", || Value::Array(Vec::new())),
    ("top_p", || Value::Null),
    ("truncation", || Value::String("disabled".into())),
];

impl Echo {
    /// The echo of `body`: each field of [`ECHOED`] as sent or its default;
    /// function tools with `strict` (as sent, else `false`: what a chat
    /// target applies); `user` only when sent (the API omits it).
    pub fn of(body: &Map<String, Value>) -> Echo {
        let mut fields = Map::new();
        for (name, default) in ECHOED {
            let v = match body.get(*name) {
                Some(v) if !v.is_null() => v.clone(),
                _ => default(),
            };
            fields.insert((*name).to_string(), v);
        }
        if let Some(Value::Array(tools)) = fields.get_mut("tools") {
            for t in tools.iter_mut() {
                if let Value::Object(t) = t
                    && t.get("type").and_then(Value::as_str) == Some("function")
                    && !t.get("strict").is_some_and(Value::is_boolean)
                {
                    t.insert("strict".into(), Value::Bool(false));
                }
            }
        }
        if let Some(user) = body.get("user").filter(|u| !u.is_null()) {
            fields.insert("user".into(), user.clone());
        }
        fields.insert("store".into(), Value::Bool(false));
        fields.insert("background".into(), Value::Bool(false));
        Echo {
            fields,
            tools: tools::ToolMap::of(&tools::entries(body)),
        }
    }

    /// The client asked for reasoning (a `reasoning` with an effort other
    /// than `none`, or a summary): the target's reasoning comes back as
    /// reasoning items.
    pub fn wants_reasoning(&self) -> bool {
        let Some(r) = self.fields.get("reasoning").filter(|r| r.is_object()) else {
            return false;
        };
        let effort = r.get("effort").and_then(Value::as_str);
        let summary = r.get("summary").and_then(Value::as_str);
        effort != Some("none") && (effort.is_some() || summary.is_some_and(|s| s != "none"))
    }

    /// The client asked for a reasoning summary (`reasoning.summary`).
    pub fn wants_summary(&self) -> bool {
        self.fields
            .get("reasoning")
            .and_then(|r| r.get("summary"))
            .and_then(Value::as_str)
            .is_some_and(|s| s != "none")
    }
}

/// Why a Responses API exchange cannot be translated; the message is safe
/// to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponsesError {
    /// A feature a stateless chat-completions target cannot provide.
    #[error("{0}")]
    Unsupported(String),
    /// The request is malformed in a way the translation notices.
    #[error("{0}")]
    Invalid(String),
    /// The chat answer does not follow the chat completions format.
    #[error("{0}")]
    BadAnswer(String),
}

fn unsupported(what: impl Into<String>) -> ResponsesError {
    ResponsesError::Unsupported(what.into())
}

fn invalid(what: impl Into<String>) -> ResponsesError {
    ResponsesError::Invalid(what.into())
}

/// A fresh id with the Responses API's prefix (`resp`, `msg`, `fc`).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", fastrand::u128(..))
}
