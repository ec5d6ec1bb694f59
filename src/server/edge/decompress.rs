//! Request decompression: a body sent with `Content-Encoding` (gzip, br,
//! zstd, deflate) is decoded before an endpoint reads it, so body limits
//! count decoded bytes; any other encoding is refused with a 415 in the
//! OpenAI format, naming the encodings accepted.
//!
//! Place in the pipeline: the edge step after compression, before the
//! health bypass and dispatch. A request without `Content-Encoding`
//! (nearly all of them) passes the decoder by: its body is boxed once as
//! the [`ReqBody`] that endpoints read, and its answer's body is passed
//! on as it is ([`Answer::plain`]). tower-http's `RequestDecompression`
//! served every request and re-boxed every answer's body (an allocation
//! per request; a dynamic call and an error mapping per chunk of a
//! stream); it now serves only the requests that name an encoding, their
//! work boxed. Must not read or buffer a body: a decoded body flows as
//! the endpoint reads it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;
use tower::{Layer, Service, ServiceExt};
use tower_http::BoxError;
use tower_http::decompression::{DecompressionBody, RequestDecompressionLayer};

use super::answer::Answer;
use crate::api::{ErrorKind, GatewayError};
use crate::server::http::{Body, ReqBody, error_response};

/// The decoder's answer body (the endpoint's, boxed by tower-http).
type Decoded = tower_http::body::UnsyncBoxBody<Bytes, BoxError>;

/// `inner`, given request bodies decoded (see the module).
pub(super) fn decompress<S>(inner: S) -> Decompress<S> {
    Decompress { inner }
}

/// The step (see [`decompress`]).
#[derive(Clone, Debug)]
pub(super) struct Decompress<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Decompress<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError> + Send + Sync,
{
    type Response = Response<Answer<Body>>;
    type Error = Infallible;
    type Future = Either<Plain<S::Future>, BoxFuture<'static, Result<Self::Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !req.headers().contains_key(CONTENT_ENCODING) {
            let req = req.map(|body| body.map_err(Into::into).boxed());
            return Either::Left(Plain {
                inner: self.inner.call(req),
            });
        }
        // The inner service was made ready for this call: take it, leave
        // a fresh clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let decoder = RequestDecompressionLayer::new()
            .layer(tower::util::MapRequest::new(inner, decoded::<B>));
        Either::Right(Box::pin(async move {
            Ok(match decoder.oneshot(req).await {
                Ok(response) => unsupported_encoding(response),
                // The inner service cannot fail; answered all the same.
                Err(e) => {
                    tracing::error!(error = %e, "request decompression failed");
                    let e =
                        GatewayError::internal("The gateway failed to decode the request body.");
                    error_response(&e).map(Answer::plain)
                }
            })
        }))
    }
}

pin_project_lite::pin_project! {
    /// The work of a request that passed the decoder by; its answer's
    /// body goes on as it is.
    pub(super) struct Plain<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Future for Plain<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Answer<Body>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(response.map(Answer::plain)))
    }
}

/// A decoded request, its body boxed as endpoints read it.
fn decoded<B>(req: Request<DecompressionBody<B>>) -> Request<ReqBody>
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError> + Send + Sync,
{
    req.map(BodyExt::boxed)
}

/// The decoder's answer: the endpoint's, boxed, or its bare 415 written
/// in the OpenAI format (keeping its `Accept-Encoding`).
fn unsupported_encoding(response: Response<Decoded>) -> Response<Answer<Body>> {
    if response.status() != StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return response.map(Answer::boxed);
    }
    let err = GatewayError::new(
        ErrorKind::UnsupportedMediaType,
        "Unsupported Content-Encoding; send the body uncompressed or as gzip, br, zstd or \
         deflate.",
    )
    .with_code("unsupported_content_encoding")
    .with_param("content-encoding");
    let mut refused = error_response(&err).map(Answer::plain);
    if let Some(accepted) = response.headers().get(ACCEPT_ENCODING) {
        refused
            .headers_mut()
            .insert(ACCEPT_ENCODING, accepted.clone());
    }
    refused
}
