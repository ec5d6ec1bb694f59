//! `POST /v1/rerank`: per-document cache, dedupe, one routed call.
//!
//! Place in the pipeline: called by the router, like embeddings. Each
//! document is one item of the per-item flow (`flows::items`), cached under
//! (route, scoring parameters, query, document); only the missed documents
//! (deduplicated) go upstream, in one routed call with retries, breakers,
//! limits and failover, to targets that all rerank (otherwise 400
//! `unsupported_endpoint`). Identical concurrent misses share one call. The
//! answer is reassembled over all of the client's documents: sorted by
//! score (ties in document order), `top_n` applied after merging, indices
//! referring to the client's list. `x-switchyard-cache` says hit, miss or
//! partial. Reported tokens of an upstream call are charged as prompt
//! tokens (not for cache hits or shared calls). Must not send `top_n`
//! upstream (every score is needed for the cache) or change a score.

use std::future::Future;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::{parse_routed, unsupported_endpoint};
use crate::api::estimate::estimate_tokens;
use crate::api::rerank::{RerankReply, RerankRequest, rank, response_body};
use crate::api::usage::Usage;
use crate::api::{ErrorKind, GatewayError};
use crate::cache::{CacheKey, Payload, SingleFlight};
use crate::providers::{Need, Provider, UpstreamError};
use crate::routing::{Call, execute};
use crate::server::edge::context::RequestCtx;
use crate::server::flows::flights::{Flights, RerankDone};
use crate::server::flows::items::{self, Items, Stale, Upstream};
use crate::server::http::{Body, ReqBody, json_response, served_by, wants_no_cache};

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, request, route) = parse_routed(rc, req, RerankRequest::parse).await?;
    if !route.capabilities.serves(Need::Rerank) {
        return Err(unsupported_endpoint(&route.spec.name, "rerank"));
    }
    let use_cache = route.spec.cache.enabled && !wants_no_cache(&parts.headers);
    let documents = Documents(request);
    let served = items::serve(rc, &route, &documents, use_cache).await?;
    let mut usage = (0, 0);
    if let Some(done) = served.fetched.as_ref().filter(|d| !d.stale) {
        rc.served_by(&done.provider, done.attempts);
        usage = (done.total_tokens, done.search_units);
        if !served.shared && done.total_tokens > 0 {
            // Rerank tokens are all input; search units are not tokens.
            let spent = Usage {
                prompt: done.total_tokens,
                ..Usage::default()
            };
            rc.charge(&done.provider, &done.model, spent);
        }
    }
    let request = &documents.0;
    let ranked = rank(&served.values, request.top_n);
    let id = format!("rerank-{:032x}", fastrand::u128(..));
    let texts = request.return_documents.then_some(&request.documents[..]);
    let body = response_body(&id, &route.spec.name, &ranked, texts, usage);
    let mut r = json_response(StatusCode::OK, body);
    let h = r.headers_mut();
    if let Some(provider) = &rc.provider {
        served_by(h, provider, rc.attempts);
    }
    served.mark(rc, r.headers_mut(), false);
    Ok(r)
}

/// The request's documents as items.
struct Documents(RerankRequest);

impl Items for Documents {
    type Value = f64;
    type Done = RerankDone;
    const KIND: &'static str = "rerank";

    fn len(&self) -> usize {
        self.0.documents.len()
    }

    fn item(&self, i: usize) -> &str {
        &self.0.documents[i]
    }

    fn params(&self) -> String {
        self.0.canonical_params()
    }

    fn item_key(&self, route: &str, params: &str, i: usize) -> CacheKey {
        CacheKey::rerank(route, params, &self.0.query, &self.0.documents[i])
    }

    fn batch_key(&self, route: &str, params: &str, items: &[usize]) -> CacheKey {
        let docs = items.iter().map(|&i| &*self.0.documents[i]);
        CacheKey::rerank_batch(route, params, &self.0.query, docs)
    }

    fn from_payload(p: Payload) -> Option<f64> {
        match p {
            Payload::Score(s) => Some(s),
            _ => None,
        }
    }

    fn to_payload(v: &f64) -> Payload {
        Payload::Score(*v)
    }

    fn flights(f: &Flights) -> &SingleFlight<CacheKey, RerankDone> {
        &f.rerank
    }

    fn values(done: &RerankDone) -> &[f64] {
        &done.scores
    }

    fn stale(done: &RerankDone, _u: usize) -> bool {
        done.stale
    }

    fn missing() -> f64 {
        0.0
    }

    fn fetch(
        &self,
        up: Upstream,
        items: &[usize],
    ) -> impl Future<Output = Result<RerankDone, GatewayError>> + Send + 'static {
        let call = RerankCall {
            query: Arc::clone(&self.0.query),
            documents: items
                .iter()
                .map(|&i| Arc::clone(&self.0.documents[i]))
                .collect(),
            extra: self.0.extra.clone(),
        };
        fetch(up, call)
    }
}

/// Scores the documents upstream in one routed call; when every target
/// failed, from expired entries if every document's score is kept.
async fn fetch(up: Upstream, call: RerankCall) -> Result<RerankDone, GatewayError> {
    let sent = call.documents.len();
    let call = Arc::new(call);
    let served = match execute(&up.rt.table, &up.route, &up.metrics, Arc::clone(&call)).await {
        Ok(served) => served,
        Err(e) => return from_stale(up.stale.as_ref(), &call, e).await,
    };
    let reply = served.value;
    if reply.scores.len() != sent {
        return Err(GatewayError::new(
            ErrorKind::BadGateway,
            "Upstream returned the wrong number of rerank scores.",
        ));
    }
    Ok(RerankDone {
        scores: Arc::new(reply.scores),
        provider: served.provider,
        model: served.model,
        attempts: served.attempts,
        total_tokens: reply.total_tokens,
        search_units: reply.search_units,
        stale: false,
    })
}

async fn from_stale(
    stale: Option<&Stale>,
    call: &RerankCall,
    e: GatewayError,
) -> Result<RerankDone, GatewayError> {
    let Some(stale) = stale.filter(|_| e.no_target_answered()) else {
        return Err(e);
    };
    let keys: Vec<CacheKey> = call
        .documents
        .iter()
        .map(|d| CacheKey::rerank(stale.route(), &stale.params, &call.query, d))
        .collect();
    let scores = stale.values::<Documents>(&keys).await.ok_or(e)?;
    Ok(RerankDone {
        scores: Arc::new(scores),
        provider: Arc::from(""),
        model: Arc::from(""),
        attempts: 0,
        total_tokens: 0,
        search_units: 0,
        stale: true,
    })
}

/// One rerank call as routing sees it: scores for `documents` against
/// `query`, in the order given.
#[derive(Debug)]
struct RerankCall {
    query: Arc<str>,
    documents: Vec<Arc<str>>,
    extra: Map<String, Value>,
}

impl Call for RerankCall {
    type Reply = RerankReply;

    fn need(&self) -> Need {
        Need::Rerank
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn estimated_tokens(&self) -> u64 {
        let text: usize = self
            .documents
            .iter()
            .map(|d| d.len() + self.query.len())
            .sum();
        estimate_tokens(text, 0)
    }

    async fn attempt(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> Result<RerankReply, UpstreamError> {
        let c = &self;
        provider
            .rerank(&model, &c.query, &c.documents, &c.extra)
            .await
    }
}
