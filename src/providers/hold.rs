//! A stream is an answer only once real content arrived: the first events
//! are held until then.
//!
//! Place in the pipeline: wraps every built provider ([`Held`], installed by
//! the kind registry), so it is part of every attempt on every kind: a chat
//! or passthrough call that answers a stream returns only when the stream
//! has carried real content (text, a tool call, a finish; see
//! `api::stream_content`), with the held events in front of it. A break, a
//! timeout or an error event before that fails the attempt like a
//! non-streaming failure, so routing retries and fails over, the breaker
//! and the metrics count it, and the client never sees the bad provider.
//! An error event becomes an [`UpstreamError::Status`] with the status its
//! type names (a `400` goes back to the client, a `5xx` or `429` moves on).
//! The wait for content is bounded by the provider's `first_byte` timeout,
//! counted from the start of the attempt. Translated streams (Responses and
//! Messages over chat) are held as the chat stream they are made from. Must
//! not look at a stream once it is handed on, nor hold more than
//! [`MAX_HELD`] bytes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Map, Value};
use tokio::time::{Instant, timeout_at};

use super::{Boxed, Capabilities, ChatReply, ExtSupport, Provider, UpstreamError};
use crate::api::chat::ChatRequest;
use crate::api::embeddings::{ClientBody, EmbedAnswer, EmbedReply, EncodingFormat};
use crate::api::error::envelope;
use crate::api::rerank::RerankReply;
use crate::api::sse::{SseDecoder, SseEvent};
use crate::api::stream_content::{Seen, StreamError, StreamKind};
use crate::boxed::in_place;

/// Preamble bytes held at most; beyond that the stream is handed on (a
/// stream of keep-alive events is not an error).
pub const MAX_HELD: usize = 64 * 1024;

type Events = BoxStream<'static, Result<Bytes, UpstreamError>>;

/// A provider whose streams are held until their first real content.
pub struct Held {
    inner: Arc<dyn Provider>,
    /// How long an attempt may take to its first content.
    first_content: Duration,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("first_content", &self.first_content)
            .finish_non_exhaustive()
    }
}

impl Held {
    pub fn wrap(inner: Arc<dyn Provider>, first_content: Duration) -> Arc<dyn Provider> {
        Arc::new(Held {
            inner,
            first_content,
        })
    }
}

/// The status an error event's type names, as a non-streaming answer would
/// have carried it.
fn status_of(e: &StreamError) -> u16 {
    if let Some(n) = e.code.as_deref().and_then(|c| c.parse::<u16>().ok())
        && (400..600).contains(&n)
    {
        return n;
    }
    let kind = e.kind.as_str();
    let code = e.code.as_deref().unwrap_or("");
    match kind {
        "invalid_request_error" | "invalid_request" | "bad_request" => 400,
        "authentication_error" => 401,
        "permission_error" | "permission_denied" => 403,
        "not_found_error" | "not_found" => 404,
        "request_too_large" => 413,
        "rate_limit_error" | "rate_limit_exceeded" | "tokens" | "requests" => 429,
        "overloaded_error" | "service_unavailable" => 503,
        _ if code.contains("rate_limit") => 429,
        _ if code == "context_length_exceeded" || code == "invalid_request_error" => 400,
        _ => 502,
    }
}

/// An error event in a stream, as the failure of the attempt (before any
/// content) or of the stream (after).
pub fn failure(e: &StreamError) -> UpstreamError {
    let status = status_of(e);
    let kind = if e.kind.is_empty() {
        "server_error"
    } else {
        e.kind.as_str()
    };
    let message = if e.message.is_empty() {
        "The upstream stream began with an error event."
    } else {
        e.message.as_str()
    };
    let body = envelope(&super::truncate(message), kind, None, e.code.as_deref());
    UpstreamError::Status {
        status,
        body,
        retry_after: None,
    }
}

/// `events` once real content arrived, with what came before in front;
/// the attempt's failure if an error, a break or `deadline` came first.
pub async fn first_content(
    mut events: Events,
    kind: StreamKind,
    deadline: Instant,
) -> Result<Events, UpstreamError> {
    let mut decoder = SseDecoder::new();
    let mut decoded: Vec<SseEvent> = Vec::new();
    let mut held: Vec<Bytes> = Vec::new();
    let mut held_bytes = 0;
    loop {
        let next = match timeout_at(deadline, events.next()).await {
            Err(_) => return Err(UpstreamError::Timeout("first_byte")),
            Ok(next) => next,
        };
        let chunk = match next {
            // Ended before any content: what there was is the answer.
            None => return Ok(futures_util::stream::iter(held.into_iter().map(Ok)).boxed()),
            Some(Err(e)) => return Err(e),
            Some(Ok(chunk)) => chunk,
        };
        decoded.clear();
        // Events after the first content are the answer's, an error event
        // among them too (a run may carry both): the decoder stops at the
        // first event that is not preamble (a fast upstream's first chunk
        // may hold most of the answer).
        let mut error = None;
        let content = decoder.feed_until(&chunk, &mut decoded, |ev| match kind.classify(ev) {
            Seen::Preamble => false,
            Seen::Content { .. } => true,
            Seen::Error(e) => {
                error = Some(e);
                true
            }
        });
        if let Some(e) = error {
            return Err(failure(&e));
        }
        held_bytes += chunk.len();
        held.push(chunk);
        if content || held_bytes > MAX_HELD {
            let front = futures_util::stream::iter(held.into_iter().map(Ok));
            return Ok(front.chain(events).boxed());
        }
    }
}

/// An attempt's answer as it may be handed on: a full one at once, a
/// stream once it carried content by `deadline` (counted from the start of
/// the attempt).
async fn held(
    reply: ChatReply,
    kind: StreamKind,
    deadline: Instant,
) -> Result<ChatReply, UpstreamError> {
    match reply {
        ChatReply::Stream(events) => first_content(events, kind, deadline)
            .await
            .map(ChatReply::Stream),
        full => Ok(full),
    }
}

#[async_trait::async_trait]
impl Provider for Held {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn max_batch_inputs(&self, model: &str) -> usize {
        self.inner.max_batch_inputs(model)
    }

    fn open_connections(&self) -> Option<usize> {
        self.inner.open_connections()
    }

    fn ext_support(&self, request: &ChatRequest, model: &str) -> ExtSupport {
        self.inner.ext_support(request, model)
    }

    /// Boxed in place (see [`Boxed`]): every chat attempt passes here.
    fn chat<'a, 'b, 'c, 't>(
        &'a self,
        request: &'b ChatRequest,
        model: &'c str,
        stream: bool,
    ) -> Boxed<'t, ChatReply>
    where
        'a: 't,
        'b: 't,
        'c: 't,
        Self: 't,
    {
        in_place(move || async move {
            let deadline = Instant::now() + self.first_content;
            let reply = self.inner.chat(request, model, stream).await?;
            held(reply, StreamKind::Chat, deadline).await
        })
    }

    async fn passthrough(
        &self,
        path: &str,
        body: Bytes,
        client_headers: &http::HeaderMap,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let deadline = Instant::now() + self.first_content;
        let reply = self
            .inner
            .passthrough(path, body, client_headers, stream)
            .await?;
        held(reply, StreamKind::for_path(path), deadline).await
    }

    async fn stored(&self, method: http::Method, path: &str) -> Result<Bytes, UpstreamError> {
        self.inner.stored(method, path).await
    }

    async fn embed(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        self.inner.embed(model, inputs, extra).await
    }

    async fn embed_as(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
        format: EncodingFormat,
    ) -> Result<EmbedAnswer, UpstreamError> {
        self.inner.embed_as(model, inputs, extra, format).await
    }

    fn sends_embeddings_body(&self) -> bool {
        self.inner.sends_embeddings_body()
    }

    async fn embed_body(
        &self,
        model: &str,
        body: &ClientBody,
    ) -> Result<EmbedAnswer, UpstreamError> {
        self.inner.embed_body(model, body).await
    }

    async fn rerank(
        &self,
        model: &str,
        query: &str,
        documents: &[Arc<str>],
        extra: &Map<String, Value>,
    ) -> Result<RerankReply, UpstreamError> {
        self.inner.rerank(model, query, documents, extra).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(items: Vec<Result<&'static str, UpstreamError>>) -> Events {
        futures_util::stream::iter(
            items
                .into_iter()
                .map(|r| r.map(|s| Bytes::from_static(s.as_bytes()))),
        )
        .boxed()
    }

    const ROLE: &str =
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
    const HELLO: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hello\"}}]}\n\n";

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn hands_on_the_stream_with_the_held_events_once_content_came() {
        let s = stream(vec![
            Ok(ROLE),
            Ok(HELLO),
            Err(UpstreamError::Timeout("idle")),
        ]);
        let out = first_content(s, StreamKind::Chat, later()).await.unwrap();
        let items: Vec<_> = out.collect().await;
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_ref().unwrap(), ROLE);
        assert_eq!(items[1].as_ref().unwrap(), HELLO);
        assert!(items[2].is_err(), "a break after content is the caller's");
    }

    #[tokio::test]
    async fn a_break_or_an_error_event_before_content_fails_the_attempt() {
        let cut = stream(vec![Ok(ROLE), Err(UpstreamError::Protocol("reset".into()))]);
        let e = first_content(cut, StreamKind::Chat, later())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, UpstreamError::Protocol(_)));
        for (event, status, moves_on) in [
            (
                r#"{"error":{"message":"busy","type":"server_error"}}"#,
                502,
                true,
            ),
            (
                r#"{"error":{"message":"slow","type":"rate_limit_error"}}"#,
                429,
                true,
            ),
            (
                r#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
                400,
                false,
            ),
        ] {
            let ev: &'static str = Box::leak(format!("data: {event}\n\n").into_boxed_str());
            let e = first_content(stream(vec![Ok(ROLE), Ok(ev)]), StreamKind::Chat, later())
                .await
                .err()
                .unwrap();
            match &e {
                UpstreamError::Status {
                    status: s, body, ..
                } => {
                    assert_eq!(*s, status, "{event}");
                    let v: Value = serde_json::from_slice(body).unwrap();
                    assert!(v["error"]["message"].is_string(), "{v}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(e.moves_on(), moves_on, "{event}");
        }
    }

    #[tokio::test]
    async fn an_error_event_after_content_in_the_same_run_is_the_answers() {
        let run: &'static str = Box::leak(
            format!("{ROLE}{HELLO}data: {{\"error\":{{\"message\":\"busy\",\"type\":\"server_error\"}}}}\n\n")
                .into_boxed_str(),
        );
        let out = first_content(stream(vec![Ok(run)]), StreamKind::Chat, later())
            .await
            .unwrap();
        let items: Vec<_> = out.collect().await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap(), run);
        let run: &'static str = Box::leak(
            format!("{ROLE}data: {{\"error\":{{\"message\":\"busy\",\"type\":\"server_error\"}}}}\n\n{HELLO}")
                .into_boxed_str(),
        );
        let e = first_content(stream(vec![Ok(run)]), StreamKind::Chat, later()).await;
        assert!(e.is_err(), "an error before content in one run still fails");
    }

    #[tokio::test(start_paused = true)]
    async fn no_content_within_the_deadline_is_a_timeout() {
        let s = futures_util::stream::iter([Ok(Bytes::from_static(ROLE.as_bytes()))])
            .chain(futures_util::stream::pending())
            .boxed();
        let deadline = Instant::now() + Duration::from_secs(2);
        let e = first_content(s, StreamKind::Chat, deadline)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, UpstreamError::Timeout("first_byte")), "{e:?}");
    }
}
