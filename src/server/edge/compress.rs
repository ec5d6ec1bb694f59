//! Compression of answers, as the live policy's `server.compression` says
//! (off unless the policy has it: see `config::compression` for why).
//!
//! Place in the pipeline: an edge step (after CORS, before request
//! decompression and the health bypass). [`layer`] turns the settings into
//! a `tower_http` `CompressionLayer` when a policy is built (off the
//! request path); [`live`] applies the one the edge gives it for each
//! request (the live runtime's), so a reload turns compression on or off
//! for requests on connections that are already open. A request passes
//! the encoder by when compression is off or the client accepts no
//! encoding, and its body is not wrapped in an encoder: an encoder body is
//! 5.8 KB (every encoder's state), and only an answer that may be
//! compressed pays for it. A body that passes by is passed on as it is
//! (an [`Answer`], as request decompression, below, gave it); an
//! encoder's is boxed into the answer's other arm. Event streams, gRPC
//! and images are never compressed, nor answers of a known size under
//! `min_bytes`. Must not buffer a body: a compressed answer flows chunk
//! by chunk.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http::header::{ACCEPT_ENCODING, HeaderValue, VARY};
use http::{Request, Response};
use hyper::body::Body as HttpBody;
use tower::{Layer, Service, ServiceExt};
use tower_http::BoxError;
use tower_http::CompressionLevel as Level;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{And, NotForContentType, Predicate, SizeAbove};

use super::answer::Answer;
use crate::config::{CompressionLevel, CompressionSettings};

/// What is worth compressing: not under the floor (when the size is
/// known), not event streams, not gRPC, not already-compressed media.
pub(crate) type Worth =
    And<And<And<SizeAbove, NotForContentType>, NotForContentType>, NotForContentType>;

/// The `tower_http` layer for validated settings.
pub(crate) fn layer(s: &CompressionSettings) -> CompressionLayer<Worth> {
    let worth = SizeAbove::new(s.min_bytes)
        .and(NotForContentType::SSE)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES);
    let mut layer = CompressionLayer::new().quality(match s.level {
        CompressionLevel::Fastest => Level::Fastest,
        CompressionLevel::Default => Level::Default,
        CompressionLevel::Best => Level::Best,
    });
    if !s.gzip {
        layer = layer.no_gzip();
    }
    if !s.br {
        layer = layer.no_br();
    }
    if !s.zstd {
        layer = layer.no_zstd();
    }
    layer.compress_when(worth)
}

/// The compression step: the `CompressionLayer` that `current` gives for a
/// request around `inner`, or `inner` alone when it gives none (no
/// `server.compression`) or the request accepts no encoding.
pub(super) fn live<S, C>(current: C, inner: S) -> Live<S, C> {
    Live { current, inner }
}

/// The step (see [`live`]). A request that passes the encoder by goes
/// straight to `inner` ([`Plain`]); one that may be compressed has its
/// work boxed.
#[derive(Clone)]
pub(super) struct Live<S, C> {
    current: C,
    inner: S,
}

impl<S, C, B, RB> Service<Request<B>> for Live<S, C>
where
    S: Service<Request<B>, Response = Response<Answer<RB>>> + Clone + Send + 'static,
    S::Future: Send,
    C: Fn() -> Option<CompressionLayer<Worth>>,
    B: HttpBody + Send + 'static,
    RB: HttpBody<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError> + Send + Sync + 'static,
{
    type Response = Response<Answer<RB>>;
    type Error = S::Error;
    type Future =
        Either<Plain<S::Future>, BoxFuture<'static, Result<Response<Answer<RB>>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let layer = (self.current)();
        let accepts = req.headers().contains_key(ACCEPT_ENCODING);
        match layer {
            Some(layer) if accepts => {
                // The inner service was made ready for this call: take
                // it, leave a fresh clone.
                let clone = self.inner.clone();
                let encoder = layer.layer(std::mem::replace(&mut self.inner, clone));
                Either::Right(Box::pin(async move {
                    let response = encoder.oneshot(req).await?;
                    Ok(response.map(Answer::boxed))
                }))
            }
            on => Either::Left(Plain {
                inner: self.inner.call(req),
                vary: on.is_some(),
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer that passes the encoder by: its body as it is, and marked
    /// as varying with `accept-encoding` when compression is on.
    pub(super) struct Plain<F> {
        #[pin]
        inner: F,
        vary: bool,
    }
}

impl<F, RB, E> Future for Plain<F>
where
    F: Future<Output = Result<Response<Answer<RB>>, E>>,
{
    type Output = Result<Response<Answer<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        // A cache in between must not hand this plain answer to a client
        // that asks for a compressed one.
        if *this.vary {
            response
                .headers_mut()
                .append(VARY, HeaderValue::from_static("accept-encoding"));
        }
        Poll::Ready(Ok(response))
    }
}
