//! `POST /v1/chat/completions`: cache -> single-flight -> routing.
//!
//! Place in the pipeline: assembled here, in `server`. Non-streaming
//! requests on a cached route are looked up by their canonical form;
//! identical concurrent misses share one upstream call. Streaming requests
//! go straight to routing (retries and failover happen before the first
//! byte) and are piped through as they arrive. Must not alter the upstream
//! body beyond the `model` field.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::http::{Body, json_response, wants_no_cache};
use super::router::{Ctx, parse_routed};
use super::state::ChatDone;
use crate::api::chat::ChatRequest;
use crate::api::{ErrorKind, GatewayError};
use crate::cache::{Payload, ResponseCache};
use crate::metrics::Metrics;
use crate::providers::ChatReply;
use crate::routing::{RouteHandle, RouteTable, Served, execute};

pub async fn handle(
    ctx: &Ctx,
    req: Request<Incoming>,
) -> (String, Result<Response<Body>, GatewayError>) {
    match parse_routed(ctx, req, ChatRequest::parse, |c| &c.model).await {
        Ok((parts, chat, route)) => (
            route.spec.name.clone(),
            serve(ctx, route, chat, &parts.headers).await,
        ),
        Err((label, e)) => (label, Err(e)),
    }
}

async fn serve(
    ctx: &Ctx,
    route: Arc<RouteHandle>,
    chat: ChatRequest,
    headers: &http::HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    let metrics = &ctx.state.metrics;
    let name = route.spec.name.clone();
    if chat.stream {
        return stream(ctx, &route, &chat).await;
    }
    if !route.spec.cache.enabled || wants_no_cache(headers) {
        let done = call(ctx.rt.clone(), metrics.clone(), route, chat).await?;
        return Ok(reply(done, None));
    }
    let key = ResponseCache::chat_key(&name, &chat.canonical());
    if let Some(Payload::Chat { body, provider }) = ctx.rt.cache.get(&key).await {
        metrics.cache_hits.with_label_values(&[&name, "chat"]).inc();
        let done = ChatDone {
            body,
            provider,
            attempts: 0,
        };
        return Ok(reply(done, Some("hit")));
    }
    let rt = ctx.rt.clone();
    let flight_metrics = metrics.clone();
    let ttl = route.spec.cache.ttl;
    let flight_key = key.clone();
    let work = async move {
        let done = call(rt.clone(), flight_metrics, route, chat).await?;
        let payload = Payload::Chat {
            body: done.body.clone(),
            provider: done.provider.clone(),
        };
        rt.cache.insert(key, payload, ttl).await;
        Ok(done)
    };
    let (result, leader) = ctx.state.chat_flights.run(flight_key, work).await;
    if leader {
        metrics
            .cache_misses
            .with_label_values(&[&name, "chat"])
            .inc();
    } else {
        metrics.coalesced.with_label_values(&[&name, "chat"]).inc();
        metrics.cache_hits.with_label_values(&[&name, "chat"]).inc();
    }
    Ok(reply(result?, Some(if leader { "miss" } else { "hit" })))
}

async fn call(
    rt: Arc<super::state::Runtime>,
    metrics: Arc<Metrics>,
    route: Arc<RouteHandle>,
    chat: ChatRequest,
) -> Result<ChatDone, GatewayError> {
    let served = route_chat(&rt.table, &route, &metrics, &chat, false).await?;
    match served.value {
        ChatReply::Full(body) => Ok(ChatDone {
            body,
            provider: Arc::from(served.provider.as_str()),
            attempts: served.attempts,
        }),
        ChatReply::Stream(_) => Err(GatewayError::new(
            ErrorKind::Internal,
            "Provider streamed a non-streaming request.",
        )),
    }
}

/// One routed chat call: each attempt sends the body with its target's model.
async fn route_chat(
    table: &RouteTable,
    route: &RouteHandle,
    metrics: &Metrics,
    chat: &ChatRequest,
    stream: bool,
) -> Result<Served<ChatReply>, GatewayError> {
    execute(table, route, metrics, |handle, model| {
        let body = chat.upstream_body(&model);
        async move { handle.provider.chat(&body, stream).await }
    })
    .await
}

fn served_by(h: &mut http::HeaderMap, provider: &str, attempts: u32) {
    if let Ok(v) = HeaderValue::from_str(provider) {
        h.insert("x-switchyard-provider", v);
    }
    h.insert("x-switchyard-attempts", HeaderValue::from(attempts));
}

fn reply(done: ChatDone, cache: Option<&'static str>) -> Response<Body> {
    let mut r = json_response(StatusCode::OK, done.body);
    let h = r.headers_mut();
    served_by(h, &done.provider, done.attempts);
    if let Some(c) = cache {
        h.insert("x-switchyard-cache", HeaderValue::from_static(c));
    }
    r
}

async fn stream(
    ctx: &Ctx,
    route: &RouteHandle,
    chat: &ChatRequest,
) -> Result<Response<Body>, GatewayError> {
    let served = route_chat(&ctx.rt.table, route, &ctx.state.metrics, chat, true).await?;
    let events = match served.value {
        ChatReply::Stream(s) => s,
        ChatReply::Full(body) => futures_util::stream::once(async move { Ok(body) }).boxed(),
    };
    let frames = events.map(|chunk| {
        let bytes = match chunk {
            Ok(b) => b,
            Err(e) => {
                // The response has started: report in-band, then end.
                tracing::warn!(error = %e.describe(), "upstream stream failed mid-way");
                let err = GatewayError::new(
                    ErrorKind::BadGateway,
                    format!("Upstream stream interrupted: {}", e.describe()),
                )
                .with_code("stream_interrupted");
                let mut out = b"data: ".to_vec();
                out.extend_from_slice(&err.body());
                out.extend_from_slice(b"\n\n");
                Bytes::from(out)
            }
        };
        Ok::<_, std::convert::Infallible>(Frame::data(bytes))
    });
    let mut r = Response::new(StreamBody::new(frames).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    served_by(h, &served.provider, served.attempts);
    Ok(r)
}
