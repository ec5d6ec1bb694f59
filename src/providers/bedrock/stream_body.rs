//! A ConverseStream response body -> OpenAI SSE chunks, as they arrive.
//!
//! Place in the pipeline: the `bedrock` provider hands a 2xx
//! `application/vnd.amazon.eventstream` answer to [`event_stream`], which
//! reads it chunk by chunk under the body [`Limits`] (idle and total
//! timeouts), feeds the bytes to an [`EventStreamDecoder`], every decoded
//! frame to [`BedrockStream::on_message`], and yields what that produced:
//! whole `data:` events only. At the end of the body it calls
//! [`BedrockStream::finish`] (usage chunk when asked for, `[DONE]`), or
//! fails when the body stopped inside a frame or before Bedrock's own
//! terminal events. Bedrock's streams are not SSE: this is the framing
//! half; the read loop is `upstream::translated_stream`, shared with the SSE
//! kinds.
//!
//! An `exception` frame ends the stream with an error after whatever was
//! translated before it; the gateway then writes its in-band error event
//! (the client already has the response headers). Must not buffer the
//! answer (only one unfinished frame, capped at `max_response_bytes`), or
//! yield a torn event.

use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::{BedrockStream, EventMessage, EventStreamDecoder};
use crate::providers::UpstreamError;
use crate::providers::body::Limits;
use crate::providers::client::Response;
use crate::providers::upstream::{ChunkTranslate, translated_stream};

/// AWS event-stream framing around the Converse stream translator.
struct Frames {
    decoder: EventStreamDecoder,
    messages: Vec<EventMessage>,
    translator: BedrockStream,
}

impl ChunkTranslate for Frames {
    /// Decodes `chunk` and translates every frame it completes. Frames
    /// decoded before a framing error are still translated.
    fn on_chunk(
        &mut self,
        chunk: &[u8],
        max_bytes: u64,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamError> {
        self.messages.clear();
        let fed = self.decoder.feed(chunk, &mut self.messages);
        for msg in &self.messages {
            self.translator
                .on_message(msg, out)
                .map_err(UpstreamError::Translate)?;
        }
        fed.map_err(UpstreamError::Translate)?;
        if self.decoder.buffered() as u64 > max_bytes {
            return Err(UpstreamError::TooLarge(max_bytes));
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamError> {
        self.decoder
            .finish()
            .and_then(|()| self.translator.finish(out))
            .map_err(UpstreamError::Translate)
    }
}

/// The OpenAI chunks of a ConverseStream `response`. Ends after the first
/// error, which comes after every chunk translated before it.
pub(super) fn event_stream(
    response: Response,
    limits: Limits,
    translator: BedrockStream,
) -> BoxStream<'static, Result<Bytes, UpstreamError>> {
    let frames = Frames {
        decoder: EventStreamDecoder::new(),
        messages: Vec::new(),
        translator,
    };
    translated_stream(response, limits, frames)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use futures_util::StreamExt;
    use serde_json::{Value, json};

    use super::*;
    use crate::providers::translate::TranslateError;

    fn frame(message_type: &str, kind_header: &str, kind: &str, payload: Value) -> Vec<u8> {
        let s = |v: &str| HeaderValue::String(v.to_string().into());
        let message = Message::new(Bytes::from(payload.to_string()))
            .add_header(Header::new(kind_header.to_string(), s(kind)))
            .add_header(Header::new(":message-type", s(message_type)));
        let mut out = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
        out
    }

    fn event(kind: &str, payload: Value) -> Vec<u8> {
        frame("event", ":event-type", kind, payload)
    }

    fn answer() -> Vec<Vec<u8>> {
        vec![
            event("messageStart", json!({"role": "assistant"})),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 0})),
            event("messageStop", json!({"stopReason": "end_turn"})),
            event(
                "metadata",
                json!({"usage": {"inputTokens": 3, "outputTokens": 1}}),
            ),
        ]
    }

    /// Runs `wire` through the loop in `piece`-byte chunks.
    async fn run(
        wire: Vec<u8>,
        piece: usize,
        max_bytes: u64,
    ) -> Vec<Result<String, UpstreamError>> {
        let chunks: Vec<Bytes> = wire.chunks(piece).map(Bytes::copy_from_slice).collect();
        let response = Response::from_chunks(chunks);
        let limits = Limits {
            idle: Duration::from_secs(5),
            total_deadline: tokio::time::Instant::now() + Duration::from_secs(5),
            max_bytes,
            scrubber: Default::default(),
        };
        event_stream(response, limits, BedrockStream::new("m", true))
            .map(|r| r.map(|b| String::from_utf8(b.to_vec()).unwrap()))
            .collect()
            .await
    }

    fn events(items: &[Result<String, UpstreamError>]) -> Vec<String> {
        let text: String = items
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .cloned()
            .collect();
        text.split_terminator("\n\n").map(str::to_string).collect()
    }

    #[tokio::test]
    async fn whole_events_from_any_split() {
        for piece in [1, 7, 4096] {
            let items = run(answer().concat(), piece, 1 << 20).await;
            assert!(items.iter().all(Result::is_ok), "{piece}");
            // Every yielded item is whole events.
            assert!(items.iter().all(|r| r.as_ref().unwrap().ends_with("\n\n")));
            let ev = events(&items);
            assert_eq!(ev.len(), 5, "{ev:?}"); // role, text, finish, usage, [DONE]
            assert!(ev[1].contains(r#""content":"Hi""#));
            assert!(ev[3].contains(r#""prompt_tokens":3"#), "{}", ev[3]);
            assert_eq!(ev[4], "data: [DONE]");
        }
    }

    #[tokio::test]
    async fn an_exception_ends_the_stream_after_what_came_before() {
        let mut frames = answer();
        frames.truncate(2);
        frames.push(frame(
            "exception",
            ":exception-type",
            "throttlingException",
            json!({"message": "slow down"}),
        ));
        let items = run(frames.concat(), 7, 1 << 20).await;
        let (last, before) = items.split_last().unwrap();
        assert_eq!(events(before).len(), 2);
        match last {
            Err(UpstreamError::Translate(TranslateError::BadResponse(m))) => {
                assert!(
                    m.contains("throttlingException") && m.contains("slow down"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn torn_and_unfinished_streams_fail() {
        let wire = answer().concat();
        let torn = run(wire[..wire.len() - 3].to_vec(), 7, 1 << 20).await;
        assert!(matches!(
            torn.last(),
            Some(Err(UpstreamError::Translate(TranslateError::BadResponse(
                _
            ))))
        ));
        let mut frames = answer();
        frames.truncate(3); // no messageStop
        let early = run(frames.concat(), 7, 1 << 20).await;
        match early.last() {
            Some(Err(UpstreamError::Translate(TranslateError::BadResponse(m)))) => {
                assert!(m.contains("messageStop"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unfinished_frame_is_capped() {
        let big = event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "x".repeat(4000)}}),
        );
        let items = run(big, 512, 1000).await;
        assert!(matches!(
            items.last(),
            Some(Err(UpstreamError::TooLarge(1000)))
        ));
    }
}
