//! The Anthropic Messages streaming events, as typed data.
//!
//! Place in the pipeline: parsed from each SSE event's `data` by
//! [`super::stream::AnthropicStream`]. Only the fields the translation needs
//! are declared; unknown event, block and delta types parse to their
//! `Unknown` / `Other` variants (Anthropic's versioning policy allows new
//! ones), so they can be skipped. Must not hold translation logic.

use serde::Deserialize;
use serde_json::Value;

use super::response::Usage;

/// One `data` payload, tagged by its `type` (which repeats the SSE event name).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: Delta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<DeltaUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
pub struct StartMessage {
    pub id: String,
    #[serde(default)]
    pub usage: Usage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    /// signature_delta, citations_delta, future types.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub struct MessageDelta {
    pub stop_reason: Option<String>,
}

/// Cumulative counts; fields left out keep their `message_start` value.
#[derive(Debug, Deserialize)]
pub struct DeltaUsage {
    pub output_tokens: Option<u64>,
    pub input_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &str) -> Event {
        serde_json::from_str(data).unwrap()
    }

    #[test]
    fn reference_events_parse() {
        let e = parse(
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        );
        assert!(
            matches!(e, Event::MessageStart { message } if message.id == "msg_1" && message.usage.input_tokens == 25)
        );
        let e = parse(
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
        );
        assert!(matches!(
            e,
            Event::ContentBlockStart {
                index: 1,
                content_block: StartBlock::ToolUse { .. }
            }
        ));
        let e = parse(
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
        );
        assert!(
            matches!(e, Event::ContentBlockDelta { delta: Delta::InputJson { partial_json }, .. } if partial_json == "{\"a\":")
        );
        let e = parse(
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        );
        assert!(
            matches!(e, Event::MessageDelta { delta, usage: Some(u) } if delta.stop_reason.as_deref() == Some("end_turn") && u.output_tokens == Some(15))
        );
        let e = parse(
            r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
        );
        assert!(matches!(e, Event::Error { error } if error.kind == "overloaded_error"));
        assert!(matches!(parse(r#"{"type": "ping"}"#), Event::Ping));
        assert!(matches!(
            parse(r#"{"type": "message_stop"}"#),
            Event::MessageStop
        ));
    }

    #[test]
    fn unknown_types_are_tolerated() {
        assert!(matches!(
            parse(r#"{"type":"brand_new","x":[1]}"#),
            Event::Unknown
        ));
        let e = parse(
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EmwK"}}"#,
        );
        assert!(matches!(
            e,
            Event::ContentBlockStart {
                content_block: StartBlock::Other,
                ..
            }
        ));
        let e = parse(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"Eq"}}"#,
        );
        assert!(matches!(
            e,
            Event::ContentBlockDelta {
                delta: Delta::Other,
                ..
            }
        ));
    }
}
