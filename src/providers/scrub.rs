//! Scrubs configured secrets out of everything an upstream sends back.
//!
//! Place in the pipeline: each provider builds one [`Scrubber`] from its own
//! secrets (API key, custom header values, cloud credentials: what it sends,
//! so all an upstream could echo) and `upstream` runs every byte it reads
//! through it before the bytes can reach a translator, a client, a log line
//! or a metric: error bodies of any status and their headers (whole),
//! successful bodies and streams (chunk by chunk, [`ScrubStream`], across
//! chunk boundaries, never buffered whole). Upstreams and proxies quote the
//! request's `Authorization` header in error messages, echo truncated keys,
//! JSON-escape them (`\u0073k-...`), URL-encode them or put them in base64
//! (a `Basic` header, an AWS event-stream payload). So a secret is found in
//! its raw form and in every fragment of [`MIN_FRAGMENT`] bytes or more; in a
//! decoded view of the bytes where `\uXXXX`, `\/`, `\\` and `%XX` escapes,
//! mixed freely with plain characters, stand for the character they encode;
//! and whole in base64 (standard and URL-safe alphabets, at every alignment
//! inside a longer base64 text). What is found is replaced by `***`.
//! Must not allocate when there is nothing to scrub (the common case), and
//! must not hold bytes back: a stream's chunk leaves as soon as it came in.

use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use bytes::{Bytes, BytesMut};

/// Fragments of a secret at least this long are scrubbed.
pub const MIN_FRAGMENT: usize = 12;
/// Secrets shorter than this are too generic to look for (say `v1`).
const MIN_SECRET: usize = 6;
/// Base64 forms shorter than this are not looked for: they could occur by
/// chance in base64 data (embeddings travel as base64) and corrupt it.
const MIN_ENCODED: usize = 16;
/// The most raw bytes one character of the decoded view can take (`\u0041`).
const WIDEST_ESCAPE: usize = 6;
/// Every twelve bytes of a secret hold one of its anchors: the six bytes at
/// each multiple of seven.
const ANCHOR: usize = 6;
const ANCHOR_STRIDE: usize = MIN_FRAGMENT - ANCHOR + 1;
const MASK: &[u8] = b"***";

/// The secrets of one provider, ready to be found in any form.
#[derive(Default)]
pub struct Scrubber {
    /// Every form of every secret; `None` when there is none.
    matcher: Option<AhoCorasick>,
    /// A few short pieces, one of which every match holds: the fast check
    /// that most bodies, holding no secret, get (`matcher` runs only when
    /// it finds one).
    anchors: Option<AhoCorasick>,
    /// The longest stretch of raw bytes one match can cover.
    reach: usize,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrubber(***)")
    }
}

/// The base64 texts that appear wherever `secret` is base64-encoded inside
/// a longer text: for each of the three alignments, the characters whose six
/// bits all come from the secret.
fn base64_forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(secret);
        padded.extend_from_slice(&[0, 0]);
        let (first_bit, end_bit) = (8 * offset, 8 * (offset + secret.len()));
        let from = first_bit.div_ceil(6);
        let to = end_bit / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let text = engine.encode(&padded);
            if to > from && to - from >= MIN_ENCODED && to <= text.len() {
                out.push(text.as_bytes()[from..to].to_vec());
            }
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The escape at the start of `rest` (`\uXXXX`, `\/`, `\\`, `%XX`): the
/// byte it stands for (0 for a character no secret holds) and its length.
fn escape_at(rest: &[u8]) -> Option<(u8, usize)> {
    match rest {
        [b'\\', b'u', a, b, c, d, ..] => {
            let code = [a, b, c, d]
                .iter()
                .try_fold(0u32, |acc, &&h| Some(acc << 4 | u32::from(hex(h)?)))?;
            Some((u8::try_from(code).ok().filter(u8::is_ascii).unwrap_or(0), 6))
        }
        [b'\\', c @ (b'/' | b'\\'), ..] => Some((*c, 2)),
        [b'%', a, b, ..] => Some((hex(*a)? << 4 | hex(*b)?, 3)),
        _ => None,
    }
}

/// The decoded view's text alone (what the anchors are looked for in), or
/// `None` when `buf` holds no escape (the view is `buf` itself).
fn decoded_text(buf: &[u8]) -> Option<Vec<u8>> {
    let mut text: Option<Vec<u8>> = None;
    let mut copied = 0;
    for j in memchr::memchr2_iter(b'\\', b'%', buf) {
        if j < copied {
            continue;
        }
        if let Some((b, len)) = escape_at(&buf[j..]) {
            let t = text.get_or_insert_with(|| Vec::with_capacity(buf.len()));
            t.extend_from_slice(&buf[copied..j]);
            t.push(b);
            copied = j + len;
        }
    }
    let mut text = text?;
    text.extend_from_slice(&buf[copied..]);
    Some(text)
}

/// The decoded view of `buf`: `text[j]` stands for `buf[at[j]..at[j + 1]]`.
fn decoded(buf: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let (mut text, mut at) = (
        Vec::with_capacity(buf.len()),
        Vec::with_capacity(buf.len() + 1),
    );
    let mut i = 0;
    while i < buf.len() {
        at.push(i);
        match escape_at(&buf[i..]) {
            Some((b, len)) => {
                text.push(b);
                i += len;
            }
            None => {
                text.push(buf[i]);
                i += 1;
            }
        }
    }
    at.push(buf.len());
    (text, at)
}

impl Scrubber {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut anchors: Vec<Vec<u8>> = Vec::new();
        // The longest raw stretch a match covers: a plain pattern may be
        // written all in `\uXXXX` escapes; base64 only escapes its `/`.
        let mut reach = 0;
        for secret in secrets.into_iter().map(str::as_bytes) {
            if secret.len() < MIN_SECRET {
                continue;
            }
            let plain = secret.len().min(MIN_FRAGMENT);
            if secret.len() < MIN_FRAGMENT {
                patterns.push(secret.to_vec());
                anchors.push(secret.to_vec());
            } else {
                patterns.extend(secret.windows(MIN_FRAGMENT).map(<[u8]>::to_vec));
                // Any twelve bytes from `i` hold the anchor at the multiple
                // of seven in `i..=i + 6`.
                let last = secret.len() - ANCHOR;
                anchors.extend(
                    (0..=last)
                        .step_by(ANCHOR_STRIDE)
                        .map(|j| secret[j..j + ANCHOR].to_vec()),
                );
            }
            let encoded = base64_forms(secret);
            let longest = encoded.iter().map(Vec::len).max().unwrap_or(0);
            reach = reach.max(plain * WIDEST_ESCAPE).max(longest * 2);
            anchors.extend(encoded.iter().map(|e| e[..ANCHOR].to_vec()));
            patterns.extend(encoded);
        }
        patterns.sort_unstable();
        patterns.dedup();
        anchors.sort_unstable();
        anchors.dedup();
        // Overlapping matches: every window of a secret is marked, so the
        // whole of it is masked, not every other twelve bytes.
        let matcher = (!patterns.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&patterns)
                    .ok()
            })
            .flatten();
        let anchors = (!anchors.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(&anchors)
                    .ok()
            })
            .flatten();
        Scrubber {
            matcher,
            anchors,
            reach,
        }
    }

    /// No secret to look for: every call returns its input as it is.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// The raw ranges of `buf` that hold a secret in some form and end
    /// after `from`, cut to start no earlier than `from`, sorted, merged.
    fn find(&self, buf: &[u8], from: usize) -> Vec<Range<usize>> {
        let (Some(m), Some(anchors)) = (&self.matcher, &self.anchors) else {
            return Vec::new();
        };
        let mut found: Vec<Range<usize>> = Vec::new();
        if anchors.is_match(buf) {
            found.extend(
                m.find_overlapping_iter(buf)
                    .filter(|hit| hit.end() > from)
                    .map(|hit| hit.start().max(from)..hit.end()),
            );
        }
        if decoded_text(buf).is_some_and(|text| anchors.is_match(&text)) {
            let (text, at) = decoded(buf);
            found.extend(
                m.find_overlapping_iter(&text)
                    .map(|hit| at[hit.start()]..at[hit.end()])
                    .filter(|r| r.end > from)
                    .map(|r| r.start.max(from)..r.end),
            );
        }
        found.sort_unstable_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(found.len());
        for r in found {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        merged
    }

    /// `body` with every secret in any form replaced by `***`; the same
    /// `Bytes` (no copy) when it holds none.
    pub fn scrub(&self, body: Bytes) -> Bytes {
        let found = self.find(&body, 0);
        mask(body, 0, &found)
    }
}

/// `bytes` (which starts at `offset` in the searched buffer) with the
/// `found` ranges of that buffer replaced by `***`.
fn mask(bytes: Bytes, offset: usize, found: &[Range<usize>]) -> Bytes {
    if found.is_empty() {
        return bytes;
    }
    let mut out = BytesMut::with_capacity(bytes.len());
    let mut at = 0;
    for r in found {
        let (start, end) = (r.start - offset, r.end - offset);
        out.extend_from_slice(&bytes[at..start]);
        out.extend_from_slice(MASK);
        at = end;
    }
    out.extend_from_slice(&bytes[at..]);
    out.freeze()
}

/// A stream's scrubber: each chunk is searched together with the end of
/// the chunks before it, so a secret split over two chunks is found. In a
/// text stream (`hold_lines`) the bytes after the chunk's last line break
/// wait for the next chunk (at most one match's reach of them): a line is
/// not complete before then, so whoever reads the stream (an SSE decoder, a
/// JSON reader) could not use them yet, and a secret cut in two is masked
/// whole. In a binary stream (AWS event-stream) nothing waits: the part of
/// a split secret in the second chunk is masked (without the rest, what
/// went before is not the secret).
#[derive(Debug)]
pub struct ScrubStream {
    scrubber: Arc<Scrubber>,
    /// Bytes already sent (the last reach of them, for context), then
    /// bytes held back.
    seen: Vec<u8>,
    /// How many bytes of `seen` were sent.
    sent: usize,
    hold_lines: bool,
}

impl ScrubStream {
    pub fn new(scrubber: Arc<Scrubber>, hold_lines: bool) -> Self {
        ScrubStream {
            scrubber,
            seen: Vec::new(),
            sent: 0,
            hold_lines,
        }
    }

    /// What may be passed on after `chunk`, scrubbed (the same `Bytes`
    /// when it is exactly the chunk, unchanged); may be empty.
    pub fn chunk(&mut self, chunk: Bytes) -> Bytes {
        let reach = self.scrubber.reach;
        if reach == 0 {
            return chunk;
        }
        let held_before = self.seen.len() - self.sent;
        self.seen.extend_from_slice(&chunk);
        let end = if self.hold_lines {
            let unsent = &self.seen[self.sent..];
            let line_end = memchr::memrchr(b'\n', unsent).map_or(self.sent, |i| self.sent + i + 1);
            line_end.max(self.seen.len().saturating_sub(reach))
        } else {
            self.seen.len()
        };
        let whole_chunk = held_before == 0 && end == self.seen.len();
        let out = self.emit(end, whole_chunk.then_some(chunk));
        // Keep one reach of what was sent, for context, and what waits.
        let drop = self.sent.saturating_sub(reach);
        self.seen.drain(..drop);
        self.sent -= drop;
        out
    }

    /// At the end of the stream: what was held back, scrubbed.
    pub fn finish(&mut self) -> Bytes {
        let end = self.seen.len();
        self.emit(end, None)
    }

    /// Sends `seen[sent..end]` scrubbed (`chunk` when that is exactly it).
    fn emit(&mut self, end: usize, chunk: Option<Bytes>) -> Bytes {
        let from = self.sent;
        if end <= from {
            return Bytes::new();
        }
        let found: Vec<Range<usize>> = self
            .scrubber
            .find(&self.seen, from)
            .into_iter()
            .filter(|r| r.start < end)
            .map(|r| r.start..r.end.min(end))
            .collect();
        self.sent = end;
        match chunk {
            Some(chunk) if found.is_empty() => chunk,
            _ => mask(Bytes::copy_from_slice(&self.seen[from..end]), from, &found),
        }
    }
}

#[cfg(test)]
#[path = "scrub_tests.rs"]
mod tests;
