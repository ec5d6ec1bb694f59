//! The `azure` provider: one Azure OpenAI call per attempt.
//!
//! Place in the pipeline: called by `routing` for one attempt. Sends the
//! client's OpenAI body (model rewritten, as for the `openai` kind) to
//! `{endpoint}/openai/deployments/{deployment}/chat/completions` or
//! `/embeddings` with `?api-version=` and the `api-key` header (marked
//! sensitive; Azure does not take `Authorization: Bearer` for keys), through
//! [`Upstream`] so the timeouts, the size cap and secret scrubbing apply.
//! Answers are OpenAI's: JSON checked to be a chat completion, streams
//! passed on through [`AzureStream`], embeddings decoded like OpenAI's.
//! Errors: a content-filter refusal is a `400` for the client
//! ([`super::errors::content_filter`]); the rest is classified by status
//! like the `openai` kind (429 with `retry-after-ms`/`retry-after`).
//! Must not retry, fail over or log the key.

use crate::providers::upstream::SetupError;
use serde_json::{Map, Value};

use super::config::{CAPABILITIES, Config, MAX_BATCH_INPUTS};
use super::errors::{content_filter, with_type};
use super::stream::AzureStream;
use crate::api::chat::ChatRequest;
use crate::api::embeddings::{ClientBody, EmbedAnswer, EmbedReply, EncodingFormat};
use crate::config::Timeouts;
use crate::providers::body::Limits;
use crate::providers::client::Response;
use crate::providers::openai_wire;
use crate::providers::pieces::Pieces;
use crate::providers::scrub::Scrubber;
use crate::providers::upstream::{Failed, Upstream, translated_sse};
use crate::providers::{Capabilities, ChatReply, Provider, UpstreamError};

#[derive(Debug)]
pub struct AzureProvider {
    upstream: Upstream,
    config: Config,
    headers: http::HeaderMap,
}

impl AzureProvider {
    pub(super) fn new(
        config: &Config,
        timeouts: &Timeouts,
        max_response_bytes: u64,
    ) -> Result<Self, SetupError> {
        let mut headers = http::HeaderMap::new();
        if let Some(key) = &config.api_key {
            headers.insert("api-key", openai_wire::secret_header(key.expose())?);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let secrets = config.api_key.iter().map(|k| k.expose());
        Ok(AzureProvider {
            upstream: Upstream::new(timeouts, max_response_bytes, secrets)?,
            config: config.clone(),
            headers,
        })
    }

    /// Sends `body` to `model`'s deployment and waits for a successful
    /// response's headers.
    async fn send(
        &self,
        model: &str,
        operation: &str,
        body: impl Into<Pieces>,
    ) -> Result<(Response, Limits), UpstreamError> {
        let request = self
            .upstream
            .client()
            .post(self.config.url(model, operation))
            .headers(&self.headers)
            .body(body);
        self.upstream.send_classified(request, classify).await
    }
}

/// A content-filter refusal goes back to the client; the rest by status,
/// with the `type` Azure left out (scrubbed again: it is written anew).
fn classify(failed: Failed, scrubber: &Scrubber) -> UpstreamError {
    if let Some(class) = content_filter(failed.status, &failed.body) {
        return class.into_error(None, scrubber);
    }
    let body = scrubber.scrub(with_type(failed.status, failed.body));
    Failed { body, ..failed }.into_status_error()
}

#[async_trait::async_trait]
impl Provider for AzureProvider {
    fn open_connections(&self) -> Option<usize> {
        Some(self.upstream.open_connections())
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn max_batch_inputs(&self, _model: &str) -> usize {
        MAX_BATCH_INPUTS
    }

    fn ext_support(&self, request: &ChatRequest, model: &str) -> crate::providers::ExtSupport {
        openai_wire::ext_support(
            request,
            model,
            openai_wire::deployment_takes_reasoning_effort,
        )
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let (response, limits) = self
            .send(
                model,
                "chat/completions",
                openai_wire::chat_request_body(
                    request,
                    model,
                    openai_wire::deployment_takes_reasoning_effort,
                ),
            )
            .await?;
        if !stream {
            let body = self.upstream.read_json(response, &limits).await?;
            let usage = openai_wire::check_chat_completion(&body)?;
            return Ok(ChatReply::Full(body, usage));
        }
        openai_wire::check_event_stream(&response)?;
        Ok(ChatReply::Stream(translated_sse(
            response,
            limits,
            AzureStream::new(),
        )))
    }

    async fn embed(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        let body = openai_wire::embeddings_body(model, inputs, extra, EncodingFormat::Base64);
        let (response, limits) = self.send(model, "embeddings", body).await?;
        let bytes = self.upstream.read_json(response, &limits).await?;
        openai_wire::embeddings_reply(&bytes, inputs.len())
    }

    /// As [`Self::embed`], asking for the client's `format`: a plain
    /// answer comes back as it came.
    async fn embed_as(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
        format: EncodingFormat,
    ) -> Result<EmbedAnswer, UpstreamError> {
        let body = openai_wire::embeddings_body(model, inputs, extra, format);
        let (response, limits) = self.send(model, "embeddings", body).await?;
        openai_wire::embeddings_answer(&self.upstream, response, &limits, inputs.len(), format)
            .await
    }

    fn sends_embeddings_body(&self) -> bool {
        true
    }

    /// The client's own body, only `model` set: its inputs are not
    /// written again.
    async fn embed_body(
        &self,
        model: &str,
        body: &ClientBody,
    ) -> Result<EmbedAnswer, UpstreamError> {
        let (response, limits) = self
            .send(model, "embeddings", Pieces::parts(body.upstream(model)))
            .await?;
        openai_wire::embeddings_answer(&self.upstream, response, &limits, body.len(), body.format)
            .await
    }
}
