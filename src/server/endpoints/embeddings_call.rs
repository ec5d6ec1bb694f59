//! Embeddings calls upstream, and requests whose answer is the upstream's.
//!
//! Place in the pipeline: behind `endpoints::embeddings`. [`EmbedCall`] is
//! one sub-batch as routing sees it. When nothing needs the vectors
//! ([`passable`]: the route's cache is off for the request, no input
//! repeats), [`pass`] sends the request in sub-batches (as the per-item
//! flow cuts them, in parallel, each with its own retries and failover)
//! asking for the client's own `encoding_format`. One call's answer goes
//! back as the upstream wrote it, only `model` rewritten (and `usage` read
//! for accounting); several calls' items are joined as they came, `index`
//! shifted on the bytes, `usage` summed: no vector is parsed or printed
//! again. If any call's answer is not the plain one (another encoding,
//! items out of order, no `usage`, a kind that translates), every vector is
//! decoded and written as the per-item flow writes them; a bad one fails
//! as it does there. Must not change a byte of a passed-through item.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use foldhash::fast::RandomState;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use crate::api::embeddings::{
    EmbedAnswer, EmbeddingsRequest, EncodingFormat, ReplyError, join_raw, response_body,
};
use crate::api::estimate::estimate_tokens;
use crate::api::usage::Usage;
use crate::api::{ErrorKind, GatewayError};
use crate::fanout::fan_out;
use crate::providers::pieces::Pieces;
use crate::providers::{Need, Provider, UpstreamError};
use crate::routing::{Call, ReplyFacts, RouteHandle, SubBatch, execute, fanout_width};
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, json_response};

/// Whether `request`'s answer can be the upstream's: no cache for it, no
/// input twice (the per-item flow sends a repeated input once).
pub(crate) fn passable(request: &EmbeddingsRequest, use_cache: bool) -> bool {
    let inputs = &request.inputs;
    if use_cache {
        return false;
    }
    // foldhash: a third of SipHash's cost over 2,048 inputs, seeded per
    // process.
    let mut seen = HashSet::with_capacity_and_hasher(inputs.len(), RandomState::default());
    inputs.iter().all(|v| match v {
        Value::String(s) => seen.insert(std::borrow::Cow::Borrowed(s.as_str())),
        // Token arrays by their JSON text, as the per-item flow keys them
        // (a text that reads the same only costs the pass-through).
        other => seen.insert(std::borrow::Cow::Owned(other.to_string())),
    })
}

/// `request` in sub-batches asking for the client's encoding, the answer
/// passed through (see the module doc).
pub(crate) async fn pass(
    rc: &mut RequestCtx,
    route: &Arc<RouteHandle>,
    request: EmbeddingsRequest,
) -> Result<Response<Body>, GatewayError> {
    let (rt, metrics) = (Arc::clone(&rc.rt), Arc::clone(&rc.state.metrics));
    let name = route.spec.name.as_str();
    let expected = request.inputs.len();
    let format = request.encoding_format;
    metrics
        .fanout_inputs
        .with_label_values(&[name])
        .observe(expected as f64);
    let extra = Arc::new(request.extra);
    let width = || fanout_width(&rt.table, route);
    let parts = fan_out(request.inputs, route.sub_batch, width, |index, inputs| {
        let (rt, metrics, extra) = (&rt, &metrics, &extra);
        async move {
            metrics.fanout_sub_batches.with_label_values(&[name]).inc();
            let call = Arc::new(EmbedCall {
                inputs,
                extra: Arc::clone(extra),
                index,
                format: Some(format),
            });
            execute(&rt.table, route, metrics, call).await
        }
    })
    .await?;
    if parts.iter().map(|p| p.value.count()).sum::<usize>() != expected {
        return Err(wrong_count());
    }
    for part in &parts {
        let spent = Usage {
            prompt: part.value.prompt_tokens(),
            ..Usage::default()
        };
        rc.charge(&part.provider, &part.model, spent);
    }
    let mut raw = Vec::with_capacity(parts.len());
    let (mut vectors, mut anew) = (Vec::new(), false);
    let (mut prompt, mut total) = (0, 0);
    for part in parts {
        prompt += part.value.prompt_tokens();
        total += part.value.total_tokens();
        match part.value {
            EmbedAnswer::Raw(r) if !anew => raw.push(r),
            answer => {
                // One part is not passed through: all are written anew.
                anew = true;
                for r in raw.drain(..) {
                    vectors.extend(EmbedAnswer::Raw(r).into_vectors().map_err(bad)?.vectors);
                }
                vectors.extend(answer.into_vectors().map_err(bad)?.vectors);
            }
        }
    }
    Ok(match (raw.len(), raw.pop()) {
        (1, Some(one)) => {
            let mut r = json_response(StatusCode::OK, Bytes::new());
            *r.body_mut() = Pieces::parts(one.into_parts(name).into()).boxed_unsync();
            r
        }
        (_, Some(last)) => {
            raw.push(last);
            json_response(StatusCode::OK, join_raw(&raw, name))
        }
        (_, None) => {
            let body = response_body(name, &vectors, format, prompt, total);
            json_response(StatusCode::OK, body)
        }
    })
}

fn bad(e: ReplyError) -> GatewayError {
    GatewayError::new(ErrorKind::BadGateway, e.to_string())
}

pub(crate) fn wrong_count() -> GatewayError {
    GatewayError::new(
        ErrorKind::BadGateway,
        "Upstream returned the wrong number of embeddings.",
    )
}

/// One sub-batch as routing sees it.
#[derive(Debug)]
pub(crate) struct EmbedCall {
    pub inputs: Vec<Value>,
    pub extra: Arc<Map<String, Value>>,
    /// Which sub-batch of the request this is (0-based).
    pub index: usize,
    /// The client's encoding, when its answer may be passed through.
    pub format: Option<EncodingFormat>,
}

impl Call for EmbedCall {
    type Reply = EmbedAnswer;

    fn describe(reply: &EmbedAnswer) -> ReplyFacts {
        ReplyFacts {
            model: None,
            usage: Some(Usage {
                prompt: reply.prompt_tokens(),
                ..Usage::default()
            }),
        }
    }

    fn need(&self) -> Need {
        Need::Embeddings
    }

    fn sub_batch(&self) -> Option<SubBatch> {
        Some(SubBatch {
            index: self.index,
            size: self.inputs.len(),
        })
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn estimated_tokens(&self) -> u64 {
        self.inputs
            .iter()
            .map(|v| match v {
                Value::String(s) => estimate_tokens(s.len(), 0),
                Value::Array(tokens) => tokens.len() as u64,
                _ => 1,
            })
            .sum()
    }

    async fn attempt(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> Result<EmbedAnswer, UpstreamError> {
        match self.format {
            Some(format) => {
                provider
                    .embed_as(&model, &self.inputs, &self.extra, format)
                    .await
            }
            None => provider
                .embed(&model, &self.inputs, &self.extra)
                .await
                .map(EmbedAnswer::Vectors),
        }
    }
}
