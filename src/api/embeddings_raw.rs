//! An upstream's embeddings answer passed through as it came: checked by a
//! scan of its bytes, its `usage` read, only its `model` rewritten.
//!
//! Place in the pipeline: behind `api::embeddings` (its parent). A provider
//! that was asked for the client's own encoding hands the answer's bytes,
//! as they arrive, to a [`Prescan`]; the endpoint sends
//! [`RawEmbed::into_parts`]. A 2,048-input answer is megabytes of numbers:
//! the scan walks the answer's structure (the top-level object, each item
//! of `data`, their keys) with `json_check`'s cursor, which checks every
//! other value as JSON, but only checks that a vector holds nothing but the
//! bytes numbers are made of (a base64 one: a string without escapes),
//! without reading a number. Must refuse (return `None`, so the caller
//! parses the answer as before and names any fault) anything but a JSON
//! object with `data` (`expected` items, each with `index` equal to its
//! place and an `embedding` in the asked encoding), a `usage` object and no
//! `error`; must never change a byte outside the `model` value.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::ser::Formatter;

use super::EncodingFormat;
use crate::api::json_check::Cursor;
use numbers::numbers;

#[path = "embeddings_numbers.rs"]
mod numbers;

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

/// The scan of an answer for `expected` inputs in `format`, made while it
/// arrives: [`Prescan::feed`] with what has come so far walks as far as
/// whole pieces go (the top-level members, each item of `data`),
/// [`Prescan::finish`] with the whole answer walks the rest and decides
/// (the answer as it came, if it is the plain answer: see the module doc),
/// exactly as a scan of the whole answer at once would. What
/// was walked is only bytes that came before, so a piece checked early is
/// checked as the whole answer holds it; a piece cut by the end of what
/// has come fails and is walked again from its start once more has come.
/// After such a try the next waits until what is not yet walked has
/// doubled, so an answer arriving in many pieces is walked in linear time.
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
}

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
        }
    }

    /// Walks `so_far` (the answer's first bytes) as far as whole pieces go.
    pub fn feed(&mut self, so_far: &[u8]) {
        if so_far.len() < self.next_try || self.state.step == Step::Closed {
            return;
        }
        if self.walk(so_far).is_none() {
            self.next_try = self.at + 2 * (so_far.len() - self.at);
        }
    }

    /// The answer as it came, if it is the plain answer; `body` is the
    /// whole of it.
    pub fn finish(mut self, body: Bytes) -> Option<RawEmbed> {
        self.walk(&body)?;
        let mut c = Cursor::new(&body[..]);
        c.at = self.at;
        let s = self.state;
        if !c.at_end() || !s.data {
            return None;
        }
        let (prompt, total) = s.usage?;
        let prompt_tokens = prompt.unwrap_or(0);
        Some(RawEmbed {
            model: s.model,
            items: s.items,
            indexes: self.indexes,
            count: self.expected,
            prompt_tokens,
            total_tokens: total.unwrap_or(prompt_tokens),
            body,
        })
    }

    /// Steps through `b` until the closing `}` (`Some`) or a piece that
    /// does not pass (`None`); what a step found is kept only when it
    /// passes whole.
    fn walk(&mut self, b: &[u8]) -> Option<()> {
        let mut c = Cursor::new(b);
        loop {
            if self.state.step == Step::Closed {
                return Some(());
            }
            c.at = self.at;
            let (state, found) = (self.state, self.indexes.len());
            if self.step(&mut c, b).is_none() {
                self.state = state;
                self.indexes.truncate(found);
                return None;
            }
            self.at = c.at;
        }
    }

    /// One piece: the `{`, a member (a whole one, or the opening of
    /// `data`), an item of `data` with what follows it, or what follows a
    /// member.
    fn step(&mut self, c: &mut Cursor<'_>, b: &[u8]) -> Option<()> {
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
                    s.items.0 = c.at;
                    c.ws();
                    if c.peek()? == b']' {
                        s.items.1 = c.at;
                        c.at += 1;
                        (self.expected == 0).then_some(Step::AfterMember)?
                    } else {
                        Step::Item(0)
                    }
                }
                b"model" if s.model.is_none() => {
                    let span = c.string()?;
                    s.model = Some((span.start, span.end));
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
                item(c, n, self.format, &mut self.indexes)?;
                c.ws();
                match c.next()? {
                    b',' => Step::Item(n + 1),
                    b']' => {
                        s.items.1 = c.at - 1;
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
                indexes.push((start, c.at));
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
#[path = "embeddings_raw_tests.rs"]
mod tests;
