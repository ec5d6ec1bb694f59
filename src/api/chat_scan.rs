//! The quick read of a chat body: what routing needs, every byte
//! validated, no tree.
//!
//! Place in the pipeline: `chat_body` calls [`scan`] on the client's bytes
//! when `server` parses a chat request. It drives `serde_json`'s own parser
//! over the whole body (every value visited as a full parse visits it:
//! numbers parsed, strings checked, the same depth limit), so it accepts
//! exactly what the full parse accepts, and reads `model` (and where its
//! value sits), `stream`, `messages`' shape and the fields estimates and
//! providers ask about. Must not decide errors: on anything doubtful it
//! says `None` and the full parse words the answer.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

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
/// or when the bytes cannot be sent as they are (a duplicate or escaped
/// top-level key): the caller parses fully, which gives today's answer.
pub fn scan(raw: &[u8]) -> Option<Head> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let top = TopSeed {
        base: raw.as_ptr() as usize,
    };
    let head = top.deserialize(&mut de).ok()?;
    de.end().ok()?;
    (!head.model.is_empty()).then_some(head)
}

/// More top-level keys than this: the full parse (duplicates are checked
/// on a stack array).
const MAX_KEYS: usize = 64;

/// The output bounds, in the order `estimate::max_output_tokens` reads
/// them.
const BOUNDS: [&str; 3] = ["max_completion_tokens", "max_tokens", "max_output_tokens"];

struct TopSeed {
    base: usize,
}

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Head;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Head, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head::default();
        let (mut keys, mut count) = ([""; MAX_KEYS], 0);
        let mut messages = false;
        let mut model = false;
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            if count == MAX_KEYS || keys[..count].contains(&key) {
                return Err(de::Error::custom("to the full parse"));
            }
            keys[count] = key;
            count += 1;
            match (key, BOUNDS.iter().position(|b| *b == key)) {
                ("model", _) => {
                    let v: &'de RawValue = map.next_value()?;
                    let s = v.get();
                    // The string itself, as strictly as the full parse
                    // reads it (escapes, surrogates).
                    head.model = match s.starts_with('"') {
                        true => serde_json::from_str(s).map_err(de::Error::custom)?,
                        false => return Err(de::Error::custom("not a string")),
                    };
                    let start = s.as_ptr() as usize - self.base;
                    head.model_span = start..start + s.len();
                    model = true;
                }
                ("messages", _) => messages = map.next_value_seed(NonEmptyArray)?,
                ("stream", _) => {
                    head.stream = match map.next_value()? {
                        Peek::Null => false,
                        Peek::Bool(b) => b,
                        _ => return Err(de::Error::custom("not a boolean")),
                    }
                }
                ("store", _) => head.store = matches!(map.next_value()?, Peek::Bool(true)),
                ("n", _) => head.n = map.next_value::<Peek>()?.u64(),
                ("top_k", _) => head.top_k = map.next_value::<Peek>()?.u64(),
                ("reasoning_effort", _) => {
                    head.reasoning_effort = match map.next_value()? {
                        Peek::Str(s) => Some(s),
                        _ => None,
                    }
                }
                ("stream_options", _) => head.stream_options = map.next_value_seed(OptsSeed)?,
                (_, Some(k)) => head.bounds[k] = map.next_value::<Peek>()?.u64(),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        if !(model && messages) {
            return Err(de::Error::custom("to the full parse"));
        }
        Ok(head)
    }
}

/// A top-level key as it is in the bytes (an escaped one is refused).
struct BorrowedKey;

impl<'de> DeserializeSeed<'de> for BorrowedKey {
    type Value = &'de str;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<&'de str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for BorrowedKey {
    type Value = &'de str;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<&'de str, E> {
        Ok(v)
    }
}

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
        SkipVisitor.visit_seq(seq).map(|_| Peek::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Peek, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Peek::Other)
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
        SkipVisitor.visit_seq(seq).map(|_| Opts::Other)
    }
}

/// `messages`: a non-empty array (anything else: the full parse says
/// what is wrong).
struct NonEmptyArray;

impl<'de> DeserializeSeed<'de> for NonEmptyArray {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NonEmptyArray {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-empty array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut n = 0usize;
        while seq.next_element::<Skip>()?.is_some() {
            n += 1;
        }
        match n {
            0 => Err(de::Error::custom("empty")),
            _ => Ok(true),
        }
    }
}

/// Any value, visited as the full parse visits it (every number parsed,
/// every string checked), nothing kept.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}
