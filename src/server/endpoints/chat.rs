//! `POST /v1/chat/completions`.
//!
//! Place in the pipeline: called by the router. The request is parsed and
//! admitted, checked against what its route's targets can do, and served
//! by a shared flow: non-streaming requests on a cached route by the cached
//! single-flight call (keyed on the canonical request; a stored stream
//! serves them too), streams on a cached route by `chat_stream` (replay,
//! coalescing), everything else by one routed call, answered as JSON or
//! piped as whole events. Every stream asks the upstream for usage
//! (`stream_options.include_usage`) and the usage is stripped again when
//! the client did not ask for it. On routes with `stream_continuation`, a
//! stream that broke after content is continued by another target
//! ([`ChatCall`]'s `resume`: prefill where the provider continues a final
//! assistant message, else the partial text as context). Must not alter
//! the upstream body beyond `model`, the usage request and a continuation;
//! must not read `chat.body` (the tree) on the pass-through path: what it
//! needs is read without it (`api::chat_body`).

use std::sync::Arc;

use http::{Request, Response};

use super::{parse_routed_bytes, unsupported_endpoint};
use crate::api::GatewayError;
use crate::api::chat::ChatRequest;
use crate::api::continuation::{Continue, continue_body};
use crate::api::estimate::estimate_tokens;
use crate::api::usage::Dialect;
use crate::cache::CacheKey;
use crate::providers::{ChatReply, Need, Provider, UpstreamError};
use crate::routing::{Call, ReplyFacts, UsageSeen, watch_chat_usage};
use crate::server::edge::context::RequestCtx;
use crate::server::flows::call::{Answer, serve, serve_cached};
use crate::server::flows::chat_stream;
use crate::server::http::{Body, ReqBody, wants_no_cache};

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, mut chat, route) = parse_routed_bytes(rc, req, ChatRequest::parse_bytes).await?;
    let stream = chat.stream;
    if !route.capabilities.serves(Need::Chat { stream }) {
        let what = if stream { "streaming chat" } else { "chat" };
        return Err(unsupported_endpoint(&route.spec.name, what));
    }
    let cacheable = route.spec.cache.enabled && !wants_no_cache(&parts.headers);
    // Keyed on the client's body, before the gateway asks for usage.
    let key = cacheable
        .then(|| CacheKey::chat(&rc.cache_namespace(&route, &route.spec.name), &chat.body));
    if stream {
        let with_usage = chat.include_usage();
        chat.ask_for_usage();
        let call = ChatCall::new(chat, rc.conversation);
        return match key {
            Some(key) => Box::pin(chat_stream::serve(rc, route, call, key, with_usage)).await,
            None => serve(rc, &route, call, Answer::openai(true, !with_usage)).await,
        };
    }
    let call = ChatCall::new(chat, rc.conversation);
    // The cached flows are boxed: their futures (3-6 KB) would otherwise
    // size this one, which the router copies whole into its box.
    match key {
        Some(key) => Box::pin(serve_cached(rc, route, call, key, "chat")).await,
        None => serve(rc, &route, call, Answer::openai(false, false)).await,
    }
}

/// A chat request as routing sees it: each attempt sends it as its
/// target's model; a resumed stream asks for the rest of `partial`; with
/// its conversation key, for affinity.
#[derive(Debug)]
struct ChatCall {
    request: Arc<ChatRequest>,
    /// The text a broken stream carried, for a continuation.
    partial: Option<Arc<str>>,
    /// The conversation key, for affinity.
    conversation: Option<u64>,
}

impl ChatCall {
    fn new(request: ChatRequest, conversation: Option<u64>) -> Self {
        ChatCall {
            request: Arc::new(request),
            partial: None,
            conversation,
        }
    }
}

impl Call for ChatCall {
    type Reply = ChatReply;

    fn describe(reply: &ChatReply) -> ReplyFacts {
        ReplyFacts::of_chat(Dialect::OpenAi, reply)
    }

    fn watch_usage(reply: &mut ChatReply, seen: UsageSeen) {
        watch_chat_usage(Dialect::OpenAi, reply, seen);
    }

    fn need(&self) -> Need {
        Need::Chat {
            stream: self.request.stream,
        }
    }

    fn estimated_tokens(&self) -> u64 {
        let partial = self.partial.as_ref().map_or(0, |p| p.len());
        estimate_tokens(
            self.request.wire_len + partial,
            self.request.max_output_tokens(),
        )
    }

    fn input_tokens(&self) -> u64 {
        estimate_tokens(self.request.wire_len, 0)
    }

    fn output_tokens(&self) -> u64 {
        self.request.max_output_tokens()
    }

    /// Sent twice only an answer comes back twice, unless it is stored
    /// (`store: true`: a side effect a hedge would repeat).
    fn idempotent(&self) -> bool {
        !self.request.stores()
    }

    fn affinity(&self) -> Option<u64> {
        self.conversation
    }

    async fn attempt(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> Result<ChatReply, UpstreamError> {
        let r = &self.request;
        let Some(partial) = &self.partial else {
            return provider.chat(r, &model, r.stream).await;
        };
        let how = if provider.capabilities().prefill {
            Continue::Prefill
        } else {
            Continue::Context
        };
        let resumed = ChatRequest {
            model: r.model.clone(),
            stream: r.stream,
            body: continue_body(&r.body, partial, how).into(),
            wire_len: r.wire_len + partial.len(),
            ext: r.ext.clone(),
        };
        provider.chat(&resumed, &model, r.stream).await
    }

    fn resume(&self, partial: &str) -> Option<Self> {
        self.request.stream.then(|| ChatCall {
            request: Arc::clone(&self.request),
            partial: Some(Arc::from(partial)),
            conversation: self.conversation,
        })
    }
}
