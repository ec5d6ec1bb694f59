//! The cached single-flight call: one routed call whose answer is one
//! whole body or one stream, optionally cached and shared.
//!
//! Place in the pipeline: the flow behind chat, completions, Responses and
//! Messages, once the endpoint has parsed the request, found its route,
//! admitted it and built its [`Call`]. [`serve`] runs the call uncached
//! and answers JSON or SSE ([`Answer`] says how the endpoint's answers
//! read); [`serve_cached`] looks a non-streaming request up in the cache
//! by its key first (a stored stream serves it too, assembled), lets
//! identical concurrent misses share one upstream call (the leader's call
//! holds its request permit, so it counts against the concurrency limit,
//! and is cancelled when no client waits for it any more), and stores the
//! answer (kept past its TTL for the route's `stale_if_error` window). When
//! every target failed and the route allows it, an expired answer within
//! the maximum staleness answers instead (`x-switchyard-cache: stale`,
//! counted). Usage of answers that went upstream is charged in the request
//! context; hits, shared calls and stale answers spent nothing. Must not
//! alter an answer.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode};

use super::chat_stream::whole_from_stream;
use super::flights::ChatDone;
use super::sse::sse_reply;
use crate::api::usage::{AnswerUsage, Dialect};
use crate::api::{ErrorKind, GatewayError};
use crate::cache::{CacheKey, Payload};
use crate::providers::ChatReply;
use crate::routing::{Call, RouteHandle, execute, execute_stream};
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, ErrorShape, X_CACHE, json_response, served_by};

/// How an endpoint's answers read and are written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The wire format usage is read in.
    pub dialect: Dialect,
    /// The shape of an error event in a stream that broke.
    pub shape: ErrorShape,
    /// Take out of a stream the usage the gateway asked for on its own.
    pub strip_usage: bool,
}

impl Answer {
    /// An OpenAI-format answer (chat, completions) as the client asked.
    pub(crate) fn openai(stream: bool, strip_usage: bool) -> Self {
        Answer {
            stream,
            dialect: Dialect::OpenAi,
            shape: ErrorShape::OpenAi,
            strip_usage,
        }
    }
}

/// Runs `call` on `route` uncached and answers as `how` says (a stream
/// watched as the route says: `routing::execute_stream`).
pub(crate) async fn serve<C: Call<Reply = ChatReply>>(
    rc: &mut RequestCtx,
    route: &Arc<RouteHandle>,
    call: C,
    how: Answer,
) -> Result<Response<Body>, GatewayError> {
    let metrics = Arc::clone(&rc.state.metrics);
    if how.stream {
        let (rt, route) = (Arc::clone(&rc.rt), Arc::clone(route));
        let (served, _) = execute_stream(rt, route, metrics, Arc::new(call)).await?;
        return Ok(sse_reply(
            rc,
            served,
            how.shape,
            how.dialect,
            how.strip_usage,
        ));
    }
    let served = execute(&rc.rt.table, route, &metrics, Arc::new(call)).await?;
    match served.value {
        ChatReply::Full(body, usage) => {
            let done = ChatDone {
                body,
                usage,
                provider: served.provider,
                model: Some(served.model),
                attempts: served.attempts,
            };
            Ok(reply(rc, done, None, how.dialect))
        }
        ChatReply::Stream(_) => Err(GatewayError::new(
            ErrorKind::BadGateway,
            "The upstream answered a stream for a JSON request.",
        )),
    }
}

/// Runs a non-streaming `call` (OpenAI format) through the cache under
/// `key`, sharing the upstream call with identical requests in flight;
/// `kind` labels the cache metrics.
pub(crate) async fn serve_cached<C: Call<Reply = ChatReply>>(
    rc: &mut RequestCtx,
    route: Arc<RouteHandle>,
    call: C,
    key: CacheKey,
    kind: &'static str,
) -> Result<Response<Body>, GatewayError> {
    let metrics = Arc::clone(&rc.state.metrics);
    let name = route.spec.name.clone();
    let hit = match rc.rt.cache.get(&key).await {
        Some(Payload::Chat { body, provider }) => Some((body, provider)),
        Some(stored) => whole_from_stream(&stored),
        None => None,
    };
    if let Some((body, provider)) = hit {
        metrics.cache_hits.with_label_values(&[&name, kind]).inc();
        let done = ChatDone {
            body,
            usage: AnswerUsage::UNKNOWN,
            provider,
            model: None,
            attempts: 0,
        };
        return Ok(reply(rc, done, Some("hit"), Dialect::OpenAi));
    }
    let stale = route.spec.cache.stale_if_error.chat;
    let (rt, permit) = (Arc::clone(&rc.rt), rc.permit.clone());
    let flight_metrics = Arc::clone(&metrics);
    let work = async move {
        // Holds the leader's permit until the upstream call is over.
        let _permit = permit;
        let served = execute(&rt.table, &route, &flight_metrics, Arc::new(call)).await?;
        let ChatReply::Full(body, usage) = served.value else {
            return Err(GatewayError::new(
                ErrorKind::Internal,
                "Provider streamed a non-streaming request.",
            ));
        };
        let payload = Payload::Chat {
            body: body.clone(),
            provider: Arc::clone(&served.provider),
        };
        let keep = stale.unwrap_or_default();
        rt.cache
            .insert(key, payload, route.spec.cache.ttl, keep)
            .await;
        Ok(ChatDone {
            body,
            usage,
            provider: served.provider,
            model: Some(served.model),
            attempts: served.attempts,
        })
    };
    let (result, leader) = rc.state.flights.chat.run(key, work).await;
    if leader {
        metrics.cache_misses.with_label_values(&[&name, kind]).inc();
    } else {
        metrics.coalesced.with_label_values(&[&name, kind]).inc();
        metrics.cache_hits.with_label_values(&[&name, kind]).inc();
    }
    let state = if leader { "miss" } else { "hit" };
    let done = match (result, stale) {
        (Ok(done), _) => done,
        (Err(e), Some(max)) if e.no_target_answered() => {
            let found = match rc.rt.cache.get_stale(&key, max).await {
                Some(Payload::Chat { body, provider }) => Some((body, provider)),
                Some(stored) => whole_from_stream(&stored),
                None => None,
            };
            let Some((body, provider)) = found else {
                return Err(e);
            };
            metrics.cache_stale.with_label_values(&[&name, kind]).inc();
            tracing::warn!(route = name, error = %e, "every target failed; answered from an expired cache entry");
            let done = ChatDone {
                body,
                usage: AnswerUsage::UNKNOWN,
                provider,
                model: None,
                attempts: 0,
            };
            return Ok(reply(rc, done, Some("stale"), Dialect::OpenAi));
        }
        (Err(e), _) => return Err(e),
    };
    Ok(reply(rc, done, Some(state), Dialect::OpenAi))
}

/// A whole answer; its usage (read in `dialect`) is charged unless it came
/// from the gateway's cache or a shared call (`cache` says hit or stale:
/// then it has no model).
fn reply(
    rc: &mut RequestCtx,
    done: ChatDone,
    cache: Option<&'static str>,
    dialect: Dialect,
) -> Response<Body> {
    rc.served_by(&done.provider, done.attempts);
    rc.cache = cache;
    if cache != Some("hit")
        && let Some(model) = &done.model
    {
        rc.charge_body(model, dialect, &done.body, done.usage);
    }
    let mut r = json_response(StatusCode::OK, done.body);
    let h = r.headers_mut();
    served_by(h, &done.provider, done.attempts);
    if let Some(c) = cache {
        h.insert(X_CACHE.clone(), HeaderValue::from_static(c));
    }
    r
}
