//! An upstream's embeddings answer passed through as it came: checked by a
//! scan of its bytes, its `usage` read, only its `model` rewritten.
//!
//! Place in the pipeline: behind `api::embeddings` (its parent). A provider
//! that was asked for the client's own encoding hands the answer's bytes to
//! [`scan`]; the endpoint sends [`RawEmbed::into_parts`]. A 2,048-input
//! answer is megabytes of numbers: the scan walks the answer's structure
//! (the top-level object, each item of `data`, their keys) with
//! `json_check`'s cursor, which checks every other value as JSON, but only
//! checks that a vector holds nothing but the bytes numbers are made of (a
//! base64 one: a string without escapes), without reading a number. Must
//! refuse (return `None`, so the caller parses the answer as before and
//! names any fault) anything but a JSON
//! object with `data` (`expected` items, each with `index` equal to its
//! place and an `embedding` in the asked encoding), a `usage` object and
//! no `error`; must never change a byte outside the `model` value.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::ser::Formatter;

use super::EncodingFormat;
use crate::api::json_check::Cursor;

/// An answer the client may have as the upstream wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEmbed {
    body: Bytes,
    /// Where the top-level `model` value is (start, end); `None`: the
    /// answer has none (one is added).
    model: Option<(usize, usize)>,
    /// The inside of the `data` array (between `[` and `]`).
    items: (usize, usize),
    /// Where each item's `index` number is, in order.
    indexes: Vec<(usize, usize)>,
    /// How many vectors the answer holds.
    pub count: usize,
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

#[derive(Deserialize)]
struct UsageIn {
    prompt_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

impl RawEmbed {
    /// The answer as the upstream wrote it.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The answer with its `model` set to `model` (a JSON string in place
    /// of the upstream's value; added first when it had none), in three
    /// pieces to send one after the other: the upstream's bytes are not
    /// copied.
    pub fn into_parts(self, model: &str) -> [Bytes; 3] {
        let name = serde_json::to_vec(model).unwrap_or_else(|_| b"\"\"".to_vec());
        let b = self.body;
        match self.model {
            Some((start, end)) => [b.slice(..start), Bytes::from(name), b.slice(end..)],
            None => {
                // The answer opens with `{` (after any white space).
                let open = b.iter().position(|&c| c == b'{').map_or(0, |p| p + 1);
                let mut field = b"\"model\":".to_vec();
                field.extend_from_slice(&name);
                field.push(b',');
                [b.slice(..open), Bytes::from(field), b.slice(open..)]
            }
        }
    }
}

/// The answers of consecutive sub-batches as one: their `data` items as
/// they came, in order, each `index` shifted by the inputs before its
/// sub-batch; `model` set to `model`; `usage` summed.
pub fn join(parts: &[RawEmbed], model: &str) -> Vec<u8> {
    let items: usize = parts.iter().map(|p| p.items.1 - p.items.0 + 8).sum();
    let mut out = Vec::with_capacity(items + model.len() + 128);
    let mut f = serde_json::ser::CompactFormatter;
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    let (mut offset, mut prompt, mut total) = (0, 0, 0);
    for (k, p) in parts.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        let mut at = p.items.0;
        for (i, &(start, end)) in p.indexes.iter().enumerate() {
            out.extend_from_slice(&p.body[at..start]);
            let _ = f.write_u64(&mut out, (offset + i) as u64);
            at = end;
        }
        out.extend_from_slice(&p.body[at..p.items.1]);
        offset += p.count;
        prompt += p.prompt_tokens;
        total += p.total_tokens;
    }
    out.extend_from_slice(b"],\"model\":");
    let _ = serde_json::to_writer(&mut out, model);
    out.extend_from_slice(b",\"usage\":{\"prompt_tokens\":");
    let _ = f.write_u64(&mut out, prompt);
    out.extend_from_slice(b",\"total_tokens\":");
    let _ = f.write_u64(&mut out, total);
    out.extend_from_slice(b"}}");
    out
}

/// The answer as it came, if it is the plain answer for `expected` inputs
/// in `format` (see the module doc); `None` for anything else.
pub(super) fn scan(body: Bytes, expected: usize, format: EncodingFormat) -> Option<RawEmbed> {
    let mut s = Scanner {
        c: Cursor::new(&body[..]),
        items: (0, 0),
        indexes: Vec::with_capacity(expected),
    };
    let (mut data, mut model, mut usage) = (false, None, None);
    s.c.ws();
    s.c.eat(b'{')?;
    s.c.ws();
    if s.c.peek()? == b'}' {
        return None;
    }
    loop {
        let key = s.c.key()?;
        match key {
            b"data" if !data => {
                s.data(expected, format)?;
                data = true;
            }
            b"model" if model.is_none() => {
                let span = s.c.string()?;
                model = Some((span.start, span.end));
            }
            b"usage" if usage.is_none() && s.c.peek()? == b'{' => {
                let span = s.c.value()?;
                usage = Some(serde_json::from_slice::<UsageIn>(&body[span]).ok()?);
            }
            b"data" | b"model" | b"usage" | b"error" => return None,
            _ => {
                s.c.value()?;
            }
        }
        s.c.ws();
        match s.c.next()? {
            b',' => s.c.ws(),
            b'}' => break,
            _ => return None,
        }
    }
    if !s.c.at_end() || !data {
        return None;
    }
    let usage = usage?;
    let prompt_tokens = usage.prompt_tokens.unwrap_or(0);
    let (items, indexes) = (s.items, s.indexes);
    Some(RawEmbed {
        model,
        items,
        indexes,
        count: expected,
        prompt_tokens,
        total_tokens: usage.total_tokens.unwrap_or(prompt_tokens),
        body,
    })
}

/// A cursor over the answer's bytes, with what `data` recorded.
struct Scanner<'a> {
    c: Cursor<'a>,
    /// The inside of the array, each `index`.
    items: (usize, usize),
    indexes: Vec<(usize, usize)>,
}

impl Scanner<'_> {
    /// The `data` array: `expected` items in index order, each vector
    /// jumped over.
    fn data(&mut self, expected: usize, format: EncodingFormat) -> Option<()> {
        self.c.eat(b'[')?;
        let start = self.c.at;
        self.c.ws();
        let mut count = 0;
        if self.c.peek()? != b']' {
            loop {
                self.item(count, format)?;
                count += 1;
                self.c.ws();
                match self.c.peek()? {
                    b',' => {
                        self.c.at += 1;
                        self.c.ws();
                    }
                    b']' => break,
                    _ => return None,
                }
            }
        }
        self.items = (start, self.c.at);
        self.c.at += 1;
        (count == expected).then_some(())
    }

    /// One item of `data`: `index` == `position`, one `embedding`.
    fn item(&mut self, position: usize, format: EncodingFormat) -> Option<()> {
        self.c.eat(b'{')?;
        self.c.ws();
        let (mut index, mut embedding) = (false, false);
        loop {
            match self.c.key()? {
                b"embedding" if !embedding => {
                    embedding = true;
                    match format {
                        EncodingFormat::Float => {
                            self.c.eat(b'[')?;
                            // Only bytes of numbers up to the `]` (no
                            // `null`, `NaN`, string or nesting); the
                            // numbers themselves are not read.
                            self.c.at += numbers(&self.c.bytes()[self.c.at..]);
                            self.c.eat(b']')?;
                        }
                        EncodingFormat::Base64 => {
                            // Base64 holds no escapes.
                            let span = self.c.string()?;
                            if memchr::memchr(b'\\', &self.c.bytes()[span]).is_some() {
                                return None;
                            }
                        }
                    }
                }
                b"index" if !index => {
                    index = true;
                    let start = self.c.at;
                    if self.c.unsigned()? != position as u64 {
                        return None;
                    }
                    self.indexes.push((start, self.c.at));
                }
                b"embedding" | b"index" => return None,
                _ => {
                    self.c.value()?;
                }
            }
            self.c.ws();
            match self.c.next()? {
                b',' => self.c.ws(),
                b'}' => break,
                _ => return None,
            }
        }
        (index && embedding).then_some(())
    }
}

/// How many bytes at the start of `b` may be part of a list of numbers
/// (digits, `+-.eE`, `,`, white space; `/` too, for speed, which a
/// number never holds and the next byte then refuses). A block at a time,
/// in a form the compiler checks several bytes of at once: first without
/// white space (a compact answer passes at twice the speed), and from the
/// first block that holds some on, with it.
fn numbers(b: &[u8]) -> usize {
    /// 1 for a byte no compact list of numbers holds.
    #[inline(always)]
    fn not_compact(x: u8) -> u8 {
        (x.wrapping_sub(b'+') > b'9' - b'+') as u8 & (x | 0x20 != b'e') as u8
    }
    /// 1 for a byte no list of numbers holds.
    #[inline(always)]
    fn bad(x: u8) -> u8 {
        not_compact(x)
            & (x != b' ') as u8
            & (x != b'\n') as u8
            & (x != b'\r') as u8
            & (x != b'\t') as u8
    }
    const BLOCK: usize = 64;
    let (mut at, mut spaced) = (0, false);
    for block in b.chunks_exact(BLOCK) {
        if !spaced {
            if block.iter().fold(0, |any, &x| any | not_compact(x)) == 0 {
                at += BLOCK;
                continue;
            }
            spaced = true;
        }
        if block.iter().fold(0, |any, &x| any | bad(x)) != 0 {
            break;
        }
        at += BLOCK;
    }
    let rest = &b[at..];
    at + rest.iter().position(|&x| bad(x) != 0).unwrap_or(rest.len())
}

#[cfg(test)]
#[path = "embeddings_raw_tests.rs"]
mod tests;
