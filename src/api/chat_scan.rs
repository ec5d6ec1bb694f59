//! The quick read of a chat body: what routing needs, every byte
//! validated, no tree.
//!
//! Place in the pipeline: `chat_body` calls [`scan`] on the client's bytes
//! when `server` parses a chat request. It walks the top-level object with
//! `json_check`'s cursor, which checks every value (every string's bytes
//! and escapes, every number's form, the nesting) and accepts nothing the
//! full parse refuses, and reads `model` (and where its value sits),
//! `stream`, `messages`' shape and the fields estimates and providers ask
//! about (small values, read by `serde_json`). Must not decide errors: on
//! anything doubtful it says `None` and the full parse words the answer.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::json_check::Cursor;

/// What [`scan`] read of a body, with the semantics of the same reads on
/// the parsed tree (`Value::as_u64`, `as_bool`, `as_str`).
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub model: String,
    /// Where `model`'s value (a JSON string, quotes included) sits.
    pub(super) model_span: Range<usize>,
    pub stream: bool,
    /// `store: true`.
    pub store: bool,
    /// `max_completion_tokens`, `max_tokens`, `max_output_tokens`.
    pub(super) bounds: [Option<u64>; 3],
    pub(super) n: Option<u64>,
    pub(super) stream_options: Opts,
    pub reasoning_effort: Option<String>,
    pub top_k: Option<u64>,
}

/// The client's `stream_options`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) enum Opts {
    #[default]
    Absent,
    Null,
    Object {
        include_usage: bool,
    },
    /// Anything else: left alone (the upstream judges it).
    Other,
}

impl Head {
    /// As `estimate::max_output_tokens` reads the tree.
    pub fn max_output_tokens(&self) -> u64 {
        let bound = self.bounds.iter().find_map(|b| *b).unwrap_or(0);
        bound.saturating_mul(self.n.unwrap_or(1).max(1))
    }
}

/// Reads what routing needs of a chat body, validating all of it; `None`
/// when the body is not a valid chat request as the full parse judges it,
/// when the check refuses what it cannot vouch for (see `json_check`), or
/// when the bytes cannot be sent as they are (a duplicate or escaped
/// top-level key): the caller parses fully, which gives today's answer.
pub fn scan(raw: &[u8]) -> Option<Head> {
    let mut c = Cursor::new(raw);
    c.ws();
    c.eat(b'{')?;
    c.ws();
    let mut head = Head::default();
    let (mut keys, mut count) = ([&b""[..]; MAX_KEYS], 0);
    let (mut model, mut messages) = (false, false);
    while c.peek()? != b'}' {
        let key = c.key()?;
        if count == MAX_KEYS || keys[..count].contains(&key) {
            return None;
        }
        keys[count] = key;
        count += 1;
        match (key, BOUNDS.iter().position(|b| *b == key)) {
            (b"model", _) => {
                let span = c.string()?;
                // The string itself, as strictly as the full parse reads
                // it: as it is when it has no escape (the cursor checked
                // its bytes), else by `serde_json` (escapes, surrogates).
                let inside = &raw[span.start + 1..span.end - 1];
                head.model = if inside.contains(&b'\\') {
                    serde_json::from_slice(&raw[span.clone()]).ok()?
                } else {
                    std::str::from_utf8(inside).ok()?.to_owned()
                };
                head.model_span = span;
                model = true;
            }
            (b"messages", _) => {
                // A non-empty array (anything else: the full parse says
                // what is wrong).
                let span = c.value()?;
                let inside = match raw[span.start] {
                    b'[' => &raw[span.start + 1..span.end - 1],
                    _ => return None,
                };
                messages = inside.iter().any(|b| !b.is_ascii_whitespace());
                if !messages {
                    return None;
                }
            }
            (b"stream", _) => {
                head.stream = match read(&mut c)? {
                    Peek::Null => false,
                    Peek::Bool(b) => b,
                    _ => return None,
                }
            }
            (b"store", _) => head.store = matches!(read(&mut c)?, Peek::Bool(true)),
            (b"n", _) => head.n = read_count(&mut c)?,
            (b"top_k", _) => head.top_k = read_count(&mut c)?,
            (b"reasoning_effort", _) => {
                head.reasoning_effort = match read(&mut c)? {
                    Peek::Str(s) => Some(s),
                    _ => None,
                }
            }
            (b"stream_options", _) => head.stream_options = read::<OptsValue>(&mut c)?.0,
            (_, Some(k)) => head.bounds[k] = read_count(&mut c)?,
            _ => {
                c.value()?;
            }
        }
        c.after_member()?;
    }
    c.eat(b'}')?;
    (c.at_end() && model && messages && !head.model.is_empty()).then_some(head)
}

/// One value checked by the cursor, then read by `serde_json` (a small
/// one: a flag, a number, `stream_options`).
fn read<T: de::DeserializeOwned>(c: &mut Cursor) -> Option<T> {
    let span = c.value()?;
    serde_json::from_slice(&c.bytes()[span]).ok()
}

/// A count as `Value::as_u64` reads it: plain digits read by the cursor
/// (what `max_tokens` nearly always is), anything else by [`read`].
fn read_count(c: &mut Cursor) -> Option<Option<u64>> {
    match c.count() {
        Some(v) => Some(Some(v)),
        None => Some(read::<Peek>(c)?.u64()),
    }
}

/// More top-level keys than this: the full parse (duplicates are checked
/// on a stack array).
const MAX_KEYS: usize = 64;

/// The output bounds, in the order `estimate::max_output_tokens` reads
/// them.
const BOUNDS: [&[u8]; 3] = [
    b"max_completion_tokens",
    b"max_tokens",
    b"max_output_tokens",
];

/// A value, validated, with the scalars routing reads.
enum Peek {
    Null,
    Bool(bool),
    U64(u64),
    Str(String),
    Other,
}

impl Peek {
    fn u64(self) -> Option<u64> {
        match self {
            Peek::U64(v) => Some(v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Peek {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Peek, D::Error> {
        d.deserialize_any(PeekVisitor)
    }
}

struct PeekVisitor;

impl<'de> Visitor<'de> for PeekVisitor {
    type Value = Peek;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Peek, E> {
        Ok(Peek::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Peek, E> {
        Ok(Peek::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Peek, E> {
        Ok(Peek::U64(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Peek, E> {
        Ok(Peek::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Peek, E> {
        Ok(Peek::Other)
    }
    fn visit_str<E>(self, v: &str) -> Result<Peek, E> {
        Ok(Peek::Str(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Peek, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Peek::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Peek, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Peek::Other)
    }
}

/// `stream_options` as [`OptsSeed`] reads it.
struct OptsValue(Opts);

impl<'de> Deserialize<'de> for OptsValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<OptsValue, D::Error> {
        OptsSeed.deserialize(d).map(OptsValue)
    }
}

/// `stream_options`: whether it is an object with `include_usage: true`
/// (the last member of that name wins, as in the tree).
struct OptsSeed;

impl<'de> DeserializeSeed<'de> for OptsSeed {
    type Value = Opts;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Opts, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OptsSeed {
    type Value = Opts;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Opts, A::Error> {
        let mut include_usage = false;
        while let Some(key) = map.next_key::<Peek>()? {
            let value: Peek = map.next_value()?;
            if matches!(&key, Peek::Str(k) if k == "include_usage") {
                include_usage = matches!(value, Peek::Bool(true));
            }
        }
        Ok(Opts::Object { include_usage })
    }
    fn visit_unit<E>(self) -> Result<Opts, E> {
        Ok(Opts::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Opts, E> {
        Ok(Opts::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Opts, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Opts::Other)
    }
}
