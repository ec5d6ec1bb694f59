//! Shape: a YAML node tree -> raw policy types, reporting every wrong key
//! and every wrong type instead of stopping at the first.
//!
//! Place in the pipeline: between `node` (YAML syntax) and `validate`
//! (meaning). It is a serde [`Deserializer`] over a [`Node`] tree, so the raw
//! types in `raw` keep describing what a file may say. Where serde-saphyr
//! would stop, this records a [`Finding`] (line, dotted path, the message
//! serde-saphyr gives) and goes on: an unknown key is skipped, a value of the
//! wrong type is replaced by a neutral placeholder (`0`, `""`, an empty list
//! or map). It also records the line of every key and list item, which is how
//! later checks point at a field's own line. Scalars are typed by
//! serde-saphyr itself (from their source text), so values read exactly as
//! a direct `serde_saphyr::from_str` would. Must not apply defaults or
//! meaning; must not fail on any input.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::StringDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

use super::node::{Kind, Node, join, message_of};

/// What reading one file found: problems, and the line of every path.
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub errors: Vec<Finding>,
    pub lines: Vec<(String, u64)>,
}

/// One problem at one place of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finding {
    pub line: u64,
    pub path: String,
    pub message: String,
}

/// Reads `T` from `root`; never fails, every problem is in the findings.
pub(super) fn read<T: DeserializeOwned + Default>(root: &Node) -> (T, Findings) {
    let out = RefCell::new(Findings::default());
    let value = T::deserialize(De {
        node: root,
        path: String::new(),
        out: &out,
    });
    let mut findings = out.into_inner();
    let value = value.unwrap_or_else(|e| {
        // Placeholders make this unreachable for the raw types; keep going anyway.
        findings.errors.push(Finding {
            line: root.line,
            path: String::new(),
            message: e.to_string(),
        });
        T::default()
    });
    (value, findings)
}

/// An error inside the walk (only serde's own visitors produce these).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct ShapeError(String);

impl de::Error for ShapeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ShapeError(msg.to_string())
    }
}

struct De<'a> {
    node: &'a Node,
    path: String,
    out: &'a RefCell<Findings>,
}

impl De<'_> {
    fn fail(&self, message: impl Into<String>) {
        self.out.borrow_mut().errors.push(Finding {
            line: self.node.line,
            path: self.path.clone(),
            message: message.into(),
        });
    }

    /// A scalar typed the way serde-saphyr types it, or a recorded error and `T::default()`.
    fn scalar<T: DeserializeOwned + Default>(&self) -> T {
        if matches!(self.node.kind, Kind::Seq(_) | Kind::Map(_)) {
            self.fail("expected string scalar");
            return T::default();
        }
        serde_saphyr::from_str::<T>(&self.node.raw).unwrap_or_else(|e| {
            self.fail(message_of(&e));
            T::default()
        })
    }

    fn string(&self) -> String {
        match &self.node.kind {
            Kind::Str(s) => s.clone(),
            Kind::Bool(_) | Kind::UInt(_) | Kind::Int(_) | Kind::Float(_) => self.node.raw.clone(),
            Kind::Null | Kind::Seq(_) | Kind::Map(_) => self.scalar::<String>(),
        }
    }

    fn map_access<'a>(&'a self, fields: Option<&'static [&'static str]>) -> MapDe<'a> {
        let entries: &[(Node, Node)] = match &self.node.kind {
            Kind::Map(entries) => entries,
            _ => {
                self.fail("expected mapping start");
                &[]
            }
        };
        MapDe {
            entries: entries.iter(),
            value: None,
            fields,
            path: &self.path,
            out: self.out,
        }
    }
}

macro_rules! scalar_methods {
    ($($method:ident => $visit:ident: $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
            visitor.$visit(self.scalar::<$ty>())
        }
    )*};
}

impl<'de> Deserializer<'de> for De<'_> {
    type Error = ShapeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        match &self.node.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::UInt(n) => visitor.visit_u64(*n),
            Kind::Int(n) => visitor.visit_i64(*n),
            Kind::Float(f) => visitor.visit_f64(*f),
            Kind::Str(s) => visitor.visit_str(s),
            Kind::Seq(_) => self.deserialize_seq(visitor),
            Kind::Map(_) => self.deserialize_map(visitor),
        }
    }

    scalar_methods! {
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
        deserialize_char => visit_char: char,
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_string(self.string())
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_string(self.string())
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_string(self.string())
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_byte_buf(self.string().into_bytes())
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_byte_buf(self.string().into_bytes())
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        match self.node.kind {
            Kind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        let items: &[Node] = match &self.node.kind {
            Kind::Seq(items) => items,
            _ => {
                self.fail("expected sequence start");
                &[]
            }
        };
        visitor.visit_seq(SeqDe {
            items: items.iter().enumerate(),
            path: &self.path,
            out: self.out,
        })
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_map(self.map_access(None))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        visitor.visit_map(self.map_access(Some(fields)))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        // Unit variants only (`key: variant`); the raw types use plain strings.
        visitor.visit_enum(self.string().into_deserializer())
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_unit()
    }
}

/// Items of a list; each item's line is recorded under `path[i]`.
struct SeqDe<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: &'a str,
    out: &'a RefCell<Findings>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = ShapeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ShapeError> {
        let Some((i, node)) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{i}]", self.path);
        self.out.borrow_mut().lines.push((path.clone(), node.line));
        seed.deserialize(De {
            node,
            path,
            out: self.out,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Entries of a mapping; each key's line is recorded under `path.key`. With
/// `fields` (a struct), keys outside it are reported and skipped.
struct MapDe<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<(&'a Node, String)>,
    fields: Option<&'static [&'static str]>,
    path: &'a str,
    out: &'a RefCell<Findings>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = ShapeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ShapeError> {
        for (key_node, value) in self.entries.by_ref() {
            let key_de = De {
                node: key_node,
                path: self.path.to_string(),
                out: self.out,
            };
            let key = match key_node.kind {
                Kind::Seq(_) | Kind::Map(_) => {
                    key_de.fail("expected string scalar");
                    continue;
                }
                _ => key_de.string(),
            };
            let path = join(self.path, &key);
            self.out
                .borrow_mut()
                .lines
                .push((path.clone(), key_node.line));
            if let Some(fields) = self.fields
                && !fields.contains(&key.as_str())
            {
                self.out.borrow_mut().errors.push(Finding {
                    line: key_node.line,
                    path,
                    message: format!(
                        "unknown field `{key}`, expected one of {}",
                        fields.join(", ")
                    ),
                });
                continue;
            }
            self.value = Some((value, path));
            let key: StringDeserializer<ShapeError> = key.into_deserializer();
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ShapeError> {
        let Some((node, path)) = self.value.take() else {
            return Err(de::Error::custom("value asked for before its key"));
        };
        seed.deserialize(De {
            node,
            path,
            out: self.out,
        })
    }
}
