//! JSON Schema to Gemini's OpenAPI subset: the weather tool, `$ref`s
//! inlined and optional `anyOf` collapsed, annotations dropped, and what
//! Gemini cannot express refused.

use super::*;
use serde_json::json;

#[test]
fn openai_weather_tool_becomes_openapi_subset() {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "City and state"},
            "unit": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "exclusiveMinimum": 0}
        },
        "required": ["location"],
        "additionalProperties": false
    });
    assert_eq!(
        to_gemini(&schema).unwrap(),
        json!({
            "type": "OBJECT",
            "properties": {
                "location": {"type": "STRING", "description": "City and state"},
                "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"], "nullable": true},
                "days": {"type": "INTEGER"}
            },
            "required": ["location"]
        })
    );
}

#[test]
fn refs_are_inlined_and_optional_any_of_collapses() {
    let schema = json!({
        "type": "object",
        "$defs": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "properties": {
            "pet": {"anyOf": [{"$ref": "#/$defs/Pet"}, {"type": "null"}], "default": null},
            "tag": {"const": "x"},
            "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "xs": {"type": "array", "items": {"type": ["number", "boolean"]}}
        }
    });
    let out = to_gemini(&schema).unwrap();
    assert_eq!(
        out["properties"]["pet"],
        json!({"type": "OBJECT", "properties": {"name": {"type": "STRING"}}, "nullable": true, "default": null})
    );
    assert_eq!(out["properties"]["tag"], json!({"enum": ["x"]}));
    assert_eq!(
        out["properties"]["id"]["anyOf"],
        json!([{"type": "STRING"}, {"type": "INTEGER"}])
    );
    assert_eq!(
        out["properties"]["xs"]["items"],
        json!({"anyOf": [{"type": "NUMBER"}, {"type": "BOOLEAN"}]})
    );
    assert!(out.get("$defs").is_none());
}

#[test]
fn annotations_and_key_constraints_are_dropped() {
    // Codex marks a property `encrypted`; Claude Code constrains keys.
    let out = to_gemini(&json!({"type": "object", "properties": {
        "message": {"type": "string", "encrypted": true},
        "metadata": {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"},
                     "additionalProperties": {"type": "string"},
                     "properties": {"a": {"type": "string"}}}}}))
    .unwrap();
    assert_eq!(
        out,
        json!({"type": "OBJECT", "properties": {
            "message": {"type": "STRING"},
            "metadata": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}}})
    );
    // A map: no properties, only additionalProperties.
    let out = to_gemini(&json!({"type": "object", "properties": {
        "labels": {"type": "object", "description": "Any labels.",
                   "additionalProperties": {"type": "string"}}}}))
    .unwrap();
    assert_eq!(
        out,
        json!({"type": "OBJECT", "properties": {"labels": {"description": "Any labels."}}})
    );
}

#[test]
fn refuses_what_gemini_cannot_express() {
    let unsupported = |s: Value| match to_gemini(&s) {
        Err(TranslateError::Unsupported { feature, .. }) => feature,
        other => panic!("expected Unsupported, got {other:?}"),
    };
    assert!(unsupported(json!({"allOf": [{"type": "string"}]})).contains("allOf"));
    assert!(
        unsupported(json!({"type": "object", "patternProperties": {"^a": {}}}))
            .contains("patternProperties")
    );
    assert!(unsupported(json!({"type": "integer", "enum": [1, 2]})).contains("non-string"));
    let recursive = json!({"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
                           "$ref": "#/$defs/Node"});
    assert!(unsupported(recursive).contains("recursive"));
    assert!(matches!(
        to_gemini(&json!({"type": "date"})),
        Err(TranslateError::InvalidRequest(_))
    ));
    assert!(matches!(
        to_gemini(&json!({"$ref": "#/$defs/Missing"})),
        Err(TranslateError::InvalidRequest(_))
    ));
}
