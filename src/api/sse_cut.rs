//! Where whole server-sent events end in a byte stream, without decoding
//! them.
//!
//! Place in the pipeline: providers that pass an upstream SSE stream on as
//! it is (the OpenAI-compatible kind) cut it at event boundaries with
//! [`SseCuts`] and need only two facts per chunk: the offset just past its
//! last whole event, and whether an event whose data is `[DONE]` went by.
//! [`super::sse::SseDecoder`] answers both too, but builds every event (a
//! line buffer and strings per event); this scanner allocates nothing and
//! keeps at most the first bytes of an unfinished line. It follows the same
//! WHATWG rules (LF, CRLF or CR line ends; `:` comments; a blank line ends
//! an event; several `data` lines join), so both agree on every input (a
//! test feeds both the same bytes, split everywhere). [`event_spans`]
//! splits a run of whole events into each event's bytes, so that readers
//! looking for one thing (usage) decode only the events a byte search
//! found it in and pass the others on as they came. Must not interpret
//! payloads.

/// The longest line start that matters: `data: [DONE]`.
const HEAD: usize = 12;

/// Feeds bytes in as they arrive; reports each chunk's last boundary.
#[derive(Debug, Default)]
pub struct SseCuts {
    /// A CR ended the last line: a following LF belongs to it.
    after_cr: bool,
    /// Length of the current, unfinished line.
    line_len: usize,
    /// Its first bytes (up to [`HEAD`]).
    head: [u8; HEAD],
    /// Fields seen in the current event.
    has_fields: bool,
    /// `data` lines in the current event.
    data_lines: usize,
    /// The current event's data is exactly `[DONE]` so far.
    done_data: bool,
}

/// What one chunk held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cut {
    /// The offset just past the chunk's last event boundary, if any.
    pub last_boundary: Option<usize>,
    /// An event whose data is `[DONE]` ended in this chunk.
    pub done: bool,
}

impl SseCuts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans `chunk`, continuing where the previous chunk left off.
    pub fn feed(&mut self, chunk: &[u8]) -> Cut {
        let mut cut = Cut::default();
        let mut at = 0;
        while at < chunk.len() {
            if self.after_cr {
                self.after_cr = false;
                if chunk[at] == b'\n' {
                    at += 1;
                    if self.at_boundary() {
                        cut.last_boundary = Some(at);
                    }
                    continue;
                }
            }
            let rest = &chunk[at..];
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(end) => {
                    self.take(&rest[..end]);
                    self.after_cr = rest[end] == b'\r';
                    at += end + 1;
                    cut.done |= self.end_line();
                    if self.at_boundary() {
                        cut.last_boundary = Some(at);
                    }
                }
                None => {
                    self.take(rest);
                    at = chunk.len();
                }
            }
        }
        cut
    }

    /// Nothing unfinished: no partial line, no event without its blank line.
    pub fn at_boundary(&self) -> bool {
        self.line_len == 0 && !self.has_fields
    }

    /// Adds `bytes` to the current line.
    fn take(&mut self, bytes: &[u8]) {
        if self.line_len < HEAD {
            let n = (HEAD - self.line_len).min(bytes.len());
            self.head[self.line_len..self.line_len + n].copy_from_slice(&bytes[..n]);
        }
        self.line_len += bytes.len();
    }

    /// Ends the current line; true when it ended a `[DONE]` event.
    fn end_line(&mut self) -> bool {
        let len = std::mem::take(&mut self.line_len);
        if len == 0 {
            let done = self.has_fields && self.data_lines == 1 && self.done_data;
            self.has_fields = false;
            self.data_lines = 0;
            self.done_data = false;
            return done;
        }
        let head = &self.head[..len.min(HEAD)];
        if head[0] == b':' {
            return false;
        }
        self.has_fields = true;
        let value_is_done = |v: &[u8]| v == b"[DONE]" || v == b" [DONE]";
        let data = if len == 4 && head == b"data" {
            Some(false)
        } else if len <= HEAD && head.starts_with(b"data:") {
            Some(value_is_done(&head[5..]))
        } else {
            head.starts_with(b"data:").then_some(false)
        };
        if let Some(done) = data {
            self.done_data = self.data_lines == 0 && done;
            self.data_lines += 1;
        }
        false
    }
}

/// The events of `run` (whole events, as a provider stream yields them),
/// each as the range of its bytes up to and including the blank line
/// that ends it; bytes after the last blank line come last, as they are.
/// Lets a reader decode only the events it needs (found by a byte search)
/// and pass the others on as they came.
pub fn event_spans(run: &[u8]) -> EventSpans<'_> {
    EventSpans { run, at: 0 }
}

/// See [`event_spans`].
#[derive(Debug)]
pub struct EventSpans<'a> {
    run: &'a [u8],
    at: usize,
}

impl Iterator for EventSpans<'_> {
    type Item = std::ops::Range<usize>;

    fn next(&mut self) -> Option<Self::Item> {
        let (run, start) = (self.run, self.at);
        if start >= run.len() {
            return None;
        }
        let mut line = start;
        while let Some(off) = memchr::memchr2(b'\n', b'\r', &run[line..]) {
            let end = line + off;
            let mut next = end + 1;
            if run[end] == b'\r' && run.get(next) == Some(&b'\n') {
                next += 1;
            }
            let blank = end == line;
            line = next;
            if blank {
                self.at = next;
                return Some(start..next);
            }
        }
        self.at = run.len();
        Some(start..run.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::sse::SseDecoder;

    /// Both scanners read `wire` split at `split`; their cuts must agree.
    fn agree(wire: &[u8], split: usize) {
        let mut cuts = SseCuts::new();
        let mut dec = SseDecoder::new();
        for part in [&wire[..split], &wire[split..]] {
            let cut = cuts.feed(part);
            let events = dec.decode(part);
            let done = events.iter().any(|e| e.data == "[DONE]");
            assert_eq!(
                cut.last_boundary,
                dec.last_boundary(),
                "{wire:?} at {split}"
            );
            assert_eq!(cut.done, done, "{wire:?} at {split}");
            assert_eq!(cuts.at_boundary(), dec.at_boundary(), "{wire:?} at {split}");
        }
    }

    #[test]
    fn agrees_with_the_decoder_split_anywhere() {
        let wires: &[&[u8]] = &[
            b"event: message_start\ndata: {\"a\":1}\n\n: comment\n\ndata: x\r\ndata: y\r\n\r\nid: 7\rdata:z\r\r",
            b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n",
            b"data:[DONE]\r\n\r\n",
            b"data: [DONE]\r\r",
            b"data: [DONE]\ndata: more\n\n",
            b"data: first\ndata: [DONE]\n\n",
            b"event: done\ndata: [DONE]\n\n: trailing\n\n",
            b"data: [DONE] \n\ndata: [DONE]x\n\ndatum: [DONE]\n\n",
            b"data\n\ndata: [DONE]\n",
            b": only a comment\n\n: another\n",
        ];
        for wire in wires {
            for split in 0..=wire.len() {
                agree(wire, split);
            }
        }
    }

    #[test]
    fn event_spans_cover_the_run_and_decode_as_the_whole_run_does() {
        let wires: &[&[u8]] = &[
            b"event: message_start\ndata: {\"a\":1}\n\n: comment\n\ndata: x\r\ndata: y\r\n\r\nid: 7\rdata:z\r\r",
            b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n",
            b"\n\ndata: a\n\n\r\n",
            b"data: a\n\ndata: torn",
            b"",
        ];
        for wire in wires {
            let spans: Vec<_> = event_spans(wire).collect();
            let joined: Vec<u8> = spans
                .iter()
                .flat_map(|r| wire[r.clone()].to_vec())
                .collect();
            assert_eq!(&joined, wire, "{spans:?}");
            let each: Vec<_> = spans
                .iter()
                .flat_map(|r| SseDecoder::new().decode(&wire[r.clone()]))
                .collect();
            assert_eq!(each, SseDecoder::new().decode(wire), "{wire:?}");
        }
        let spans: Vec<_> = event_spans(b"data: a\r\n\r\ndata: b\n\n").collect();
        assert_eq!(spans, [0..11, 11..20]);
    }

    #[test]
    fn reports_the_last_boundary_and_done() {
        let mut c = SseCuts::new();
        let cut = c.feed(b"data: a\n\ndata: b\n\ndata: {\"to");
        assert_eq!(cut.last_boundary, Some(18));
        assert!(!c.at_boundary());
        assert_eq!(c.feed(b"rn\":1}").last_boundary, None);
        let cut = c.feed(b"\n\ndata: [DONE]\n\n");
        assert_eq!(cut.last_boundary, Some(16));
        assert!(cut.done);
    }
}
