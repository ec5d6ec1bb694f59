//! A panic below the edge's accounting becomes an answer, and the
//! connection and the gateway serve on.
//!
//! Place in the pipeline: the edge step between accounting and CORS, where
//! tower-http's `CatchPanicLayer` was. That layer re-boxed every answer's
//! body (an error mapping and a pointer more for each poll of a body, for
//! each chunk of a stream) to give its own answer the same type; here the
//! answer's body is already one of two ([`Answer`]: passed on, or boxed),
//! so the panic's answer is boxed into the second and the body passes
//! through as it is. A panic while making the request's work or while
//! polling it is caught; a body that panics is not (as with tower-http's).
//! Must not catch anything but a panic.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};

use super::answer::Answer;
use crate::server::http::Body;

/// The panic's answer, from its payload.
pub(super) type OnPanic = fn(Box<dyn Any + Send + 'static>) -> Response<Body>;

/// `inner`, its panics answered by `on_panic`.
pub(super) fn catch_panic<S>(on_panic: OnPanic, inner: S) -> CatchPanic<S> {
    CatchPanic { inner, on_panic }
}

/// The step (see [`catch_panic`]).
#[derive(Clone, Debug)]
pub(super) struct CatchPanic<S> {
    inner: S,
    on_panic: OnPanic,
}

impl<S, B, RB> tower::Service<Request<B>> for CatchPanic<S>
where
    S: tower::Service<Request<B>, Response = Response<Answer<RB>>>,
{
    type Response = Response<Answer<RB>>;
    type Error = S::Error;
    type Future = Caught<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let on_panic = self.on_panic;
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(inner) => Caught::Working { inner, on_panic },
            Err(panic) => Caught::Panicked {
                answer: Some(on_panic(panic)),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner work, or the answer to its panic.
    #[project = CaughtProj]
    pub(super) enum Caught<F> {
        Working { #[pin] inner: F, on_panic: OnPanic },
        Panicked { answer: Option<Response<Body>> },
    }
}

impl<F, RB, E> Future for Caught<F>
where
    F: Future<Output = Result<Response<Answer<RB>>, E>>,
{
    type Output = Result<Response<Answer<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = match self.project() {
            CaughtProj::Working { inner, on_panic } => {
                match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                    Ok(polled) => return polled,
                    Err(panic) => on_panic(panic),
                }
            }
            CaughtProj::Panicked { answer } => answer.take().expect("polled after it answered"),
        };
        Poll::Ready(Ok(answer.map(Answer::boxed)))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::StatusCode;
    use http_body_util::{BodyExt, Full};
    use tower::{Service, ServiceExt};

    use super::*;

    fn on_panic(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let message = panic.downcast_ref::<&str>().copied().unwrap_or("?");
        let mut r = Response::new(Full::from(message.to_owned()).boxed_unsync());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    }

    type Plain = Full<bytes::Bytes>;

    /// A service that panics while making its work (`"call"`), while it is
    /// polled (`"poll"`), or answers `ok`.
    #[derive(Clone)]
    struct Flaky;

    impl tower::Service<Request<&'static str>> for Flaky {
        type Response = Response<Answer<Plain>>;
        type Error = Infallible;
        type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<&'static str>) -> Self::Future {
            let how = *req.body();
            assert!(how != "call", "call");
            Box::pin(async move {
                assert!(how != "poll", "poll");
                Ok(Response::new(Answer::boxed(Full::from("ok"))))
            })
        }
    }

    async fn answer(how: &'static str) -> (StatusCode, String) {
        let mut svc = catch_panic(on_panic, Flaky);
        let r = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(how))
            .await
            .unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_panic_making_or_doing_the_work_is_answered_and_an_answer_passes() {
        assert_eq!(answer("ok").await, (StatusCode::OK, "ok".to_owned()));
        let e500 = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(answer("call").await, (e500, "call".to_owned()));
        assert_eq!(answer("poll").await, (e500, "poll".to_owned()));
    }
}
