//! Example values from a JSON schema, for the mock's tool calls and
//! structured outputs.
//!
//! Place in the pipeline: used by the `mock` kind only, when it answers a
//! forced tool call or a `response_format` of type `json_schema`. Builds a
//! small value that matches the schema: required properties (all of them
//! when `required` is absent) filled by type, `enum`/`const` honoured, the
//! first of `anyOf`/`oneOf`, local `$ref`s followed. Deterministic; must not
//! fail on odd schemas (anything it cannot read becomes `null`) nor recurse
//! without bound.

use serde_json::{Map, Value, json};

/// How deep nested schemas are followed (`$ref` cycles end here).
const MAX_DEPTH: usize = 8;

/// A value matching `schema`, whose own `$ref`s resolve against itself.
pub(super) fn example(schema: &Value) -> Value {
    value(schema, schema, "", 0)
}

fn value(schema: &Value, root: &Value, name: &str, depth: usize) -> Value {
    let Some(s) = schema.as_object() else {
        return json!("example");
    };
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(first) = s
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(target) = s.get("$ref").and_then(Value::as_str) {
        return match resolve(root, target) {
            Some(inner) => value(inner, root, name, depth + 1),
            None => Value::Null,
        };
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|a| {
            // Prefer a branch that is not `null`.
            a.iter()
                .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .or(a.first())
        }) {
            return value(first, root, name, depth + 1);
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if s.contains_key("properties") => "object",
        _ => "string",
    };
    match ty {
        "object" => object(s, root, depth),
        "array" => {
            let count = s
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .min(8);
            let items = s.get("items").unwrap_or(&Value::Null);
            Value::Array(
                (0..count)
                    .map(|_| value(items, root, name, depth + 1))
                    .collect(),
            )
        }
        "integer" => json!(bounded(s, 1.0).round() as i64),
        "number" => json!(bounded(s, 1.5)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!(text(name, s.get("format").and_then(Value::as_str))),
    }
}

fn object(s: &Map<String, Value>, root: &Value, depth: usize) -> Value {
    let empty = Map::new();
    let props = s
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = match s.get("required").and_then(Value::as_array) {
        Some(r) => r.iter().filter_map(Value::as_str).collect(),
        None => props.keys().map(String::as_str).collect(),
    };
    let mut out = Map::new();
    for key in required {
        let schema = props.get(key).unwrap_or(&Value::Null);
        out.insert(key.to_string(), value(schema, root, key, depth + 1));
    }
    Value::Object(out)
}

/// `#/$defs/X`, `#/definitions/X` or `#`: a pointer into the root schema.
fn resolve<'a>(root: &'a Value, target: &str) -> Option<&'a Value> {
    let pointer = target.strip_prefix('#')?;
    root.pointer(pointer)
}

/// `preferred`, moved inside `minimum`/`maximum` when they exclude it.
fn bounded(s: &Map<String, Value>, preferred: f64) -> f64 {
    let min = s.get("minimum").and_then(Value::as_f64);
    let max = s.get("maximum").and_then(Value::as_f64);
    let mut v = preferred;
    if let Some(min) = min {
        v = v.max(min);
    }
    if let Some(max) = max {
        v = v.min(max);
    }
    v
}

/// A plausible string for a property called `name`.
fn text(name: &str, format: Option<&str>) -> String {
    let lower = name.to_ascii_lowercase();
    let pick = match format {
        Some("date-time") => "2025-01-01T12:00:00Z",
        Some("date") => "2025-01-01",
        Some("email") => "user@example.com",
        Some("uri") | Some("url") => "https://example.com",
        _ if lower.contains("location") || lower.contains("city") => "San Francisco, CA",
        _ if lower.contains("date") => "2025-01-01",
        _ if lower.contains("email") => "user@example.com",
        _ if lower.contains("url") => "https://example.com",
        _ if lower.contains("name") => "Ada Lovelace",
        _ if lower.contains("unit") => "celsius",
        _ if lower.contains("query") || lower.contains("question") => "example query",
        _ => "example",
    };
    pick.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_properties_are_filled_by_type() {
        let schema = json!({"type": "object", "properties": {
            "location": {"type": "string"}, "unit": {"type": "string", "enum": ["f", "c"]},
            "days": {"type": "integer", "minimum": 3}, "ratio": {"type": "number"},
            "ok": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}},
            "optional": {"type": "string"}},
            "required": ["location", "unit", "days", "ratio", "ok", "tags"]});
        assert_eq!(
            example(&schema),
            json!({"location": "San Francisco, CA", "unit": "f", "days": 3, "ratio": 1.5,
                   "ok": true, "tags": ["example"]})
        );
    }

    #[test]
    fn refs_nullable_types_and_cycles_are_followed_safely() {
        let schema = json!({"type": "object", "required": ["a", "b", "self"],
            "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"type": ["null", "integer"]},
                           "self": {"$ref": "#"}},
            "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string"}}}}});
        let v = example(&schema);
        assert_eq!(v["a"], json!({"x": "example"}));
        assert_eq!(v["b"], json!(1));
        assert!(v["self"].is_object());
        assert_eq!(example(&json!("odd")), json!("example"));
    }
}
