//! Embeddings through `models/{model}:batchEmbedContents`.
//!
//! Place in the pipeline: the gateway splits inputs into batches of at most
//! [`MAX_BATCH_INPUTS`], sends [`embed_request`] to
//! [`super::wire::embed_path`] and decodes with [`embed_response`].
//!
//! Request: `{"requests": [{"model": "models/<m>", "content": {"parts":
//! [{"text": ...}]}, "taskType"?, "outputDimensionality"?}]}`, one request per
//! input; `dimensions` -> `outputDimensionality`, the task type comes from
//! [`GeminiEmbedSettings`]. `user` is dropped. Token-id inputs and any other
//! extra field are Unsupported (Gemini embeds text only).
//!
//! Response: `{"embeddings": [{"values": [...]}]}` in request order. The
//! Gemini API reports no token usage for embeddings, so `prompt_tokens` and
//! `total_tokens` are 0. Must not reorder or drop vectors.

use serde_json::{Map, Value, json};

use super::wire::model_resource;
use super::{bad_response, invalid, unsupported};
use crate::api::embeddings::EmbedReply;
use crate::providers::translate::TranslateError;

/// `batchEmbedContents` takes at most 100 requests per call.
pub const MAX_BATCH_INPUTS: usize = 100;

/// Per-provider knobs for embeddings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeminiEmbedSettings {
    /// `taskType` for every input, e.g. `RETRIEVAL_DOCUMENT`,
    /// `RETRIEVAL_QUERY`, `SEMANTIC_SIMILARITY`, `CLASSIFICATION`,
    /// `CLUSTERING` (none: Gemini's default).
    pub task_type: Option<String>,
}

pub fn embed_request(
    inputs: &[Value],
    model: &str,
    extra: &Map<String, Value>,
    settings: &GeminiEmbedSettings,
) -> Result<Value, TranslateError> {
    if inputs.len() > MAX_BATCH_INPUTS {
        return Err(invalid(format!(
            "at most {MAX_BATCH_INPUTS} inputs per Gemini embeddings call, got {}",
            inputs.len()
        )));
    }
    let mut dimensions = None;
    for (key, value) in extra {
        match key.as_str() {
            "user" => {}
            "dimensions" => {
                let d = value
                    .as_u64()
                    .filter(|d| *d > 0)
                    .ok_or_else(|| invalid("`dimensions` must be a positive integer"))?;
                dimensions = Some(d);
            }
            _ if value.is_null() => {}
            other => return Err(unsupported(format!("embeddings field `{other}`"))),
        }
    }
    let model = model_resource(model);
    let requests = inputs
        .iter()
        .map(|input| {
            let text = input.as_str().ok_or_else(|| {
                unsupported("token-id embedding inputs (Gemini embeds text only)")
            })?;
            let mut request = json!({"model": model, "content": {"parts": [{"text": text}]}});
            if let Some(task) = &settings.task_type {
                request["taskType"] = Value::from(task.as_str());
            }
            if let Some(d) = dimensions {
                request["outputDimensionality"] = Value::from(d);
            }
            Ok(request)
        })
        .collect::<Result<Vec<_>, TranslateError>>()?;
    Ok(json!({ "requests": requests }))
}

pub fn embed_response(upstream: &[u8], expected: usize) -> Result<EmbedReply, TranslateError> {
    let v: Value =
        serde_json::from_slice(upstream).map_err(|e| bad_response(format!("invalid JSON: {e}")))?;
    if let Some(err) = super::response::upstream_error(&v) {
        return Err(err);
    }
    let embeddings = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_response("missing `embeddings` array"))?;
    if embeddings.len() != expected {
        return Err(bad_response(format!(
            "expected {expected} embeddings, upstream returned {}",
            embeddings.len()
        )));
    }
    let vectors = embeddings
        .iter()
        .map(|e| {
            e.get("values")
                .and_then(Value::as_array)
                .and_then(|xs| xs.iter().map(|x| x.as_f64().map(|f| f as f32)).collect())
                .ok_or_else(|| bad_response("embedding without numeric `values`"))
        })
        .collect::<Result<Vec<Vec<f32>>, _>>()?;
    Ok(EmbedReply {
        vectors,
        prompt_tokens: 0,
        total_tokens: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_per_input_with_task_and_dimensions() {
        let extra = json!({"dimensions": 768, "user": "u"});
        let settings = GeminiEmbedSettings {
            task_type: Some("RETRIEVAL_DOCUMENT".into()),
        };
        let out = embed_request(
            &[
                json!("What is the meaning of life?"),
                json!("How much wood?"),
            ],
            "gemini-embedding-001",
            extra.as_object().unwrap(),
            &settings,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "What is the meaning of life?"}]},
                 "taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 768},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "How much wood?"}]},
                 "taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 768}
            ]})
        );
        let plain = embed_request(
            &[json!("x")],
            "models/text-embedding-004",
            &Map::new(),
            &GeminiEmbedSettings::default(),
        )
        .unwrap();
        assert_eq!(
            plain,
            json!({"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "x"}]}}]})
        );
    }

    #[test]
    fn refuses_tokens_unknown_fields_and_oversized_batches() {
        let none = Map::new();
        let settings = GeminiEmbedSettings::default();
        assert!(matches!(
            embed_request(&[json!([1, 2, 3])], "m", &none, &settings),
            Err(TranslateError::Unsupported { .. })
        ));
        let extra = json!({"input_type": "query"});
        assert!(matches!(
            embed_request(&[json!("x")], "m", extra.as_object().unwrap(), &settings),
            Err(TranslateError::Unsupported { .. })
        ));
        let many = vec![json!("x"); MAX_BATCH_INPUTS + 1];
        assert!(matches!(
            embed_request(&many, "m", &none, &settings),
            Err(TranslateError::InvalidRequest(_))
        ));
        assert!(embed_request(&many[..MAX_BATCH_INPUTS], "m", &none, &settings).is_ok());
    }

    #[test]
    fn response_in_order_without_usage() {
        let body = json!({"embeddings": [{"values": [0.1, -0.2, 0.3]}, {"values": [1, 2, 3]}]})
            .to_string();
        let reply = embed_response(body.as_bytes(), 2).unwrap();
        assert_eq!(
            reply.vectors,
            vec![vec![0.1, -0.2, 0.3], vec![1.0, 2.0, 3.0]]
        );
        assert_eq!((reply.prompt_tokens, reply.total_tokens), (0, 0));
        assert!(matches!(
            embed_response(body.as_bytes(), 3),
            Err(TranslateError::BadResponse(_))
        ));
        assert!(matches!(
            embed_response(b"{\"embeddings\": [{\"values\": [\"x\"]}]}", 1),
            Err(TranslateError::BadResponse(_))
        ));
        assert!(matches!(
            embed_response(b"{}", 0),
            Err(TranslateError::BadResponse(_))
        ));
    }
}
