//! The `anthropic` provider: one chat attempt against the Messages API.
//!
//! Place in the pipeline: called by `routing` for one attempt on a target of
//! this kind. Translates the client's OpenAI request ([`chat_request`]),
//! sends `POST {base_url}/v1/messages` through [`Upstream`] (connect and
//! first-byte timeouts, body limits, size cap, the key scrubbed from error
//! bodies), and translates the answer back: a whole `Message` into a
//! `chat.completion` ([`chat_response`]), a stream event by event into
//! `chat.completion.chunk`s ([`AnthropicStream`], honouring the client's
//! `stream_options.include_usage`). A non-2xx answer is classified by
//! [`classify_error`] into [`UpstreamError::Classified`] with an OpenAI error
//! envelope and Anthropic's `retry-after` (429 rate limits and 529 overloads
//! are retried and fail over; a 400 goes back to the client). Requests the
//! translation refuses never reach the network. An in-stream `error` event
//! (e.g. `overloaded_error` after the response started) ends the stream with
//! the gateway's error event, as any stream failing mid-way does. Must not
//! retry, fail over, log, or echo the API key.

use crate::providers::upstream::SetupError;
use crate::providers::upstream::expect_event_stream;
use bytes::Bytes;
use http::HeaderValue;
use serde_json::Value;

use super::config::{CAPABILITIES, Config};
use super::thinking::plan;
use super::{
    AnthropicChatSettings, AnthropicStream, MESSAGES_PATH, chat_request_ext, chat_response,
    classify_error, headers,
};
use crate::api::chat::ChatRequest;
use crate::api::sse::SseEvent;
use crate::config::Timeouts;
use crate::providers::parse_retry_after;
use crate::providers::scrub::Scrubber;
use crate::providers::translate::TranslateError;
use crate::providers::upstream::{Failed, StreamTranslate, Upstream, translated_sse};
use crate::providers::{Capabilities, ChatReply, ExtSupport, Provider, UpstreamError};

#[derive(Debug)]
pub struct AnthropicProvider {
    upstream: Upstream,
    url: String,
    /// `{base_url}/v1`, for the Messages endpoints passed through.
    base: String,
    headers: http::HeaderMap,
    chat: AnthropicChatSettings,
}

impl AnthropicProvider {
    pub(super) fn new(
        config: &Config,
        timeouts: &Timeouts,
        max_response_bytes: u64,
    ) -> Result<Self, SetupError> {
        let key = config.api_key.expose();
        let mut headers = headers(key, &config.version);
        if !headers.contains_key("x-api-key") {
            return Err(SetupError::Header("the API key"));
        }
        if !headers.contains_key("anthropic-version") {
            return Err(SetupError::Header("`version`"));
        }
        if !config.beta.is_empty() {
            let beta = HeaderValue::from_str(&config.beta.join(","))
                .map_err(|_| SetupError::Header("`beta`"))?;
            headers.insert("anthropic-beta", beta);
        }
        Ok(AnthropicProvider {
            upstream: Upstream::new(timeouts, max_response_bytes, [key])?,
            url: format!("{}{MESSAGES_PATH}", config.base_url),
            base: format!("{}/v1", config.base_url),
            headers,
            chat: config.chat.clone(),
        })
    }
}

#[async_trait::async_trait]
impl Provider for AnthropicProvider {
    fn open_connections(&self) -> Option<usize> {
        Some(self.upstream.open_connections())
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn ext_support(&self, request: &ChatRequest, model: &str) -> ExtSupport {
        let max_tokens = request
            .body
            .get("max_completion_tokens")
            .or_else(|| request.body.get("max_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(u64::from(self.chat.default_max_tokens));
        let thinking = plan(&request.body, &request.ext, model, max_tokens).is_some();
        ExtSupport {
            reasoning: thinking,
            top_k: !thinking,
            serial_tool_calls: true,
        }
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let mut body = chat_request_ext(&request.body, &request.ext, model, &self.chat)
            .map_err(UpstreamError::Translate)?;
        if let Some(b) = body.as_object_mut() {
            // The attempt decides, whatever the client's body said.
            if stream {
                b.insert("stream".into(), Value::Bool(true));
            } else {
                b.remove("stream");
            }
        }
        let call = self
            .upstream
            .client()
            .post(&self.url)
            .headers(&self.headers)
            .body(body.to_string());
        let (response, limits) = self.upstream.send_classified(call, classified).await?;
        if !stream {
            let bytes = self.upstream.read_json(response, &limits).await?;
            let completion = chat_response(&bytes, model).map_err(UpstreamError::Translate)?;
            return Ok(ChatReply::whole(Bytes::from(completion.to_string())));
        }
        expect_event_stream(&response)?;
        let include_usage = request.include_usage();
        let translator = Translator(AnthropicStream::new(model, include_usage));
        Ok(ChatReply::Stream(translated_sse(
            response, limits, translator,
        )))
    }

    async fn passthrough(
        &self,
        path: &str,
        body: Bytes,
        client_headers: &http::HeaderMap,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        self.native(path, body, client_headers, stream).await
    }
}

impl AnthropicProvider {
    pub(super) fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    pub(super) fn base(&self) -> &str {
        &self.base
    }

    pub(super) fn own_headers(&self) -> &http::HeaderMap {
        &self.headers
    }
}

/// [`AnthropicStream`] behind the shared stream plumbing.
struct Translator(AnthropicStream);

impl StreamTranslate for Translator {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        self.0.on_event(ev, out)
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        self.0.finish(out)
    }
}

/// A non-2xx answer, classified by Anthropic's error type (or its status),
/// as the OpenAI error envelope clients expect, with `retry-after`.
pub(super) fn classified(failed: Failed, scrubber: &Scrubber) -> UpstreamError {
    classify_error(failed.status, &failed.body)
        .into_error(parse_retry_after(&failed.headers), scrubber)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn classified(failed: Failed) -> UpstreamError {
        super::classified(failed, &Scrubber::default())
    }

    fn failed(status: u16, body: Value, retry_after: Option<&str>) -> Failed {
        let mut headers = http::HeaderMap::new();
        if let Some(r) = retry_after {
            headers.insert("retry-after", HeaderValue::from_str(r).unwrap());
        }
        Failed {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    fn anthropic_error(kind: &str, message: &str) -> Value {
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"})
    }

    #[test]
    fn overloaded_is_a_retryable_503_with_its_retry_after() {
        let e = classified(failed(
            529,
            anthropic_error("overloaded_error", "Overloaded"),
            Some("7"),
        ));
        let UpstreamError::Classified {
            status,
            body,
            retry_after,
            class,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(*status, 503);
        assert_eq!(*retry_after, Some(std::time::Duration::from_secs(7)));
        assert!(class.retryable && class.moves_on && class.trips_breaker);
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "Overloaded", "type": "service_unavailable_error",
                             "param": null, "code": "overloaded_error"}})
        );
        assert!(e.is_retryable() && e.moves_on());
        assert_eq!(e.outcome(), "status_5xx");
    }

    #[test]
    fn a_validation_error_goes_back_to_the_client() {
        let e = classified(failed(
            400,
            anthropic_error("invalid_request_error", "max_tokens: too large"),
            None,
        ));
        assert!(!e.is_retryable() && !e.moves_on());
        let UpstreamError::Classified { status, body, .. } = &e else {
            panic!()
        };
        assert_eq!(*status, 400);
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["error"]["message"], "max_tokens: too large");
        assert_eq!(v["error"]["code"], "invalid_request_error");
    }

    #[test]
    fn a_foreign_body_falls_back_to_the_status() {
        let e = classified(Failed {
            status: 502,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(b"<html>bad gateway</html>"),
        });
        let UpstreamError::Classified { status, body, .. } = &e else {
            panic!()
        };
        assert_eq!(*status, 500);
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["error"]["code"], Value::Null);
        assert_eq!(v["error"]["type"], "server_error");
        assert!(e.is_retryable());
    }
}
