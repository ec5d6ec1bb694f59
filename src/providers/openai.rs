//! Provider kind `openai`: any OpenAI-compatible HTTP API.
//!
//! Place in the pipeline: called by `routing` for one attempt. Sends
//! `POST {base_url}/chat/completions`, `/embeddings` or `/rerank` (vLLM's
//! Jina/Cohere-compatible rerank) with the provider's key
//! (read from the environment at load time). Applies the connect timeout (in
//! the client), the first-byte timeout (until response headers), then the
//! body limits of [`super::body`]. A `200` only counts as an answer when it
//! is one: JSON with `choices` (chat), JSON with every vector (embeddings),
//! `text/event-stream` ending in `[DONE]` (streams); anything else is a
//! retryable protocol failure, so it is never cached. Streams are forwarded in
//! whole events only, so a stream that breaks never leaves a torn event
//! behind. Every body is scrubbed of the provider's secrets as it is read
//! (`upstream`). Must not log or echo the API key.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::body::{ByteStream, Limits, StreamTimer};
use super::client::{Pieces, Response};
use super::openai_wire;
use super::upstream::{Failed, Upstream};
use super::{BuildError, Capabilities, ChatReply, KindConfig, Provider, UpstreamError};
use crate::api::chat::ChatRequest;
use crate::api::embeddings::{EmbedAnswer, EmbedReply, EncodingFormat};
use crate::api::rerank::RerankReply;
use crate::api::sse_cut::SseCuts;
use crate::config::{ConfigError, Env, KindSettings, ProviderSpec, Secret};

/// `kind: openai` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Up to and including the version prefix, no trailing slash
    /// (`https://api.openai.com/v1`).
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub headers: BTreeMap<String, String>,
    /// Which rerank API the server speaks.
    pub rerank_api: RerankApi,
}

/// The rerank dialects of OpenAI-compatible servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RerankApi {
    /// Jina / Cohere style at `{base_url}/rerank` (vLLM): `documents` in,
    /// `results[{index, relevance_score}]` out.
    Jina,
    /// text-embeddings-inference at the server's root `/rerank` (`/v1`
    /// dropped from `base_url`): `texts` in, `[{index, score}]` out.
    Tei,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    base_url: Option<String>,
    api_key_env: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    rerank_api: Option<String>,
}

impl KindConfig for Config {
    const KIND: &'static str = "openai";
    type Provider = OpenAiProvider;

    fn parse(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        let (raw, mut report) = settings.read::<Raw>(Self::KIND);
        let base_url = report.required("base_url", &raw.base_url, Self::KIND);
        let base_url = report.url("base_url", base_url);
        let api_key = report.secret("api_key_env", &raw.api_key_env, env);
        let headers = raw.headers.unwrap_or_default();
        for (k, v) in &headers {
            if http::HeaderName::try_from(k.as_str()).is_err()
                || http::HeaderValue::try_from(v.as_str()).is_err()
            {
                report.at(
                    &format!("headers.{k}"),
                    "is not a valid HTTP header name and value",
                );
            }
        }
        let rerank_api = match raw.rerank_api.as_deref() {
            None | Some("jina") => RerankApi::Jina,
            Some("tei") => RerankApi::Tei,
            Some(other) => {
                report.at(
                    "rerank_api",
                    format!("unknown rerank API {other:?} (expected jina or tei)"),
                );
                RerankApi::Jina
            }
        };
        report.finish(Config {
            base_url,
            api_key,
            headers,
            rerank_api,
        })
    }

    fn build(&self, spec: &ProviderSpec) -> Result<OpenAiProvider, BuildError> {
        OpenAiProvider::new(self, spec)
    }
}

#[derive(Debug)]
pub struct OpenAiProvider {
    upstream: Upstream,
    base_url: String,
    /// `{base_url}/chat/completions` and `{base_url}/embeddings`, parsed
    /// once (not on every call).
    chat_url: Option<http::Uri>,
    embeddings_url: Option<http::Uri>,
    rerank_api: RerankApi,
    headers: http::HeaderMap,
}

impl OpenAiProvider {
    fn new(config: &Config, spec: &ProviderSpec) -> Result<Self, BuildError> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in &config.headers {
            let name = http::HeaderName::try_from(k.as_str()).map_err(|_| {
                BuildError::new(spec, format!("headers: {k:?} is not a header name"))
            })?;
            let mut value = http::HeaderValue::try_from(v.as_str())
                .map_err(|_| BuildError::new(spec, format!("headers.{k}: not a header value")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(key) = &config.api_key {
            let value = openai_wire::secret_header(&format!("Bearer {}", key.expose()))
                .map_err(|_| BuildError::new(spec, "the API key is not a valid header value"))?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let secrets = config
            .api_key
            .iter()
            .map(|k| k.expose())
            .chain(config.headers.values().map(String::as_str));
        let upstream = Upstream::new(&spec.timeouts, spec.max_response_bytes, secrets)
            .map_err(|e| BuildError::new(spec, e.to_string()))?;
        let parsed = |path: &str| http::Uri::try_from(format!("{}{path}", config.base_url)).ok();
        Ok(OpenAiProvider {
            upstream,
            chat_url: parsed("/chat/completions"),
            embeddings_url: parsed("/embeddings"),
            base_url: config.base_url.clone(),
            rerank_api: config.rerank_api,
            headers,
        })
    }

    /// Sends `body` to `path` and waits for a successful response's headers.
    async fn send(
        &self,
        path: &str,
        body: impl Into<Pieces>,
    ) -> Result<(Response, Limits), UpstreamError> {
        let client = self.upstream.client();
        let request = match (path, &self.chat_url, &self.embeddings_url) {
            ("/chat/completions", Some(url), _) | ("/embeddings", _, Some(url)) => {
                client.post(url.clone())
            }
            _ => client.post(format!("{}{path}", self.base_url)),
        };
        let request = request.headers(self.headers.clone()).body(body);
        self.upstream
            .send(request)
            .await?
            .map_err(Failed::into_status_error)
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let (response, limits) = self
            .send(
                "/chat/completions",
                openai_wire::chat_request_body(
                    request,
                    model,
                    openai_wire::takes_reasoning_effort(model),
                ),
            )
            .await?;
        if !stream {
            let body = self.upstream.read_json(response, &limits).await?;
            if let Err(e) = openai_wire::check_chat_completion(&body) {
                // Some servers answer a spent quota or a refusal with a 200.
                return Err(super::classes::error_in_200(&body).unwrap_or(e));
            }
            return Ok(ChatReply::Full(body));
        }
        openai_wire::check_event_stream(&response)?;
        let events = WholeEvents::new(limits.body(response), limits, true);
        Ok(ChatReply::Stream(events.into_stream()))
    }

    /// `path` passed through: a JSON object, or whole SSE events (the
    /// Responses API ends its streams without `[DONE]`).
    async fn passthrough(
        &self,
        path: &str,
        body: Bytes,
        stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        let (response, limits) = self.send(path, body).await?;
        if !stream {
            let body = self.upstream.read_json(response, &limits).await?;
            if !body.trim_ascii_start().starts_with(b"{")
                || serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err()
            {
                return Err(UpstreamError::Protocol(
                    "a 200 answer that is not a JSON object".into(),
                ));
            }
            return Ok(ChatReply::Full(body));
        }
        openai_wire::check_event_stream(&response)?;
        let require_done = path != "/responses";
        let events = WholeEvents::new(limits.body(response), limits, require_done);
        Ok(ChatReply::Stream(events.into_stream()))
    }

    /// `GET` / `DELETE {base_url}{path}`: a stored object, as JSON.
    async fn stored(&self, method: http::Method, path: &str) -> Result<Bytes, UpstreamError> {
        let request = self
            .upstream
            .client()
            .request(method, format!("{}{path}", self.base_url))
            .headers(self.headers.clone());
        let (response, limits) = self
            .upstream
            .send(request)
            .await?
            .map_err(Failed::into_status_error)?;
        self.upstream.read_json(response, &limits).await
    }

    async fn embed(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        let body = openai_wire::embeddings_body(model, inputs, extra, EncodingFormat::Base64);
        let (response, limits) = self.send("/embeddings", body).await?;
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
        let (response, limits) = self.send("/embeddings", body).await?;
        openai_wire::embeddings_answer(&self.upstream, response, &limits, inputs.len(), format)
            .await
    }

    async fn rerank(
        &self,
        model: &str,
        query: &str,
        documents: &[std::sync::Arc<str>],
        extra: &Map<String, Value>,
    ) -> Result<RerankReply, UpstreamError> {
        if self.rerank_api == RerankApi::Tei {
            let root = self.base_url.strip_suffix("/v1").unwrap_or(&self.base_url);
            let body = openai_wire::tei_rerank_body(query, documents);
            let request = self
                .upstream
                .client()
                .post(format!("{root}/rerank"))
                .headers(self.headers.clone())
                .body(body);
            let (response, limits) = self
                .upstream
                .send(request)
                .await?
                .map_err(Failed::into_status_error)?;
            let bytes = self.upstream.read_json(response, &limits).await?;
            return openai_wire::tei_rerank_reply(&bytes, documents.len());
        }
        let body = openai_wire::rerank_body(model, query, documents, extra);
        let (response, limits) = self.send("/rerank", body).await?;
        let bytes = self.upstream.read_json(response, &limits).await?;
        openai_wire::rerank_reply(&bytes, documents.len())
    }
}

impl Provider for OpenAiProvider {
    fn open_connections(&self) -> Option<usize> {
        Some(self.upstream.open_connections())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            chat: true,
            chat_stream: true,
            embeddings: true,
            rerank: true,
            tools: true,
            images: true,
            native: PASSTHROUGH_PATHS,
            prefill: false,
        }
    }

    fn ext_support(&self, request: &ChatRequest, model: &str) -> super::ExtSupport {
        openai_wire::ext_support(request, openai_wire::takes_reasoning_effort(model))
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        model: &'a str,
        stream: bool,
    ) -> BoxFuture<'a, Result<ChatReply, UpstreamError>> {
        Box::pin(OpenAiProvider::chat(self, request, model, stream))
    }

    fn embed<'a>(
        &'a self,
        model: &'a str,
        inputs: &'a [Value],
        extra: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<EmbedReply, UpstreamError>> {
        Box::pin(OpenAiProvider::embed(self, model, inputs, extra))
    }

    fn embed_as<'a>(
        &'a self,
        model: &'a str,
        inputs: &'a [Value],
        extra: &'a Map<String, Value>,
        format: EncodingFormat,
    ) -> BoxFuture<'a, Result<EmbedAnswer, UpstreamError>> {
        Box::pin(OpenAiProvider::embed_as(self, model, inputs, extra, format))
    }

    fn stored<'a>(
        &'a self,
        method: http::Method,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Bytes, UpstreamError>> {
        Box::pin(OpenAiProvider::stored(self, method, path))
    }

    fn rerank<'a>(
        &'a self,
        model: &'a str,
        query: &'a str,
        documents: &'a [std::sync::Arc<str>],
        extra: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<RerankReply, UpstreamError>> {
        Box::pin(OpenAiProvider::rerank(self, model, query, documents, extra))
    }

    fn passthrough<'a>(
        &'a self,
        path: &'a str,
        body: Bytes,
        _client_headers: &'a http::HeaderMap,
        stream: bool,
    ) -> BoxFuture<'a, Result<ChatReply, UpstreamError>> {
        Box::pin(OpenAiProvider::passthrough(self, path, body, stream))
    }
}

/// OpenAI-compatible endpoints this kind forwards as they are (`/rerank`
/// is not one: it goes through [`Provider::rerank`], so it is checked,
/// cached per document and can fail over to other kinds).
const PASSTHROUGH_PATHS: &[&str] = &["/responses", "/completions"];

/// An upstream SSE body re-cut at event boundaries: only whole events are
/// passed on, the stream must end with `[DONE]`, and it is bounded by the
/// idle and total timeouts (one timer for the stream) and by the size of
/// one unfinished event. Chunks that have already arrived when a run is
/// cut are joined to it (up to [`RUN_BYTES`]): a fast upstream's hundreds
/// of small chunks go to the client in a few writes, a slow one's each at
/// once.
struct WholeEvents {
    body: ByteStream,
    limits: Limits,
    timer: StreamTimer,
    cuts: SseCuts,
    pending: BytesMut,
    done: bool,
    /// The stream must end with `data: [DONE]`.
    require_done: bool,
    /// What ended the body while a run was being joined, for the next call.
    ended: Option<Option<UpstreamError>>,
}

/// The most bytes of already-arrived chunks joined into one run.
const RUN_BYTES: usize = 64 * 1024;

/// Scheduler turns a run gives the connection's task to hand over a chunk
/// it has read (measured: with one, 500 back-to-back chunks took about 128
/// writes; with three, the CPU per stream fell by a third more, and a slow
/// stream's chunks cost no more).
const TURNS: u8 = 3;

impl WholeEvents {
    fn new(body: ByteStream, limits: Limits, require_done: bool) -> Self {
        WholeEvents {
            body,
            timer: limits.stream_timer(),
            limits,
            cuts: SseCuts::new(),
            pending: BytesMut::new(),
            done: false,
            require_done,
            ended: None,
        }
    }

    /// The end of the stream: fine, or an error.
    fn end(&self, error: Option<UpstreamError>) -> Option<Result<Bytes, UpstreamError>> {
        match error {
            Some(e) => Some(Err(e)),
            None if self.done || !self.require_done => None,
            None => Some(Err(UpstreamError::Protocol(
                "stream ended without [DONE]".into(),
            ))),
        }
    }

    /// Takes in `chunk`: the whole events it completes, if any (the rest
    /// waits in `pending`).
    fn take(&mut self, chunk: Bytes) -> Result<Option<Bytes>, UpstreamError> {
        let cut = self.cuts.feed(&chunk);
        self.done |= cut.done;
        let Some(at) = cut.last_boundary else {
            if (self.pending.len() + chunk.len()) as u64 > self.limits.max_bytes {
                return Err(UpstreamError::TooLarge(self.limits.max_bytes));
            }
            self.pending.extend_from_slice(&chunk);
            return Ok(None);
        };
        let whole = if self.pending.is_empty() {
            chunk.slice(..at)
        } else {
            self.pending.extend_from_slice(&chunk[..at]);
            self.pending.split().freeze()
        };
        self.pending.extend_from_slice(&chunk[at..]);
        Ok(Some(whole))
    }

    /// The next run of whole events, an error, or the end.
    async fn next(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        if let Some(error) = self.ended.take() {
            return self.end(error);
        }
        let first = loop {
            let chunk = match self.limits.next_on(&mut self.timer, &mut self.body).await {
                None => return self.end(None),
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(chunk)) => chunk,
            };
            match self.take(chunk) {
                Err(e) => return Some(Err(e)),
                Ok(Some(whole)) => break whole,
                Ok(None) => continue,
            }
        };
        // Join what has already arrived, without waiting for more. The
        // connection's task hands the body over one chunk at a time: it
        // gets up to [`TURNS`] scheduler turns (yields) to hand over the
        // next it has already read; a chunk that is not there after them
        // is not waited for.
        let mut run: Option<BytesMut> = None;
        let mut yielded = 0;
        while run.as_ref().map_or(first.len(), BytesMut::len) < RUN_BYTES {
            let Some(item) = self.body.next().now_or_never() else {
                if yielded == TURNS {
                    break;
                }
                yielded += 1;
                tokio::task::yield_now().await;
                continue;
            };
            yielded = 0;
            let chunk = match item {
                None => {
                    self.ended = Some(None);
                    break;
                }
                Some(Err(e)) => {
                    self.ended = Some(Some(super::client::classify_body(e)));
                    break;
                }
                Some(Ok(chunk)) => chunk,
            };
            match self.take(chunk) {
                Err(e) => {
                    self.ended = Some(Some(e));
                    break;
                }
                Ok(Some(whole)) => run
                    .get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&whole),
                Ok(None) => {}
            }
        }
        Some(Ok(run.map_or(first, BytesMut::freeze)))
    }

    fn into_stream(self) -> futures_util::stream::BoxStream<'static, Result<Bytes, UpstreamError>> {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut s = state?;
            match s.next().await? {
                Ok(bytes) => Some((Ok(bytes), Some(s))),
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }
}
