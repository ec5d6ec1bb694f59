//! HTTP plumbing: body types, body limits, JSON responses, error mapping.
//!
//! Place in the pipeline: used by the edge, the flows and the endpoints.
//! [`error_response`] is the one place a [`GatewayError`] becomes an HTTP
//! status, headers (`Retry-After`, `x-should-retry`, the admin token's
//! `WWW-Authenticate`) and an error body in
//! the endpoint's [`ErrorShape`] (OpenAI's envelope, or Anthropic's for
//! `/v1/messages`), and [`stream_error_event`] the one place it becomes an
//! SSE error event. Request bodies arrive already decoded by the edge ([`ReqBody`]),
//! so [`read_body`]'s limit counts decompressed bytes. Must not contain
//! endpoint logic.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Full, Limited};

use crate::api::{ErrorKind, GatewayError};
use crate::gather::Gather;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A request body as handlers see it: decompressed by the edge when the
/// client sent `Content-Encoding`, and boxed (by `edge::decompress`),
/// because the decoder (about 360 bytes) would otherwise be copied with
/// the request at every step that moves it, and size every future holding
/// it.
pub type ReqBody = BoxBody<Bytes, tower_http::BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn status_of(e: &GatewayError) -> StatusCode {
    match &e.kind {
        ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Overloaded | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
        ErrorKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Upstream { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::InvalidPolicy(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// How an endpoint's clients expect errors written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error": {"message", "type", "param", "code"}}`
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`, what the Anthropic
    /// SDKs parse: the Messages endpoints.
    Anthropic,
}

impl ErrorShape {
    pub fn for_path(path: &str) -> Self {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            ErrorShape::Anthropic
        } else {
            ErrorShape::OpenAi
        }
    }

    fn body(self, e: &GatewayError) -> Bytes {
        match self {
            ErrorShape::OpenAi => e.body(),
            ErrorShape::Anthropic => {
                crate::api::messages::error_body(status_of(e).as_u16(), &e.body())
            }
        }
    }
}

pub fn error_response(e: &GatewayError) -> Response<Body> {
    shaped_error_response(e, ErrorShape::OpenAi)
}

/// The gateway's own error in a response (not an upstream's passed back):
/// its code (else its type) and message, for the access log. A response
/// extension, so every layer that answers an error is logged the same way.
#[derive(Debug, Clone)]
pub struct OwnError {
    pub code: &'static str,
    pub message: std::sync::Arc<str>,
}

pub fn shaped_error_response(e: &GatewayError, shape: ErrorShape) -> Response<Body> {
    let mut r = json_response(status_of(e), shape.body(e));
    if !matches!(e.kind, ErrorKind::Upstream { .. }) {
        r.extensions_mut().insert(OwnError {
            code: e.code.unwrap_or_else(|| e.error_type()),
            message: std::sync::Arc::from(e.message.as_str()),
        });
    }
    if let Some(after) = e.retry_after {
        // Whole seconds, rounded up, at least 1: what clients parse.
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        // Rounded up too: a hint a fraction of a millisecond short of
        // its slot brings the caller back before its token.
        let ms = after.as_nanos().div_ceil(1_000_000).max(1) as u64;
        r.headers_mut()
            .insert("retry-after-ms", HeaderValue::from(ms));
    }
    if e.final_after_retries {
        r.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("false"));
    }
    if e.kind == ErrorKind::Unauthorized && e.code == Some(super::access::admin::ADMIN_TOKEN_CODE) {
        // A browser asks for the admin token (as the password) on this.
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"switchyard\", charset=\"UTF-8\""),
        );
    }
    if e.kind == ErrorKind::MethodNotAllowed
        && let Some(allow) = &e.param
        && let Ok(v) = HeaderValue::from_str(allow)
    {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

/// A stream that has already started cannot change its status: its error
/// goes in-band, as one SSE event in the same envelope.
pub fn stream_error_event(e: &GatewayError, shape: ErrorShape) -> Bytes {
    match shape {
        ErrorShape::OpenAi => crate::api::sse::data_event(&e.body()),
        ErrorShape::Anthropic => crate::api::sse::named_event("error", &shape.body(e)),
    }
}

/// Reads the whole (decoded) request body, refusing more than `limit`
/// bytes: a small compressed body that inflates past it is refused as soon
/// as it does, never held whole.
pub async fn read_body(
    parts: &http::request::Parts,
    body: ReqBody,
    limit: u64,
) -> Result<Bytes, GatewayError> {
    let too_large = || {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            format!("Request body is larger than the {limit} bytes this gateway accepts."),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // One piece stays itself; more are copied into one buffer, sized from
    // Content-Length when given (`crate::gather`).
    let mut gathered = Gather::expecting(declared.unwrap_or(0) as usize);
    let mut body = Limited::new(body, limit as usize);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    gathered.push(data);
                }
            }
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(_) => {
                return Err(GatewayError::invalid(
                    "Could not read the request body (or decode its Content-Encoding).",
                ));
            }
        }
    }
    Ok(gathered.finish())
}

/// `x-switchyard-provider` and `x-switchyard-attempts`: who answered, after
/// how many attempts.
pub fn served_by(h: &mut http::HeaderMap, provider: &str, attempts: u32) {
    if let Ok(v) = HeaderValue::from_str(provider) {
        h.insert(X_PROVIDER.clone(), v);
    }
    // The usual counts named, not written out (an allocation each).
    let n = match attempts {
        0 => HeaderValue::from_static("0"),
        1 => HeaderValue::from_static("1"),
        2 => HeaderValue::from_static("2"),
        3 => HeaderValue::from_static("3"),
        n => HeaderValue::from(n),
    };
    h.insert(X_ATTEMPTS.clone(), n);
}

// The gateway's own answer headers, named once: a name given as a string
// is parsed and, not being a standard one, copied on every insert.
/// `x-switchyard-provider`: the provider that answered.
pub static X_PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
/// `x-switchyard-attempts`: the upstream attempts made.
pub static X_ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
/// `x-switchyard-cache`: hit, miss, partial, shared, ...
pub static X_CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");

/// `Cache-Control: no-cache` / `no-store` from the client skips the cache.
pub fn wants_no_cache(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|d| {
                matches!(
                    d.trim().to_ascii_lowercase().as_str(),
                    "no-cache" | "no-store"
                )
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Both hints round up: a caller told them never comes back before
    /// the time it was booked for.
    #[test]
    fn retry_hints_round_up_to_the_next_unit() {
        let hints = |after: Duration| {
            let e = GatewayError::rate_limited("client", after);
            let r = shaped_error_response(&e, ErrorShape::OpenAi);
            let h = |n: &str| r.headers()[n].to_str().unwrap().to_owned();
            (h("retry-after"), h("retry-after-ms"))
        };
        let ms = Duration::from_millis;
        assert_eq!(hints(ms(20)), ("1".into(), "20".into()));
        assert_eq!(
            hints(ms(20) + Duration::from_micros(400)),
            ("1".into(), "21".into())
        );
        assert_eq!(hints(Duration::from_micros(300)), ("1".into(), "1".into()));
        assert_eq!(hints(ms(1000)), ("1".into(), "1000".into()));
        assert_eq!(hints(ms(1001)), ("2".into(), "1001".into()));
    }
}
