//! Azure OpenAI's own error: the content filter's refusal.
//!
//! Place in the pipeline: the `azure` provider calls [`content_filter`] on
//! every non-success answer before the generic status classification. Azure
//! refuses a prompt its content filter blocks with `400` and
//! `{"error": {"code": "content_filter", "status": 400, "innererror":
//! {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {...}}}}`.
//! That is a verdict on the request: passed back to the client as a `400`
//! (never retried, no failover), a [`Classification`] whose envelope has a
//! string `type` and keeps Azure's `innererror`, so the client sees which
//! category tripped.
//! Every other error is left to the generic classification (429 with
//! `retry-after-ms`/`retry-after` retried or failed over, 5xx retried,
//! 401/403/404 move on, other 4xx passed back); [`with_type`] only gives
//! Azure's `{"error": {"code", "message"}}` the `type` (and `param`) an
//! OpenAI client expects. Must not invent messages when Azure gave one.

use bytes::Bytes;
use serde_json::Value;

use crate::providers::{Classification, FallbackClass};

/// A content-filter refusal, or `None` when `body` is some other error.
pub fn content_filter(status: u16, body: &[u8]) -> Option<Classification> {
    if status != 400 {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error")?;
    let code = error.get("code").and_then(Value::as_str);
    let inner = error.get("innererror");
    let inner_code = inner.and_then(|i| i.get("code")).and_then(Value::as_str);
    if code != Some("content_filter") && inner_code != Some("ResponsibleAIPolicyViolation") {
        return None;
    }
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("The request was blocked by Azure OpenAI's content filter.");
    let mut class =
        Classification::new((false, false, false, 400, "invalid_request_error"), message)
            .with_code(Some("content_filter".into()))
            .with_fallback(Some(FallbackClass::ContentPolicy));
    class.param = error
        .get("param")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(inner) = inner {
        class.extra.insert("innererror".into(), inner.clone());
    }
    Some(class)
}

/// `body` with `error.type` (from the status) and `error.param` filled in
/// when Azure left them out; any other body unchanged.
pub fn with_type(status: u16, body: Bytes) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let Some(error) = v.get_mut("error").and_then(Value::as_object_mut) else {
        return body;
    };
    if error.get("type").is_some_and(Value::is_string) {
        return body;
    }
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    error.insert("type".into(), Value::from(kind));
    error.entry("param").or_insert(Value::Null);
    Bytes::from(v.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::UpstreamError;
    use crate::providers::scrub::Scrubber;

    /// The envelope a refusal is answered with.
    fn envelope(class: Classification) -> Value {
        match class.into_error(None, &Scrubber::default()) {
            UpstreamError::Classified {
                status: 400,
                body,
                class,
                ..
            } => {
                assert!(!class.retryable && !class.moves_on && !class.trips_breaker);
                serde_json::from_slice(&body).unwrap()
            }
            other => panic!("{other:?}"),
        }
    }

    /// The refusal as Azure documents it (prompt filtered for hate, medium).
    fn refusal() -> Value {
        json!({"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
            "type": null,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": {"filtered": true, "severity": "medium"},
                    "jailbreak": {"filtered": false, "detected": false},
                    "self_harm": {"filtered": false, "severity": "safe"},
                    "sexual": {"filtered": false, "severity": "safe"},
                    "violence": {"filtered": false, "severity": "safe"}
                }
            }
        }})
    }

    #[test]
    fn refusal_becomes_an_openai_400_envelope() {
        let v = envelope(content_filter(400, refusal().to_string().as_bytes()).unwrap());
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "content_filter");
        assert_eq!(v["error"]["param"], "prompt");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("The response was filtered")
        );
        assert_eq!(
            v["error"]["innererror"]["content_filter_result"]["hate"]["filtered"],
            true
        );
        // Recognised by the inner code alone, too.
        let inner_only = json!({"error": {"code": "BadRequest", "message": "m",
            "innererror": {"code": "ResponsibleAIPolicyViolation"}}});
        assert!(content_filter(400, inner_only.to_string().as_bytes()).is_some());
    }

    #[test]
    fn azure_envelopes_get_a_type() {
        let body = |v: Value| Bytes::from(v.to_string());
        let fixed = with_type(
            404,
            body(
                json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}),
            ),
        );
        let v: Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist.",
                             "type": "not_found_error", "param": null}})
        );
        let typed = body(json!({"error": {"message": "m", "type": "server_error"}}));
        assert_eq!(with_type(500, typed.clone()), typed);
        assert_eq!(
            with_type(502, Bytes::from_static(b"<html>")),
            Bytes::from_static(b"<html>")
        );
        let v: Value = serde_json::from_slice(&with_type(
            429,
            body(json!({"error": {"code": "429", "message": "m"}})),
        ))
        .unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn other_errors_are_left_alone() {
        let rate = json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current AIServices S0 pricing tier. Please retry after 6 seconds."}});
        assert!(content_filter(429, rate.to_string().as_bytes()).is_none());
        let bad =
            json!({"error": {"code": "BadRequest", "message": "Invalid value for 'temperature'."}});
        assert!(content_filter(400, bad.to_string().as_bytes()).is_none());
        assert!(content_filter(400, b"<html>").is_none());
        assert!(content_filter(500, refusal().to_string().as_bytes()).is_none());
    }
}
