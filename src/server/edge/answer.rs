//! The answer's body between the edge steps: the endpoint's body as it
//! is, or a boxed one.
//!
//! Place in the pipeline: the body type that request decompression gives
//! to compression, compression to catch-panic, and catch-panic to the
//! steps above. Nearly every answer passes those steps by, so its body is
//! passed on as it is ([`Answer::plain`]); a step that must make a body of
//! its own (an encoder's, a 415, a panic's 500, an empty preflight answer)
//! boxes it into the other arm ([`Answer::boxed`]). The layers above then
//! move one small value and poll through one match, where each step's
//! `map_err(..).boxed_unsync()` cost an allocation per request and a
//! dynamic call and an error mapping per chunk of a stream. Must not
//! change a body's frames.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tower_http::BoxError;

/// A body one of the edge's steps made, behind one pointer.
pub(super) type Boxed = UnsyncBoxBody<Bytes, BoxError>;

pin_project_lite::pin_project! {
    /// The edge's answer body: the inner body as it is, or a boxed one
    /// (`Default`, for CORS's preflight answers: empty, boxed).
    pub(super) struct Answer<RB> {
        #[pin]
        inner: http_body_util::Either<RB, Boxed>,
    }
}

impl<RB> Answer<RB> {
    /// The inner body, passed on as it is.
    pub(super) fn plain(body: RB) -> Self {
        Answer {
            inner: http_body_util::Either::Left(body),
        }
    }

    /// Any other body, boxed.
    pub(super) fn boxed<B>(body: B) -> Self
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Answer {
            inner: http_body_util::Either::Right(body.map_err(Into::into).boxed_unsync()),
        }
    }
}

impl<RB> Default for Answer<RB> {
    fn default() -> Self {
        Answer::boxed(http_body_util::Empty::<Bytes>::new())
    }
}

impl<RB> HttpBody for Answer<RB>
where
    RB: HttpBody<Data = Bytes>,
    RB::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
