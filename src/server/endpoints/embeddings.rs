//! `POST /v1/embeddings`: per-item cache, dedupe, fan-out.
//!
//! Place in the pipeline: called by the router. The body is walked, not
//! parsed, when its inputs are strings (`api::embeddings::EmbeddingsBody`).
//! A request nothing needs the vectors of (no cache for it, no repeated
//! input) gets the upstream's answer passed through (`embeddings_call`),
//! its own bytes sent upstream when one call takes every input. Otherwise
//! each input is one item of the per-item flow (`flows::items`): looked up
//! in the cache, the misses
//! deduplicated and fetched once (shared with identical requests), split
//! into sub-batches no larger than any target accepts and sent in parallel
//! (as wide as the providers' concurrency limits allow, or
//! `fanout.max_concurrency`) with retries and failover per sub-batch, then
//! reassembled in input order. A sub-batch every target failed is
//! answered from expired cache entries when the route allows it
//! (`stale_if_error`, on by default) and every one of its inputs is kept;
//! otherwise the request fails as a whole. `x-switchyard-cache` says hit,
//! miss, partial or stale, and `x-switchyard-cached-inputs` how many inputs
//! came from the cache (or a shared identical call). Usage counts the tokens of the
//! inputs sent upstream for this response, summed over the sub-batches
//! (zero for a full hit), and is charged per provider and model that served
//! them. Must not reorder inputs or change the vectors.

use std::future::Future;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::embeddings_call::{Batch, EmbedCall, pass, passable, send_body, sendable, wrong_count};
use super::{parse_routed_bytes, unsupported_endpoint};
use crate::api::embeddings::{EmbeddingsBody, EmbeddingsRequest, response_body};
use crate::api::usage::Usage;
use crate::api::{ErrorKind, GatewayError};
use crate::cache::{CacheKey, Payload, SingleFlight};
use crate::fanout::fan_out;
use crate::providers::Need;
use crate::routing::{execute, fanout_width};
use crate::server::edge::context::RequestCtx;
use crate::server::flows::flights::{EmbedDone, Flights, Spent};
use crate::server::flows::items::{self, Items, Stale, Upstream};
use crate::server::http::{Body, ReqBody, json_response, wants_no_cache};

pub(crate) async fn handle(
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body, route) = parse_routed_bytes(rc, req, EmbeddingsBody::parse).await?;
    if !route.capabilities.serves(Need::Embeddings) {
        return Err(unsupported_endpoint(&route.spec.name, "embeddings"));
    }
    let use_cache = route.spec.cache.enabled && !wants_no_cache(&parts.headers);
    let request = match body {
        EmbeddingsBody::Raw(body) if sendable(&body, use_cache, &route) => {
            // Boxed: the routed call's future (2 KB) would size this one,
            // as `pass` keeps its calls' futures on the heap.
            return Box::pin(send_body(rc, &route, body)).await;
        }
        EmbeddingsBody::Raw(body) => body.parse()?,
        EmbeddingsBody::Parsed(request) => request,
    };
    if passable(&request, use_cache) {
        return pass(rc, &route, request).await;
    }
    let inputs = Inputs {
        texts: request.inputs.iter().map(Value::to_string).collect(),
        request,
    };
    // Boxed: the per-item flow's future (7 KB) would otherwise size this
    // one, which the router copies whole, on the pass-through path too.
    let served = Box::pin(items::serve(rc, &route, &inputs, use_cache)).await?;
    let mut usage = (0, 0);
    if let Some(done) = served.fetched.as_ref().filter(|_| !served.shared) {
        usage = (done.prompt_tokens, done.total_tokens);
        for part in done.spent.iter() {
            let spent = Usage {
                prompt: part.tokens,
                ..Usage::default()
            };
            rc.charge(&part.provider, &part.model, spent);
        }
    }
    let plain: Vec<&[f32]> = served.values.iter().map(|v| &v[..]).collect();
    let format = inputs.request.encoding_format;
    let body = response_body(&route.spec.name, &plain, format, usage.0, usage.1);
    let mut r = json_response(StatusCode::OK, body);
    served.mark(rc, r.headers_mut(), true);
    Ok(r)
}

/// The request's inputs as items, with their JSON text (the dedupe and
/// cache identity of an input).
struct Inputs {
    request: EmbeddingsRequest,
    texts: Vec<String>,
}

impl Items for Inputs {
    type Value = Arc<[f32]>;
    type Done = EmbedDone;
    const KIND: &'static str = "embeddings";

    fn len(&self) -> usize {
        self.texts.len()
    }

    fn item(&self, i: usize) -> &str {
        &self.texts[i]
    }

    fn params(&self) -> String {
        self.request.canonical_params()
    }

    fn item_key(&self, route: &str, params: &str, i: usize) -> CacheKey {
        CacheKey::embedding(route, params, &self.texts[i])
    }

    fn batch_key(&self, route: &str, params: &str, items: &[usize]) -> CacheKey {
        CacheKey::embedding_batch(route, params, items.iter().map(|&i| self.texts[i].as_str()))
    }

    fn from_payload(p: Payload) -> Option<Arc<[f32]>> {
        match p {
            Payload::Embedding(v) => Some(v),
            _ => None,
        }
    }

    fn to_payload(v: &Arc<[f32]>) -> Payload {
        Payload::Embedding(Arc::clone(v))
    }

    fn flights(f: &Flights) -> &SingleFlight<CacheKey, EmbedDone> {
        &f.embed
    }

    fn values(done: &EmbedDone) -> &[Arc<[f32]>] {
        &done.vectors
    }

    fn stale(done: &EmbedDone, u: usize) -> bool {
        done.stale.get(u).copied().unwrap_or(false)
    }

    fn missing() -> Arc<[f32]> {
        Arc::from(Vec::new())
    }

    fn fetch(
        &self,
        up: Upstream,
        items: &[usize],
    ) -> impl Future<Output = Result<EmbedDone, GatewayError>> + Send + 'static {
        let inputs: Vec<Value> = items
            .iter()
            .map(|&i| self.request.inputs[i].clone())
            .collect();
        fetch(up, inputs, Arc::new(self.request.extra.clone()))
    }
}

/// Sends `inputs` upstream in parallel sub-batches, each one routed call.
async fn fetch(
    up: Upstream,
    inputs: Vec<Value>,
    extra: Arc<Map<String, Value>>,
) -> Result<EmbedDone, GatewayError> {
    let Upstream {
        rt,
        metrics,
        route,
        stale,
    } = up;
    let name = route.spec.name.as_str();
    metrics
        .fanout_inputs
        .with_label_values(&[name])
        .observe(inputs.len() as f64);
    let expected = inputs.len();
    let sub_batch = route.sub_batch;
    // As wide as the providers' concurrency limits allow now (see `fanout_width`).
    let width = || fanout_width(&rt.table, &route);
    let replies = fan_out(inputs, sub_batch, width, |index, chunk| {
        let (rt, route, metrics, extra, stale) = (&rt, &route, &metrics, &extra, &stale);
        async move {
            metrics.fanout_sub_batches.with_label_values(&[name]).inc();
            let call = Arc::new(EmbedCall {
                batch: Batch::Items {
                    inputs: chunk,
                    extra: Arc::clone(extra),
                },
                index,
                format: None,
            });
            match execute(&rt.table, route, metrics, Arc::clone(&call)).await {
                Ok(served) => Ok(Ok(served)),
                Err(e) => {
                    let Batch::Items { inputs, .. } = &call.batch else {
                        return Err(e);
                    };
                    from_stale(stale.as_ref(), inputs, e).await.map(Err)
                }
            }
        }
    })
    .await?;
    let mut vectors = Vec::with_capacity(expected);
    let (mut prompt_tokens, mut total_tokens) = (0, 0);
    // Usually one (provider, model) serves every sub-batch.
    let mut spent: Vec<Spent> = Vec::with_capacity(1);
    let mut stale: Vec<bool> = Vec::new();
    for part in replies {
        let served = match part {
            Ok(served) => served,
            Err(kept) => {
                stale.resize(vectors.len(), false);
                stale.resize(vectors.len() + kept.len(), true);
                vectors.extend(kept);
                continue;
            }
        };
        let reply = served
            .value
            .into_vectors()
            .map_err(|e| GatewayError::new(ErrorKind::BadGateway, e.to_string()))?;
        prompt_tokens += reply.prompt_tokens;
        total_tokens += reply.total_tokens;
        let tokens = reply.prompt_tokens;
        match spent
            .iter_mut()
            .find(|s| s.provider == served.provider && s.model == served.model)
        {
            Some(part) => part.tokens += tokens,
            None => spent.push(Spent {
                provider: served.provider,
                model: served.model,
                tokens,
            }),
        }
        vectors.extend(reply.vectors.into_iter().map(Arc::<[f32]>::from));
    }
    if vectors.len() != expected {
        return Err(wrong_count());
    }
    Ok(EmbedDone {
        vectors: Arc::new(vectors),
        prompt_tokens,
        total_tokens,
        spent: spent.into(),
        stale: stale.into(),
    })
}

/// A sub-batch every target failed (`e`), from expired entries if each of
/// its inputs is kept; else `e`.
async fn from_stale(
    stale: Option<&Stale>,
    inputs: &[Value],
    e: GatewayError,
) -> Result<Vec<Arc<[f32]>>, GatewayError> {
    let Some(stale) = stale.filter(|_| e.no_target_answered()) else {
        return Err(e);
    };
    let keys: Vec<CacheKey> = inputs
        .iter()
        .map(|v| CacheKey::embedding(stale.route(), &stale.params, &v.to_string()))
        .collect();
    stale.values::<Inputs>(&keys).await.ok_or(e)
}
