//! A cursor that checks JSON bytes as it walks them, a block of bytes at a
//! time where strings are long (a byte at a time where they are short
//! plain ASCII), without building or decoding anything.
//!
//! Place in the pipeline: `chat_scan` walks a client's chat body with it
//! (the `messages` holding a megabyte of text are checked here, not by
//! `serde_json`, whose string scan took a fifth of such a request's CPU),
//! `embeddings_body` a client's embeddings request, and `embeddings_prescan`
//! an upstream's answer that is passed through.
//! It accepts only what `serde_json`'s parse into a `Value` accepts, and
//! refuses (`None`) a little that the parse accepts: an exponent that could
//! reach past `f64`, a number longer than [`MAX_NUMBER`] bytes, a lone
//! surrogate escape, nesting deeper than [`MAX_DEPTH`]. A refusal only sends
//! the caller to the full parse, which then accepts the body or words its
//! fault. Must not decide errors and must not accept more than the parse.

use std::ops::Range;

use plain::plain_run;

#[path = "json_check_plain.rs"]
mod plain;

/// Nesting the walk follows (`serde_json` stops at 128).
pub(super) const MAX_DEPTH: usize = 64;
/// The longest number checked here, in bytes.
pub(super) const MAX_NUMBER: usize = 64;
/// The longest string [`Cursor::short_ascii`] reads a byte at a time.
const SHORT: usize = 16;

/// A position in JSON bytes.
pub(super) struct Cursor<'a> {
    b: &'a [u8],
    /// The next byte to read.
    pub(super) at: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Cursor { b, at: 0 }
    }

    /// The bytes walked.
    pub(super) fn bytes(&self) -> &'a [u8] {
        self.b
    }

    /// Past white space as JSON (and `serde_json`) has it.
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.at) {
            self.at += 1;
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    /// The next byte, the cursor past it.
    pub(super) fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    /// `c`, the cursor past it.
    pub(super) fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// Whether only white space is left.
    pub(super) fn at_end(&mut self) -> bool {
        self.ws();
        self.at == self.b.len()
    }

    /// An object's key without escapes, then `:`; the cursor at the value.
    /// The key's bytes (checked UTF-8); `None` for an escaped key too.
    pub(super) fn key(&mut self) -> Option<&'a [u8]> {
        let text = match self.short_ascii() {
            Some(span) => &self.b[span.start + 1..span.end - 1],
            None => {
                let span = self.string()?;
                let text = &self.b[span.start + 1..span.end - 1];
                if text.contains(&b'\\') {
                    return None;
                }
                text
            }
        };
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(text)
    }

    /// After a top-level member's value: past the `,` before the next
    /// key (which must come: `{"a":1,}` is refused), or at the closing
    /// `}`.
    pub(super) fn after_member(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.at += 1;
                self.ws();
                (self.peek()? != b'}').then_some(())
            }
            b'}' => Some(()),
            _ => None,
        }
    }

    /// `{...}` at the cursor, `member` called at each value with its key
    /// (unescaped: an escaped key is `None`, for the parse to match), to
    /// read the value or pass it; the cursor past the `}`. The walks of a
    /// whole chat answer (`chat_answer`) and of its usage (`usage_read`).
    pub(super) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        while self.peek()? != b'}' {
            let key = self.key()?;
            member(self, key)?;
            self.after_member()?;
        }
        self.eat(b'}')
    }

    /// One value checked and passed; where it was.
    pub(super) fn value(&mut self) -> Option<Range<usize>> {
        if let Some(span) = self.short_ascii() {
            return Some(span);
        }
        let start = self.at;
        self.any(MAX_DEPTH)?;
        Some(start..self.at)
    }

    fn any(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.members(b'}', depth.checked_sub(1)?),
            b'[' => self.members(b']', depth.checked_sub(1)?),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    /// The literal `w` (`true`, `false`, `null`), the cursor past it.
    pub(super) fn word(&mut self, w: &[u8]) -> Option<()> {
        let end = self.at + w.len();
        (self.b.get(self.at..end)? == w).then(|| self.at = end)
    }

    /// An object's members or an array's items, up to `close` (`}` or
    /// `]`); the cursor at the opening byte.
    fn members(&mut self, close: u8, depth: usize) -> Option<()> {
        self.at += 1;
        self.ws();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            if close == b'}' {
                self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            self.any(depth)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// A string (quotes included): no raw control byte, only JSON's
    /// escapes, surrogates in pairs, valid UTF-8.
    pub(super) fn string(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        self.eat(b'"')?;
        let mut high = 0u8;
        loop {
            let (plain, h) = plain_run(&self.b[self.at..]);
            self.at += plain;
            high |= h;
            match self.next()? {
                b'"' => break,
                b'\\' => self.escape()?,
                // A control byte: `plain_run` stops at nothing else.
                _ => return None,
            }
        }
        let span = start..self.at;
        if high & 0x80 != 0 {
            std::str::from_utf8(&self.b[span.clone()]).ok()?;
        }
        Some(span)
    }

    /// A string of plain printable ASCII (no escape) that ends within
    /// [`SHORT`] bytes, read a byte at a time, the cursor past it: what
    /// keys nearly always are. `None`, the cursor where it was, for any
    /// other string (and for what is not one). Over the keys of an
    /// embeddings answer (three per vector) this takes two thirds of what
    /// [`Cursor::string`] and a search for `\` took; values try it first
    /// too (`"object":"embedding"`).
    #[inline]
    fn short_ascii(&mut self) -> Option<Range<usize>> {
        let (b, start) = (self.b, self.at);
        if b.get(start) != Some(&b'"') {
            return None;
        }
        let end = b.len().min(start + 1 + SHORT);
        let mut i = start + 1;
        while i < end {
            let c = b[i];
            if c == b'"' {
                self.at = i + 1;
                return Some(start..self.at);
            }
            // A control byte or one above 0x7f (either wraps to 0x60 or
            // more), or an escape.
            if c.wrapping_sub(0x20) >= 0x60 || c == b'\\' {
                return None;
            }
            i += 1;
        }
        None
    }

    /// After a `\`: one escape, a surrogate only with its pair.
    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => match self.hex()? {
                0xD800..=0xDBFF => {
                    self.eat(b'\\')?;
                    self.eat(b'u')?;
                    matches!(self.hex()?, 0xDC00..=0xDFFF).then_some(())
                }
                0xDC00..=0xDFFF => None,
                _ => Some(()),
            },
            _ => None,
        }
    }

    fn hex(&mut self) -> Option<u16> {
        let digits = self.b.get(self.at..self.at + 4)?;
        let mut v = 0u16;
        for &d in digits {
            v = v << 4 | (d as char).to_digit(16)? as u16;
        }
        self.at += 4;
        Some(v)
    }

    /// A number by JSON's grammar, short enough and with an exponent small
    /// enough that `serde_json` cannot find it out of range.
    fn number(&mut self) -> Option<()> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int = match self.digits() {
            0 => return None,
            n if n > 1 && self.b[self.at - n] == b'0' => return None,
            n => n,
        };
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let negative = self.peek() == Some(b'-');
            if let Some(b'-' | b'+') = self.peek() {
                self.at += 1;
            }
            let from = self.at;
            let n = self.digits();
            if n == 0 || n > 3 {
                return None;
            }
            let exp: usize = self.b[from..self.at]
                .iter()
                .fold(0, |e, d| e * 10 + usize::from(d - b'0'));
            if !negative && int + exp > 300 {
                return None;
            }
        }
        (self.at - start <= MAX_NUMBER).then_some(())
    }

    /// A `u64` written as plain digits (no sign, no leading zero); the
    /// byte after it is the caller's to check.
    pub(super) fn unsigned(&mut self) -> Option<u64> {
        let start = self.at;
        let n = self.digits();
        if n == 0 || n > 19 || (n > 1 && self.b[start] == b'0') {
            return None;
        }
        // At most 19 digits: below `u64::MAX`, no overflow.
        Some(
            self.b[start..self.at]
                .iter()
                .fold(0, |v, d| v * 10 + u64::from(d - b'0')),
        )
    }

    /// A count written as plain digits, read exactly as a `u64` (not the
    /// start of a fraction or an exponent), the cursor past it; `None`,
    /// the cursor where it was, for anything else (a sign, a fraction, an
    /// exponent, a leading zero, more than 19 digits, not a number).
    pub(super) fn count(&mut self) -> Option<u64> {
        let start = self.at;
        match self.unsigned() {
            Some(v) if !matches!(self.peek(), Some(b'.' | b'e' | b'E')) => Some(v),
            _ => {
                self.at = start;
                None
            }
        }
    }

    /// Past a run of ASCII digits; how many.
    fn digits(&mut self) -> usize {
        let n = self.b[self.at..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.at += n;
        n
    }
}

#[cfg(test)]
#[path = "json_check_tests.rs"]
mod tests;
