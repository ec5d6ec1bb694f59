//! One embeddings call upstream, and the request answered by one call
//! whose answer is passed through.
//!
//! Place in the pipeline: behind `endpoints::embeddings`. [`EmbedCall`] is
//! one sub-batch as routing sees it (the per-item flow sends many). When
//! nothing needs the vectors ([`whole`]: the route's cache is off for the
//! request, the inputs fit one call, none repeats), [`pass`] sends the
//! request as one call asking for the client's own `encoding_format` and
//! answers with the upstream's bytes, only `model` rewritten (and `usage`
//! read for accounting): no vector is parsed or printed again. An answer
//! that is not the plain one (another encoding, items out of order, no
//! `usage`, a kind that translates) is decoded and written as the per-item
//! flow writes it; a bad one fails as it does there. Must not change a
//! byte of a passed-through answer but its `model`.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde_json::{Map, Value};

use crate::api::embeddings::{EmbedAnswer, EmbeddingsRequest, EncodingFormat, response_body};
use crate::api::estimate::estimate_tokens;
use crate::api::usage::Usage;
use crate::api::{ErrorKind, GatewayError};
use crate::providers::{Need, Provider, UpstreamError};
use crate::routing::{Call, ReplyFacts, RouteHandle, SubBatch, execute};
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, json_response};

/// Whether `request` can be one call whose answer is passed through: no
/// cache for it, its inputs within one sub-batch, no input twice (the
/// per-item flow sends a repeated input once).
pub(crate) fn whole(request: &EmbeddingsRequest, route: &RouteHandle, use_cache: bool) -> bool {
    let inputs = &request.inputs;
    if use_cache || inputs.len() > route.sub_batch.max(1) {
        return false;
    }
    let mut seen = HashSet::with_capacity(inputs.len());
    inputs.iter().all(|v| match v {
        Value::String(s) => seen.insert(std::borrow::Cow::Borrowed(s.as_str())),
        // Token arrays by their JSON text, as the per-item flow keys them
        // (a text that reads the same only costs the pass-through).
        other => seen.insert(std::borrow::Cow::Owned(other.to_string())),
    })
}

/// `request` as one call, its answer passed through (see the module doc).
pub(crate) async fn pass(
    rc: &mut RequestCtx,
    route: &Arc<RouteHandle>,
    request: EmbeddingsRequest,
) -> Result<Response<Body>, GatewayError> {
    let metrics = Arc::clone(&rc.state.metrics);
    let name = route.spec.name.as_str();
    let expected = request.inputs.len();
    let format = request.encoding_format;
    metrics
        .fanout_inputs
        .with_label_values(&[name])
        .observe(expected as f64);
    metrics.fanout_sub_batches.with_label_values(&[name]).inc();
    let call = Arc::new(EmbedCall {
        inputs: request.inputs,
        extra: Arc::new(request.extra),
        index: 0,
        format: Some(format),
    });
    let served = execute(&rc.rt.table, route, &metrics, call).await?;
    if served.value.count() != expected {
        return Err(wrong_count());
    }
    let spent = Usage {
        prompt: served.value.prompt_tokens(),
        ..Usage::default()
    };
    rc.charge(&served.provider, &served.model, spent);
    Ok(match served.value {
        EmbedAnswer::Raw(raw) => {
            let mut r = json_response(StatusCode::OK, Bytes::new());
            *r.body_mut() = Pieces(raw.into_parts(name).into()).boxed_unsync();
            r
        }
        EmbedAnswer::Vectors(r) => {
            let body = response_body(name, &r.vectors, format, r.prompt_tokens, r.total_tokens);
            json_response(StatusCode::OK, body)
        }
    })
}

/// A body sent in pieces one after the other, its length known (sent with
/// a `Content-Length`, the pieces not copied together).
struct Pieces(VecDeque<Bytes>);

impl HttpBody for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
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
