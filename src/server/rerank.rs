//! `POST /v1/rerank`: per-document cache -> single-flight -> routing.
//!
//! Place in the pipeline: called by `router` with the request context, like
//! embeddings. Each document's score is looked up in the cache under (route,
//! scoring parameters, query, document); only the missed documents
//! (deduplicated) go upstream, in one routed call with retries, breakers,
//! limits and failover, to targets that all rerank ([`Provider::reranks`];
//! otherwise 400 `unsupported_endpoint`). Identical concurrent misses share
//! one call. The answer is reassembled over all of the client's documents:
//! sorted by score (ties in document order), `top_n` applied after merging,
//! indices referring to the client's list. `x-switchyard-cache` says hit,
//! miss or partial. Reported tokens of an upstream call are charged as
//! prompt tokens (not for cache hits or shared calls). Must not send
//! `top_n` upstream (every score is needed
//! for the cache) or change a score.
//!
//! [`Provider::reranks`]: crate::providers::Provider::reranks

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::context::{Admission, RequestCtx};
use super::http::{Body, ReqBody, json_response, wants_no_cache};
use super::router::{Ctx, parse_routed, unsupported_endpoint};
use super::state::{RerankDone, Runtime};
use crate::api::rerank::{RerankRequest, rank, response_body};
use crate::api::usage::Usage;
use crate::api::{ErrorKind, GatewayError};
use crate::cache::{CacheKey, Payload};
use crate::config::Endpoint;
use crate::metrics::Metrics;
use crate::routing::{AttemptReply, AttemptRequest, RouteHandle, RouteTable, execute};

/// Every target of `route` reranks (and the route does not declare
/// `endpoints` without `rerank`).
fn reranks(table: &RouteTable, route: &RouteHandle) -> bool {
    let declared = &route.spec.endpoints;
    (declared.is_empty() || declared.contains(&Endpoint::Rerank))
        && !route.spec.targets.is_empty()
        && route.spec.targets.iter().all(|t| {
            table
                .providers
                .get(&t.provider)
                .is_some_and(|h| h.provider.reranks())
        })
}

pub(super) async fn handle(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, request, route) = parse_routed(ctx, rc, req, RerankRequest::parse).await?;
    if !reranks(&ctx.rt.table, &route) {
        return Err(unsupported_endpoint(&route.spec.name, "rerank"));
    }
    serve(ctx, rc, route, request, wants_no_cache(&parts.headers)).await
}

async fn serve(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    route: Arc<RouteHandle>,
    mut request: RerankRequest,
    no_cache: bool,
) -> Result<Response<Body>, GatewayError> {
    let metrics = &ctx.state.metrics;
    let name = route.spec.name.clone();
    let use_cache = route.spec.cache.enabled && !no_cache;
    let params = ctx
        .cache_namespace(&route, &request.canonical_params())
        .into_owned();
    let docs = &request.documents;
    let n = docs.len();

    let mut scores: Vec<Option<f64>> = vec![None; n];
    if use_cache {
        // One lookup for the whole batch (one round trip to a shared tier).
        let keys: Vec<CacheKey> = docs
            .iter()
            .map(|doc| CacheKey::rerank(&name, &params, &request.query, doc))
            .collect();
        for (slot, hit) in scores.iter_mut().zip(ctx.rt.cache.get_many(&keys).await) {
            if let Some(Payload::Score(s)) = hit {
                *slot = Some(s);
            }
        }
    }
    // Unique missed documents, in first-seen order, and where each one goes.
    let mut unique: Vec<Arc<str>> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut slot_of: Vec<Option<usize>> = vec![None; n];
    for i in (0..n).filter(|&i| scores[i].is_none()) {
        let u = *position.entry(&docs[i]).or_insert_with(|| {
            unique.push(Arc::clone(&docs[i]));
            unique.len() - 1
        });
        slot_of[i] = Some(u);
    }
    let missed = slot_of.iter().filter(|s| s.is_some()).count();
    if use_cache {
        metrics
            .cache_hits
            .with_label_values(&[&name, "rerank"])
            .inc_by((n - missed) as u64);
        metrics
            .cache_misses
            .with_label_values(&[&name, "rerank"])
            .inc_by(missed as u64);
    }

    let mut usage = (0, 0);
    let mut shared = false;
    if !unique.is_empty() {
        let key =
            CacheKey::rerank_batch(&name, &params, &request.query, unique.iter().map(|d| &**d));
        let work = fetch(
            rc.admission.clone(),
            ctx.rt.clone(),
            Arc::clone(metrics),
            route.clone(),
            Arc::clone(&request.query),
            unique,
            std::mem::take(&mut request.extra),
            use_cache.then(|| params.clone()),
        );
        let done = if use_cache {
            let (result, leader) = ctx.state.rerank_flights.run(key, work).await;
            if !leader {
                shared = true;
                metrics
                    .coalesced
                    .with_label_values(&[&name, "rerank"])
                    .inc();
            }
            result?
        } else {
            work.await?
        };
        for (slot, u) in scores.iter_mut().zip(&slot_of) {
            if let Some(u) = u {
                *slot = done.scores.get(*u).copied();
            }
        }
        rc.served_by(&done.provider, done.attempts);
        usage = (done.total_tokens, done.search_units);
        if !shared && done.total_tokens > 0 {
            // Rerank tokens are all input; search units are not tokens.
            let spent = Usage {
                prompt: done.total_tokens,
                ..Usage::default()
            };
            let (provider, model) = (Arc::clone(&done.provider), Arc::clone(&done.model));
            rc.spend
                .charge(&ctx.rt.policy.prices, provider, model, spent);
        }
    }
    let scores: Vec<f64> = scores.into_iter().map(|s| s.unwrap_or(0.0)).collect();
    let ranked = rank(&scores, request.top_n);
    let id = format!("rerank-{:032x}", fastrand::u128(..));
    let documents = request.return_documents.then_some(&docs[..]);
    let body = response_body(&id, &name, &ranked, documents, usage);
    let mut r = json_response(StatusCode::OK, body);
    let h = r.headers_mut();
    if let Some(provider) = &rc.provider
        && let Ok(v) = HeaderValue::from_str(provider)
    {
        h.insert("x-switchyard-provider", v);
        h.insert("x-switchyard-attempts", HeaderValue::from(rc.attempts));
    }
    if use_cache {
        let state = match missed {
            0 => "hit",
            _ if shared => "hit",
            m if m == n => "miss",
            _ => "partial",
        };
        h.insert("x-switchyard-cache", HeaderValue::from_static(state));
        rc.cache = Some(state);
    }
    Ok(r)
}

/// Scores `documents` upstream in one routed call and caches each score
/// (when `cache_params` is given).
#[allow(clippy::too_many_arguments)]
async fn fetch(
    admission: Option<Arc<Admission>>,
    rt: Arc<Runtime>,
    metrics: Arc<Metrics>,
    route: Arc<RouteHandle>,
    query: Arc<str>,
    documents: Vec<Arc<str>>,
    extra: Map<String, Value>,
    cache_params: Option<String>,
) -> Result<RerankDone, GatewayError> {
    // Holds the leader's admission until the upstream call is over.
    let _admission = admission;
    let documents = Arc::new(documents);
    let request = AttemptRequest::Rerank {
        model: Arc::from(""),
        query: Arc::clone(&query),
        documents: Arc::clone(&documents),
        extra: Arc::new(extra),
    };
    let served = execute(&rt.table, &route, &metrics, request).await?;
    let AttemptReply::Rerank(reply) = served.value else {
        return Err(GatewayError::new(
            ErrorKind::Internal,
            "Provider answered rerank with something else.",
        ));
    };
    if reply.scores.len() != documents.len() {
        return Err(GatewayError::new(
            ErrorKind::BadGateway,
            "Upstream returned the wrong number of rerank scores.",
        ));
    }
    if let Some(params) = cache_params {
        let name = route.spec.name.as_str();
        let entries = documents
            .iter()
            .zip(&reply.scores)
            .map(|(doc, score)| {
                let key = CacheKey::rerank(name, &params, &query, doc);
                (key, Payload::Score(*score))
            })
            .collect();
        rt.cache.insert_many(entries, route.spec.cache.ttl).await;
    }
    Ok(RerankDone {
        scores: Arc::new(reply.scores),
        provider: Arc::from(served.provider.as_str()),
        model: served.model,
        attempts: served.attempts,
        total_tokens: reply.total_tokens,
        search_units: reply.search_units,
    })
}
