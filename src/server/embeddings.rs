//! `POST /v1/embeddings`: per-item cache -> single-flight -> fan-out -> routing.
//!
//! Place in the pipeline: assembled here, in `server`. Each input is looked
//! up in the cache; only the misses (deduplicated) go upstream, split into
//! sub-batches no larger than any target accepts, sent in parallel (bounded)
//! with retries and failover per sub-batch, then reassembled in input order.
//! `x-switchyard-cache` says hit, miss or partial, and
//! `x-switchyard-cached-inputs` how many inputs came from the cache (or a
//! shared identical call). Usage counts the tokens of the inputs sent
//! upstream for this response, summed over the sub-batches (zero for a
//! full hit), and is charged per provider and model that served them.
//! Must not reorder inputs or change the vectors.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::context::{Admission, RequestCtx};
use super::http::{Body, ReqBody, json_response, wants_no_cache};
use super::router::{Ctx, parse_routed, unsupported_endpoint};
use super::state::{EmbedDone, Runtime, Spent};
use crate::api::embeddings::{EmbedReply, EmbeddingsRequest, response_body};
use crate::api::usage::Usage;
use crate::api::{ErrorKind, GatewayError};
use crate::cache::{CacheKey, Payload};
use crate::fanout::fan_out;
use crate::metrics::Metrics;
use crate::routing::{AttemptReply, AttemptRequest, RouteHandle, execute};

pub(super) async fn handle(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    req: Request<ReqBody>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, request, route) = parse_routed(ctx, rc, req, EmbeddingsRequest::parse).await?;
    if !route.capabilities.embeddings {
        return Err(unsupported_endpoint(&route.spec.name, "embeddings"));
    }
    serve(ctx, rc, route, request, wants_no_cache(&parts.headers)).await
}

async fn serve(
    ctx: &Ctx,
    rc: &mut RequestCtx,
    route: Arc<RouteHandle>,
    request: EmbeddingsRequest,
    no_cache: bool,
) -> Result<Response<Body>, GatewayError> {
    let metrics = &ctx.state.metrics;
    let name = route.spec.name.clone();
    let use_cache = route.spec.cache.enabled && !no_cache;
    let params = ctx
        .cache_namespace(&route, &request.canonical_params())
        .into_owned();
    let items: Vec<String> = request.inputs.iter().map(Value::to_string).collect();
    let n = items.len();

    let mut vectors: Vec<Option<Arc<[f32]>>> = vec![None; n];
    if use_cache {
        // One lookup for the whole batch (one round trip to a shared tier).
        let keys: Vec<CacheKey> = items
            .iter()
            .map(|item| CacheKey::embedding(&name, &params, item))
            .collect();
        for (slot, hit) in vectors.iter_mut().zip(ctx.rt.cache.get_many(&keys).await) {
            if let Some(Payload::Embedding(v)) = hit {
                *slot = Some(v);
            }
        }
    }
    // Unique missed inputs, in first-seen order, and where each one goes.
    let mut unique: Vec<usize> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut slot_of: Vec<Option<usize>> = vec![None; n];
    for i in (0..n).filter(|&i| vectors[i].is_none()) {
        let u = *position.entry(items[i].as_str()).or_insert_with(|| {
            unique.push(i);
            unique.len() - 1
        });
        slot_of[i] = Some(u);
    }
    let missed = slot_of.iter().filter(|s| s.is_some()).count();
    if use_cache {
        let hits = (n - missed) as u64;
        metrics
            .cache_hits
            .with_label_values(&[&name, "embeddings"])
            .inc_by(hits);
        metrics
            .cache_misses
            .with_label_values(&[&name, "embeddings"])
            .inc_by(missed as u64);
    }

    let mut usage = (0, 0);
    let mut shared = false;
    let mut cached_inputs = n - missed;
    if !unique.is_empty() {
        let inputs: Vec<Value> = unique.iter().map(|&i| request.inputs[i].clone()).collect();
        let admission = rc.admission.clone();
        let work = fetch(
            admission,
            ctx.rt.clone(),
            Arc::clone(metrics),
            route.clone(),
            inputs,
            request.extra.clone(),
            use_cache.then(|| params.clone()),
        );
        let done = if use_cache {
            let key = CacheKey::embedding_batch(
                &name,
                &params,
                unique.iter().map(|&i| items[i].as_str()),
            );
            let (result, leader) = ctx.state.embed_flights.run(key, work).await;
            if !leader {
                shared = true;
                metrics
                    .coalesced
                    .with_label_values(&[&name, "embeddings"])
                    .inc();
            }
            result?
        } else {
            work.await?
        };
        for (slot, u) in vectors.iter_mut().zip(&slot_of) {
            if let Some(u) = u {
                *slot = Some(Arc::clone(&done.vectors[*u]));
            }
        }
        if shared {
            // Another request's call: it spent the tokens.
            cached_inputs = n;
        } else {
            usage = (done.prompt_tokens, done.total_tokens);
            let prices = &ctx.rt.policy.prices;
            for part in done.spent.iter() {
                let spent = Usage {
                    prompt: part.tokens,
                    ..Usage::default()
                };
                let (provider, model) = (Arc::clone(&part.provider), Arc::clone(&part.model));
                rc.spend.charge(prices, provider, model, spent);
            }
        }
    }
    let vectors: Vec<Arc<[f32]>> = vectors
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Arc::from(Vec::new())))
        .collect();
    let plain: Vec<&[f32]> = vectors.iter().map(|v| &v[..]).collect();
    let body = response_body(&name, &plain, request.encoding_format, usage.0, usage.1);
    let mut r = json_response(StatusCode::OK, body);
    if use_cache {
        let state = match missed {
            0 => "hit",
            _ if shared => "hit",
            m if m == n => "miss",
            _ => "partial",
        };
        let h = r.headers_mut();
        h.insert("x-switchyard-cache", HeaderValue::from_static(state));
        h.insert(
            "x-switchyard-cached-inputs",
            HeaderValue::from(cached_inputs),
        );
        rc.cache = Some(state);
    }
    Ok(r)
}

/// Sends `inputs` upstream in parallel sub-batches and caches each vector
/// (when `cache_params` is given).
async fn fetch(
    admission: Option<Arc<Admission>>,
    rt: Arc<Runtime>,
    metrics: Arc<Metrics>,
    route: Arc<RouteHandle>,
    inputs: Vec<Value>,
    extra: Map<String, Value>,
    cache_params: Option<String>,
) -> Result<EmbedDone, GatewayError> {
    // Holds the leader's admission until the upstream calls are over.
    let _admission = admission;
    let name = route.spec.name.as_str();
    metrics
        .fanout_inputs
        .with_label_values(&[name])
        .observe(inputs.len() as f64);
    let batch = route.sub_batch;
    let extra = Arc::new(extra);
    let replies: Vec<(String, Arc<str>, EmbedReply)> =
        fan_out(inputs.clone(), batch, route.spec.max_concurrency, |chunk| {
            let (rt, route, metrics, extra) = (&rt, &route, &metrics, &extra);
            async move {
                metrics.fanout_sub_batches.with_label_values(&[name]).inc();
                let request = AttemptRequest::Embed {
                    model: Arc::from(""),
                    inputs: Arc::new(chunk),
                    extra: Arc::clone(extra),
                };
                let served = execute(&rt.table, route, metrics, request).await?;
                match served.value {
                    AttemptReply::Embed(reply) => {
                        Ok::<_, GatewayError>((served.provider, served.model, reply))
                    }
                    _ => Err(GatewayError::new(
                        ErrorKind::Internal,
                        "Provider answered embeddings with chat.",
                    )),
                }
            }
        })
        .await?;
    let mut vectors = Vec::with_capacity(inputs.len());
    let (mut prompt_tokens, mut total_tokens) = (0, 0);
    // Usually one (provider, model) serves every sub-batch.
    let mut spent: Vec<Spent> = Vec::with_capacity(1);
    for (provider, model, reply) in replies {
        prompt_tokens += reply.prompt_tokens;
        total_tokens += reply.total_tokens;
        let tokens = reply.prompt_tokens;
        match spent
            .iter_mut()
            .find(|s| *s.provider == *provider && s.model == model)
        {
            Some(part) => part.tokens += tokens,
            None => spent.push(Spent {
                provider: Arc::from(provider),
                model,
                tokens,
            }),
        }
        vectors.extend(reply.vectors.into_iter().map(Arc::<[f32]>::from));
    }
    if vectors.len() != inputs.len() {
        return Err(GatewayError::new(
            ErrorKind::BadGateway,
            "Upstream returned the wrong number of embeddings.",
        ));
    }
    if let Some(params) = cache_params {
        let entries = inputs
            .iter()
            .zip(&vectors)
            .map(|(input, v)| {
                let key = CacheKey::embedding(name, &params, &input.to_string());
                (key, Payload::Embedding(Arc::clone(v)))
            })
            .collect();
        rt.cache.insert_many(entries, route.spec.cache.ttl).await;
    }
    Ok(EmbedDone {
        vectors: Arc::new(vectors),
        prompt_tokens,
        total_tokens,
        spent: spent.into(),
    })
}
