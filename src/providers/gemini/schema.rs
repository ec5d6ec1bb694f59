//! JSON Schema (tool `parameters`, `response_format.json_schema.schema`) ->
//! Gemini's `Schema`, a subset of the OpenAPI 3.0 schema object.
//!
//! Place in the pipeline: called by [`super::request`] for every tool and
//! for structured output, unless the settings ask for `parametersJsonSchema` /
//! `responseJsonSchema` (JSON Schema passed as is, newer models only).
//!
//! What it does:
//! - copies the keys Gemini's `Schema` has: `format title description
//!   nullable enum required properties items anyOf minItems maxItems
//!   minProperties maxProperties minLength maxLength pattern example default
//!   minimum maximum propertyOrdering`; `type` is upper-cased (`STRING`...);
//! - leaves a free-form object (no `properties`: a map, or any object)
//!   untyped, as `Schema` has no maps and Gemini refuses an OBJECT without
//!   properties;
//! - rewrites what has a Gemini equivalent: `type: [T, "null"]`, `type:
//!   "null"` and `anyOf: [.., {type: null}]` -> `nullable`; other type lists
//!   -> `anyOf`; `oneOf` -> `anyOf`; string `const` -> one-value `enum`;
//!   `$ref` to `#/$defs/..` or `#/definitions/..` -> the definition inlined;
//! - drops keys Gemini rejects that only annotate or constrain what the model
//!   is asked to produce: `$schema $id $comment additionalProperties
//!   propertyNames unevaluatedProperties examples deprecated readOnly
//!   writeOnly exclusiveMinimum exclusiveMaximum multipleOf uniqueItems
//!   contentEncoding contentMediaType` (the Gemini Developer API refuses
//!   `additionalProperties`, see python-genai `process_schema`), and
//!   keywords outside the JSON Schema vocabulary (annotations, by the
//!   specification: clients' own marks such as Codex's `encrypted`);
//! - refuses (Unsupported) what would change the shape asked for: `allOf`,
//!   `not`, `if`/`then`/`else`, `patternProperties`, `prefixItems`,
//!   `contains`, `dependentSchemas`, `dependentRequired`,
//!   `unevaluatedItems`, dynamic references, recursive `$ref`, non-string
//!   enums.
//!
//! Must not change property names or the meaning of what it keeps.

use serde_json::{Map, Value};

use super::{invalid, unsupported};
use crate::providers::translate::TranslateError;

const KEPT: &[&str] = &[
    "format",
    "title",
    "description",
    "nullable",
    "required",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "default",
    "minimum",
    "maximum",
    "propertyOrdering",
];

/// JSON Schema keywords with a say in the shape that `Schema` cannot hold.
const REFUSED: &[&str] = &[
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "prefixItems",
    "contains",
    "minContains",
    "maxContains",
    "dependentSchemas",
    "dependentRequired",
    "dependencies",
    "unevaluatedItems",
    "additionalItems",
    "$dynamicRef",
    "$recursiveRef",
];

/// Converts one JSON Schema document (definitions at its root).
pub fn to_gemini(schema: &Value) -> Result<Value, TranslateError> {
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut cx = Cx {
        defs,
        stack: Vec::new(),
    };
    cx.convert(schema, "#").map(Value::Object)
}

struct Cx<'a> {
    defs: &'a Map<String, Value>,
    /// `$ref` names being inlined, to refuse recursion.
    stack: Vec<&'a str>,
}

impl<'a> Cx<'a> {
    fn convert(
        &mut self,
        node: &'a Value,
        path: &str,
    ) -> Result<Map<String, Value>, TranslateError> {
        let obj = match node {
            Value::Object(obj) => obj,
            Value::Bool(true) => return Ok(Map::new()),
            _ => return Err(invalid(format!("JSON Schema at {path} must be an object"))),
        };
        let mut out = match obj.get("$ref") {
            Some(r) => self.inline_ref(r, path)?,
            None => Map::new(),
        };
        let mut nullable = false;
        for (key, value) in obj {
            let at = || format!("{path}/{key}");
            match key.as_str() {
                "$ref" | "$defs" | "definitions" => {}
                "type" => self.set_type(value, &mut out, &mut nullable, &at())?,
                "properties" => {
                    let props = value
                        .as_object()
                        .ok_or_else(|| invalid(format!("{} must be an object", at())))?;
                    let mut converted = Map::with_capacity(props.len());
                    for (name, sub) in props {
                        converted.insert(
                            name.clone(),
                            Value::Object(self.convert(sub, &format!("{}/{name}", at()))?),
                        );
                    }
                    out.insert("properties".into(), Value::Object(converted));
                }
                "items" => {
                    if value.is_array() {
                        return Err(unsupported(format!(
                            "tuple `items` in JSON Schema ({})",
                            at()
                        )));
                    }
                    out.insert("items".into(), Value::Object(self.convert(value, &at())?));
                }
                "anyOf" | "oneOf" => {
                    let list = value
                        .as_array()
                        .ok_or_else(|| invalid(format!("{} must be an array", at())))?;
                    let mut any = Vec::with_capacity(list.len());
                    for (i, sub) in list.iter().enumerate() {
                        if sub.get("type").and_then(Value::as_str) == Some("null")
                            && sub.as_object().is_some_and(|o| o.len() == 1)
                        {
                            nullable = true;
                        } else {
                            any.push(self.convert(sub, &format!("{}/{i}", at()))?);
                        }
                    }
                    if any.len() == 1 {
                        for (k, v) in any.pop().into_iter().flatten() {
                            out.entry(k).or_insert(v);
                        }
                    } else if !any.is_empty() {
                        out.insert(
                            "anyOf".into(),
                            Value::Array(any.into_iter().map(Value::Object).collect()),
                        );
                    }
                }
                "enum" | "const" => {
                    let values = match value {
                        Value::Array(values) if key == "enum" => values.as_slice(),
                        _ => std::slice::from_ref(value),
                    };
                    let mut strings = Vec::with_capacity(values.len());
                    for v in values {
                        match v {
                            Value::String(_) => strings.push(v.clone()),
                            Value::Null => nullable = true,
                            _ => {
                                return Err(unsupported(format!(
                                    "non-string `{key}` values in JSON Schema ({})",
                                    at()
                                )));
                            }
                        }
                    }
                    out.insert("enum".into(), Value::Array(strings));
                }
                k if KEPT.contains(&k) => {
                    out.insert(key.clone(), value.clone());
                }
                k if REFUSED.contains(&k) => {
                    return Err(unsupported(format!("JSON Schema keyword `{key}` ({path})")));
                }
                // DROPPED, and keywords outside the vocabulary: annotations.
                _ => {}
            }
        }
        if nullable {
            out.insert("nullable".into(), Value::Bool(true));
        }
        // `Schema` has no maps, and Gemini refuses an OBJECT without
        // properties: a free-form object is left untyped (any value).
        let no_properties = out
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if out.get("type").and_then(Value::as_str) == Some("OBJECT") && no_properties {
            out.remove("type");
            out.remove("properties");
        }
        Ok(out)
    }

    fn inline_ref(&mut self, r: &Value, path: &str) -> Result<Map<String, Value>, TranslateError> {
        let r = r.as_str().unwrap_or_default();
        let name = r
            .strip_prefix("#/$defs/")
            .or_else(|| r.strip_prefix("#/definitions/"))
            .ok_or_else(|| {
                unsupported(format!(
                    "JSON Schema `$ref` other than to local definitions ({path})"
                ))
            })?;
        let (name, target) = self.defs.get_key_value(name).ok_or_else(|| {
            invalid(format!(
                "JSON Schema `$ref` to unknown definition `{name}` ({path})"
            ))
        })?;
        if self.stack.contains(&name.as_str()) {
            return Err(unsupported(format!(
                "recursive JSON Schema `$ref` to `{name}`"
            )));
        }
        self.stack.push(name);
        let out = self.convert(target, &format!("#/$defs/{name}"));
        self.stack.pop();
        out
    }

    fn set_type(
        &self,
        value: &Value,
        out: &mut Map<String, Value>,
        nullable: &mut bool,
        path: &str,
    ) -> Result<(), TranslateError> {
        let names: Vec<&str> = match value {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => {
                return Err(invalid(format!(
                    "{path} must be a string or an array of strings"
                )));
            }
        };
        let mut types = Vec::with_capacity(names.len());
        for name in names {
            match name {
                "null" => *nullable = true,
                "string" | "number" | "integer" | "boolean" | "array" | "object" => {
                    types.push(Value::String(name.to_ascii_uppercase()))
                }
                other => {
                    return Err(invalid(format!(
                        "unknown JSON Schema type `{other}` ({path})"
                    )));
                }
            }
        }
        match types.len() {
            0 => {}
            1 => {
                out.insert("type".into(), types.swap_remove(0));
            }
            _ => {
                let any = types
                    .into_iter()
                    .map(|t| serde_json::json!({ "type": t }))
                    .collect();
                out.insert("anyOf".into(), Value::Array(any));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
