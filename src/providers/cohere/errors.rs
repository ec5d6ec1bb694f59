//! Cohere's errors: `{"id"?: ..., "message": "..."}` with an HTTP status.
//!
//! Place in the pipeline: the `cohere` provider calls [`classify_error`] on
//! every non-success answer and turns the class into
//! `UpstreamError::Classified` with an OpenAI error envelope. Cohere's error
//! body carries no type field, so the status decides (per the API
//! reference): 429 rate limit (retried or failed over), 5xx / 499 server
//! trouble (retried, trips the breaker), 400/422/498 the request itself
//! (passed back, not retried), 401/403/404 the key or model of this provider
//! (another provider may do: move on), 501 a feature this model lacks (move
//! on); a 429's envelope `code` is `rate_limit_exceeded`, as OpenAI's. Must
//! not put the whole body in the message.

use serde_json::Value;

use crate::providers::classes::says_context_window;
use crate::providers::{Classification, FallbackClass, Verdict};

pub fn classify_error(status: u16, body: &[u8]) -> Classification {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| format!("Cohere returned HTTP {status}"));
    let code = (status == 429).then(|| "rate_limit_exceeded".to_string());
    // Cohere names a prompt over the window only in words ("too many tokens").
    let fallback = (matches!(status, 400 | 422) && says_context_window(&message))
        .then_some(FallbackClass::ContextWindow)
        .or((status == 402).then_some(FallbackClass::Quota));
    Classification::new(verdict(status), &message)
        .with_code(code)
        .with_fallback(fallback)
}

/// Cohere's table: HTTP status -> [`Verdict`].
fn verdict(status: u16) -> Verdict {
    match status {
        429 => (true, true, false, 429, "rate_limit_error"),
        499 => (true, true, false, 503, "server_error"),
        501 => (false, true, false, 501, "invalid_request_error"),
        500..=599 => (true, true, true, status, "server_error"),
        401 => (false, true, false, 401, "authentication_error"),
        403 => (false, true, false, 403, "permission_error"),
        404 => (false, true, false, 404, "not_found_error"),
        408 => (true, true, true, 504, "server_error"),
        422 => (false, false, false, 422, "invalid_request_error"),
        // A deny-listed token in the request: the client's to change.
        498 => (false, false, false, 400, "invalid_request_error"),
        _ => (
            false,
            false,
            false,
            status.max(400),
            "invalid_request_error",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::MAX_MESSAGE;

    fn body(message: &str) -> Vec<u8> {
        serde_json::json!({"id": "3f3b9e2c-1c2d-4d4e-8f9a-0b1c2d3e4f50", "message": message})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn rate_limits_are_retried_without_tripping_the_breaker() {
        let c = classify_error(
            429,
            &body("You are using a Trial key, which is limited to 40 API calls / minute."),
        );
        assert!(c.retryable && c.moves_on && !c.trips_breaker);
        assert_eq!((c.openai_status, c.openai_type), (429, "rate_limit_error"));
        assert!(c.message.starts_with("You are using a Trial key"));
    }

    #[test]
    fn server_errors_retry_and_trip_the_breaker() {
        for status in [500, 502, 503, 504] {
            let c = classify_error(
                status,
                &body("internal server error, this has been reported to our developers"),
            );
            assert!(c.retryable && c.moves_on && c.trips_breaker, "{status}");
            assert_eq!((c.openai_status, c.openai_type), (status, "server_error"));
        }
        let html = classify_error(502, b"<html>Bad Gateway</html>");
        assert_eq!(html.message, "Cohere returned HTTP 502");
        let cancelled = classify_error(499, &body("request cancelled"));
        assert!(cancelled.retryable && !cancelled.trips_breaker);
    }

    #[test]
    fn validation_errors_go_back_to_the_client() {
        for status in [400, 422] {
            let c = classify_error(
                status,
                &body("invalid request: texts must contain at most 96 items"),
            );
            assert!(!c.retryable && !c.moves_on && !c.trips_breaker, "{status}");
            assert_eq!(c.openai_status, status);
            assert_eq!(c.openai_type, "invalid_request_error");
            assert_eq!(
                c.message,
                "invalid request: texts must contain at most 96 items"
            );
        }
        let denied = classify_error(
            498,
            &body("blocked input: please adjust your prompt and try again"),
        );
        assert!(!denied.retryable && !denied.moves_on);
        assert_eq!(denied.openai_status, 400);
    }

    #[test]
    fn key_and_model_errors_move_on() {
        for (status, kind) in [
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
        ] {
            let c = classify_error(status, &body("invalid api token"));
            assert!(!c.retryable && c.moves_on && !c.trips_breaker, "{status}");
            assert_eq!((c.openai_status, c.openai_type), (status, kind));
        }
        let missing = classify_error(501, &body("model 'embed-x' does not support images"));
        assert!(!missing.retryable && missing.moves_on);
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "é".repeat(2000);
        let c = classify_error(400, &body(&long));
        assert!(c.message.len() <= MAX_MESSAGE);
    }

    #[test]
    fn a_prompt_over_the_window_is_a_context_window_error() {
        let c = classify_error(
            400,
            &body(
                "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 5000",
            ),
        );
        assert_eq!(
            c.fallback,
            Some(crate::providers::FallbackClass::ContextWindow)
        );
        assert_eq!(
            classify_error(400, &body("invalid request: message must not be empty")).fallback,
            None
        );
    }
}
