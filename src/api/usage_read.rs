//! A usage object read with `json_check`'s cursor instead of `serde_json`:
//! the counts of an answer's `usage`, the same as the derived parse of
//! `Raw` reads them, or nothing when this read cannot vouch for that.
//!
//! Place in the pipeline: under `usage` (its parent), whose read of a
//! whole answer's trailing `usage` tries [`raw_at`] first and falls back to
//! `serde_json` when it says `None`. Through `serde_json` a deserializer
//! is set up, every key matched through a visitor and every count visited
//! as an `Option`; here a key is compared where it lies and a count read
//! from its digits (with the chat scan's `model` and counts read the same
//! way, 0.9 % of a 1 KB chat request's instructions; docs/benchmarks.md,
//! stop 48). Must not accept what the derived parse refuses, nor read a
//! count differently: anything but plain keys, plain non-negative integers,
//! `null`s and the `*_tokens_details` objects (a float, a sign, an escaped
//! key, a field twice, a value the cursor does not vouch for) is left to
//! `serde_json` (a test holds both to the same answers). The check of a
//! whole chat answer (`chat_answer`) reads its top-level `usage` here as
//! it walks past it ([`TopUsage`]), so that the answer's usage and its
//! output tokens are not searched for and read again ([`AnswerUsage`]).

use super::super::json_check::Cursor;
use super::{Details, Dialect, Raw, Usage, output_tokens_hint};

/// A whole answer's usage as the check of its bytes found it: read where
/// it lay (the answer's top level has `usage` once), none (it has no
/// `usage`), or unknown (the body is read again by [`Usage::from_body`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AnswerUsage(Option<Option<Raw>>);

impl AnswerUsage {
    /// Nothing known: whoever asks reads the body.
    pub const UNKNOWN: AnswerUsage = AnswerUsage(None);

    /// The usage in `dialect` of `body`, the answer this was found in:
    /// what [`Usage::from_body`] reads.
    pub fn of(self, dialect: Dialect, body: &[u8]) -> Option<Usage> {
        match self.0 {
            Some(raw) => raw.map(|raw| raw.usage(dialect)),
            None => Usage::from_body(dialect, body),
        }
    }

    /// The output tokens `body` (the answer this was found in) reports:
    /// `completion_tokens`, else `output_tokens`; when unknown, the
    /// [`output_tokens_hint`] of its tail.
    pub fn output_tokens(self, body: &[u8]) -> Option<u64> {
        match self.0 {
            Some(raw) => raw.and_then(|raw| raw.completion_tokens.or(raw.output_tokens)),
            None => output_tokens_hint(body),
        }
    }
}

/// What a walk of an answer's top level has found of its usage, member by
/// member: the walk hands over each key, and the value of a `usage` key.
#[derive(Debug, Default)]
pub(crate) struct TopUsage {
    /// `Some` once a `usage` was read.
    read: Option<Option<Raw>>,
    /// The derived parse of the top level (`Top`) must decide: `usage`
    /// twice, a value this read cannot vouch for, or a `response` or
    /// `message` member (which `Top` reads too).
    unknown: bool,
}

impl TopUsage {
    /// At the value of a top-level member named `key`: a `usage` is read
    /// (the cursor past it), anything else left to the walk (`false`).
    /// `None` only where the walk itself would fail on the value.
    pub(crate) fn member(&mut self, c: &mut Cursor, key: &[u8]) -> Option<bool> {
        if key != b"usage" {
            if key == b"response" || key == b"message" {
                self.unknown = true;
            }
            return Some(false);
        }
        let at = c.at;
        match or_null(c, raw) {
            Some(raw) if self.read.is_none() => self.read = Some(raw),
            // Twice: an error of the derived parse.
            Some(_) => self.unknown = true,
            None => {
                c.at = at;
                c.value()?;
                self.unknown = true;
            }
        }
        Some(true)
    }

    /// What the walk found, once it has vouched for the whole answer.
    pub(crate) fn found(self) -> AnswerUsage {
        if self.unknown {
            AnswerUsage::UNKNOWN
        } else {
            AnswerUsage(Some(self.read.flatten()))
        }
    }
}

/// The usage value at the start of `b` (white space first allowed):
/// `None` for `null`, the counts for an object, and how many bytes of `b`
/// it took; `None` when the derived parse must decide.
pub(super) fn raw_at(b: &[u8]) -> Option<(Option<Raw>, usize)> {
    let mut c = Cursor::new(b);
    c.ws();
    let raw = or_null(&mut c, raw)?;
    Some((raw, c.at))
}

/// The usage object at the cursor.
fn raw(c: &mut Cursor) -> Option<Raw> {
    let mut raw = Raw::default();
    let mut seen = 0u16;
    c.object(|c, key| {
        let (bit, slot): (u16, Slot<'_>) = match key {
            b"prompt_tokens" => (1, Slot::Count(&mut raw.prompt_tokens)),
            b"completion_tokens" => (2, Slot::Count(&mut raw.completion_tokens)),
            b"prompt_tokens_details" => (4, Slot::Details(&mut raw.prompt_tokens_details)),
            b"input_tokens" => (8, Slot::Count(&mut raw.input_tokens)),
            b"output_tokens" => (16, Slot::Count(&mut raw.output_tokens)),
            b"input_tokens_details" => (32, Slot::Details(&mut raw.input_tokens_details)),
            b"cache_read_input_tokens" => (64, Slot::Count(&mut raw.cache_read_input_tokens)),
            b"cache_creation_input_tokens" => {
                (128, Slot::Count(&mut raw.cache_creation_input_tokens))
            }
            // Any other member: checked and passed, as the parse ignores it.
            _ => return c.value().map(drop),
        };
        // A field twice is an error of the derived parse.
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match slot {
            Slot::Count(to) => *to = count(c)?,
            Slot::Details(to) => *to = details(c)?,
        }
        Some(())
    })?;
    Some(raw)
}

/// Where a member's value goes.
enum Slot<'a> {
    Count(&'a mut Option<u64>),
    Details(&'a mut Option<Details>),
}

/// `null` (`Some(None)`) or what `read` reads at the cursor, as the
/// derived parse reads an `Option`.
fn or_null<'a, T>(
    c: &mut Cursor<'a>,
    read: impl FnOnce(&mut Cursor<'a>) -> Option<T>,
) -> Option<Option<T>> {
    match c.peek()? {
        b'n' => c.word(b"null").map(|()| None),
        _ => read(c).map(Some),
    }
}

/// An `Option<u64>` as the derived parse reads it: `null`, or plain
/// digits.
fn count(c: &mut Cursor) -> Option<Option<u64>> {
    or_null(c, Cursor::count)
}

/// `*_tokens_details`: `null`, or an object whose `cached_tokens` is read.
fn details(c: &mut Cursor) -> Option<Option<Details>> {
    or_null(c, |c| {
        let mut d = Details::default();
        let mut seen = false;
        c.object(|c, key| {
            if key != b"cached_tokens" {
                return c.value().map(drop);
            }
            if seen {
                return None;
            }
            seen = true;
            d.cached_tokens = count(c)?;
            Some(())
        })?;
        Some(d)
    })
}
