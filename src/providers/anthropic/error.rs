//! Anthropic error answers -> how the gateway should react, and the OpenAI
//! status and type to show the client.
//!
//! Place in the pipeline: called by the provider on a non-2xx answer
//! ([`classify_error`]) and by [`super::AnthropicStream`] on an in-stream
//! `error` event ([`classify_error_type`]). Anthropic's shape is
//! `{"type":"error","error":{"type":"...","message":"..."},"request_id":...}`;
//! the error type decides when it is known, the HTTP status otherwise (for
//! bodies that are not Anthropic's, e.g. from a proxy); Anthropic's error
//! type is the OpenAI envelope's `code`. Must not put the whole body,
//! headers or keys into `message`; the retry-after header is read by the
//! caller, not here.

use serde::Deserialize;

use crate::providers::classes::says_context_window;
use crate::providers::{Classification, FallbackClass, Verdict};

/// Longest Anthropic error type kept as the envelope's `code`.
const MAX_CODE: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    InvalidRequest,
    Authentication,
    Billing,
    Permission,
    NotFound,
    TooLarge,
    RateLimit,
    Api,
    Timeout,
    Overloaded,
    /// 408 / 409 and similar: transient, not the target's fault.
    Transient,
}

fn kind_of_type(ty: &str) -> Option<Kind> {
    Some(match ty {
        "invalid_request_error" => Kind::InvalidRequest,
        "authentication_error" => Kind::Authentication,
        "billing_error" => Kind::Billing,
        "permission_error" => Kind::Permission,
        "not_found_error" => Kind::NotFound,
        "request_too_large" => Kind::TooLarge,
        "rate_limit_error" => Kind::RateLimit,
        "api_error" => Kind::Api,
        "timeout_error" => Kind::Timeout,
        "overloaded_error" => Kind::Overloaded,
        _ => return None,
    })
}

fn kind_of_status(status: u16) -> Kind {
    match status {
        401 => Kind::Authentication,
        402 => Kind::Billing,
        403 => Kind::Permission,
        404 => Kind::NotFound,
        408 | 409 => Kind::Transient,
        413 => Kind::TooLarge,
        429 => Kind::RateLimit,
        504 => Kind::Timeout,
        529 => Kind::Overloaded,
        s if s >= 500 => Kind::Api,
        _ => Kind::InvalidRequest,
    }
}

fn verdict(kind: Kind) -> Verdict {
    match kind {
        Kind::InvalidRequest => (false, false, false, 400, "invalid_request_error"),
        Kind::TooLarge => (false, false, false, 413, "invalid_request_error"),
        Kind::Authentication => (false, true, false, 401, "authentication_error"),
        Kind::Permission => (false, true, false, 403, "permission_error"),
        Kind::NotFound => (false, true, false, 404, "invalid_request_error"),
        Kind::Billing => (false, true, false, 402, "insufficient_quota"),
        Kind::RateLimit => (true, true, false, 429, "rate_limit_error"),
        Kind::Transient => (true, true, false, 503, "service_unavailable_error"),
        Kind::Api => (true, true, true, 500, "server_error"),
        Kind::Timeout => (true, true, true, 504, "server_error"),
        Kind::Overloaded => (true, true, true, 503, "service_unavailable_error"),
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: Detail,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// Classifies a non-2xx answer from its status and body.
pub fn classify_error(status: u16, body: &[u8]) -> Classification {
    let detail = serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error);
    let kind = detail
        .as_ref()
        .and_then(|d| d.kind.as_deref())
        .and_then(kind_of_type)
        .unwrap_or_else(|| kind_of_status(status));
    let (code, message) = detail.map_or((None, None), |d| (d.kind, d.message));
    let message = match message {
        Some(m) if !m.is_empty() => m,
        _ => format!("upstream answered status {status}"),
    };
    let fallback = fallback_of(kind, &message);
    Classification::new(verdict(kind), &message)
        .with_code(code.filter(|k| k.len() <= MAX_CODE))
        .with_fallback(fallback)
}

/// The fallback class of an Anthropic error: `billing_error` is a quota;
/// an `invalid_request_error` saying "prompt is too long" (or that input and
/// `max_tokens` exceed the context limit) is the context window, one saying
/// "content filtering policy" a refusal.
fn fallback_of(kind: Kind, message: &str) -> Option<FallbackClass> {
    match kind {
        Kind::Billing => Some(FallbackClass::Quota),
        Kind::InvalidRequest if says_context_window(message) => Some(FallbackClass::ContextWindow),
        Kind::InvalidRequest
            if message
                .to_ascii_lowercase()
                .contains("content filtering policy") =>
        {
            Some(FallbackClass::ContentPolicy)
        }
        _ => None,
    }
}

/// Classifies an error known only by its Anthropic type (an in-stream `error`
/// event has no status of its own). Unknown types count as `api_error`.
pub fn classify_error_type(error_type: &str, message: &str) -> Classification {
    let kind = kind_of_type(error_type).unwrap_or(Kind::Api);
    if message.is_empty() {
        let message = format!("upstream stream error {error_type}");
        return Classification::new(verdict(kind), &message);
    }
    Classification::new(verdict(kind), message).with_fallback(fallback_of(kind, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::MAX_MESSAGE;

    fn body(ty: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"type": "error", "error": {"type": ty, "message": message},
                           "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"})
        .to_string()
        .into_bytes()
    }

    /// (retryable, moves_on, trips_breaker, openai_status, openai_type)
    fn shape(c: &Classification) -> Verdict {
        (
            c.retryable,
            c.moves_on,
            c.trips_breaker,
            c.openai_status,
            c.openai_type,
        )
    }

    #[test]
    fn documented_errors() {
        for (status, ty, expected) in [
            (
                400,
                "invalid_request_error",
                (false, false, false, 400, "invalid_request_error"),
            ),
            (
                401,
                "authentication_error",
                (false, true, false, 401, "authentication_error"),
            ),
            (
                402,
                "billing_error",
                (false, true, false, 402, "insufficient_quota"),
            ),
            (
                403,
                "permission_error",
                (false, true, false, 403, "permission_error"),
            ),
            (
                404,
                "not_found_error",
                (false, true, false, 404, "invalid_request_error"),
            ),
            (
                413,
                "request_too_large",
                (false, false, false, 413, "invalid_request_error"),
            ),
            (
                429,
                "rate_limit_error",
                (true, true, false, 429, "rate_limit_error"),
            ),
            (500, "api_error", (true, true, true, 500, "server_error")),
            (
                504,
                "timeout_error",
                (true, true, true, 504, "server_error"),
            ),
            (
                529,
                "overloaded_error",
                (true, true, true, 503, "service_unavailable_error"),
            ),
        ] {
            let c = classify_error(status, &body(ty, "Something specific"));
            assert_eq!(shape(&c), expected, "{status} {ty}");
            assert_eq!(c.message, "Something specific");
        }
    }

    #[test]
    fn the_message_is_the_providers_text_only() {
        let c = classify_error(
            429,
            &body(
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            ),
        );
        assert_eq!(
            c.message,
            "Number of request tokens has exceeded your per-minute rate limit"
        );
        assert!(!c.message.contains("req_011"));
        let long = "é".repeat(1000);
        let c = classify_error(400, &body("invalid_request_error", &long));
        assert!(c.message.len() <= MAX_MESSAGE + 3, "{}", c.message.len());
        assert!(c.message.ends_with("..."));
    }

    #[test]
    fn foreign_bodies_fall_back_to_the_status() {
        let html = b"<html><body>502 Bad Gateway</body></html>";
        for (status, expected) in [
            (529, (true, true, true, 503, "service_unavailable_error")),
            (502, (true, true, true, 500, "server_error")),
            (429, (true, true, false, 429, "rate_limit_error")),
            (413, (false, false, false, 413, "invalid_request_error")),
            (401, (false, true, false, 401, "authentication_error")),
            (409, (true, true, false, 503, "service_unavailable_error")),
            (422, (false, false, false, 400, "invalid_request_error")),
        ] {
            let c = classify_error(status, html);
            assert_eq!(shape(&c), expected, "{status}");
            assert_eq!(c.message, format!("upstream answered status {status}"));
        }
        // An unknown error type also falls back to the status.
        let c = classify_error(503, &body("brand_new_error", "m"));
        assert_eq!(shape(&c), (true, true, true, 500, "server_error"));
    }

    #[test]
    fn the_type_decides_over_the_status() {
        // Some proxies send overloaded_error with a plain 503 or even a 200.
        let c = classify_error(503, &body("overloaded_error", "Overloaded"));
        assert_eq!(c.openai_type, "service_unavailable_error");
        let c = classify_error_type("overloaded_error", "Overloaded");
        assert_eq!(
            shape(&c),
            (true, true, true, 503, "service_unavailable_error")
        );
        let c = classify_error_type("mystery", "");
        assert!(c.retryable && c.trips_breaker);
        assert_eq!(c.message, "upstream stream error mystery");
    }

    #[test]
    fn fallback_classes_follow_the_error_type_and_the_window_wording() {
        use crate::providers::FallbackClass::*;
        let class = |ty: &str, m: &str| classify_error(400, &body(ty, m)).fallback;
        assert_eq!(
            class(
                "invalid_request_error",
                "prompt is too long: 204842 tokens > 200000 maximum"
            ),
            Some(ContextWindow)
        );
        assert_eq!(
            class(
                "invalid_request_error",
                "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000"
            ),
            Some(ContextWindow)
        );
        assert_eq!(
            class(
                "billing_error",
                "Your credit balance is too low to access the Anthropic API."
            ),
            Some(Quota)
        );
        assert_eq!(
            class("invalid_request_error", "max_tokens: must be positive"),
            None
        );
        assert_eq!(class("overloaded_error", "Overloaded"), None);
        assert_eq!(
            classify_error_type("invalid_request_error", "prompt is too long").fallback,
            Some(ContextWindow)
        );
    }
}
