//! `POST /v1/chat/completions`: cache -> single-flight -> routing.
//!
//! Place in the pipeline: called by `router` with the request context.
//! Non-streaming requests on a cached route are looked up by their
//! canonical form (a stored stream serves them too, assembled by
//! `chat_stream`); identical concurrent misses share one upstream call,
//! which holds the leader's admission (so it counts against the concurrency
//! limit) and is cancelled when no client waits for it any more. Streaming
//! requests on a cached route are `chat_stream`'s; others go straight to
//! routing (retries and failover happen before the first byte) and are
//! piped through as whole events; the body holds the admission until it
//! ends. Every stream asks the upstream for usage
//! (`stream_options.include_usage`) and strips the usage chunk again when
//! the client did not ask for it. A stream that fails after it started
//! ends with an SSE error event, is logged in the request's span, counted
//! as interrupted, and counts against the provider's breaker. Usage of
//! answers that went upstream is charged in the request context (`usage`).
//! Must not alter the upstream body beyond `model` and the usage request.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::context::RequestCtx;
use super::http::{Body, ErrorShape, ReqBody, json_response, stream_error_event, wants_no_cache};
use super::router::{Ctx, parse_routed, unsupported_endpoint};
use super::state::{ChatDone, Runtime};
use crate::api::chat::{ChatRequest, ask_for_usage};
use crate::api::usage::Dialect;
use crate::api::{ErrorKind, GatewayError};
use crate::cache::{CacheKey, Payload};
use crate::config::Prices;
use crate::metrics::Metrics;
use crate::providers::ChatReply;
use crate::routing::{AttemptReply, AttemptRequest, RouteHandle, RouteTable, Served, execute};

pub(super) async fn handle(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, chat, route) = parse_routed(ctx, rc, req, ChatRequest::parse).await?;
    let caps = &route.capabilities;
    if !caps.chat || (chat.stream && !caps.chat_stream) {
        let what = if chat.stream {
            "streaming chat"
        } else {
            "chat"
        };
        return Err(unsupported_endpoint(&route.spec.name, what));
    }
    let cacheable = route.spec.cache.enabled && !wants_no_cache(&parts.headers);
    if chat.stream && cacheable {
        return super::chat_stream::handle(ctx, rc, route, chat).await;
    }
    if chat.stream {
        return stream(ctx, rc, route, chat).await;
    }
    let chat = Arc::new(chat);
    let metrics = &ctx.state.metrics;
    let name = route.spec.name.clone();
    let prices = &ctx.rt.policy.prices;
    if !cacheable {
        let done = call(ctx.rt.clone(), metrics.clone(), route, chat).await?;
        return Ok(reply(rc, done, None, prices));
    }
    let key = CacheKey::chat(&ctx.cache_namespace(&route, &name), &chat.body);
    let hit = match ctx.rt.cache.get(&key).await {
        Some(Payload::Chat { body, provider }) => Some((body, provider)),
        Some(stored) => super::chat_stream::whole_from_stream(&stored),
        None => None,
    };
    if let Some((body, provider)) = hit {
        metrics.cache_hits.with_label_values(&[&name, "chat"]).inc();
        let done = ChatDone {
            body,
            provider,
            model: None,
            attempts: 0,
        };
        return Ok(reply(rc, done, Some("hit"), prices));
    }
    let rt = ctx.rt.clone();
    let flight_metrics = metrics.clone();
    let ttl = route.spec.cache.ttl;
    let admission = rc.admission.clone();
    let work = async move {
        // Holds the leader's admission until the upstream call is over.
        let _admission = admission;
        let done = call(rt.clone(), flight_metrics, route, chat).await?;
        let payload = Payload::Chat {
            body: done.body.clone(),
            provider: done.provider.clone(),
        };
        rt.cache.insert(key, payload, ttl).await;
        Ok(done)
    };
    let (result, leader) = ctx.state.chat_flights.run(key, work).await;
    if leader {
        metrics
            .cache_misses
            .with_label_values(&[&name, "chat"])
            .inc();
    } else {
        metrics.coalesced.with_label_values(&[&name, "chat"]).inc();
        metrics.cache_hits.with_label_values(&[&name, "chat"]).inc();
    }
    let state = if leader { "miss" } else { "hit" };
    Ok(reply(rc, result?, Some(state), prices))
}

async fn call(
    rt: Arc<Runtime>,
    metrics: Arc<Metrics>,
    route: Arc<RouteHandle>,
    chat: Arc<ChatRequest>,
) -> Result<ChatDone, GatewayError> {
    let served = route_chat(&rt.table, &route, &metrics, &chat, false).await?;
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

/// One routed chat call: each attempt sends the request as its target's model.
pub(super) async fn route_chat(
    table: &RouteTable,
    route: &RouteHandle,
    metrics: &Metrics,
    chat: &Arc<ChatRequest>,
    stream: bool,
) -> Result<Served<ChatReply>, GatewayError> {
    let request = AttemptRequest::Chat {
        request: Arc::clone(chat),
        model: Arc::from(""),
        stream,
    };
    let served = execute(table, route, metrics, request).await?;
    served.try_map(|value| match value {
        AttemptReply::Chat(value) => Ok(value),
        _ => Err(GatewayError::new(
            ErrorKind::Internal,
            "Provider answered chat with embeddings.",
        )),
    })
}

pub(super) fn served_by(h: &mut http::HeaderMap, provider: &str, attempts: u32) {
    if let Ok(v) = HeaderValue::from_str(provider) {
        h.insert("x-switchyard-provider", v);
    }
    h.insert("x-switchyard-attempts", HeaderValue::from(attempts));
}

/// A whole chat or completions answer; its usage is charged unless it came
/// from the gateway's cache (or a shared call: `cache` says hit).
pub(super) fn reply(
    rc: &mut RequestCtx,
    done: ChatDone,
    cache: Option<&'static str>,
    prices: &Prices,
) -> Response<Body> {
    rc.served_by(&done.provider, done.attempts);
    rc.cache = cache;
    if cache != Some("hit")
        && let Some(model) = &done.model
    {
        rc.charge_body(prices, model, Dialect::OpenAi, &done.body);
    }
    let mut r = json_response(StatusCode::OK, done.body);
    let h = r.headers_mut();
    served_by(h, &done.provider, done.attempts);
    if let Some(c) = cache {
        h.insert("x-switchyard-cache", HeaderValue::from_static(c));
    }
    r
}

/// A stream not cached: the upstream is asked for usage, which the client
/// only gets when it asked too.
async fn stream(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    route: Arc<RouteHandle>,
    mut chat: ChatRequest,
) -> Result<Response<Body>, GatewayError> {
    let strip = !chat.include_usage();
    ask_for_usage(&mut chat.body);
    let metrics = Arc::clone(&ctx.state.metrics);
    let served = route_chat(&ctx.rt.table, &route, &metrics, &Arc::new(chat), true).await?;
    let shape = ErrorShape::OpenAi;
    Ok(sse_reply(
        ctx,
        rc,
        &route,
        served,
        shape,
        Dialect::OpenAi,
        strip,
    ))
}

/// A served stream as the client's SSE response (shared with completions,
/// Responses and Messages): whole events piped through, their usage read in
/// `dialect` (and taken out when `strip_usage`); a failure mid-way ends it
/// with one error event in `shape`.
pub(super) fn sse_reply(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    route: &RouteHandle,
    served: Served<ChatReply>,
    shape: ErrorShape,
    dialect: Dialect,
    strip_usage: bool,
) -> Response<Body> {
    let metrics = Arc::clone(&ctx.state.metrics);
    rc.served_by(&served.provider, served.attempts);
    let prices = &ctx.rt.policy.prices;
    let mut tap = rc.tap_stream(prices, &served.model, dialect, strip_usage);
    let events = match served.value {
        ChatReply::Stream(s) => s,
        ChatReply::Full(body) => futures_util::stream::once(async move { Ok(body) }).boxed(),
    };
    // Everything the stream needs once the handler has returned.
    let admission = rc.admission.clone();
    let interrupted = Arc::clone(&rc.interrupted);
    let breaker = ctx
        .rt
        .table
        .providers
        .get(&served.provider)
        .map(|h| Arc::clone(&h.breaker));
    let (route_name, provider) = (route.spec.name.clone(), served.provider.clone());
    // Provider streams end after their first error.
    let frames = events.filter_map(move |chunk| {
        let _held = &admission;
        let bytes = match chunk {
            Ok(b) => tap.pass(b),
            Err(e) => {
                // The response has started: report in-band, then end. The
                // edge polls this body inside the request's span, so the
                // line carries the request id.
                tracing::warn!(
                    route = route_name,
                    provider,
                    error = %e.describe(),
                    "upstream stream failed mid-way"
                );
                interrupted.store(true, Ordering::Relaxed);
                metrics
                    .stream_interruptions
                    .with_label_values(&[&route_name, &provider])
                    .inc();
                if let Some(b) = &breaker {
                    b.record_failure();
                }
                let err = GatewayError::new(
                    ErrorKind::BadGateway,
                    format!("Upstream stream interrupted: {}", e.describe()),
                )
                .with_code("stream_interrupted");
                stream_error_event(&err, shape)
            }
        };
        // A run that held only a stripped usage chunk is not sent.
        let frame = (!bytes.is_empty()).then(|| Ok::<_, Infallible>(Frame::data(bytes)));
        std::future::ready(frame)
    });
    let mut r = Response::new(StreamBody::new(frames).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    served_by(h, &served.provider, served.attempts);
    r
}
