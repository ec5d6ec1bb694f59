//! Gemini's HTTP surface: method paths and request headers.
//!
//! Place in the pipeline: the provider joins these paths to its base URL
//! (e.g. `https://generativelanguage.googleapis.com/v1beta`) and sends these
//! headers on every call. The API key goes in `x-goog-api-key` (never in the
//! `?key=` query string, which would end up in access logs) and is marked
//! sensitive so `Debug` output hides it. Must not log or echo the key.

use http::{HeaderMap, HeaderValue};

/// The header Gemini reads the API key from.
pub const API_KEY_HEADER: &str = "x-goog-api-key";

/// `models/{model}`, unless `model` already names a resource
/// (`models/...` or `tunedModels/...`).
pub fn model_resource(model: &str) -> String {
    if model.starts_with("models/") || model.starts_with("tunedModels/") {
        model.to_string()
    } else {
        format!("models/{model}")
    }
}

/// `/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse`
/// (without `alt=sse` Gemini streams one JSON array instead of SSE).
pub fn chat_path(model: &str, stream: bool) -> String {
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    format!("/{}:{method}", model_resource(model))
}

/// `/models/{model}:batchEmbedContents`.
pub fn embed_path(model: &str) -> String {
    format!("/{}:batchEmbedContents", model_resource(model))
}

/// `content-type: application/json` and the key in `x-goog-api-key`
/// (sensitive). A key that is not a valid header value is left out, so the
/// upstream answers with its own authentication error.
pub fn headers(api_key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(mut value) = HeaderValue::from_str(api_key) {
        value.set_sensitive(true);
        headers.insert(API_KEY_HEADER, value);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_reference() {
        assert_eq!(
            chat_path("gemini-2.5-flash", false),
            "/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            chat_path("gemini-2.5-flash", true),
            "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            embed_path("gemini-embedding-001"),
            "/models/gemini-embedding-001:batchEmbedContents"
        );
        assert_eq!(
            chat_path("tunedModels/my-tune", false),
            "/tunedModels/my-tune:generateContent"
        );
        assert_eq!(model_resource("models/x"), "models/x");
    }

    #[test]
    fn key_header_is_sensitive_and_hidden() {
        let h = headers("AIza-secret-key");
        let v = &h[API_KEY_HEADER];
        assert!(v.is_sensitive());
        assert_eq!(v, "AIza-secret-key");
        assert_eq!(h[http::header::CONTENT_TYPE], "application/json");
        assert!(!format!("{h:?}").contains("AIza-secret-key"));
        assert!(headers("bad\nkey").get(API_KEY_HEADER).is_none());
    }
}
