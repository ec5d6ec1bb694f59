//! Server-sent events on the wire: an incremental decoder and an encoder.
//!
//! Place in the pipeline: providers decode upstream streams with
//! [`SseDecoder`] (OpenAI-compatible, Anthropic and Gemini all speak SSE);
//! `server` uses [`SseDecoder::at_boundary`] to know whether a stream that
//! breaks has left an event half written. Follows the WHATWG event-stream
//! rules: lines end in LF, CRLF or CR; `field: value` with one optional space
//! after the colon; lines starting with `:` are comments; a blank line ends
//! an event; several `data` lines join with LF. Must not interpret payloads.

use bytes::{Bytes, BytesMut};

/// One decoded event. `event` is empty when the stream named none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Feeds bytes in as they arrive; takes complete events out.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the current, unfinished line.
    line: BytesMut,
    /// A CR ended the last line: a following LF belongs to it.
    after_cr: bool,
    current: SseEvent,
    /// Fields seen in the current event (so an event of only comments is no event).
    has_fields: bool,
    data_lines: usize,
    /// Offset in the last fed chunk just past the last event boundary.
    last_boundary: Option<usize>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `chunk`, appending every event it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        self.feed_until(chunk, out, |_| false);
    }

    /// As [`SseDecoder::feed`], but stops right after an event for which
    /// `stop` is true (true then). The rest of `chunk` is not read: a
    /// decoder that stopped must not be fed again.
    pub fn feed_until(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<SseEvent>,
        mut stop: impl FnMut(&SseEvent) -> bool,
    ) -> bool {
        self.last_boundary = None;
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    if self.at_boundary() {
                        self.last_boundary = Some(chunk.len() - rest.len());
                    }
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(end) => {
                    self.after_cr = rest[end] == b'\r';
                    // A line wholly in this chunk is read where it is.
                    let ended = if self.line.is_empty() {
                        self.end_line(&rest[..end], out)
                    } else {
                        self.line.extend_from_slice(&rest[..end]);
                        let line = std::mem::take(&mut self.line);
                        let ended = self.end_line(&line, out);
                        self.line = line;
                        self.line.clear();
                        ended
                    };
                    rest = &rest[end + 1..];
                    if self.at_boundary() {
                        self.last_boundary = Some(chunk.len() - rest.len());
                    }
                    if ended && out.last().is_some_and(&mut stop) {
                        return true;
                    }
                }
                None => {
                    self.line.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        false
    }

    /// Convenience: decode `chunk` and return the events it completes.
    pub fn decode(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.feed(chunk, &mut out);
        out
    }

    /// Where, in the chunk last given to [`SseDecoder::feed`], the last
    /// event boundary lies (the offset just past it), if the chunk has one.
    /// Bytes up to there form whole events that can be forwarded as they are.
    pub fn last_boundary(&self) -> Option<usize> {
        self.last_boundary
    }

    /// True when everything fed so far ended exactly at an event boundary
    /// (no partial line, no unfinished event): a writer can append a new
    /// event without corrupting one.
    pub fn at_boundary(&self) -> bool {
        self.line.is_empty() && !self.has_fields
    }

    /// Ends the current line; true when it ended an event (pushed to `out`).
    fn end_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> bool {
        if line.is_empty() {
            let ended = self.has_fields;
            if ended {
                out.push(std::mem::take(&mut self.current));
            }
            self.has_fields = false;
            self.data_lines = 0;
            return ended;
        }
        if line[0] == b':' {
            return false;
        }
        // Valid UTF-8 (nearly every line) by the vectorised check; the
        // lossy walk only for the rest.
        let text = match std::str::from_utf8(line) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(line),
        };
        let (field, value) = match text.find(':') {
            Some(i) => {
                let v = &text[i + 1..];
                (&text[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&text[..], ""),
        };
        match field {
            "event" => self.current.event = value.to_string(),
            "data" => {
                if self.data_lines > 0 {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.data_lines += 1;
            }
            "id" => self.current.id = Some(value.to_string()),
            // `retry` and unknown fields are ignored, as the standard says.
            _ => {}
        }
        self.has_fields = true;
        false
    }
}

/// Encodes one `data:` event (no event name), the OpenAI way.
pub fn data_event(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// Encodes one named event, the Anthropic / Responses API way.
pub fn named_event(event: &str, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + event.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// The terminator of an OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_events_split_anywhere() {
        let wire = b"event: message_start\ndata: {\"a\":1}\n\n: comment\n\ndata: x\r\ndata: y\r\n\r\nid: 7\rdata:z\r\r";
        for split in 0..wire.len() {
            let mut d = SseDecoder::new();
            let mut out = d.decode(&wire[..split]);
            out.extend(d.decode(&wire[split..]));
            assert_eq!(out.len(), 3, "split at {split}: {out:?}");
            assert_eq!(out[0].event, "message_start");
            assert_eq!(out[0].data, "{\"a\":1}");
            assert_eq!(out[1].data, "x\ny");
            assert_eq!(out[2].id.as_deref(), Some("7"));
            assert_eq!(out[2].data, "z");
            assert!(d.at_boundary());
        }
    }

    #[test]
    fn feed_until_stops_right_after_the_event_asked_for() {
        let wire = b"data: a\n\n: c\n\ndata: b\n\ndata: c\n\n";
        let mut out = Vec::new();
        assert!(SseDecoder::new().feed_until(wire, &mut out, |e| e.data == "b"));
        let data: Vec<&str> = out.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b"]);
        let mut all = Vec::new();
        assert!(!SseDecoder::new().feed_until(wire, &mut all, |e| e.data == "z"));
        assert_eq!(all, SseDecoder::new().decode(wire));
        // A line that is not UTF-8 is read lossily, as before.
        let odd = SseDecoder::new().decode(b"data: \xff!\n\n");
        assert_eq!(odd[0].data, "\u{fffd}!");
    }

    #[test]
    fn knows_when_an_event_is_torn() {
        let mut d = SseDecoder::new();
        d.decode(b"data: {\"choices\":[{\"delta\":");
        assert!(!d.at_boundary());
        let mut d = SseDecoder::new();
        d.decode(b"data: {}\n");
        assert!(!d.at_boundary(), "a data line without its blank line");
        d.decode(b"\n");
        assert!(d.at_boundary());
    }

    #[test]
    fn reports_the_last_boundary_of_a_chunk() {
        let mut d = SseDecoder::new();
        d.decode(b"data: a\n\ndata: b\n\ndata: {\"to");
        assert_eq!(d.last_boundary(), Some(18));
        d.decode(b"rn\":1}");
        assert_eq!(d.last_boundary(), None);
        d.decode(b"\n\n: ping\n\n");
        assert_eq!(d.last_boundary(), Some(10));
        d.decode(b"data: x\r");
        assert_eq!(d.last_boundary(), None);
        d.decode(b"\n\r\n");
        assert_eq!(d.last_boundary(), Some(3));
    }

    #[test]
    fn encodes() {
        assert_eq!(&data_event(b"{}")[..], b"data: {}\n\n");
        assert_eq!(
            &named_event("ping", b"{}")[..],
            b"event: ping\ndata: {}\n\n"
        );
    }
}
