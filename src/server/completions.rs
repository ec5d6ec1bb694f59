//! `POST /v1/completions` (legacy text completions): cache -> single-flight
//! -> routing, passed through.
//!
//! Place in the pipeline: called by `router` with the request context. The
//! body goes as it is (only `model` rewritten) to the route's targets that
//! pass `/completions` through (openai-compatible servers, the mock); the
//! others are skipped, and a route with none answers 400
//! `unsupported_endpoint`. Non-streaming answers are cached and coalesced
//! like chat on cached routes (keyed on the canonical body under their own
//! prefix); streams are piped as whole events like chat streams (usage
//! asked for, and stripped again when the client did not ask). Must not
//! alter the upstream body beyond `model` and the usage request, nor
//! translate it for other kinds.

use std::sync::Arc;

use http::{Request, Response};

use super::chat::{reply, sse_reply};
use super::context::RequestCtx;
use super::http::ErrorShape;
use super::http::{Body, ReqBody, wants_no_cache};
use super::router::{Ctx, parse_routed, unsupported_endpoint};
use super::state::{ChatDone, Runtime};
use crate::api::chat::{ask_for_usage, include_usage};
use crate::api::completions::{CompletionRequest, PATH};
use crate::api::usage::Dialect;
use crate::api::{ErrorKind, GatewayError};
use crate::cache::{CacheKey, Payload};
use crate::metrics::Metrics;
use crate::providers::ChatReply;
use crate::routing::{AttemptReply, AttemptRequest, RouteHandle, RouteTable, Served, execute};

/// The cache and metrics kind of this endpoint.
const KIND: &str = "completions";

pub(super) async fn handle(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, mut request, route) = parse_routed(ctx, rc, req, CompletionRequest::parse).await?;
    if !serves(&ctx.rt.table, &route) {
        return Err(unsupported_endpoint(&route.spec.name, "text completions"));
    }
    let metrics = &ctx.state.metrics;
    let prices = &ctx.rt.policy.prices;
    if request.stream {
        // As chat streams: usage asked for, stripped unless the client asked.
        let strip = !include_usage(&request.body);
        ask_for_usage(Arc::make_mut(&mut request.body));
        let served = route_call(&ctx.rt.table, &route, metrics, &request, true).await?;
        let (shape, dialect) = (ErrorShape::OpenAi, Dialect::OpenAi);
        return Ok(sse_reply(ctx, rc, &route, served, shape, dialect, strip));
    }
    if !route.spec.cache.enabled || wants_no_cache(&parts.headers) {
        let done = call(ctx.rt.clone(), metrics.clone(), route, request).await?;
        return Ok(reply(rc, done, None, prices));
    }
    let name = route.spec.name.clone();
    let key = CacheKey::completions(&ctx.cache_namespace(&route, &name), &request.body);
    if let Some(Payload::Chat { body, provider }) = ctx.rt.cache.get(&key).await {
        metrics.cache_hits.with_label_values(&[&name, KIND]).inc();
        let done = ChatDone {
            body,
            provider,
            model: None,
            attempts: 0,
        };
        return Ok(reply(rc, done, Some("hit"), prices));
    }
    let (rt, flight_metrics) = (ctx.rt.clone(), metrics.clone());
    let ttl = route.spec.cache.ttl;
    let admission = rc.admission.clone();
    let work = async move {
        // Holds the leader's admission until the upstream call is over.
        let _admission = admission;
        let done = call(rt.clone(), flight_metrics, route, request).await?;
        let payload = Payload::Chat {
            body: done.body.clone(),
            provider: done.provider.clone(),
        };
        rt.cache.insert(key, payload, ttl).await;
        Ok(done)
    };
    let (result, leader) = ctx.state.chat_flights.run(key, work).await;
    if leader {
        metrics.cache_misses.with_label_values(&[&name, KIND]).inc();
    } else {
        metrics.coalesced.with_label_values(&[&name, KIND]).inc();
        metrics.cache_hits.with_label_values(&[&name, KIND]).inc();
    }
    let state = if leader { "miss" } else { "hit" };
    Ok(reply(rc, result?, Some(state), prices))
}

/// Whether any target of `route` passes text completions through.
fn serves(table: &RouteTable, route: &RouteHandle) -> bool {
    route.spec.targets.iter().any(|t| {
        table
            .providers
            .get(&t.provider)
            .is_some_and(|h| h.provider.passes_through(PATH))
    })
}

async fn call(
    rt: Arc<Runtime>,
    metrics: Arc<Metrics>,
    route: Arc<RouteHandle>,
    request: CompletionRequest,
) -> Result<ChatDone, GatewayError> {
    let served = route_call(&rt.table, &route, &metrics, &request, false).await?;
    match served.value {
        ChatReply::Full(body) => Ok(ChatDone {
            body,
            provider: Arc::from(served.provider.as_str()),
            model: Some(served.model),
            attempts: served.attempts,
        }),
        ChatReply::Stream(_) => Err(GatewayError::new(
            ErrorKind::Internal,
            "Provider streamed a non-streaming request.",
        )),
    }
}

/// One routed call: each attempt sends the client's body as its target's
/// model, to targets that pass `/completions` through.
async fn route_call(
    table: &RouteTable,
    route: &RouteHandle,
    metrics: &Metrics,
    request: &CompletionRequest,
    stream: bool,
) -> Result<Served<ChatReply>, GatewayError> {
    let attempt = AttemptRequest::Passthrough {
        path: PATH,
        body: Arc::clone(&request.body),
        model: Arc::from(""),
        stream,
        wire_len: request.wire_len,
    };
    let served = execute(table, route, metrics, attempt).await?;
    served.try_map(|value| match value {
        AttemptReply::Chat(value) => Ok(value),
        _ => Err(GatewayError::new(
            ErrorKind::Internal,
            "Provider answered completions with something else.",
        )),
    })
}
