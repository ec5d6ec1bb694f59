//! The `gemini` provider: one attempt against the Gemini API, in OpenAI
//! terms on both sides.
//!
//! Place in the pipeline: called by `routing` once per attempt, like every
//! kind. Chat: the client's OpenAI body goes through [`chat_request_ext`] to
//! `POST {base_url}/models/{model}:generateContent` (or
//! `:streamGenerateContent?alt=sse`); a whole answer comes back through
//! [`chat_response`] as a `chat.completion`, a stream through
//! [`GeminiStream`] (inside `translated_sse`, whole events only) as
//! `chat.completion.chunk`s, with the usage chunk when the client asked for
//! `stream_options.include_usage`. Embeddings: at most
//! [`MAX_BATCH_INPUTS`] inputs per call (routing cuts sub-batches to
//! [`Provider::max_batch_inputs`]) through `batchEmbedContents`.
//!
//! Errors: a non-2xx answer is classified by [`classify_error`] from Gemini's
//! own `error.status` into [`UpstreamError::Classified`] with an OpenAI error
//! envelope and the delay of Gemini's `RetryInfo` ([`retry_delay`]) as
//! `retry_after`. A whole answer whose prompt Gemini blocked
//! (`promptFeedback.blockReason`, no candidates) is a content-policy
//! refusal ([`prompt_refusal`]: 400 `content_filter`, a class a route can
//! fall back on). A request Gemini cannot express is
//! [`UpstreamError::Translate`] (400 to the client, not retried); an answer
//! that does not follow Gemini's API is a retryable protocol failure.
//!
//! All HTTP goes through [`Upstream`] (timeouts, size cap, scrubbed error
//! bodies); the key travels only in the sensitive `x-goog-api-key` header.
//! Must not retry, fail over, cache or log bodies or the key.

use crate::providers::upstream::SetupError;
use crate::providers::upstream::expect_event_stream;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::config::{CAPABILITIES, Config};
use super::{
    GeminiChatSettings, GeminiEmbedSettings, GeminiStream, MAX_BATCH_INPUTS, chat_path,
    chat_request_ext, chat_response, classify_error, embed_path, embed_request, embed_response,
    headers, prompt_refusal, retry_delay,
};
use crate::api::chat::ChatRequest;
use crate::api::embeddings::EmbedReply;
use crate::api::sse::SseEvent;
use crate::config::Timeouts;
use crate::providers::body::Limits;
use crate::providers::client::Response;
use crate::providers::scrub::Scrubber;
use crate::providers::translate::TranslateError;
use crate::providers::upstream::{Failed, StreamTranslate, Upstream, translated_sse};
use crate::providers::{Capabilities, ChatReply, Provider, UpstreamError, parse_retry_after};

#[derive(Debug)]
pub struct GeminiProvider {
    upstream: Upstream,
    base_url: String,
    headers: http::HeaderMap,
    chat: GeminiChatSettings,
    embed: GeminiEmbedSettings,
}

impl GeminiProvider {
    pub(super) fn new(
        config: &Config,
        timeouts: &Timeouts,
        max_response_bytes: u64,
    ) -> Result<Self, SetupError> {
        let key = config.api_key.expose();
        let headers = headers(key);
        if !headers.contains_key(super::wire::API_KEY_HEADER) {
            return Err(SetupError::Header("the API key"));
        }
        Ok(GeminiProvider {
            upstream: Upstream::new(timeouts, max_response_bytes, [key])?,
            base_url: config.base_url.clone(),
            headers,
            chat: config.chat.clone(),
            embed: config.embed.clone(),
        })
    }

    /// Sends `body` to `path` and waits for a successful response's headers.
    async fn send(&self, path: &str, body: &Value) -> Result<(Response, Limits), UpstreamError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            UpstreamError::Translate(TranslateError::InvalidRequest(format!(
                "cannot encode the Gemini request: {e}"
            )))
        })?;
        let request = self
            .upstream
            .client()
            .post(format!("{}{path}", self.base_url))
            .headers(&self.headers)
            .body(body);
        self.upstream.send_classified(request, classified).await
    }
}

#[async_trait::async_trait]
impl Provider for GeminiProvider {
    fn open_connections(&self) -> Option<usize> {
        Some(self.upstream.open_connections())
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn ext_support(&self, request: &ChatRequest, model: &str) -> crate::providers::ExtSupport {
        let thinking =
            super::thinking::thinking_config(&request.body, &request.ext, model).is_some();
        crate::providers::ExtSupport {
            reasoning: thinking,
            top_k: true,
            serial_tool_calls: false,
        }
    }

    fn max_batch_inputs(&self, _model: &str) -> usize {
        MAX_BATCH_INPUTS
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let native = chat_request_ext(&request.body, &request.ext, model, &self.chat)
            .map_err(UpstreamError::Translate)?;
        let (response, limits) = self.send(&chat_path(model, stream), &native).await?;
        if !stream {
            let body = self.upstream.read_json(response, &limits).await?;
            if let Some(reason) = blocked_prompt(&body) {
                return Err(prompt_refusal(&reason).into_error(None, self.upstream.scrubber()));
            }
            let reply = chat_response(&body, model).map_err(bad_answer)?;
            let bytes = serde_json::to_vec(&reply)
                .map_err(|e| UpstreamError::Protocol(format!("cannot encode the answer: {e}")))?;
            return Ok(ChatReply::whole(Bytes::from(bytes)));
        }
        expect_event_stream(&response)?;
        let translator = Translator(GeminiStream::new(model, request.include_usage()));
        Ok(ChatReply::Stream(translated_sse(
            response, limits, translator,
        )))
    }

    async fn embed(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        let native =
            embed_request(inputs, model, extra, &self.embed).map_err(UpstreamError::Translate)?;
        let (response, limits) = self.send(&embed_path(model), &native).await?;
        let body = self.upstream.read_json(response, &limits).await?;
        embed_response(&body, inputs.len()).map_err(bad_answer)
    }
}

/// The `promptFeedback.blockReason` of a `200` without candidates: Gemini
/// refused the prompt.
fn blocked_prompt(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let none = v
        .get("candidates")
        .and_then(Value::as_array)
        .is_none_or(|c| c.is_empty());
    let reason = v.get("promptFeedback")?.get("blockReason")?.as_str()?;
    none.then(|| reason.to_string())
}

/// An answer the translator could not read: the upstream broke its own
/// protocol (retryable, trips the breaker); anything else stays a
/// translation error.
fn bad_answer(e: TranslateError) -> UpstreamError {
    match e {
        TranslateError::BadResponse(m) => UpstreamError::Protocol(m),
        other => UpstreamError::Translate(other),
    }
}

/// A Gemini error answer, classified from its own `error.status`, with the
/// body rewritten as an OpenAI error envelope.
fn classified(failed: Failed, scrubber: &Scrubber) -> UpstreamError {
    let retry_after = retry_delay(&failed.body).or_else(|| parse_retry_after(&failed.headers));
    classify_error(failed.status, &failed.body).into_error(retry_after, scrubber)
}

/// [`GeminiStream`] as the shared stream plumbing's translator.
struct Translator(GeminiStream);

impl StreamTranslate for Translator {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        self.0.on_event(ev, out)
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        self.0.finish(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failed(status: u16, body: Value, headers: &[(&'static str, &str)]) -> Failed {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, http::HeaderValue::from_str(v).unwrap());
        }
        Failed {
            status,
            headers: map,
            body: Bytes::from(body.to_string()),
        }
    }

    fn classified(failed: Failed) -> UpstreamError {
        super::classified(failed, &Scrubber::default())
    }

    fn envelope(e: &UpstreamError) -> Value {
        match e {
            UpstreamError::Classified { body, .. } => serde_json::from_slice(body).unwrap(),
            other => panic!("not classified: {other:?}"),
        }
    }

    #[test]
    fn rate_limits_carry_gemini_retry_delay_in_an_openai_envelope() {
        let body = json!({"error": {"code": 429, "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED", "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}});
        let e = classified(failed(429, body, &[("retry-after", "9")]));
        assert!(e.is_retryable() && e.moves_on() && e.is_upstream_rate_limit());
        assert_eq!(
            e.retry_after(),
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(
            envelope(&e),
            json!({"error": {"message": "You exceeded your current quota.",
                "type": "rate_limit_error", "param": null, "code": "resource_exhausted"}})
        );
        // No RetryInfo: the header, if any.
        let plain =
            json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}});
        let e = classified(failed(429, plain, &[("retry-after", "2")]));
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(2)));
    }

    #[test]
    fn validation_errors_stay_with_the_client_and_auth_errors_move_on() {
        let bad = json!([{"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT"}}]);
        let e = classified(failed(400, bad, &[]));
        assert!(!e.is_retryable() && !e.moves_on() && !e.trips_breaker(true));
        assert!(matches!(e, UpstreamError::Classified { status: 400, .. }));
        assert_eq!(envelope(&e)["error"]["code"], "invalid_argument");

        let denied =
            json!({"error": {"code": 403, "message": "no", "status": "PERMISSION_DENIED"}});
        let e = classified(failed(403, denied, &[]));
        assert!(!e.is_retryable() && e.moves_on());
        assert_eq!(envelope(&e)["error"]["type"], "permission_error");

        let html = failed(502, Value::String("<html>".into()), &[]);
        let e = classified(html);
        assert!(e.is_retryable() && e.trips_breaker(false));
        assert_eq!(envelope(&e)["error"]["code"], Value::Null);
    }

    #[test]
    fn broken_answers_are_retryable_and_refusals_are_not() {
        let e = bad_answer(TranslateError::BadResponse("no candidates".into()));
        assert!(e.is_retryable() && e.moves_on());
        let e = bad_answer(TranslateError::InvalidRequest("x".into()));
        assert!(!e.is_retryable() && !e.moves_on());
    }

    #[test]
    fn include_usage_reads_stream_options() {
        let parse = |v: serde_json::Value| ChatRequest::parse(v.to_string().as_bytes()).unwrap();
        let m = json!([{"role": "user", "content": "x"}]);
        let with =
            parse(json!({"model": "g", "messages": m, "stream_options": {"include_usage": true}}));
        assert!(with.include_usage());
        assert!(!parse(json!({"model": "g", "messages": m})).include_usage());
    }
}
