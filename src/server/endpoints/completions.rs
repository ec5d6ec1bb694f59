//! `POST /v1/completions` (legacy text completions), passed through.
//!
//! Place in the pipeline: called by the router. The body goes as it is
//! (only `model` rewritten) to the route's targets that serve
//! `/completions` natively (openai-compatible servers, the mock); the
//! others are skipped, and a route with none answers 400
//! `unsupported_endpoint`. Non-streaming answers go through the cached
//! single-flight call on cached routes (keyed on the canonical body under
//! their own prefix); streams are piped as whole events like chat streams
//! (usage asked for, and stripped again when the client did not ask). Must
//! not alter the upstream body beyond `model` and the usage request, nor
//! translate it for other kinds.

use std::sync::Arc;

use http::{HeaderMap, Request, Response};

use super::{parse_routed, unsupported_endpoint};
use crate::api::GatewayError;
use crate::api::chat::{ask_for_usage, body_with_model, include_usage};
use crate::api::completions::{CompletionRequest, PATH};
use crate::api::estimate::{Routed, estimate_tokens};
use crate::api::usage::Dialect;
use crate::cache::CacheKey;
use crate::providers::{ChatReply, Need, Provider, UpstreamError};
use crate::routing::{Call, ReplyFacts, UsageSeen, watch_chat_usage};
use crate::server::edge::context::RequestCtx;
use crate::server::flows::call::{Answer, serve, serve_cached};
use crate::server::http::{Body, ReqBody, wants_no_cache};

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, mut request, route) = parse_routed(rc, req, CompletionRequest::parse).await?;
    if !route.any_serves(Need::Native(PATH)) {
        return Err(unsupported_endpoint(&route.spec.name, "text completions"));
    }
    if request.stream {
        // As chat streams: usage asked for, stripped unless the client asked.
        let strip = !include_usage(&request.body);
        ask_for_usage(Arc::make_mut(&mut request.body));
        let how = Answer::openai(true, strip);
        return serve(rc, &route, CompletionCall(request, rc.conversation), how).await;
    }
    if !route.spec.cache.enabled || wants_no_cache(&parts.headers) {
        let how = Answer::openai(false, false);
        return serve(rc, &route, CompletionCall(request, rc.conversation), how).await;
    }
    let scope = rc.cache_namespace(&route, &route.spec.name);
    let key = CacheKey::completions(&scope, &request.body);
    // Boxed, as in chat: the cached flow's future would size this one.
    Box::pin(serve_cached(
        rc,
        route,
        CompletionCall(request, rc.conversation),
        key,
        "completions",
    ))
    .await
}

/// A text completion as routing sees it: the client's body, sent as the
/// target's model to targets that pass `/completions` through.
#[derive(Debug)]
struct CompletionCall(CompletionRequest, Option<u64>);

impl Call for CompletionCall {
    type Reply = ChatReply;

    fn describe(reply: &ChatReply) -> ReplyFacts {
        ReplyFacts::of_chat(Dialect::OpenAi, reply)
    }

    fn watch_usage(reply: &mut ChatReply, seen: UsageSeen) {
        watch_chat_usage(Dialect::OpenAi, reply, seen);
    }

    fn need(&self) -> Need {
        Need::Native(PATH)
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

    fn idempotent(&self) -> bool {
        true
    }

    fn affinity(&self) -> Option<u64> {
        self.1
    }

    async fn attempt(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> Result<ChatReply, UpstreamError> {
        let r = &self.0;
        let body = body_with_model(&r.body, &model, r.wire_len);
        let none = HeaderMap::new();
        provider.passthrough(PATH, body, &none, r.stream).await
    }
}
