//! The error classes a route can fall back on, as OpenAI-compatible servers
//! say them: a context window exceeded, a content-policy refusal, a spent
//! quota or billing problem.
//!
//! Place in the pipeline: the generic classification of OpenAI-compatible
//! answers (`upstream::Failed::into_status_error`, used by `openai` and
//! `azure`) asks [`openai_class`] about every error answer, and the
//! `openai` kind asks [`error_in_200`] about a `200` that is not an answer.
//! Other kinds recognise their own signals in their own tables (their
//! `errors` files). A recognised error becomes [`UpstreamError::Classified`]
//! with its body unchanged (already an OpenAI envelope) and its
//! [`FallbackClass`]; what the route does with it is `routing`'s. Must not
//! rewrite the body or guess from anything but the error's code, type and
//! message.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::{ErrorClass, FallbackClass, UpstreamError};

/// Message fragments of servers that say "context window" only in words
/// (vLLM, llama.cpp, TGI and other OpenAI-compatible servers), lower case.
const CONTEXT_WORDS: &[&str] = &[
    "maximum context length",
    "context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "exceeds the maximum number of tokens",
    "input is too long",
    "too many input tokens",
    "exceed context limit",
];

/// Whether an error message says the prompt does not fit the model's
/// context window (for servers and kinds that say so only in words).
pub fn says_context_window(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    CONTEXT_WORDS.iter().any(|w| message.contains(w))
}

/// The class of an OpenAI-shaped error body `{"error": {"code", "type",
/// "message"}}`, if it is one a route can fall back on.
pub fn openai_class(status: u16, body: &[u8]) -> Option<FallbackClass> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error")?;
    let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default();
    let (code, ty) = (text("code"), text("type"));
    for name in [code, ty] {
        match name {
            "context_length_exceeded" => return Some(FallbackClass::ContextWindow),
            "content_policy_violation" | "content_filter" => {
                return Some(FallbackClass::ContentPolicy);
            }
            "insufficient_quota"
            | "billing_hard_limit_reached"
            | "billing_not_active"
            | "quota_exceeded" => return Some(FallbackClass::Quota),
            _ => {}
        }
    }
    if (status == 400 || status == 413) && says_context_window(text("message")) {
        return Some(FallbackClass::ContextWindow);
    }
    if status == 402 {
        return Some(FallbackClass::Quota);
    }
    None
}

/// How an error of `class` is treated when the server gave no better
/// verdict: a window or a refusal is the request's (passed back unless the
/// route has a fallback); a spent quota is the target's (not retried, the
/// next target is tried).
pub fn verdict_of(class: FallbackClass) -> ErrorClass {
    let quota = class == FallbackClass::Quota;
    ErrorClass {
        retryable: false,
        moves_on: quota,
        trips_breaker: false,
        fallback: Some(class),
    }
}

/// An OpenAI-shaped error answer as the one error, classified when its
/// class is known.
pub fn openai_error(status: u16, body: Bytes, retry_after: Option<Duration>) -> UpstreamError {
    match openai_class(status, &body) {
        Some(class) => UpstreamError::Classified {
            status,
            body,
            retry_after,
            class: verdict_of(class),
        },
        None => UpstreamError::Status {
            status,
            body,
            retry_after,
        },
    }
}

/// A `200` whose body is an error envelope of a known class (some
/// OpenAI-compatible proxies answer a spent quota or a refusal that way).
pub fn error_in_200(body: &Bytes) -> Option<UpstreamError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error").filter(|e| e.is_object())?;
    let declared = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c));
    let class = openai_class(declared.unwrap_or(400), body)?;
    let status = declared.unwrap_or(match class {
        FallbackClass::Quota => 429,
        _ => 400,
    });
    Some(UpstreamError::Classified {
        status,
        body: body.clone(),
        retry_after: None,
        class: verdict_of(class),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn openai_codes_name_their_class() {
        let window = body(
            json!({"error": {"message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        );
        assert_eq!(
            openai_class(400, &window),
            Some(FallbackClass::ContextWindow)
        );
        let quota = body(
            json!({"error": {"message": "You exceeded your current quota",
            "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        );
        assert_eq!(openai_class(429, &quota), Some(FallbackClass::Quota));
        let policy = body(
            json!({"error": {"message": "Your request was rejected by the safety system.",
            "type": "invalid_request_error", "code": "content_policy_violation"}}),
        );
        assert_eq!(
            openai_class(400, &policy),
            Some(FallbackClass::ContentPolicy)
        );
        let vllm = body(json!({"object": "error", "error": {"message":
            "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens",
            "type": "BadRequestError", "code": 400}}));
        assert_eq!(openai_class(400, &vllm), Some(FallbackClass::ContextWindow));
        let other = body(json!({"error": {"message": "max_tokens is too large",
            "type": "invalid_request_error", "code": null}}));
        assert_eq!(openai_class(400, &other), None);
        let rate = body(
            json!({"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}),
        );
        assert_eq!(
            openai_class(429, &rate),
            None,
            "a rate limit is not a spent quota"
        );
        assert_eq!(openai_class(500, b"<html>"), None);
    }

    #[test]
    fn a_known_class_is_classified_and_keeps_its_body() {
        let b = Bytes::from(body(
            json!({"error": {"message": "quota", "code": "insufficient_quota"}}),
        ));
        let e = openai_error(429, b.clone(), None);
        assert_eq!(e.fallback_class(), Some(FallbackClass::Quota));
        assert!(
            !e.is_retryable() && e.moves_on(),
            "not retried, next target tried"
        );
        let UpstreamError::Classified { body: kept, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(kept, &b);
        let plain = openai_error(503, Bytes::from_static(b"{}"), None);
        assert!(matches!(plain, UpstreamError::Status { status: 503, .. }));
    }

    #[test]
    fn an_error_inside_a_200_is_recognised() {
        let b = Bytes::from(body(
            json!({"error": {"message": "Insufficient balance", "code": "insufficient_quota"}}),
        ));
        let e = error_in_200(&b).expect("a quota error");
        assert!(matches!(e, UpstreamError::Classified { status: 429, .. }));
        let answer = Bytes::from(body(json!({"choices": []})));
        assert!(error_in_200(&answer).is_none());
    }
}
