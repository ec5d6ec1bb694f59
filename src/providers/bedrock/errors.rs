//! Classifies Bedrock Runtime failures: HTTP errors (status, the
//! `x-amzn-ErrorType` header, the `{"message": ...}` body) and exception
//! frames inside a ConverseStream.
//!
//! Place in the pipeline: the adapter calls [`classify_error`] on every
//! non-2xx answer and [`exception_class`] when `BedrockStream` reports an
//! in-stream exception; routing reads `retryable` (same target again),
//! `moves_on` (another target may succeed) and `trips_breaker`. The error
//! type decides; the status only when the type is absent or unknown.
//!
//! Bedrock's own error type, bare (`ThrottlingException`), when it named
//! one, is the OpenAI envelope's `code`.
//!
//! Fallback classes: `ServiceQuotaExceededException` is `quota`; a
//! `ValidationException` whose message says the input is too long is
//! `context_window` (Bedrock says that only in words).
//!
//! Must not: copy the whole body into `message` (only the provider's own
//! message text, cut by the shared rule), or guess from message wording
//! beyond the context window.

use serde_json::Value;

use super::eventstream::EventMessage;
use crate::providers::classes::says_context_window;
use crate::providers::{Classification, FallbackClass, Verdict, truncate};

#[derive(Clone, Copy)]
enum Kind {
    Throttled,
    QuotaExceeded,
    NotReady,
    Unavailable,
    Internal,
    ModelTimeout,
    ModelFailed,
    Invalid,
    Auth,
    Forbidden,
    NotFound,
}

impl Kind {
    /// Bedrock's own exception names (HTTP errors are UpperCamel, stream
    /// exceptions lowerCamel) and the AWS front end's auth errors.
    fn from_type(name: &str) -> Option<Kind> {
        const TABLE: &[(&str, Kind)] = &[
            ("ThrottlingException", Kind::Throttled),
            ("ServiceQuotaExceededException", Kind::QuotaExceeded),
            ("ModelNotReadyException", Kind::NotReady),
            ("ServiceUnavailableException", Kind::Unavailable),
            ("InternalServerException", Kind::Internal),
            ("InternalFailure", Kind::Internal),
            ("ModelTimeoutException", Kind::ModelTimeout),
            ("ModelErrorException", Kind::ModelFailed),
            ("ModelStreamErrorException", Kind::ModelFailed),
            ("ValidationException", Kind::Invalid),
            ("SerializationException", Kind::Invalid),
            ("AccessDeniedException", Kind::Forbidden),
            ("ResourceNotFoundException", Kind::NotFound),
            ("UnrecognizedClientException", Kind::Auth),
            ("InvalidSignatureException", Kind::Auth),
            ("IncompleteSignatureException", Kind::Auth),
            ("MissingAuthenticationTokenException", Kind::Auth),
            ("ExpiredTokenException", Kind::Auth),
            ("InvalidClientTokenId", Kind::Auth),
        ];
        TABLE
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, k)| *k)
    }

    fn from_status(status: u16) -> Kind {
        match status {
            429 => Kind::Throttled,
            408 => Kind::ModelTimeout,
            401 => Kind::Auth,
            403 => Kind::Forbidden,
            404 => Kind::NotFound,
            503 => Kind::Unavailable,
            400..=499 => Kind::Invalid,
            _ => Kind::Internal,
        }
    }

    fn verdict(self) -> Verdict {
        match self {
            Kind::Throttled => (true, true, false, 429, "rate_limit_error"),
            // A spent quota does not come back within a retry's backoff.
            Kind::QuotaExceeded => (false, true, false, 429, "rate_limit_error"),
            Kind::NotReady => (true, true, false, 503, "service_unavailable_error"),
            Kind::Unavailable => (true, true, true, 503, "service_unavailable_error"),
            Kind::Internal => (true, true, true, 502, "upstream_error"),
            Kind::ModelTimeout => (true, true, true, 504, "upstream_error"),
            Kind::ModelFailed => (true, true, true, 502, "upstream_error"),
            Kind::Invalid => (false, false, false, 400, "invalid_request_error"),
            Kind::Auth => (false, true, false, 401, "authentication_error"),
            Kind::Forbidden => (false, true, false, 403, "authentication_error"),
            Kind::NotFound => (false, true, false, 404, "invalid_request_error"),
        }
    }
}

/// `ThrottlingException:http://internal.amazon.com/...` or
/// `com.amazon.coral.service#UnrecognizedClientException` -> the bare name.
fn bare_type(raw: &str) -> &str {
    let name = raw.split(':').next().unwrap_or(raw);
    name.rsplit('#').next().unwrap_or(name).trim()
}

/// Classifies a non-2xx Bedrock answer. `error_type` is the
/// `x-amzn-ErrorType` header when present; the body's `__type` is used
/// when it is not.
pub fn classify_error(status: u16, error_type: Option<&str>, body: &[u8]) -> Classification {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
    };
    let type_name = error_type.or_else(|| field("__type")).map(bare_type);
    let kind = type_name
        .and_then(Kind::from_type)
        .unwrap_or_else(|| Kind::from_status(status));
    let type_name = type_name.filter(|t| !t.is_empty());
    let message = (field("message").or_else(|| field("Message")).or(type_name)).map_or_else(
        || format!("Bedrock answered status {status}"),
        str::to_string,
    );
    let fallback = match kind {
        Kind::QuotaExceeded => Some(FallbackClass::Quota),
        Kind::Invalid if says_context_window(&message) => Some(FallbackClass::ContextWindow),
        _ => None,
    };
    Classification::new(kind.verdict(), &message)
        .with_code(type_name.map(str::to_string))
        .with_fallback(fallback)
}

/// Classifies an in-stream `exception` (by `:exception-type`) or `error`
/// (by `:error-code`) frame; `None` for ordinary events. Unknown types
/// count as server errors.
pub fn exception_class(msg: &EventMessage) -> Option<Classification> {
    match msg.message_type()? {
        "exception" => Some(classify_error(500, msg.exception_type(), msg.payload())),
        "error" => {
            let mut class = classify_error(500, msg.header_str(":error-code"), b"");
            if let Some(text) = msg.header_str(":error-message") {
                class.message = truncate(text);
            }
            Some(class)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::MAX_MESSAGE;

    const SUFFIX: &str = ":http://internal.amazon.com/coral/com.amazon.bedrock/";

    fn class(status: u16, ty: &str, message: &str) -> Classification {
        let header = format!("{ty}{SUFFIX}");
        let body = serde_json::json!({ "message": message }).to_string();
        classify_error(status, Some(&header), body.as_bytes())
    }

    #[test]
    fn throttling_and_overload_are_retried() {
        let c = class(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        );
        assert!(c.retryable && c.moves_on && !c.trips_breaker);
        assert_eq!((c.openai_status, c.openai_type), (429, "rate_limit_error"));
        assert_eq!(c.code.as_deref(), Some("ThrottlingException"));
        assert_eq!(
            c.message,
            "Too many requests, please wait before trying again."
        );

        let c = class(
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        );
        assert!(c.retryable && c.moves_on && c.trips_breaker);
        assert_eq!(c.openai_status, 503);

        for (status, ty) in [
            (500, "InternalServerException"),
            (408, "ModelTimeoutException"),
            (429, "ModelNotReadyException"),
            (424, "ModelErrorException"),
        ] {
            let c = class(status, ty, "x");
            assert!(c.retryable && c.moves_on, "{ty}");
        }
        let quota = class(400, "ServiceQuotaExceededException", "quota");
        assert!(!quota.retryable && quota.moves_on);
        assert_eq!(quota.openai_status, 429);
    }

    #[test]
    fn validation_goes_back_to_the_client() {
        let c = class(
            400,
            "ValidationException",
            "The model returned the following errors: bad",
        );
        assert!(!c.retryable && !c.moves_on && !c.trips_breaker);
        assert_eq!(
            (c.openai_status, c.openai_type),
            (400, "invalid_request_error")
        );
    }

    #[test]
    fn auth_and_missing_models_move_on_without_retry() {
        for (status, ty, openai) in [
            (403, "AccessDeniedException", 403),
            (403, "UnrecognizedClientException", 401),
            (403, "InvalidSignatureException", 401),
            (404, "ResourceNotFoundException", 404),
        ] {
            let c = class(status, ty, "no");
            assert!(!c.retryable && c.moves_on && !c.trips_breaker, "{ty}");
            assert_eq!(c.openai_status, openai, "{ty}");
        }
    }

    #[test]
    fn falls_back_to_body_type_then_status() {
        let body = br#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","Message":"The security token included in the request is invalid."}"#;
        let c = classify_error(403, None, body);
        assert_eq!(c.openai_status, 401);
        assert_eq!(
            c.message,
            "The security token included in the request is invalid."
        );

        let c = classify_error(502, None, b"<html>bad gateway</html>");
        assert!(c.retryable && c.trips_breaker);
        assert_eq!(c.message, "Bedrock answered status 502");
        let c = classify_error(429, Some("SomethingNew"), b"");
        assert!(c.retryable);
        assert_eq!(c.message, "SomethingNew");
        let c = classify_error(422, None, b"{}");
        assert!(!c.moves_on);
    }

    #[test]
    fn caps_long_messages_on_a_char_boundary() {
        let long = "é".repeat(400);
        let c = class(400, "ValidationException", &long);
        assert!(c.message.len() <= MAX_MESSAGE && c.message.starts_with("éé"));
    }

    #[test]
    fn classifies_stream_exceptions() {
        let exception = |ty: &str, payload: &'static [u8]| {
            let headers = [(":exception-type", ty), (":message-type", "exception")];
            EventMessage::with_strings(&headers, payload)
        };
        let msg = exception("throttlingException", br#"{"message":"slow down"}"#);
        let c = exception_class(&msg).unwrap();
        assert!(c.retryable && c.moves_on);
        assert_eq!((c.openai_status, c.message.as_str()), (429, "slow down"));

        let msg = exception("validationException", br#"{"message":"bad"}"#);
        assert!(!exception_class(&msg).unwrap().moves_on);

        let err = EventMessage::with_strings(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
            ],
            bytes::Bytes::new(),
        );
        let c = exception_class(&err).unwrap();
        assert!(c.trips_breaker);
        assert_eq!(c.message, "boom");

        let event = EventMessage::with_strings(&[(":message-type", "event")], bytes::Bytes::new());
        assert_eq!(exception_class(&event), None);
    }

    #[test]
    fn fallback_classes_of_bedrock_errors() {
        use crate::providers::FallbackClass::*;
        let c = class(
            400,
            "ValidationException",
            "Input is too long for requested model.",
        );
        assert_eq!(c.fallback, Some(ContextWindow));
        let c = class(400, "ValidationException", "temperature must be at most 1");
        assert_eq!(c.fallback, None);
        let c = class(
            400,
            "ServiceQuotaExceededException",
            "Your request exceeds the service quota for your account.",
        );
        assert_eq!(c.fallback, Some(Quota));
    }
}
