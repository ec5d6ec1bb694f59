//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`)
//! that ConverseStream answers in: an incremental, checksum-verifying decoder.
//!
//! Place in the pipeline: the adapter feeds response body chunks to
//! [`EventStreamDecoder::feed`] as they arrive and hands each decoded
//! [`EventMessage`] to `BedrockStream::on_message`; at EOF it calls
//! [`EventStreamDecoder::finish`] to catch a torn frame.
//!
//! A frame is: total length (u32 BE), headers length (u32 BE), CRC32 of
//! those 8 bytes, headers, payload, CRC32 of everything before it. Decoding
//! a whole frame (both checksums, the headers of AWS's types 0..=9) is
//! `aws-smithy-eventstream`'s; this module only reads the total length, to
//! wait for whole frames and to refuse frames over [`MAX_MESSAGE_LEN`]
//! before they are buffered (the crate has no bound of its own). Must not
//! interpret payloads or event types.

use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};

use crate::providers::translate::TranslateError;

/// The largest frame accepted (the AWS SDKs use the same bound).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;
/// Prelude (12 bytes) and message checksum (4): a frame with no headers and
/// no payload.
const MIN_MESSAGE_LEN: usize = 16;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMessage(Message);

impl From<Message> for EventMessage {
    fn from(message: Message) -> Self {
        EventMessage(message)
    }
}

impl EventMessage {
    pub fn headers(&self) -> &[Header] {
        self.0.headers()
    }

    pub fn payload(&self) -> &Bytes {
        self.0.payload()
    }

    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .map(Header::value)
    }

    /// A string header's value (`None` when absent or of another type).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name)?.as_string().ok().map(|s| s.as_str())
    }

    /// `:message-type`: `event`, `exception` or `error`.
    pub fn message_type(&self) -> Option<&str> {
        self.header_str(":message-type")
    }

    /// `:event-type`, e.g. `contentBlockDelta`.
    pub fn event_type(&self) -> Option<&str> {
        self.header_str(":event-type")
    }

    /// `:exception-type`, e.g. `throttlingException`.
    pub fn exception_type(&self) -> Option<&str> {
        self.header_str(":exception-type")
    }

    /// A message with string headers only, as the tests of the translators
    /// build them.
    #[cfg(test)]
    pub(crate) fn with_strings(headers: &[(&str, &str)], payload: impl Into<Bytes>) -> Self {
        let headers = headers
            .iter()
            .map(|(name, value)| {
                Header::new(
                    name.to_string(),
                    HeaderValue::String(value.to_string().into()),
                )
            })
            .collect();
        EventMessage(Message::new_from_parts(headers, payload))
    }
}

fn bad(message: &str) -> TranslateError {
    TranslateError::BadResponse(format!("event stream: {message}"))
}

/// Feeds body bytes in as they arrive; takes complete messages out.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: BytesMut,
    /// Set by the first error: the byte stream has lost its framing.
    failed: bool,
}

impl EventStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `chunk`, appending every message it completes to `out`. After
    /// an error every later call fails too.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<EventMessage>,
    ) -> Result<(), TranslateError> {
        if self.failed {
            return Err(bad("decoder stopped at an earlier error"));
        }
        self.buf.extend_from_slice(chunk);
        let result = self.drain(out);
        self.failed = result.is_err();
        result
    }

    fn drain(&mut self, out: &mut Vec<EventMessage>) -> Result<(), TranslateError> {
        while self.buf.len() >= size_of::<u32>() {
            let total = (&self.buf[..]).get_u32() as usize;
            if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&total) {
                return Err(bad("frame length out of bounds"));
            }
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(());
            }
            let frame = self.buf.split_to(total).freeze();
            let message = read_message_from(frame).map_err(|e| bad(&e.to_string()))?;
            out.push(EventMessage(message));
        }
        Ok(())
    }

    /// True when no partial frame is buffered.
    pub fn at_boundary(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes of an unfinished frame held (for a caller's own size cap).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Call at EOF: a half-received frame is an upstream failure.
    pub fn finish(&self) -> Result<(), TranslateError> {
        if self.failed || !self.buf.is_empty() {
            return Err(bad("stream ended inside a frame"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::DateTime;

    use super::*;

    fn encode(headers: Vec<Header>, payload: &[u8]) -> Vec<u8> {
        let message = Message::new_from_parts(headers, Bytes::copy_from_slice(payload));
        write(&EventMessage(message))
    }

    fn write(message: &EventMessage) -> Vec<u8> {
        let mut out = Vec::new();
        write_message_to(&message.0, &mut out).unwrap();
        out
    }

    /// An `event` frame with a JSON payload, as ConverseStream sends it.
    fn event(event_type: &str, payload: &str) -> Vec<u8> {
        let headers = [
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ];
        write(&EventMessage::with_strings(&headers, payload.to_string()))
    }

    fn all_types() -> Vec<Header> {
        let values = [
            ("t", HeaderValue::Bool(true)),
            ("f", HeaderValue::Bool(false)),
            ("b", HeaderValue::Byte(-3)),
            ("i16", HeaderValue::Int16(-300)),
            ("i32", HeaderValue::Int32(70_000)),
            ("i64", HeaderValue::Int64(-5_000_000_000)),
            (
                "bytes",
                HeaderValue::ByteArray(Bytes::from_static(b"\x00\xff")),
            ),
            ("s", HeaderValue::String("héllo".into())),
            (
                "ts",
                HeaderValue::Timestamp(DateTime::from_millis(1_700_000_000_000)),
            ),
            (
                "id",
                HeaderValue::Uuid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            ),
        ];
        values
            .into_iter()
            .map(|(name, value)| Header::new(name, value))
            .collect()
    }

    #[test]
    fn decodes_frames_split_at_every_byte() {
        let mut wire = encode(all_types(), b"{\"a\":1}");
        wire.extend(event("messageStop", r#"{"stopReason":"end_turn"}"#));
        wire.extend(encode(Vec::new(), b""));
        for split in 0..=wire.len() {
            let mut d = EventStreamDecoder::new();
            let mut out = Vec::new();
            d.feed(&wire[..split], &mut out).unwrap();
            d.feed(&wire[split..], &mut out).unwrap();
            assert_eq!(out.len(), 3, "split at {split}");
            assert_eq!(out[0].headers(), all_types().as_slice());
            assert_eq!(&out[0].payload()[..], b"{\"a\":1}");
            assert_eq!(out[0].header_str("s"), Some("héllo"));
            assert_eq!(out[0].header_str("t"), None, "not a string");
            assert_eq!(out[1].event_type(), Some("messageStop"));
            assert_eq!(out[1].message_type(), Some("event"));
            assert!(out[2].headers().is_empty() && out[2].payload().is_empty());
            d.finish().unwrap();
        }
        // One byte at a time.
        let mut d = EventStreamDecoder::new();
        let mut out = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out.len(), 3);
    }

    fn decode_err(wire: &[u8]) -> TranslateError {
        let mut d = EventStreamDecoder::new();
        let err = d.feed(wire, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, TranslateError::BadResponse(_)), "{err:?}");
        assert!(d.feed(b"", &mut Vec::new()).is_err(), "stays failed");
        assert!(d.finish().is_err());
        err
    }

    #[test]
    fn rejects_corrupt_frames() {
        let good = event("metadata", "{}");
        let mut prelude = good.clone();
        prelude[8] ^= 1;
        assert!(
            decode_err(&prelude)
                .to_string()
                .contains("prelude checksum")
        );
        let mut body = good.clone();
        let last = body.len() - 6;
        body[last] ^= 1;
        assert!(decode_err(&body).to_string().contains("message checksum"));

        // Headers are read before the message checksum is checked.
        let mut unknown = encode(vec![Header::new("x", HeaderValue::Bool(true))], b"");
        unknown[14] = 42; // the value type byte of header "x"
        assert!(
            decode_err(&unknown)
                .to_string()
                .contains("invalid header value type: 42")
        );
    }

    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut p = [total.to_be_bytes(), headers.to_be_bytes()].concat();
        p.extend_from_slice(&crc32fast::hash(&p).to_be_bytes());
        p
    }

    #[test]
    fn rejects_bad_lengths() {
        // Before buffering: the total length alone decides.
        let huge = (MAX_MESSAGE_LEN + 1) as u32;
        assert!(
            decode_err(&prelude(huge, 0))
                .to_string()
                .contains("out of bounds")
        );
        assert!(
            decode_err(&prelude(15, 0))
                .to_string()
                .contains("out of bounds")
        );
        // Headers longer than the frame, once the frame is whole.
        let mut frame = prelude(20, 5);
        frame.extend_from_slice(&[0; 8]);
        assert!(
            decode_err(&frame)
                .to_string()
                .contains("invalid headers length")
        );

        // A string header whose length runs past the headers section.
        let mut frame = prelude(12 + 5 + 4, 5);
        frame.extend_from_slice(&[1, b'x', 7, 0, 9]);
        let crc = crc32fast::hash(&frame).to_be_bytes();
        frame.extend_from_slice(&crc);
        assert!(
            decode_err(&frame)
                .to_string()
                .contains("invalid header value")
        );
    }

    #[test]
    fn garbage_inside_a_well_sized_frame_is_an_error_not_a_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let len = rng.usize(MIN_MESSAGE_LEN..200);
            let mut frame: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            frame[..4].copy_from_slice(&(len as u32).to_be_bytes());
            // A valid prelude checksum half the time, so the headers get read.
            if rng.bool() {
                let headers = rng.u32(..len as u32);
                frame[..12].copy_from_slice(&prelude(len as u32, headers));
            }
            let mut d = EventStreamDecoder::new();
            let _ = d.feed(&frame, &mut Vec::new());
        }
    }

    #[test]
    fn a_torn_frame_at_eof_is_an_error() {
        let wire = event("messageStart", r#"{"role":"assistant"}"#);
        let mut d = EventStreamDecoder::new();
        let mut out = Vec::new();
        d.feed(&wire[..wire.len() - 1], &mut out).unwrap();
        assert!(out.is_empty() && !d.at_boundary());
        assert_eq!(d.buffered(), wire.len() - 1);
        assert!(matches!(d.finish(), Err(TranslateError::BadResponse(_))));
    }
}
