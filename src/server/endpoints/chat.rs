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
//! the client did not ask for it. Must not alter the upstream body beyond
//! `model` and the usage request.

use std::sync::Arc;

use http::{Request, Response};

use super::{parse_routed, unsupported_endpoint};
use crate::api::GatewayError;
use crate::api::chat::{ChatRequest, ask_for_usage};
use crate::api::estimate::{Routed, estimate_tokens};
use crate::cache::CacheKey;
use crate::providers::{ChatReply, Need, Provider, UpstreamError};
use crate::routing::Call;
use crate::server::edge::context::RequestCtx;
use crate::server::flows::call::{Answer, serve, serve_cached};
use crate::server::flows::chat_stream;
use crate::server::http::{Body, ReqBody, wants_no_cache};

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, mut chat, route) = parse_routed(rc, req, ChatRequest::parse).await?;
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
        ask_for_usage(&mut chat.body);
        let call = ChatCall(chat, rc.conversation);
        return match key {
            Some(key) => chat_stream::serve(rc, route, call, key, with_usage).await,
            None => serve(rc, &route, call, Answer::openai(true, !with_usage)).await,
        };
    }
    let call = ChatCall(chat, rc.conversation);
    match key {
        Some(key) => serve_cached(rc, route, call, key, "chat").await,
        None => serve(rc, &route, call, Answer::openai(false, false)).await,
    }
}

/// A chat request as routing sees it: each attempt sends it as its
/// target's model; with its conversation key, for affinity.
#[derive(Debug)]
struct ChatCall(ChatRequest, Option<u64>);

/// `store: true`: the upstream keeps the answer (a side effect a hedge
/// would repeat).
fn stores(body: &serde_json::Map<String, serde_json::Value>) -> bool {
    body.get("store").and_then(serde_json::Value::as_bool) == Some(true)
}

impl Call for ChatCall {
    type Reply = ChatReply;

    fn need(&self) -> Need {
        Need::Chat {
            stream: self.0.stream,
        }
    }

    fn estimated_tokens(&self) -> u64 {
        estimate_tokens(self.0.wire_len, self.0.max_output_tokens())
    }

    fn input_tokens(&self) -> u64 {
        estimate_tokens(self.0.wire_len, 0)
    }

    fn output_tokens(&self) -> u64 {
        self.0.max_output_tokens()
    }

    /// Sent twice only an answer comes back twice, unless it is stored.
    fn idempotent(&self) -> bool {
        !stores(&self.0.body)
    }

    fn affinity(&self) -> Option<u64> {
        self.1
    }

    async fn attempt(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> Result<ChatReply, UpstreamError> {
        provider.chat(&self.0, &model, self.0.stream).await
    }
}
