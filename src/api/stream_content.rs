//! What one event of a streamed answer is, in each dialect the gateway
//! serves: a preamble, real content (and how much), or an error.
//!
//! Place in the pipeline: read by `providers::hold` (a stream is handed on
//! only once real content arrived, and an error before it fails the
//! attempt) and by `routing`'s stream guard (tokens per second after the
//! first one). Cheap: events are read with borrowed fields, never into a
//! JSON tree. Must not decide what an error means for the request (status,
//! retry): the caller does.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::sse::SseEvent;

/// The format of a stream's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// OpenAI chat completion chunks (and every kind's translated stream).
    Chat,
    /// OpenAI legacy completions chunks.
    Completions,
    /// OpenAI Responses API events.
    Responses,
    /// Anthropic Messages events.
    Messages,
}

/// What one event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Before the answer (a role, `response.created`, `message_start`, a
    /// ping): failing now costs the client nothing.
    Preamble,
    /// Part of the answer, carrying about `bytes` bytes of generated text
    /// (0 for an event that ends the answer, like `[DONE]` or a finish).
    Content { bytes: usize },
    /// An error event, as the upstream wrote it.
    Error(StreamError),
}

/// An error event's fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamError {
    /// `error.type` (`server_error`, `overloaded_error`, ...).
    pub kind: String,
    pub message: String,
    /// `error.code`, or a numeric `error.status`, when given.
    pub code: Option<String>,
}

impl StreamKind {
    /// The format of a stream answered for the OpenAI- or
    /// Anthropic-compatible `path` (chat for any other).
    pub fn for_path(path: &str) -> StreamKind {
        match path {
            "/completions" => StreamKind::Completions,
            "/responses" => StreamKind::Responses,
            "/messages" => StreamKind::Messages,
            _ => StreamKind::Chat,
        }
    }

    /// What `ev` is in this format. Events that cannot be read are a
    /// preamble: the caller's translators and the client judge them.
    pub fn classify(self, ev: &SseEvent) -> Seen {
        if ev.data == "[DONE]" {
            return Seen::Content { bytes: 0 };
        }
        match self {
            StreamKind::Chat | StreamKind::Completions => choices(&ev.data),
            StreamKind::Responses => typed(&ev.data, responses_event),
            StreamKind::Messages => typed(&ev.data, messages_event),
        }
    }
}

#[derive(Deserialize)]
struct ErrorObject<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    code: Option<&'a RawValue>,
    status: Option<u64>,
}

impl ErrorObject<'_> {
    fn into_error(self) -> StreamError {
        let code = match self.code.map(RawValue::get) {
            Some(raw) if raw != "null" => Some(raw.trim_matches('"').to_string()),
            _ => self.status.map(|s| s.to_string()),
        };
        StreamError {
            kind: self.kind.map(Cow::into_owned).unwrap_or_default(),
            message: self.message.map(Cow::into_owned).unwrap_or_default(),
            code,
        }
    }
}

#[derive(Deserialize)]
struct ChoicesChunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
    #[serde(borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    /// Completions chunks carry `text` instead of a delta.
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning: Option<Cow<'a, str>>,
    tool_calls: Option<&'a RawValue>,
    function_call: Option<&'a RawValue>,
}

fn len(s: &Option<Cow<'_, str>>) -> usize {
    s.as_deref().map_or(0, str::len)
}

/// Chat and completions chunks: text, refusals, reasoning and tool calls
/// are content; so is a finish reason.
fn choices(data: &str) -> Seen {
    let Ok(chunk) = serde_json::from_str::<ChoicesChunk<'_>>(data) else {
        return Seen::Preamble;
    };
    if let Some(e) = chunk.error {
        return Seen::Error(e.into_error());
    }
    let (mut content, mut bytes) = (false, 0);
    for c in &chunk.choices {
        let mut n = len(&c.text);
        if let Some(d) = &c.delta {
            n += len(&d.content) + len(&d.refusal) + len(&d.reasoning_content) + len(&d.reasoning);
            let tools = d.tool_calls.or(d.function_call);
            if let Some(raw) = tools.filter(|r| r.get() != "null") {
                n += raw.get().len();
            }
        }
        content |= n > 0 || c.finish_reason.is_some();
        bytes += n;
    }
    if content {
        Seen::Content { bytes }
    } else {
        Seen::Preamble
    }
}

/// An event with a `type` member (Responses, Messages).
#[derive(Deserialize)]
struct Typed<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    delta: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<ErrorObject<'a>>,
    /// Responses' top-level `error` event fields.
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    code: Option<&'a RawValue>,
    /// Responses' `response.failed` carries its error in the response.
    #[serde(borrow)]
    response: Option<Failed<'a>>,
}

#[derive(Deserialize)]
struct Failed<'a> {
    #[serde(borrow)]
    error: Option<ErrorObject<'a>>,
}

fn typed(data: &str, read: fn(Typed<'_>) -> Seen) -> Seen {
    serde_json::from_str::<Typed<'_>>(data).map_or(Seen::Preamble, read)
}

/// An object `delta` (Messages): its generated text.
#[derive(Deserialize)]
struct DeltaText<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
}

/// The size of a `delta` member: a string's length, or an object's text.
fn delta_bytes(delta: Option<&RawValue>) -> usize {
    let Some(raw) = delta.map(RawValue::get) else {
        return 0;
    };
    if raw.starts_with('"') {
        return raw.len().saturating_sub(2);
    }
    serde_json::from_str::<DeltaText<'_>>(raw).map_or(0, |d| {
        len(&d.text) + len(&d.partial_json) + len(&d.thinking)
    })
}

fn responses_event(ev: Typed<'_>) -> Seen {
    let kind = ev.kind.as_ref();
    match kind {
        "error" => {
            Seen::Error(
                ev.error
                    .map(ErrorObject::into_error)
                    .unwrap_or_else(|| StreamError {
                        kind: "server_error".into(),
                        message: ev.message.map(Cow::into_owned).unwrap_or_default(),
                        code: ev.code.map(|c| c.get().trim_matches('"').to_string()),
                    }),
            )
        }
        "response.failed" => Seen::Error(
            ev.response
                .and_then(|r| r.error)
                .map(ErrorObject::into_error)
                .unwrap_or_else(|| StreamError {
                    kind: "server_error".into(),
                    message: "response.failed".into(),
                    code: None,
                }),
        ),
        "response.completed" | "response.incomplete" => Seen::Content { bytes: 0 },
        k if k.ends_with(".delta") => Seen::Content {
            bytes: delta_bytes(ev.delta),
        },
        _ => Seen::Preamble,
    }
}

fn messages_event(ev: Typed<'_>) -> Seen {
    match ev.kind.as_ref() {
        "error" => Seen::Error(ev.error.map(ErrorObject::into_error).unwrap_or_default()),
        "content_block_delta" => Seen::Content {
            bytes: delta_bytes(ev.delta),
        },
        "message_delta" | "message_stop" => Seen::Content { bytes: 0 },
        _ => Seen::Preamble,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            data: data.to_string(),
            ..SseEvent::default()
        }
    }

    #[test]
    fn chat_chunks() {
        let chat = |d| StreamKind::Chat.classify(&ev(d));
        assert_eq!(
            chat(
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#
            ),
            Seen::Preamble
        );
        assert_eq!(
            chat(r#"{"choices":[{"delta":{"content":"hello"},"finish_reason":null}]}"#),
            Seen::Content { bytes: 5 }
        );
        assert_eq!(
            chat(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#),
            Seen::Content { bytes: 0 }
        );
        assert!(matches!(
            chat(r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#),
            Seen::Content { bytes } if bytes > 0
        ));
        assert_eq!(
            chat(r#"{"choices":[],"usage":{"total_tokens":3}}"#),
            Seen::Preamble
        );
        assert_eq!(chat("[DONE]"), Seen::Content { bytes: 0 });
        assert_eq!(chat("not json"), Seen::Preamble);
        assert_eq!(
            chat(r#"{"error":{"message":"overloaded","type":"server_error","code":503}}"#),
            Seen::Error(StreamError {
                kind: "server_error".into(),
                message: "overloaded".into(),
                code: Some("503".into())
            })
        );
        let completions = StreamKind::Completions.classify(&ev(r#"{"choices":[{"text":"ab"}]}"#));
        assert_eq!(completions, Seen::Content { bytes: 2 });
    }

    #[test]
    fn responses_and_messages_events() {
        let r = |d| StreamKind::Responses.classify(&ev(d));
        assert_eq!(
            r(r#"{"type":"response.created","response":{}}"#),
            Seen::Preamble
        );
        assert_eq!(
            r(r#"{"type":"response.output_text.delta","delta":"abc"}"#),
            Seen::Content { bytes: 3 }
        );
        assert!(matches!(
            r(r#"{"type":"error","code":"server_error","message":"boom"}"#),
            Seen::Error(e) if e.message == "boom"
        ));
        assert!(matches!(
            r(r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"x"}}}"#),
            Seen::Error(e) if e.message == "x"
        ));
        let m = |d| StreamKind::Messages.classify(&ev(d));
        assert_eq!(
            m(r#"{"type":"message_start","message":{}}"#),
            Seen::Preamble
        );
        assert_eq!(m(r#"{"type":"ping"}"#), Seen::Preamble);
        assert_eq!(
            m(
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#
            ),
            Seen::Content { bytes: 2 }
        );
        assert!(matches!(
            m(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            Seen::Error(e) if e.kind == "overloaded_error"
        ));
        assert_eq!(StreamKind::for_path("/messages"), StreamKind::Messages);
    }
}
