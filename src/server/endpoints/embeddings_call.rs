//! Embeddings calls upstream, and requests whose answer is the upstream's.
//!
//! Place in the pipeline: behind `endpoints::embeddings`. [`EmbedCall`] is
//! one sub-batch as routing sees it. When nothing needs the vectors
//! ([`passable`]: the route's cache is off for the request, no input
//! repeats), [`pass`] sends the request in sub-batches (as the per-item
//! flow cuts them, in parallel, each with its own retries and failover)
//! asking for the client's own `encoding_format`; a client body the walk
//! took whose inputs fit one call goes as one call ([`send_body`]), and an
//! OpenAI-wire target gets the client's own bytes with only `model` set
//! (another kind, reached by failover, gets the inputs parsed from them).
//! One call's answer goes back as the upstream wrote it, only `model`
//! rewritten (and `usage` read for accounting); several calls' items are
//! joined as they came, `index` shifted on the bytes, `usage` summed: no
//! vector is parsed or printed again. If any call's answer is not the
//! plain one (another encoding, items out of order, no `usage`, a kind
//! that translates), every vector is decoded and written as the per-item
//! flow writes them; a bad one fails as it does there. Must not change a
//! byte of a passed-through item.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use foldhash::fast::RandomState;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use crate::api::embeddings::{
    ClientBody, EmbedAnswer, EmbeddingsRequest, EncodingFormat, ReplyError, join_raw, response_body,
};
use crate::api::estimate::estimate_tokens;
use crate::api::usage::Usage;
use crate::api::{ErrorKind, GatewayError};
use crate::fanout::fan_out;
use crate::providers::pieces::Pieces;
use crate::providers::{Need, Provider, UpstreamError};
use crate::routing::{Call, ReplyFacts, RouteHandle, Served, SubBatch, execute, fanout_width};
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
                batch: Batch::Items {
                    inputs,
                    extra: Arc::clone(extra),
                },
                index,
                format: Some(format),
            });
            execute(&rt.table, route, metrics, call).await
        }
    })
    .await?;
    answer(rc, name, parts, expected, format)
}

/// Whether `body` goes upstream as the client wrote it: its answer can be
/// the upstream's ([`passable`]) and one call takes every input.
pub(crate) fn sendable(body: &ClientBody, use_cache: bool, route: &RouteHandle) -> bool {
    if use_cache || body.len() > route.sub_batch {
        return false;
    }
    let mut seen = HashSet::with_capacity_and_hasher(body.len(), RandomState::default());
    body.inputs().all(|text| seen.insert(text))
}

/// `body` in one call, the client's own bytes with only `model` set where
/// the target speaks the OpenAI wire (else parsed for it), the answer
/// passed through as [`pass`] passes it.
pub(crate) async fn send_body(
    rc: &mut RequestCtx,
    route: &Arc<RouteHandle>,
    body: ClientBody,
) -> Result<Response<Body>, GatewayError> {
    let (rt, metrics) = (Arc::clone(&rc.rt), Arc::clone(&rc.state.metrics));
    let name = route.spec.name.as_str();
    let (expected, format) = (body.len(), body.format);
    metrics
        .fanout_inputs
        .with_label_values(&[name])
        .observe(expected as f64);
    metrics.fanout_sub_batches.with_label_values(&[name]).inc();
    let call = Arc::new(EmbedCall {
        batch: Batch::Body {
            body,
            parsed: OnceLock::new(),
        },
        index: 0,
        format: Some(format),
    });
    let part = execute(&rt.table, route, &metrics, call).await?;
    answer(rc, name, vec![part], expected, format)
}

/// The client's answer from the calls' answers (in input order): passed
/// through when every one is the plain answer, else written anew.
fn answer(
    rc: &mut RequestCtx,
    name: &str,
    parts: Vec<Served<EmbedAnswer>>,
    expected: usize,
    format: EncodingFormat,
) -> Result<Response<Body>, GatewayError> {
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
            *r.body_mut() = Pieces::parts(one.into_parts(name)).boxed_unsync();
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
    pub batch: Batch,
    /// Which sub-batch of the request this is (0-based).
    pub index: usize,
    /// The client's encoding, when its answer may be passed through.
    pub format: Option<EncodingFormat>,
}

/// The inputs of one call.
#[derive(Debug)]
pub(crate) enum Batch {
    /// As values, with the request's other fields.
    Items {
        inputs: Vec<Value>,
        extra: Arc<Map<String, Value>>,
    },
    /// The client's whole body, parsed only for a target that needs values
    /// (once: attempts share it).
    Body {
        body: ClientBody,
        parsed: OnceLock<Option<EmbeddingsRequest>>,
    },
}

impl EmbedCall {
    fn len(&self) -> usize {
        match &self.batch {
            Batch::Items { inputs, .. } => inputs.len(),
            Batch::Body { body, .. } => body.len(),
        }
    }

    /// The inputs as values and the other fields; `None` if a client's
    /// body the walk took does not parse (it cannot: the walk accepts
    /// nothing the parse refuses).
    fn values(&self) -> Option<(&[Value], &Map<String, Value>)> {
        match &self.batch {
            Batch::Items { inputs, extra } => Some((inputs, extra)),
            Batch::Body { body, parsed } => parsed
                .get_or_init(|| body.parse().ok())
                .as_ref()
                .map(|r| (&r.inputs[..], &r.extra)),
        }
    }
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
            size: self.len(),
        })
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn estimated_tokens(&self) -> u64 {
        let inputs = match &self.batch {
            Batch::Items { inputs, .. } => inputs,
            // A string's text, less its quotes (escapes counted as written).
            Batch::Body { body, .. } => {
                return body.inputs().map(|t| estimate_tokens(t.len() - 2, 0)).sum();
            }
        };
        inputs
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
        if let (Batch::Body { body, .. }, Some(_)) = (&self.batch, self.format)
            && provider.sends_embeddings_body()
        {
            return provider.embed_body(&model, body).await;
        }
        let Some((inputs, extra)) = self.values() else {
            return Err(UpstreamError::Protocol(
                "the request's body could not be read again".into(),
            ));
        };
        match self.format {
            Some(format) => provider.embed_as(&model, inputs, extra, format).await,
            None => provider
                .embed(&model, inputs, extra)
                .await
                .map(EmbedAnswer::Vectors),
        }
    }
}
