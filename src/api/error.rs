//! The gateway's error type and the OpenAI error envelope it is written as.
//!
//! Place in the pipeline: every layer returns [`GatewayError`]; only
//! `server` turns one into an HTTP response (status chosen there). The
//! envelope is `{"error": {"message", "type", "param", "code"}}` as the
//! OpenAI SDKs expect; this file is the one writer of its bytes, for the
//! gateway's own errors ([`GatewayError::body`]) and for the upstream errors
//! providers classify ([`envelope`], [`envelope_with`]). Messages must never
//! carry secrets (API keys, admin tokens): callers write them from policy
//! names, never from header values.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    /// A request body in an encoding the gateway cannot decode.
    UnsupportedMediaType,
    Unauthorized,
    /// The caller is known but may not do this (a route outside its key).
    Forbidden,
    RateLimited,
    /// The gateway itself is at its concurrency limit.
    Overloaded,
    /// No target could be tried (breakers open) or the gateway is draining.
    Unavailable,
    /// Every target failed.
    BadGateway,
    GatewayTimeout,
    /// An upstream rejected the request itself (4xx); its status and body go
    /// back to the client unchanged.
    Upstream {
        status: u16,
        body: Bytes,
    },
    Internal,
    /// A policy reload was refused; one line per problem, `file:line: path: message`.
    InvalidPolicy(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: String,
    pub code: Option<&'static str>,
    pub param: Option<Box<str>>,
    pub retry_after: Option<Duration>,
    /// The gateway already retried and failed over: tell SDKs not to
    /// multiply the calls (`x-should-retry: false`).
    pub final_after_retries: bool,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GatewayError {
            kind,
            message: message.into(),
            code: None,
            param: None,
            retry_after: None,
            final_after_retries: false,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into().into_boxed_str());
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn final_after_retries(mut self) -> Self {
        self.final_after_retries = true;
        self
    }

    /// No target could answer (each failed, timed out, was rate limited or
    /// had its breaker open): not the request's fault, so an answer kept
    /// from before may stand in (`stale_if_error`).
    pub fn no_target_answered(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::BadGateway
                | ErrorKind::Unavailable
                | ErrorKind::GatewayTimeout
                | ErrorKind::RateLimited
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// The gateway's own failure (`internal_error`), never the client's.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message).with_code("internal_error")
    }

    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(message).with_param(param)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("The model `{model}` does not exist or is not routed by this gateway."),
        )
        .with_code("model_not_found")
        .with_param("model")
    }

    /// A reload refused; `details` lists every problem.
    pub fn invalid_policy(details: Vec<String>) -> Self {
        let message = format!(
            "Policy rejected; the previous policy stays in force. {}",
            details.join("; ")
        );
        Self::new(ErrorKind::InvalidPolicy(details), message).with_code("invalid_policy")
    }

    pub fn rate_limited(scope: &str, retry_after: Duration) -> Self {
        Self::new(
            ErrorKind::RateLimited,
            format!(
                "Rate limit exceeded ({scope}). Retry after {:.3}s.",
                retry_after.as_secs_f64()
            ),
        )
        .with_code("rate_limit_exceeded")
        .with_retry_after(retry_after)
    }

    /// OpenAI's `type` field.
    pub fn error_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::PayloadTooLarge
            | ErrorKind::UnsupportedMediaType
            | ErrorKind::Upstream { .. } => "invalid_request_error",
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Overloaded | ErrorKind::Unavailable => "service_unavailable_error",
            ErrorKind::BadGateway | ErrorKind::GatewayTimeout => "upstream_error",
            ErrorKind::Internal => "server_error",
            ErrorKind::InvalidPolicy(_) => "invalid_request_error",
        }
    }

    /// The JSON body. An upstream's own JSON error is passed through as is.
    pub fn body(&self) -> Bytes {
        if let ErrorKind::Upstream { body, .. } = &self.kind {
            let is_error_json = serde_json::from_slice::<Value>(body)
                .map(|v| v.get("error").is_some())
                .unwrap_or(false);
            if is_error_json {
                return body.clone();
            }
        }
        let details = match &self.kind {
            ErrorKind::InvalidPolicy(d) => Some(d.as_slice()),
            _ => None,
        };
        write(&Body {
            message: &self.message,
            kind: self.error_type(),
            param: self.param.as_deref(),
            code: self.code,
            details,
            extra: None,
        })
    }
}

/// The OpenAI error envelope `{"error": {"message", "type", "param",
/// "code"}}`. With [`envelope_with`] and [`GatewayError::body`], the only
/// writer of these bytes: providers call it for the upstream errors they
/// classify, and never build the JSON themselves.
pub fn envelope(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Bytes {
    envelope_with(message, kind, param, code, &Map::new())
}

/// [`envelope`] with more members in the `error` object, after the four
/// (Azure's `innererror`). `extra` must not repeat the four names.
pub fn envelope_with(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
    extra: &Map<String, Value>,
) -> Bytes {
    write(&Body {
        message,
        kind,
        param,
        code,
        details: None,
        extra: Some(extra),
    })
}

fn write(body: &Body<'_>) -> Bytes {
    Bytes::from(serde_json::to_vec(&Envelope { error: body }).unwrap_or_default())
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'a Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a [String]>,
    #[serde(flatten)]
    extra: Option<&'a Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_four_members_in_order() {
        let body = envelope("Too many requests", "rate_limit_error", None, Some("x"));
        assert_eq!(
            &body[..],
            br#"{"error":{"message":"Too many requests","type":"rate_limit_error","param":null,"code":"x"}}"#
        );
        let e = GatewayError::invalid_param("model", "bad").with_code("c");
        assert_eq!(
            e.body(),
            envelope("bad", "invalid_request_error", Some("model"), Some("c"))
        );
    }

    #[test]
    fn extra_members_follow_the_four() {
        let mut extra = Map::new();
        extra.insert("innererror".into(), serde_json::json!({"code": "X"}));
        let body = envelope_with("m", "invalid_request_error", Some("prompt"), None, &extra);
        assert_eq!(
            &body[..],
            br#"{"error":{"message":"m","type":"invalid_request_error","param":"prompt","code":null,"innererror":{"code":"X"}}}"#
        );
    }

    #[test]
    fn policy_errors_list_their_details() {
        let body = GatewayError::invalid_policy(vec!["a.yaml:1: x: bad".into()]).body();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["details"][0], "a.yaml:1: x: bad");
        assert_eq!(v["error"]["code"], "invalid_policy");
    }
}
