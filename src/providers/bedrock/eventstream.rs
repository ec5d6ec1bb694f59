//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`)
//! that ConverseStream answers in: an incremental, checksum-verifying decoder.
//!
//! Place in the pipeline: the adapter feeds response body chunks to
//! [`EventStreamDecoder::feed`] as they arrive and hands each decoded
//! [`EventMessage`] to `BedrockStream::on_message`; at EOF it calls
//! [`EventStreamDecoder::finish`] to catch a torn frame.
//!
//! A frame is: total length (u32 BE), headers length (u32 BE), CRC32 of
//! those 8 bytes, headers, payload, CRC32 of everything before it. A header
//! is: name length (u8), name, value type (u8), value (types 0..=9 as AWS
//! defines them). Frames over [`MAX_MESSAGE_LEN`] are refused before they
//! are buffered. Must not interpret payloads or event types.

use bytes::{Bytes, BytesMut};

use crate::providers::translate::TranslateError;

/// The largest frame accepted (the AWS SDKs use the same bound).
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;
const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;

/// One header value, by the event-stream type codes 0..=9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    ByteArray(Bytes),
    String(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid(u128),
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventMessage {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl EventMessage {
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A string header's value (`None` when absent or of another type).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        match self.header(name) {
            Some(HeaderValue::String(s)) => Some(s),
            _ => None,
        }
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
}

fn bad(message: &str) -> TranslateError {
    TranslateError::BadResponse(format!("event stream: {message}"))
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
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
        while self.buf.len() >= PRELUDE_LEN {
            let total = be_u32(&self.buf[0..4]) as usize;
            let headers_len = be_u32(&self.buf[4..8]) as usize;
            if crc32fast::hash(&self.buf[0..8]) != be_u32(&self.buf[8..12]) {
                return Err(bad("prelude checksum mismatch"));
            }
            if !(PRELUDE_LEN + CRC_LEN..=MAX_MESSAGE_LEN).contains(&total) {
                return Err(bad("frame length out of bounds"));
            }
            if headers_len > total - PRELUDE_LEN - CRC_LEN {
                return Err(bad("headers longer than the frame"));
            }
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(());
            }
            let frame = self.buf.split_to(total).freeze();
            out.push(parse_frame(frame, headers_len)?);
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

/// `frame` is exactly one whole frame whose prelude was checked.
fn parse_frame(frame: Bytes, headers_len: usize) -> Result<EventMessage, TranslateError> {
    let crc_at = frame.len() - CRC_LEN;
    if crc32fast::hash(&frame[..crc_at]) != be_u32(&frame[crc_at..]) {
        return Err(bad("message checksum mismatch"));
    }
    let headers_end = PRELUDE_LEN + headers_len;
    let headers = parse_headers(&frame[PRELUDE_LEN..headers_end])?;
    Ok(EventMessage {
        headers,
        payload: frame.slice(headers_end..crc_at),
    })
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TranslateError> {
        if self.0.len() < n {
            return Err(bad("header runs past the headers section"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TranslateError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn sized(&mut self) -> Result<&'a [u8], TranslateError> {
        let len = u16::from_be_bytes(self.array()?) as usize;
        self.take(len)
    }
}

fn parse_headers(bytes: &[u8]) -> Result<Vec<(String, HeaderValue)>, TranslateError> {
    let mut cur = Cursor(bytes);
    let mut headers = Vec::new();
    while !cur.0.is_empty() {
        let name_len = cur.array::<1>()?[0] as usize;
        let name = std::str::from_utf8(cur.take(name_len)?)
            .map_err(|_| bad("header name is not UTF-8"))?
            .to_string();
        let value = match cur.array::<1>()?[0] {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(cur.array()?)),
            3 => HeaderValue::Int16(i16::from_be_bytes(cur.array()?)),
            4 => HeaderValue::Int32(i32::from_be_bytes(cur.array()?)),
            5 => HeaderValue::Int64(i64::from_be_bytes(cur.array()?)),
            6 => HeaderValue::ByteArray(Bytes::copy_from_slice(cur.sized()?)),
            7 => HeaderValue::String(
                std::str::from_utf8(cur.sized()?)
                    .map_err(|_| bad("string header is not UTF-8"))?
                    .to_string(),
            ),
            8 => HeaderValue::Timestamp(i64::from_be_bytes(cur.array()?)),
            9 => HeaderValue::Uuid(u128::from_be_bytes(cur.array()?)),
            _ => return Err(bad("unknown header value type")),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny encoder, written from the framing rules above.
    fn encode(headers: &[(&str, HeaderValue)], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (name, value) in headers {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            let sized = |h: &mut Vec<u8>, t: u8, b: &[u8]| {
                h.push(t);
                h.extend_from_slice(&(b.len() as u16).to_be_bytes());
                h.extend_from_slice(b);
            };
            match value {
                HeaderValue::Bool(b) => h.push(if *b { 0 } else { 1 }),
                HeaderValue::Byte(v) => h.extend([2, *v as u8]),
                HeaderValue::Int16(v) => h.extend([&[3][..], &v.to_be_bytes()].concat()),
                HeaderValue::Int32(v) => h.extend([&[4][..], &v.to_be_bytes()].concat()),
                HeaderValue::Int64(v) => h.extend([&[5][..], &v.to_be_bytes()].concat()),
                HeaderValue::ByteArray(b) => sized(&mut h, 6, b),
                HeaderValue::String(s) => sized(&mut h, 7, s.as_bytes()),
                HeaderValue::Timestamp(v) => h.extend([&[8][..], &v.to_be_bytes()].concat()),
                HeaderValue::Uuid(v) => h.extend([&[9][..], &v.to_be_bytes()].concat()),
            }
        }
        let total = (PRELUDE_LEN + h.len() + payload.len() + CRC_LEN) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&(h.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(payload);
        out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
        out
    }

    /// An `event` frame with a JSON payload, as ConverseStream sends it.
    fn event(event_type: &str, payload: &str) -> Vec<u8> {
        let s = |v: &str| HeaderValue::String(v.to_string());
        encode(
            &[
                (":event-type", s(event_type)),
                (":content-type", s("application/json")),
                (":message-type", s("event")),
            ],
            payload.as_bytes(),
        )
    }

    fn all_types() -> Vec<(&'static str, HeaderValue)> {
        vec![
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
            ("ts", HeaderValue::Timestamp(1_700_000_000_000)),
            (
                "id",
                HeaderValue::Uuid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            ),
        ]
    }

    #[test]
    fn decodes_frames_split_at_every_byte() {
        let mut wire = encode(&all_types(), b"{\"a\":1}");
        wire.extend(event("messageStop", r#"{"stopReason":"end_turn"}"#));
        wire.extend(encode(&[], b""));
        for split in 0..=wire.len() {
            let mut d = EventStreamDecoder::new();
            let mut out = Vec::new();
            d.feed(&wire[..split], &mut out).unwrap();
            d.feed(&wire[split..], &mut out).unwrap();
            assert_eq!(out.len(), 3, "split at {split}");
            let expected: Vec<(String, HeaderValue)> = all_types()
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect();
            assert_eq!(out[0].headers, expected);
            assert_eq!(&out[0].payload[..], b"{\"a\":1}");
            assert_eq!(out[1].event_type(), Some("messageStop"));
            assert_eq!(out[1].message_type(), Some("event"));
            assert_eq!(out[2], EventMessage::default());
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

        let mut unknown = encode(&[("x", HeaderValue::Bool(true))], b"");
        unknown[14] = 42; // the value type byte of header "x"
        let n = unknown.len();
        let crc = crc32fast::hash(&unknown[..n - 4]).to_be_bytes();
        unknown[n - 4..].copy_from_slice(&crc);
        assert!(
            decode_err(&unknown)
                .to_string()
                .contains("unknown header value type")
        );
    }

    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut p = [total.to_be_bytes(), headers.to_be_bytes()].concat();
        p.extend_from_slice(&crc32fast::hash(&p).to_be_bytes());
        p
    }

    #[test]
    fn rejects_bad_lengths_before_buffering() {
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
        assert!(
            decode_err(&prelude(20, 5))
                .to_string()
                .contains("headers longer")
        );

        // A string header whose length runs past the headers section.
        let mut frame = prelude(12 + 5 + 4, 5);
        frame.extend_from_slice(&[1, b'x', 7, 0, 9]);
        let crc = crc32fast::hash(&frame).to_be_bytes();
        frame.extend_from_slice(&crc);
        assert!(decode_err(&frame).to_string().contains("runs past"));
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
