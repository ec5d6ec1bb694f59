//! The walk of an upstream's embeddings answer while it arrives, chunk
//! by chunk, its chunks kept as they came.
//!
//! Place in the pipeline: behind `embeddings_raw` (its parent), which
//! sends what [`Prescan::finish`] keeps. A provider hands each chunk of the
//! answer to [`Prescan::feed`] as the upstream connection gives it (tens
//! of kilobytes each, for a 2.9 MB answer); the walk goes as far as whole
//! pieces of JSON go, copying only a piece a chunk's end cuts. Must accept
//! exactly what a walk of the whole answer at once accepts, however the
//! answer is cut, and must not copy a chunk whole but where a piece is
//! longer than it.

use bytes::Bytes;
use serde::Deserialize;

use super::super::EncodingFormat;
use super::RawEmbed;
use super::numbers::numbers;
use super::rope::Rope;
use crate::api::json_check::Cursor;

#[derive(Deserialize)]
struct UsageIn {
    prompt_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

/// The scan of an answer for `expected` inputs in `format`, made while it
/// arrives: [`Prescan::feed`] with each chunk as it comes keeps it (not
/// copied: the answer goes out in the same chunks) and walks as far as
/// whole pieces of JSON go (the top-level members, each item of `data`);
/// [`Prescan::finish`] walks the rest and decides (the answer as it came,
/// if it is the plain answer: see the module doc), exactly as a scan of
/// the whole answer at once would. What was walked is only bytes that came
/// before, so a piece checked early is checked as the whole answer holds
/// it. A piece cut by the end of a chunk is copied (the `stitch`) and
/// walked again from its start once more has come, with as much of the
/// next chunk copied after it as the walk needs; after such a try the next
/// waits until what is not yet walked has doubled, so an answer arriving
/// in many small chunks is walked in linear time.
#[derive(Debug)]
pub struct Prescan {
    expected: usize,
    format: EncodingFormat,
    state: State,
    /// Where each item's `index` number is, in order.
    indexes: Vec<(usize, usize)>,
    /// Every byte before it was walked.
    at: usize,
    /// Bytes that must have come before the next try.
    next_try: usize,
    /// The answer so far, as it came.
    rope: Rope,
    /// A copy of what came after [`Prescan::at`], when that is not all in
    /// the last chunk (a piece cut by a chunk's end).
    stitch: Vec<u8>,
}

/// How much of a chunk is first copied after a cut piece.
const STITCH: usize = 4096;

/// What the walk has found, up to [`Prescan::at`].
#[derive(Debug, Clone, Copy)]
struct State {
    step: Step,
    data: bool,
    model: Option<(usize, usize)>,
    /// `usage`'s prompt and total tokens, once read.
    usage: Option<(Option<u64>, Option<u64>)>,
    /// The inside of the `data` array.
    items: (usize, usize),
}

/// Where the walk is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// Before the opening `{`.
    Open,
    /// At a member of the top-level object.
    Member,
    /// At the item of `data` with this position.
    Item(usize),
    /// After a member's value.
    AfterMember,
    /// After the closing `}`.
    Closed,
}

impl Prescan {
    pub fn new(expected: usize, format: EncodingFormat) -> Self {
        Prescan {
            expected,
            format,
            state: State {
                step: Step::Open,
                data: false,
                model: None,
                usage: None,
                items: (0, 0),
            },
            indexes: Vec::with_capacity(expected),
            at: 0,
            next_try: 0,
            rope: Rope::default(),
            stitch: Vec::new(),
        }
    }

    /// Keeps `chunk` (the answer's next bytes) and walks as far as whole
    /// pieces go.
    pub fn feed(&mut self, chunk: Bytes) {
        let off = self.rope.len();
        self.rope.push(chunk.clone());
        if self.state.step == Step::Closed {
            return;
        }
        if self.stitch.is_empty() {
            // Everything before this chunk was walked.
            self.walk_chunk(&chunk, off);
            return;
        }
        if self.rope.len() < self.next_try {
            self.stitch.extend_from_slice(&chunk);
            return;
        }
        // The piece the last chunk cut, finished from this one: as little
        // of it copied as the walk needs.
        let (mut stitch, base) = (std::mem::take(&mut self.stitch), self.at);
        let mut taken = 0;
        loop {
            let add = stitch.len().max(STITCH).min(chunk.len() - taken);
            stitch.extend_from_slice(&chunk[taken..taken + add]);
            taken += add;
            if self.walk(&stitch, base).is_some() {
                return;
            }
            if self.at >= off {
                // Past the cut: on with the chunk itself.
                self.walk_chunk(&chunk, off);
                return;
            }
            if taken == chunk.len() {
                stitch.drain(..self.at - base);
                self.stitch = stitch;
                self.next_try = self.at + 2 * (self.rope.len() - self.at);
                return;
            }
        }
    }

    /// Walks `chunk` (which starts at `off`) from where the walk is; what
    /// its end cuts is copied to the stitch.
    fn walk_chunk(&mut self, chunk: &[u8], off: usize) {
        if self.walk(chunk, off).is_none() {
            self.stitch.clear();
            self.stitch.extend_from_slice(&chunk[self.at - off..]);
            self.next_try = self.at + 2 * (self.rope.len() - self.at);
        }
    }

    /// The answer as it came, if it is the plain answer (see the module
    /// doc); else the whole answer in one buffer.
    pub fn finish(mut self) -> Result<RawEmbed, Bytes> {
        let s = match self.walk_rest() {
            Some(()) => self.state,
            None => return Err(self.rope.to_bytes()),
        };
        let Some((prompt, total)) = s.usage.filter(|_| s.data) else {
            return Err(self.rope.to_bytes());
        };
        let prompt_tokens = prompt.unwrap_or(0);
        Ok(RawEmbed {
            model: s.model,
            items: s.items,
            indexes: self.indexes,
            count: self.expected,
            prompt_tokens,
            total_tokens: total.unwrap_or(prompt_tokens),
            body: self.rope,
        })
    }

    /// Walks what is left: the answer closed, with only white space after.
    fn walk_rest(&mut self) -> Option<()> {
        if self.state.step != Step::Closed {
            // What was not walked is all in the stitch.
            let stitch = std::mem::take(&mut self.stitch);
            self.walk(&stitch, self.at)?;
        }
        let ws = |c: &u8| matches!(c, b' ' | b'\n' | b'\r' | b'\t');
        self.rope
            .tail(self.at)
            .all(|p| p.iter().all(ws))
            .then_some(())
    }

    /// Steps through `b` (the answer's bytes from `base` on) until the
    /// closing `}` (`Some`) or a piece that does not pass (`None`); what a
    /// step found is kept only when it passes whole.
    fn walk(&mut self, b: &[u8], base: usize) -> Option<()> {
        let mut c = Cursor::new(b);
        loop {
            if self.state.step == Step::Closed {
                return Some(());
            }
            c.at = self.at - base;
            let (state, found) = (self.state, self.indexes.len());
            if self.step(&mut c, b, base).is_none() {
                self.state = state;
                self.indexes.truncate(found);
                return None;
            }
            self.at = base + c.at;
        }
    }

    /// One piece: the `{`, a member (a whole one, or the opening of
    /// `data`), an item of `data` with what follows it, or what follows a
    /// member.
    fn step(&mut self, c: &mut Cursor<'_>, b: &[u8], base: usize) -> Option<()> {
        let s = &mut self.state;
        c.ws();
        s.step = match s.step {
            Step::Open => {
                c.eat(b'{')?;
                c.ws();
                if c.peek()? == b'}' {
                    return None;
                }
                Step::Member
            }
            Step::Member => match c.key()? {
                b"data" if !s.data => {
                    c.eat(b'[')?;
                    s.data = true;
                    s.items.0 = base + c.at;
                    c.ws();
                    if c.peek()? == b']' {
                        s.items.1 = base + c.at;
                        c.at += 1;
                        (self.expected == 0).then_some(Step::AfterMember)?
                    } else {
                        Step::Item(0)
                    }
                }
                b"model" if s.model.is_none() => {
                    let span = c.string()?;
                    s.model = Some((base + span.start, base + span.end));
                    Step::AfterMember
                }
                b"usage" if s.usage.is_none() && c.peek()? == b'{' => {
                    let span = c.value()?;
                    let u = serde_json::from_slice::<UsageIn>(&b[span]).ok()?;
                    s.usage = Some((u.prompt_tokens, u.total_tokens));
                    Step::AfterMember
                }
                b"data" | b"model" | b"usage" | b"error" => return None,
                _ => {
                    c.value()?;
                    Step::AfterMember
                }
            },
            Step::Item(n) => {
                item(c, n, self.format, &mut self.indexes, base)?;
                c.ws();
                match c.next()? {
                    b',' => Step::Item(n + 1),
                    b']' => {
                        s.items.1 = base + c.at - 1;
                        (n + 1 == self.expected).then_some(Step::AfterMember)?
                    }
                    _ => return None,
                }
            }
            Step::AfterMember => match c.next()? {
                b',' => Step::Member,
                b'}' => Step::Closed,
                _ => return None,
            },
            Step::Closed => Step::Closed,
        };
        Some(())
    }
}

/// One item of `data`: `index` == `position` (where it is goes to
/// `indexes`), one `embedding`, each vector jumped over.
fn item(
    c: &mut Cursor<'_>,
    position: usize,
    format: EncodingFormat,
    indexes: &mut Vec<(usize, usize)>,
    base: usize,
) -> Option<()> {
    c.eat(b'{')?;
    c.ws();
    let (mut index, mut embedding) = (false, false);
    loop {
        match c.key()? {
            b"embedding" if !embedding => {
                embedding = true;
                match format {
                    EncodingFormat::Float => {
                        c.eat(b'[')?;
                        // Only bytes of numbers up to the `]` (no `null`,
                        // `NaN`, string or nesting); the numbers
                        // themselves are not read.
                        c.at += numbers(&c.bytes()[c.at..]);
                        c.eat(b']')?;
                    }
                    EncodingFormat::Base64 => {
                        // Base64 holds no escapes.
                        let span = c.string()?;
                        if memchr::memchr(b'\\', &c.bytes()[span]).is_some() {
                            return None;
                        }
                    }
                }
            }
            b"index" if !index => {
                index = true;
                let start = c.at;
                if c.unsigned()? != position as u64 {
                    return None;
                }
                indexes.push((base + start, base + c.at));
            }
            b"embedding" | b"index" => return None,
            _ => {
                c.value()?;
            }
        }
        c.ws();
        match c.next()? {
            b',' => c.ws(),
            b'}' => break,
            _ => return None,
        }
    }
    (index && embedding).then_some(())
}

#[cfg(test)]
#[path = "embeddings_prescan_tests.rs"]
mod tests;
