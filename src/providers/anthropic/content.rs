//! OpenAI content parts -> Anthropic content blocks (text and images).
//!
//! Place in the pipeline: used by [`super::messages`] for user content and
//! text-only content (system, tool results). `image_url` parts become
//! `image` blocks: `data:` URLs (base64, jpeg/png/gif/webp) as a `base64`
//! source, http(s) URLs as a `url` source; `detail` is dropped. Audio and
//! file parts are refused as unsupported. Must not decode or fetch images,
//! or echo client values in errors.

use serde_json::{Value, json};

use super::KIND;
use crate::providers::translate::TranslateError;

pub(super) fn invalid(i: usize, what: &str) -> TranslateError {
    TranslateError::InvalidRequest(format!("messages[{i}]: {what}"))
}

pub(super) fn unsupported(feature: &str) -> TranslateError {
    TranslateError::Unsupported {
        kind: KIND,
        feature: feature.to_string(),
    }
}

/// Text of `content` given as a string or an array of `text` parts.
pub(super) fn text_parts(
    content: Option<&Value>,
    i: usize,
    out: &mut Vec<String>,
) -> Result<(), TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => {
            if !s.is_empty() {
                out.push(s.clone());
            }
            Ok(())
        }
        Some(Value::Array(parts)) => {
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = part
                            .get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid(i, "text part without a 'text' string"))?;
                        if !t.is_empty() {
                            out.push(t.to_string());
                        }
                    }
                    _ => return Err(invalid(i, "only text parts are allowed here")),
                }
            }
            Ok(())
        }
        Some(_) => Err(invalid(
            i,
            "'content' must be a string or an array of parts",
        )),
    }
}

pub(super) fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

pub(super) fn user_blocks(content: Option<&Value>, i: usize) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![text_block(s)]),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(invalid(
                i,
                "'content' must be a string or an array of parts",
            ));
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(i, "text part without a 'text' string"))?;
                if !t.is_empty() {
                    blocks.push(text_block(t));
                }
            }
            Some("image_url") => {
                let url = match part.get("image_url") {
                    Some(Value::String(u)) => Some(u.as_str()),
                    Some(Value::Object(o)) => o.get("url").and_then(Value::as_str),
                    _ => None,
                }
                .ok_or_else(|| invalid(i, "image_url part without a 'url' string"))?;
                blocks.push(image_block(url, i)?);
            }
            Some("input_audio") => return Err(unsupported("audio input (input_audio parts)")),
            Some("file") => return Err(unsupported("file content parts")),
            _ => return Err(invalid(i, "unknown content part type")),
        }
    }
    Ok(blocks)
}

/// Media types Anthropic accepts for base64 images.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// An `image` block from a `data:` URL (base64 source) or an http(s) URL
/// (`url` source).
pub fn image_block(url: &str, i: usize) -> Result<Value, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid(i, "image data URL without a comma"))?;
        let mut params = meta.split(';');
        let media_type = params
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
            return Err(unsupported("image data URLs that are not base64"));
        }
        let media_type = if media_type == "image/jpg" {
            "image/jpeg".to_string()
        } else {
            media_type
        };
        if !IMAGE_TYPES.contains(&media_type.as_str()) {
            return Err(unsupported(
                "image media types other than image/jpeg, image/png, image/gif and image/webp",
            ));
        }
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(invalid(
        i,
        "image_url must be a data: URL or an http(s) URL",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_part_with_images() {
        let blocks = user_blocks(
            Some(&json!([
            {"type": "text", "text": "What is in these images?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ])),
            0,
        )
        .unwrap();
        assert_eq!(
            Value::Array(blocks),
            json!([
                {"type": "text", "text": "What is in these images?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ])
        );
    }

    #[test]
    fn images_anthropic_cannot_take_are_refused() {
        for (url, unsupported_expected) in [
            ("data:image/bmp;base64,AAAA", true),
            ("data:image/png,rawbytes", true),
            ("data:image/png;base64", false),
            ("ftp://example.com/a.png", false),
        ] {
            let r = image_block(url, 0);
            assert_eq!(
                matches!(r, Err(TranslateError::Unsupported { .. })),
                unsupported_expected,
                "{url}: {r:?}"
            );
            assert!(r.is_err(), "{url}");
        }
        assert_eq!(
            image_block("data:image/jpg;base64,/9j/", 0).unwrap()["source"]["media_type"],
            "image/jpeg"
        );
    }

    #[test]
    fn audio_and_file_parts_are_unsupported() {
        for part in [
            json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
            json!({"type": "file", "file": {"file_id": "file-1"}}),
        ] {
            let r = user_blocks(Some(&json!([part])), 0);
            assert!(
                matches!(r, Err(TranslateError::Unsupported { .. })),
                "{r:?}"
            );
        }
        let r = user_blocks(Some(&json!([{"type": "video"}])), 0);
        assert!(matches!(r, Err(TranslateError::InvalidRequest(_))));
    }

    #[test]
    fn empty_text_parts_are_dropped() {
        let blocks = user_blocks(
            Some(&json!([{"type": "text", "text": ""}, {"type": "text", "text": "x"}])),
            0,
        )
        .unwrap();
        assert_eq!(blocks, vec![json!({"type": "text", "text": "x"})]);
        assert!(user_blocks(Some(&json!("")), 0).unwrap().is_empty());
    }
}
