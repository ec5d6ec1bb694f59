//! One HTTP upstream: the plumbing every HTTP provider kind shares.
//!
//! Place in the pipeline: inside a provider, for one attempt. [`Upstream`]
//! sends a request under the connect and first-byte timeouts, reads error
//! bodies (bounded) and hands back a successful response with its body
//! [`Limits`] ([`Upstream::send_classified`] hands a failure to the kind's
//! classifier instead); [`Upstream::read_json`] reads a whole JSON answer;
//! [`translated_sse`] (in `upstream_stream`, re-exported here) turns an
//! upstream SSE body into OpenAI chunks through a kind's
//! [`StreamTranslate`], whole events only. Every byte read here is
//! scrubbed of the provider's secrets before anything else sees it: error
//! bodies and their headers whole, successful bodies and streams chunk by
//! chunk through [`Limits::body`] (see `scrub`). Every request goes out
//! through [`Upstream::send`], which adds the W3C trace context of the
//! current (attempt) span when tracing is on. Must not know any provider's
//! wire format.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::time::{Instant, timeout_at};

use super::body::{ByteStream, Limits};
use super::client::{Client, RequestBuilder, Response};
use super::scrub::Scrubber;
use super::{UpstreamError, parse_retry_after};
use crate::boxed::in_place;
use crate::config::Timeouts;

pub use super::upstream_stream::{
    ChunkTranslate, StreamTranslate, translated_sse, translated_stream,
};

/// What [`Upstream::send`] gives back.
type Sent = Result<Result<(Response, Limits), Failed>, UpstreamError>;

/// Error bodies are read up to this size; the rest is dropped.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A non-success answer: status, headers and body, all scrubbed.
#[derive(Debug)]
pub struct Failed {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Failed {
    /// The generic classification by status (for OpenAI-compatible servers).
    /// A context-window, content-policy or quota error its body names
    /// (`super::classes`) is classified as one.
    pub fn into_status_error(self) -> UpstreamError {
        let retry_after = parse_retry_after(&self.headers);
        super::classes::openai_error(self.status, self.body, retry_after)
    }
}

pub use super::client::ClientError;

/// A provider could not be set up from its (valid) configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A configured value cannot be sent as this header.
    #[error("{0} is not a valid header value")]
    Header(&'static str),
}

#[derive(Debug)]
pub struct Upstream {
    client: Client,
    timeouts: Timeouts,
    max_response_bytes: u64,
    scrubber: Arc<Scrubber>,
}

impl Upstream {
    pub fn new<'a>(
        timeouts: &Timeouts,
        max_response_bytes: u64,
        secrets: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ClientError> {
        let client = Client::new(timeouts.connect)?;
        Ok(Upstream {
            client,
            timeouts: timeouts.clone(),
            max_response_bytes,
            scrubber: Arc::new(Scrubber::new(secrets)),
        })
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The provider's scrubber (for the error bodies it writes itself).
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// Sends `request` (built with [`Upstream::client`]) and waits for its
    /// headers. `Ok(Err(failed))` is a non-success answer. Boxed in place:
    /// the send is most of a provider's future, and every provider's
    /// future is boxed (see `crate::boxed`).
    pub fn send(
        &self,
        request: RequestBuilder,
    ) -> Pin<Box<impl Future<Output = Sent> + Send + '_>> {
        in_place(move || self.send_unboxed(request))
    }

    async fn send_unboxed(&self, request: RequestBuilder) -> Sent {
        // Tracing on: the attempt's span travels upstream as `traceparent`.
        let request = match crate::telemetry::tracing_on()
            .then(crate::telemetry::w3c::current)
            .flatten()
        {
            Some(context) => request.headers(&context),
            None => request,
        };
        let start = Instant::now();
        let limits = Limits::new(
            &self.timeouts,
            start,
            self.max_response_bytes,
            Arc::clone(&self.scrubber),
        );
        let first_byte = (start + self.timeouts.first_byte).min(limits.total_deadline);
        let response = match timeout_at(first_byte, self.client.execute(request)).await {
            Err(_) => {
                let which = if first_byte == limits.total_deadline {
                    "total"
                } else {
                    "first_byte"
                };
                return Err(UpstreamError::Timeout(which));
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(r)) => r,
        };
        if response.status().is_success() {
            return Ok(Ok((response, limits)));
        }
        let status = response.status().as_u16();
        let headers = scrub_headers(&self.scrubber, response.headers());
        let mut stream: ByteStream = response.bytes_stream().boxed();
        let mut body = BytesMut::new();
        let error_deadline = Instant::now() + self.timeouts.body;
        while body.len() < MAX_ERROR_BODY {
            match limits.next(&mut stream, Some(error_deadline)).await {
                Some(Ok(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BODY);
        Ok(Err(Failed {
            status,
            headers,
            body: self.scrubber.scrub(body.freeze()),
        }))
    }

    /// [`Upstream::send`] for a kind that classifies its own errors: a
    /// non-success answer goes through `classify`, with this provider's
    /// scrubber for the envelope it writes.
    pub async fn send_classified(
        &self,
        request: RequestBuilder,
        classify: impl FnOnce(Failed, &Scrubber) -> UpstreamError,
    ) -> Result<(Response, Limits), UpstreamError> {
        (self.send(request).await?).map_err(|failed| classify(failed, &self.scrubber))
    }

    /// Connections this provider holds open now.
    pub fn open_connections(&self) -> usize {
        self.client.open_connections()
    }

    /// The client to build requests with (connection pool of this provider).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads a whole JSON answer; a declared non-JSON content type is a
    /// protocol failure (an HTML page from a proxy is not an answer).
    pub async fn read_json(
        &self,
        response: Response,
        limits: &Limits,
    ) -> Result<Bytes, UpstreamError> {
        let declared = Self::json(&response)?;
        let stream = limits.body(response);
        limits.read_all(stream, declared, self.timeouts.body).await
    }

    /// As [`Self::read_json`], each chunk handed to `take` as it comes and
    /// kept as it is, not copied into one buffer (an answer passed
    /// through as it came).
    pub async fn read_json_pieces(
        &self,
        response: Response,
        limits: &Limits,
        take: impl FnMut(Bytes),
    ) -> Result<(), UpstreamError> {
        let declared = Self::json(&response)?;
        let stream = limits.body(response);
        limits
            .read_pieces(stream, declared, self.timeouts.body, take)
            .await
    }

    /// The declared length of a JSON answer; an error if it is not JSON.
    fn json(response: &Response) -> Result<Option<u64>, UpstreamError> {
        if !content_type_is(response, is_json_type, true) {
            return Err(UpstreamError::Protocol(
                "a 200 answer that is not JSON".into(),
            ));
        }
        Ok(response.content_length())
    }
}

/// `headers` with every value that holds a secret scrubbed (an upstream
/// may echo the request's `Authorization` in a header of its own).
fn scrub_headers(scrubber: &Scrubber, headers: &http::HeaderMap) -> http::HeaderMap {
    let mut out = headers.clone();
    if scrubber.is_empty() {
        return out;
    }
    for value in out.values_mut() {
        let raw = Bytes::copy_from_slice(value.as_bytes());
        let clean = scrubber.scrub(raw.clone());
        if clean != raw
            && let Ok(v) = http::HeaderValue::from_maybe_shared(clean)
        {
            *value = v;
        }
    }
    out
}

pub fn is_json_type(t: &str) -> bool {
    t == "application/json" || t.ends_with("+json")
}

/// Whether the response's media type passes `ok`; `missing` when it has none.
pub fn content_type_is(response: &Response, ok: impl Fn(&str) -> bool, missing: bool) -> bool {
    match response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None => missing,
        Some(v) => {
            let t = v.split(';').next().unwrap_or("").trim();
            // Lower-cased only when it has capitals (as sent, nearly never).
            if t.bytes().any(|b| b.is_ascii_uppercase()) {
                ok(&t.to_ascii_lowercase())
            } else {
                ok(t)
            }
        }
    }
}

/// A `200` to a streaming request must be an event stream: anything else
/// (a JSON body, an HTML page) fails before the first byte, so it can be
/// retried or failed over.
pub fn expect_event_stream(response: &Response) -> Result<(), UpstreamError> {
    if content_type_is(response, |t| t == "text/event-stream", false) {
        Ok(())
    } else {
        Err(UpstreamError::Protocol(
            "a streaming answer that is not text/event-stream".into(),
        ))
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
