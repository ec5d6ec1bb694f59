//! Embeddings through Cohere's `POST /v2/embed`.
//!
//! Place in the pipeline: the gateway splits inputs into batches of at most
//! [`MAX_BATCH_INPUTS`]; the `cohere` provider sends [`embed_request`] and
//! decodes the answer with [`embed_response`].
//!
//! Request: `{"model", "texts": [...], "input_type", "embedding_types":
//! ["float"], "truncate"?}`. `input_type` is the provider's
//! ([`CohereEmbedSettings`], default `search_document`) unless the client's
//! body names one (`"input_type": "search_query"`: passed through as is);
//! `dimensions` -> `output_dimension` (embed-v4 and newer); `user` is
//! dropped. Token-id inputs and any other field are Unsupported: Cohere
//! embeds text, and a silently dropped field would change the vectors.
//!
//! Response: `embeddings.float` in input order (count checked), usage from
//! `meta.billed_units.input_tokens`. Must not reorder or drop vectors.

use serde_json::{Map, Value, json};

use super::{bad_response, invalid, unsupported};
use crate::api::embeddings::EmbedReply;
use crate::providers::translate::TranslateError;

/// `texts` holds at most 96 items per call.
pub const MAX_BATCH_INPUTS: usize = 96;

/// The `input_type` sent when neither provider nor client names one.
pub const DEFAULT_INPUT_TYPE: &str = "search_document";

/// The input types Cohere's text embeddings take.
pub const INPUT_TYPES: &[&str] = &[
    "search_document",
    "search_query",
    "classification",
    "clustering",
];

/// The values of `truncate`.
pub const TRUNCATE: &[&str] = &["NONE", "START", "END"];

/// Per-provider knobs for embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct CohereEmbedSettings {
    pub input_type: String,
    /// `NONE`, `START` or `END`; none: Cohere's default (`END`).
    pub truncate: Option<String>,
}

impl Default for CohereEmbedSettings {
    fn default() -> Self {
        CohereEmbedSettings {
            input_type: DEFAULT_INPUT_TYPE.to_string(),
            truncate: None,
        }
    }
}

pub fn embed_request(
    inputs: &[Value],
    model: &str,
    extra: &Map<String, Value>,
    settings: &CohereEmbedSettings,
) -> Result<Value, TranslateError> {
    if inputs.is_empty() || inputs.len() > MAX_BATCH_INPUTS {
        return Err(invalid(format!(
            "a Cohere embed call takes 1 to {MAX_BATCH_INPUTS} texts, got {}",
            inputs.len()
        )));
    }
    let mut input_type = Value::from(settings.input_type.as_str());
    let mut output_dimension = None;
    for (key, value) in extra {
        match key.as_str() {
            "user" => {}
            _ if value.is_null() => {}
            "input_type" => {
                if !value.is_string() {
                    return Err(invalid("`input_type` must be a string"));
                }
                input_type = value.clone();
            }
            "dimensions" => {
                let d = value
                    .as_u64()
                    .filter(|d| *d > 0)
                    .ok_or_else(|| invalid("`dimensions` must be a positive integer"))?;
                output_dimension = Some(d);
            }
            other => return Err(unsupported(format!("embeddings field `{other}`"))),
        }
    }
    let texts = inputs
        .iter()
        .map(|input| {
            input
                .as_str()
                .map(Value::from)
                .ok_or_else(|| unsupported("token-id embedding inputs (Cohere embeds text only)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = json!({
        "model": model,
        "texts": texts,
        "input_type": input_type,
        "embedding_types": ["float"],
    });
    if let Some(truncate) = &settings.truncate {
        body["truncate"] = Value::from(truncate.as_str());
    }
    if let Some(d) = output_dimension {
        body["output_dimension"] = Value::from(d);
    }
    Ok(body)
}

pub fn embed_response(upstream: &[u8], expected: usize) -> Result<EmbedReply, TranslateError> {
    let v: Value =
        serde_json::from_slice(upstream).map_err(|e| bad_response(format!("invalid JSON: {e}")))?;
    let floats = v
        .get("embeddings")
        .and_then(|e| e.get("float"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad_response("missing `embeddings.float` array"))?;
    if floats.len() != expected {
        return Err(bad_response(format!(
            "expected {expected} embeddings, upstream returned {}",
            floats.len()
        )));
    }
    let vectors = floats
        .iter()
        .map(|e| {
            e.as_array()
                .and_then(|xs| xs.iter().map(|x| x.as_f64().map(|f| f as f32)).collect())
                .ok_or_else(|| bad_response("an embedding that is not an array of numbers"))
        })
        .collect::<Result<Vec<Vec<f32>>, _>>()?;
    let tokens = v
        .pointer("/meta/billed_units/input_tokens")
        .and_then(Value::as_f64)
        .map_or(0, |t| t.max(0.0) as u64);
    Ok(EmbedReply {
        vectors,
        prompt_tokens: tokens,
        total_tokens: tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_as_in_the_reference() {
        // The reference's example: texts hello/goodbye, embed-v4.0, float.
        let out = embed_request(
            &[json!("hello"), json!("goodbye")],
            "embed-v4.0",
            &Map::new(),
            &CohereEmbedSettings::default(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"model": "embed-v4.0", "texts": ["hello", "goodbye"],
                   "input_type": "search_document", "embedding_types": ["float"]})
        );
    }

    #[test]
    fn client_input_type_dimensions_and_truncate() {
        let settings = CohereEmbedSettings {
            input_type: "classification".into(),
            truncate: Some("START".into()),
        };
        let extra = json!({"input_type": "search_query", "dimensions": 512, "user": "u-1"});
        let out = embed_request(
            &[json!("q")],
            "embed-v4.0",
            extra.as_object().unwrap(),
            &settings,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"model": "embed-v4.0", "texts": ["q"], "input_type": "search_query",
                   "embedding_types": ["float"], "truncate": "START", "output_dimension": 512})
        );
        let plain = embed_request(&[json!("d")], "m", &Map::new(), &settings).unwrap();
        assert_eq!(plain["input_type"], "classification");
    }

    #[test]
    fn refuses_tokens_unknown_fields_and_oversized_batches() {
        let none = Map::new();
        let s = CohereEmbedSettings::default();
        assert!(matches!(
            embed_request(&[json!([1, 2, 3])], "m", &none, &s),
            Err(TranslateError::Unsupported { .. })
        ));
        let extra = json!({"encoding": "x"});
        assert!(matches!(
            embed_request(&[json!("x")], "m", extra.as_object().unwrap(), &s),
            Err(TranslateError::Unsupported { feature, .. }) if feature.contains("encoding")
        ));
        let bad_type = json!({"input_type": 3});
        assert!(matches!(
            embed_request(&[json!("x")], "m", bad_type.as_object().unwrap(), &s),
            Err(TranslateError::InvalidRequest(_))
        ));
        let many = vec![json!("x"); MAX_BATCH_INPUTS + 1];
        assert!(matches!(
            embed_request(&many, "m", &none, &s),
            Err(TranslateError::InvalidRequest(_))
        ));
        assert!(embed_request(&many[..MAX_BATCH_INPUTS], "m", &none, &s).is_ok());
    }

    #[test]
    fn response_in_order_with_billed_tokens() {
        // Shape of the reference's example answer.
        let body = json!({
            "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
            "texts": ["hello", "goodbye"],
            "embeddings": {"float": [[0.016296387, -0.008354187], [0.04663086, -0.023239136]]},
            "meta": {"api_version": {"version": "2", "is_experimental": true},
                     "warnings": ["You are using an experimental version"],
                     "billed_units": {"input_tokens": 2}}
        })
        .to_string();
        let reply = embed_response(body.as_bytes(), 2).unwrap();
        assert_eq!(
            reply.vectors,
            vec![
                vec![0.016296387, -0.008354187],
                vec![0.04663086, -0.023239136]
            ]
        );
        assert_eq!((reply.prompt_tokens, reply.total_tokens), (2, 2));
        assert!(matches!(
            embed_response(body.as_bytes(), 3),
            Err(TranslateError::BadResponse(_))
        ));
        for bad in [
            &b"{\"embeddings\": {\"int8\": [[1]]}}"[..],
            b"{\"embeddings\": {\"float\": [[\"x\"]]}}",
            b"not json",
        ] {
            assert!(matches!(
                embed_response(bad, 1),
                Err(TranslateError::BadResponse(_))
            ));
        }
        let no_meta = json!({"embeddings": {"float": [[1.0]]}}).to_string();
        assert_eq!(
            embed_response(no_meta.as_bytes(), 1).unwrap().prompt_tokens,
            0
        );
    }
}
