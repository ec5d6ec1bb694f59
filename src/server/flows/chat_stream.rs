//! Streaming chat on a cached route: replay, cross-serving, coalescing.
//!
//! Place in the pipeline: the chat endpoint hands a streaming request here
//! when its route caches and the client did not send `Cache-Control:
//! no-cache`.
//! A stored answer (a stream, or a whole answer split into chunks) is
//! replayed as SSE (`x-switchyard-cache: hit`) with its stored ids; when
//! every target failed and the route allows it (`stale_if_error`), an
//! expired one within the maximum staleness is replayed instead
//! (`x-switchyard-cache: stale`, counted). On a
//! miss, identical concurrent requests join one upstream stream
//! (`StreamFlights`): the upstream call runs on its own task holding the
//! leader's request permit, asks for usage (`stream_options.include_usage`, so
//! the stored stream can serve clients that want it; readers that did not
//! ask get it stripped, `"usage": null` fields included), and is stored
//! when it ended with `[DONE]`, without an error, within
//! `cache.max_entry_bytes`. A failure mid-way is logged and counted once (interruption, breaker) and every reader gets the same SSE
//! error event. The upstream task reads the usage as events arrive, for the
//! leader's request (charged what it had seen when its body ended); replays
//! and joiners spent nothing. Must not alter upstream events beyond
//! stripping usage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::sse::{broke, sse_response};
use crate::api::GatewayError;
use crate::api::usage::Dialect;
use crate::cache::stream::{StreamScan, assemble, drop_null_usage, split, strip_usage};
use crate::cache::{CacheKey, End, Payload, Piece, Publisher, Started};
use crate::metrics::Metrics;
use crate::providers::ChatReply;
use crate::routing::{Call, RouteHandle, execute_stream};
use crate::server::access::usage::{StreamTap, UsageCell};
use crate::server::edge::context::RequestCtx;
use crate::server::edge::permit::RequestPermit;
use crate::server::http::{Body, ErrorShape, X_CACHE};
use crate::server::state::Runtime;
use crate::telemetry::RequestScope;

const KIND: &str = "chat_stream";

/// A stored answer as an SSE stream for this client, if it can serve it.
fn replay(payload: Payload, with_usage: bool) -> Option<(Bytes, Arc<str>)> {
    match payload {
        Payload::ChatStream {
            events,
            provider,
            usage,
        } => match (with_usage, usage) {
            (true, false) => None,
            (false, true) => Some((strip_usage(&events), provider)),
            _ => Some((events, provider)),
        },
        Payload::Chat { body, provider } => Some((split(&body, with_usage).ok()?, provider)),
        Payload::Embedding(_) | Payload::Score(_) => None,
    }
}

/// A stored stream as a whole answer, for a non-streaming request.
pub(crate) fn whole_from_stream(payload: &Payload) -> Option<(Bytes, Arc<str>)> {
    match payload {
        Payload::ChatStream {
            events, provider, ..
        } => Some((assemble(events).ok()?, Arc::clone(provider))),
        _ => None,
    }
}

/// An SSE response from the cache or a shared stream (`cache` says which).
fn cached_sse(body: Body, provider: &str, attempts: u32, cache: &'static str) -> Response<Body> {
    let mut r = sse_response(body, provider, attempts);
    r.headers_mut()
        .insert(X_CACHE.clone(), HeaderValue::from_static(cache));
    r
}

/// Serves a streaming `call` on a cached route under `key`: a replay, a
/// shared stream, or a new upstream stream that others may join (see the
/// module doc). `with_usage`: the client asked for usage; the call must
/// ask the upstream for it in any case (the stored stream serves both).
pub(crate) async fn serve<C: Call<Reply = ChatReply>>(
    rc: &mut RequestCtx,
    route: Arc<RouteHandle>,
    call: C,
    key: CacheKey,
    with_usage: bool,
) -> Result<Response<Body>, GatewayError> {
    let metrics = Arc::clone(&rc.state.metrics);
    let name = route.spec.name.clone();
    if let Some(payload) = rc.rt.cache.get(&key).await
        && let Some((events, provider)) = replay(payload, with_usage)
    {
        metrics.cache_hits.with_label_values(&[&name, KIND]).inc();
        rc.served_by(&provider, 0);
        rc.cache = Some("hit");
        let body = http_body_util::Full::new(events).boxed_unsync();
        return Ok(cached_sse(body, &provider, 0, "hit"));
    }
    let route_stale = route.spec.cache.stale_if_error.chat;
    let stale_key = key;
    let bound = usize::try_from(rc.rt.cache.max_entry_bytes()).unwrap_or(usize::MAX);
    let (mut sub, publisher) = rc.state.flights.stream.join(key, bound);
    // The leader's usage, read by the upstream task as events arrive.
    let usage = UsageCell::default();
    let cache = if let Some(publisher) = publisher {
        metrics.cache_misses.with_label_values(&[&name, KIND]).inc();
        let job = Job {
            rt: Arc::clone(&rc.rt),
            metrics: Arc::clone(&metrics),
            route,
            call: Arc::new(call),
            key,
            permit: rc.permit.clone(),
            usage: usage.clone(),
        };
        let task = tokio::spawn(RequestScope::current().instrument(pump(publisher, job)));
        sub.set_abort(task.abort_handle());
        "miss"
    } else {
        metrics.coalesced.with_label_values(&[&name, KIND]).inc();
        metrics.cache_hits.with_label_values(&[&name, KIND]).inc();
        "hit"
    };
    let Started {
        provider,
        model,
        attempts,
    } = match (sub.started().await, route_stale) {
        (Ok(started), _) => started,
        (Err(e), Some(max)) if e.no_target_answered() => {
            let found = rc.rt.cache.get_stale(&stale_key, max).await;
            let Some((events, provider)) = found.and_then(|p| replay(p, with_usage)) else {
                return Err(e);
            };
            metrics.cache_stale.with_label_values(&[&name, KIND]).inc();
            tracing::warn!(route = name, error = %e, "every target failed; replayed an expired cache entry");
            rc.served_by(&provider, 0);
            rc.cache = Some("stale");
            let body = http_body_util::Full::new(events).boxed_unsync();
            return Ok(cached_sse(body, &provider, 0, "stale"));
        }
        (Err(e), _) => return Err(e),
    };
    rc.served_by(&provider, attempts);
    rc.cache = Some(cache);
    if cache == "miss" {
        rc.charge_stream(&provider, &model, usage);
    }
    // Everything the body needs once the handler has returned.
    let reader = Reader {
        sub,
        _permit: rc.permit.clone(),
        interrupted: Arc::clone(&rc.interrupted),
    };
    let frames = futures_util::stream::unfold(Some(reader), move |r| async move {
        let mut r = r?;
        match r.sub.next(with_usage).await? {
            Ok(bytes) if with_usage => Some((Ok(Frame::data(bytes)), Some(r))),
            Ok(bytes) => Some((Ok(Frame::data(drop_null_usage(bytes))), Some(r))),
            Err(event) => {
                r.interrupted.store(true, Ordering::Relaxed);
                Some((Ok(Frame::data(event)), None))
            }
        }
    });
    let body = StreamBody::new(frames.map(|f: Result<_, std::convert::Infallible>| f));
    Ok(cached_sse(body.boxed_unsync(), &provider, attempts, cache))
}

/// One client's read side: its subscriber, its admission, its outcome flag.
struct Reader {
    sub: crate::cache::Subscriber,
    _permit: Option<Arc<RequestPermit>>,
    interrupted: Arc<AtomicBool>,
}

/// What the upstream task needs.
struct Job<C> {
    rt: Arc<Runtime>,
    metrics: Arc<Metrics>,
    route: Arc<RouteHandle>,
    call: Arc<C>,
    key: CacheKey,
    permit: Option<Arc<RequestPermit>>,
    usage: UsageCell,
}

/// Runs the upstream stream into the flight, then stores it if it is whole.
async fn pump<C: Call<Reply = ChatReply>>(publisher: Publisher, job: Job<C>) {
    // Holds the leader's permit until the upstream stream is over.
    let _permit = job.permit;
    let (rt, metrics, route) = (job.rt, job.metrics, job.route);
    let run = execute_stream(
        Arc::clone(&rt),
        Arc::clone(&route),
        Arc::clone(&metrics),
        job.call,
    );
    let (served, continued) = match run.await {
        Ok(s) => s,
        Err(e) => return publisher.start(Err(e)),
    };
    let provider = Arc::clone(&served.provider);
    publisher.start(Ok(Started {
        provider: Arc::clone(&provider),
        model: served.model,
        attempts: served.attempts,
    }));
    let mut events = match served.value {
        ChatReply::Stream(s) => s,
        ChatReply::Full(body, _) => futures_util::stream::once(async move { Ok(body) }).boxed(),
    };
    let mut scan = StreamScan::default();
    let mut tap = StreamTap::into_cell(Dialect::OpenAi, job.usage);
    while let Some(item) = events.next().await {
        match item {
            Ok(bytes) => {
                // Read before the readers get it, so the leader's request
                // has the usage by the time its body ends.
                tap.read(&bytes);
                let without_usage = scan.feed(&bytes);
                publisher
                    .push(Piece {
                        bytes,
                        without_usage,
                    })
                    .await;
            }
            Err(e) => {
                // Counted once for all readers; each reader marks its own
                // request as interrupted when it reaches the error event.
                let handle = rt.table.providers.get(&*provider).map(|h| &**h);
                let name = route.spec.name.as_str();
                let event = broke(handle, &metrics, name, &provider, &e, ErrorShape::OpenAi);
                return publisher.finish(End::Failed(event));
            }
        }
    }
    // A continued answer is whole but stitched from two targets: not kept.
    if scan.complete()
        && continued.count() == 0
        && let Some(events) = publisher.whole()
    {
        let payload = Payload::ChatStream {
            events,
            provider,
            usage: scan.usage,
        };
        let keep = route.spec.cache.stale_if_error.chat.unwrap_or_default();
        rt.cache
            .insert(job.key, payload, route.spec.cache.ttl, keep)
            .await;
    }
    publisher.finish(End::Done);
}
