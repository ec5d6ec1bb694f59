//! Upstream providers: one file (or folder) per kind, behind the
//! [`Provider`] trait, with capabilities.
//!
//! Place in the pipeline: the last step. `routing` picks a target and calls
//! [`Provider::chat`], [`Provider::embed`] or [`Provider::rerank`] once per attempt. A provider
//! makes exactly one upstream call per method call, translates between the
//! OpenAI wire format and its own, classifies its own errors, and enforces
//! its own timeouts (connect, first byte, idle, body, total). It must not
//! retry, fail over, cache or count metrics: those belong to the layers
//! above, and it never imports `routing` or `server`.
//!
//! Adding a provider kind, exactly:
//! 1. Write `src/providers/<kind>.rs` (or a folder): a `Config` struct that
//!    implements [`KindConfig`] (its raw serde struct read from
//!    `KindSettings` with `deny_unknown_fields`, validation with
//!    `SettingsReport` so errors carry `file:line`, its [`Capabilities`], and
//!    `build`), and the provider type that implements [`Provider`]
//!    (request, response and stream translation, error classification:
//!    a table from the kind's own error types and statuses to a
//!    [`Verdict`], made a [`Classification`] and turned into
//!    [`UpstreamError::Classified`] by [`Classification::into_error`], which
//!    writes the OpenAI envelope; a kind never writes that JSON itself).
//! 2. Add one line to the `kinds!` list in `registry.rs`:
//!    `Variant(<module>::Config),`, and `mod <module>;` here.
//!
//! Nothing else changes: `switchyard check` validates the new kind's keys and
//! its routes' capabilities, and routing, retries, breakers, limits, cache
//! and metrics apply to it as to every kind.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod body;
pub mod classes;
pub mod client;
mod client_conn;
mod client_egress;
mod client_h1;
mod client_h1_conn;
mod client_h1_idle;
mod client_h1_wire;
pub mod cohere;
mod error;
pub mod gemini;
pub mod hold;
mod mock;
mod openai;
mod openai_wire;
pub mod pieces;
mod registry;
pub mod scrub;
pub mod translate;
pub mod upstream;
mod upstream_stream;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde_json::{Map, Value};

use crate::api::chat::ChatRequest;
pub use crate::api::chat::ExtSupport;
use crate::api::embeddings::{ClientBody, EmbedAnswer, EmbedReply, EncodingFormat};
use crate::api::rerank::RerankReply;
use crate::api::usage::AnswerUsage;
pub use error::{
    Classification, ErrorClass, FallbackClass, MAX_MESSAGE, UpstreamError, Verdict, truncate,
};
pub use registry::{BuildError, KINDS, KindConfig, ProviderConfig, check_kind};

/// A chat answer: a whole JSON body (with its usage, when the provider's
/// check of the body read it), or SSE bytes as they arrive.
pub enum ChatReply {
    Full(Bytes, AnswerUsage),
    Stream(BoxStream<'static, Result<Bytes, UpstreamError>>),
}

impl ChatReply {
    /// A whole body whose usage nothing has read yet.
    pub fn whole(body: Bytes) -> Self {
        ChatReply::Full(body, AnswerUsage::UNKNOWN)
    }
}

impl std::fmt::Debug for ChatReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatReply::Full(b, _) => write!(f, "ChatReply::Full({} bytes)", b.len()),
            ChatReply::Stream(_) => f.write_str("ChatReply::Stream(..)"),
        }
    }
}

/// What a provider kind can do, as it declares it: routes are checked
/// against it when the policy is built (and by `switchyard check`), and
/// attempts are filtered by it, both through [`Capabilities::serves`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub chat: bool,
    pub chat_stream: bool,
    pub embeddings: bool,
    /// Serves [`Provider::rerank`].
    pub rerank: bool,
    pub tools: bool,
    pub images: bool,
    /// OpenAI- or Anthropic-compatible paths this provider serves as they
    /// are, through [`Provider::passthrough`] (`/responses`, `/completions`,
    /// `/messages`, ...).
    pub native: &'static [&'static str],
    /// A chat request ending with an assistant message is answered by
    /// continuing that message (Anthropic's prefill), not with a new one:
    /// how a broken stream is continued on this provider (see
    /// `routing::streams`).
    pub prefill: bool,
}

/// What one request needs of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Chat {
        stream: bool,
    },
    Embeddings,
    Rerank,
    /// `path` served as it is, and nothing else will do.
    Native(&'static str),
    /// `path` served as it is, or else chat (the request is translated).
    NativeOrChat {
        path: &'static str,
        stream: bool,
    },
}

impl Capabilities {
    /// Whether a provider with these capabilities can serve `need`: the one
    /// place this is decided.
    pub fn serves(&self, need: Need) -> bool {
        let chat = |stream: bool| self.chat && (!stream || self.chat_stream);
        match need {
            Need::Chat { stream } => chat(stream),
            Need::Embeddings => self.embeddings,
            Need::Rerank => self.rerank,
            Need::Native(path) => self.native.contains(&path),
            Need::NativeOrChat { path, stream } => self.native.contains(&path) || chat(stream),
        }
    }

    /// These, limited to the `endpoints` a route declares (all of them
    /// when it declares none).
    pub fn narrowed(mut self, endpoints: &[crate::config::Endpoint]) -> Capabilities {
        use crate::config::Endpoint;
        if endpoints.is_empty() {
            return self;
        }
        if !endpoints.contains(&Endpoint::Chat) {
            self.chat = false;
            self.chat_stream = false;
        }
        if !endpoints.contains(&Endpoint::Embeddings) {
            self.embeddings = false;
        }
        if !endpoints.contains(&Endpoint::Rerank) {
            self.rerank = false;
        }
        self
    }

    /// What both can do.
    pub fn intersect(self, other: Capabilities) -> Capabilities {
        Capabilities {
            chat: self.chat && other.chat,
            chat_stream: self.chat_stream && other.chat_stream,
            embeddings: self.embeddings && other.embeddings,
            rerank: self.rerank && other.rerank,
            tools: self.tools && other.tools,
            images: self.images && other.images,
            native: if self.native == other.native {
                self.native
            } else {
                &[]
            },
            prefill: self.prefill && other.prefill,
        }
    }
}

/// What a [`Provider`] method gives back, as `async_trait` boxes it. A
/// method on every request's path may be written as a plain `fn` returning
/// this, boxed with `crate::boxed::in_place`: `async_trait` boxes with
/// `Box::pin`, which copies the whole future.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, UpstreamError>> + Send + 'a>>;

/// One built upstream of some kind. Default methods answer "unsupported",
/// so a kind implements what its [`Capabilities`] say it can do.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    fn capabilities(&self) -> Capabilities;

    /// The most embedding inputs one call may carry for `model`.
    fn max_batch_inputs(&self, _model: &str) -> usize {
        usize::MAX
    }

    /// Connections open to the upstream now (`None`: not an HTTP kind).
    fn open_connections(&self) -> Option<usize> {
        None
    }

    /// What of `request`'s reasoning control and `top_k` this provider
    /// sends for `model` (its [`Provider::chat`] must agree). None by
    /// default.
    fn ext_support(&self, _request: &ChatRequest, _model: &str) -> ExtSupport {
        ExtSupport::default()
    }

    /// One chat attempt for `request`, sent as `model` upstream.
    async fn chat(
        &self,
        _request: &ChatRequest,
        _model: &str,
        _stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        Err(UpstreamError::Unsupported("chat"))
    }

    /// One attempt at an endpoint the provider serves as it is (a path in
    /// its [`Capabilities::native`]): `body` already names the upstream
    /// model. `client_headers` are the client's headers this kind forwards
    /// (the Messages API's `anthropic-version` and `anthropic-beta`); kinds
    /// that forward none ignore them, and never the client's credentials. A
    /// JSON answer must be a JSON object; a stream is forwarded in whole
    /// events.
    async fn passthrough(
        &self,
        _path: &str,
        _body: Bytes,
        _client_headers: &http::HeaderMap,
        _stream: bool,
    ) -> Result<ChatReply, UpstreamError> {
        Err(UpstreamError::Unsupported("this endpoint"))
    }

    /// A `GET` or `DELETE` of an object the provider stores at the
    /// OpenAI-compatible `path` (`/responses/{id}`), for providers that pass
    /// that endpoint through. The answer is a JSON object.
    async fn stored(&self, _method: http::Method, _path: &str) -> Result<Bytes, UpstreamError> {
        Err(UpstreamError::Unsupported("stored objects"))
    }

    /// One embeddings attempt for `inputs`, sent as `model` upstream.
    async fn embed(
        &self,
        _model: &str,
        _inputs: &[Value],
        _extra: &Map<String, Value>,
    ) -> Result<EmbedReply, UpstreamError> {
        Err(UpstreamError::Unsupported("embeddings"))
    }

    /// One embeddings attempt whose answer the client may have as it came:
    /// the upstream is asked for `format` vectors, and a plain answer in
    /// that encoding comes back as bytes ([`EmbedAnswer::Raw`]). Kinds
    /// that translate the answer give their vectors ([`Provider::embed`]).
    async fn embed_as(
        &self,
        model: &str,
        inputs: &[Value],
        extra: &Map<String, Value>,
        _format: EncodingFormat,
    ) -> Result<EmbedAnswer, UpstreamError> {
        self.embed(model, inputs, extra)
            .await
            .map(EmbedAnswer::Vectors)
    }

    /// Whether [`Provider::embed_body`] sends a client's own embeddings
    /// body (kinds that speak the OpenAI wire).
    fn sends_embeddings_body(&self) -> bool {
        false
    }

    /// One embeddings attempt that sends the client's own bytes with only
    /// `model` set ([`ClientBody::upstream`]), asking for the client's
    /// encoding; the answer as [`Provider::embed_as`] gives it. Only called
    /// when [`Provider::sends_embeddings_body`] says so.
    async fn embed_body(
        &self,
        _model: &str,
        _body: &ClientBody,
    ) -> Result<EmbedAnswer, UpstreamError> {
        Err(UpstreamError::Unsupported("embeddings"))
    }

    /// One rerank attempt: a score for each of `documents` against `query`,
    /// in the order given, as `model` upstream.
    async fn rerank(
        &self,
        _model: &str,
        _query: &str,
        _documents: &[Arc<str>],
        _extra: &Map<String, Value>,
    ) -> Result<RerankReply, UpstreamError> {
        Err(UpstreamError::Unsupported("rerank"))
    }
}

/// Parses `retry-after-ms` (OpenAI) or `retry-after` in seconds.
pub fn parse_retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let secs = get("retry-after").and_then(|v| v.trim().parse::<f64>().ok())?;
    (0.0..86_400.0)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}
