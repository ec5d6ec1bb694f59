//! Gemini error answers -> what the gateway does next.
//!
//! Place in the pipeline: `routing` asks [`classify_error`] about every
//! non-2xx answer of a `gemini` upstream. Gemini answers
//! `{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
//! "details": [...]}}` (google.rpc.Status; the streaming endpoint without
//! `alt=sse` wraps it in an array). The decision follows the `status` (the
//! canonical code), falling back to the HTTP status:
//!
//! | status | HTTP | retry | move on | breaker | OpenAI |
//! |---|---|---|---|---|---|
//! | RESOURCE_EXHAUSTED | 429 | yes | yes | no | 429 rate_limit_error |
//! | RESOURCE_EXHAUSTED | other (402: prepaid credit spent) | no | yes | no | 429 insufficient_quota |
//! | UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, UNKNOWN | 503, 500, 504 | yes | yes | yes | same, server_error |
//! | ABORTED, CANCELLED | 409, 499 | yes | yes | no | 503 server_error |
//! | INVALID_ARGUMENT, OUT_OF_RANGE | 400 | no | no | no | 400 invalid_request_error |
//! | INVALID_ARGUMENT + ErrorInfo API_KEY_INVALID | 400 | no | yes | no | 401 authentication_error |
//! | FAILED_PRECONDITION (region / billing of this key) | 400 | no | yes | no | 400 invalid_request_error |
//! | UNAUTHENTICATED | 401 | no | yes | no | 401 authentication_error |
//! | PERMISSION_DENIED | 403 | no | yes | no | 403 permission_error |
//! | NOT_FOUND | 404 | no | yes | no | 404 not_found_error |
//!
//! A route's fallback classes: RESOURCE_EXHAUSTED other than 429 and
//! FAILED_PRECONDITION about billing are `quota`; INVALID_ARGUMENT saying the
//! input exceeds the maximum number of tokens is `context_window`; a `200`
//! whose prompt was blocked ([`prompt_refusal`]) is `content_policy`.
//!
//! `message` is Gemini's own message (cut by the shared rule), never the
//! body; `code` is Gemini's `status`, lowercased. Must not look at headers:
//! Gemini sends its retry delay in the body, read by [`retry_delay`].

use std::time::Duration;

use serde_json::Value;

use crate::providers::classes::says_context_window;
use crate::providers::{Classification, FallbackClass, Verdict};

/// The `error` object of a Gemini error body.
fn error_object(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let v = match v {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        v => v,
    };
    match v {
        Value::Object(mut o) => o.remove("error"),
        _ => None,
    }
}

fn detail_of<'a>(error: &'a Value, type_suffix: &str) -> Option<&'a Value> {
    error.get("details")?.as_array()?.iter().find(|d| {
        d.get("@type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with(type_suffix))
    })
}

pub fn classify_error(status: u16, body: &[u8]) -> Classification {
    let error = error_object(body);
    let field = |k: &str| {
        error
            .as_ref()
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
    };
    let message = match field("message") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => format!("Gemini returned HTTP {status}"),
    };
    // Gemini's own canonical status (`RESOURCE_EXHAUSTED`), when it is one.
    let code = field("status")
        .filter(|s| s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .map(str::to_ascii_lowercase);
    let reason = error
        .as_ref()
        .and_then(|e| detail_of(e, "google.rpc.ErrorInfo"))
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str);
    let canonical = field("status").unwrap_or(match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        500..=599 => "INTERNAL",
        _ => "UNKNOWN_CLIENT_ERROR",
    });
    let fallback = fallback_of(canonical, status, &message);
    Classification::new(verdict(canonical, status, reason), &message)
        .with_code(code)
        .with_fallback(fallback)
}

/// The fallback class of a Gemini error: RESOURCE_EXHAUSTED other than a
/// 429 (prepaid credit spent) and FAILED_PRECONDITION naming billing are a
/// quota; INVALID_ARGUMENT saying the input exceeds the maximum number of
/// tokens is the context window.
fn fallback_of(canonical: &str, status: u16, message: &str) -> Option<FallbackClass> {
    match canonical {
        "RESOURCE_EXHAUSTED" if status != 429 => Some(FallbackClass::Quota),
        "FAILED_PRECONDITION" if message.to_ascii_lowercase().contains("billing") => {
            Some(FallbackClass::Quota)
        }
        "INVALID_ARGUMENT" | "OUT_OF_RANGE" if says_context_window(message) => {
            Some(FallbackClass::ContextWindow)
        }
        _ => None,
    }
}

/// A `200` whose prompt Gemini blocked (`promptFeedback.blockReason`, no
/// candidates): a content-policy refusal, answered like Azure's (400
/// `content_filter`), so a route can fall back on it.
pub fn prompt_refusal(block_reason: &str) -> Classification {
    let message = format!("The prompt was blocked by Gemini's safety settings ({block_reason}).");
    Classification::new(
        (false, false, false, 400, "invalid_request_error"),
        &message,
    )
    .with_code(Some("content_filter".into()))
    .with_fallback(Some(FallbackClass::ContentPolicy))
}

/// Gemini's table: canonical status (with the HTTP status and the
/// `ErrorInfo` reason where they matter) -> [`Verdict`].
fn verdict(canonical: &str, status: u16, reason: Option<&str>) -> Verdict {
    match canonical {
        "RESOURCE_EXHAUSTED" if status == 429 => (true, true, false, 429, "rate_limit_error"),
        "RESOURCE_EXHAUSTED" => (false, true, false, 429, "insufficient_quota"),
        "UNAVAILABLE" => (true, true, true, 503, "server_error"),
        "DEADLINE_EXCEEDED" => (true, true, true, 504, "server_error"),
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => (true, true, true, 500, "server_error"),
        "ABORTED" | "CANCELLED" => (true, true, false, 503, "server_error"),
        "INVALID_ARGUMENT" if reason == Some("API_KEY_INVALID") => {
            (false, true, false, 401, "authentication_error")
        }
        "FAILED_PRECONDITION" => (false, true, false, 400, "invalid_request_error"),
        "UNAUTHENTICATED" => (false, true, false, 401, "authentication_error"),
        "PERMISSION_DENIED" => (false, true, false, 403, "permission_error"),
        "NOT_FOUND" => (false, true, false, 404, "not_found_error"),
        "INVALID_ARGUMENT" | "OUT_OF_RANGE" => (false, false, false, 400, "invalid_request_error"),
        _ if status >= 500 => (true, true, true, status, "server_error"),
        _ => (false, false, false, status, "invalid_request_error"),
    }
}

/// The delay Gemini asks for in `details[google.rpc.RetryInfo].retryDelay`
/// (a protobuf Duration such as `"26s"` or `"0.5s"`).
pub fn retry_delay(body: &[u8]) -> Option<Duration> {
    let error = error_object(body)?;
    let delay = detail_of(&error, "google.rpc.RetryInfo")?
        .get("retryDelay")?
        .as_str()?;
    let secs: f64 = delay.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && (0.0..86_400.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(code: u16, status: &str, message: &str, details: Value) -> Vec<u8> {
        json!({"error": {"code": code, "message": message, "status": status, "details": details}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn rate_limit_is_retried_with_its_delay() {
        let b = body(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota.",
            json!([
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"}
            ]),
        );
        let c = classify_error(429, &b);
        assert!(c.retryable && c.moves_on && !c.trips_breaker);
        assert_eq!((c.openai_status, c.openai_type), (429, "rate_limit_error"));
        assert_eq!(c.message, "You exceeded your current quota.");
        assert_eq!(retry_delay(&b), Some(Duration::from_secs(26)));
        assert_eq!(
            retry_delay(&body(429, "RESOURCE_EXHAUSTED", "x", json!([]))),
            None
        );
        let spent = classify_error(402, &body(402, "RESOURCE_EXHAUSTED", "credit", json!([])));
        assert!(!spent.retryable && spent.moves_on);
    }

    #[test]
    fn overloaded_and_server_errors_retry_and_trip_the_breaker() {
        for (code, status) in [
            (503, "UNAVAILABLE"),
            (500, "INTERNAL"),
            (504, "DEADLINE_EXCEEDED"),
        ] {
            let c = classify_error(
                code,
                &body(
                    code,
                    status,
                    "The model is overloaded. Please try again later.",
                    json!([]),
                ),
            );
            assert!(c.retryable && c.moves_on && c.trips_breaker, "{status}");
            assert_eq!(c.openai_status, code);
        }
        let no_body = classify_error(502, b"<html>Bad Gateway</html>");
        assert!(no_body.retryable && no_body.trips_breaker);
        assert_eq!(no_body.message, "Gemini returned HTTP 502");
    }

    #[test]
    fn validation_errors_go_back_to_the_client() {
        let c = classify_error(
            400,
            &body(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received. Unknown name \"foo\": Cannot find field.",
                json!([]),
            ),
        );
        assert!(!c.retryable && !c.moves_on && !c.trips_breaker);
        assert_eq!(
            (c.openai_status, c.openai_type),
            (400, "invalid_request_error")
        );
        // The streaming endpoint without alt=sse wraps errors in an array.
        let wrapped = format!(
            "[{}]",
            String::from_utf8(body(400, "INVALID_ARGUMENT", "bad", json!([]))).unwrap()
        );
        assert_eq!(classify_error(400, wrapped.as_bytes()).message, "bad");
        let region = classify_error(
            400,
            &body(
                400,
                "FAILED_PRECONDITION",
                "User location is not supported for the API use.",
                json!([]),
            ),
        );
        assert!(!region.retryable && region.moves_on);
    }

    #[test]
    fn auth_errors_move_on_without_retry() {
        let bad_key = body(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            json!([
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}
            ]),
        );
        let cases = [
            (400, bad_key, 401, "authentication_error"),
            (
                401,
                body(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials.",
                    json!([]),
                ),
                401,
                "authentication_error",
            ),
            (
                403,
                body(
                    403,
                    "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers.",
                    json!([]),
                ),
                403,
                "permission_error",
            ),
            (
                404,
                body(
                    404,
                    "NOT_FOUND",
                    "models/nope is not found for API version v1beta",
                    json!([]),
                ),
                404,
                "not_found_error",
            ),
        ];
        for (status, b, openai_status, openai_type) in cases {
            let c = classify_error(status, &b);
            assert!(!c.retryable && c.moves_on && !c.trips_breaker, "{c:?}");
            assert_eq!(
                (c.openai_status, c.openai_type),
                (openai_status, openai_type)
            );
        }
        assert!(classify_error(401, b"").moves_on);
    }

    #[test]
    fn fallback_classes_of_gemini_errors() {
        use crate::providers::FallbackClass::*;
        let too_long = body(
            400,
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            json!([]),
        );
        assert_eq!(classify_error(400, &too_long).fallback, Some(ContextWindow));
        let credit = body(402, "RESOURCE_EXHAUSTED", "prepaid credit spent", json!([]));
        assert_eq!(classify_error(402, &credit).fallback, Some(Quota));
        let billing = body(
            400,
            "FAILED_PRECONDITION",
            "Please enable billing for this project.",
            json!([]),
        );
        assert_eq!(classify_error(400, &billing).fallback, Some(Quota));
        let rate = body(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted",
            json!([]),
        );
        assert_eq!(
            classify_error(429, &rate).fallback,
            None,
            "a rate limit, not a spent quota"
        );
        let blocked = prompt_refusal("SAFETY");
        assert_eq!(blocked.fallback, Some(ContentPolicy));
        assert_eq!(
            (blocked.openai_status, blocked.code.as_deref()),
            (400, Some("content_filter"))
        );
    }
}
