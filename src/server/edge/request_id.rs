//! The request id: a client's sane `x-request-id` is kept, anything else
//! replaced by a fresh one, and the id is copied to the answer.
//!
//! Place in the pipeline: the outermost edge step, before the request's
//! span (which is named by the id) and its context (which logs it). An
//! id is kept when every `x-request-id` the client sent is a sane token
//! (1..=128 visible ASCII characters); otherwise they are all dropped and
//! the request gets 32 fresh hex digits. The answer gets the id unless
//! it already carries one of its own. tower-http's `SetRequestId` and
//! `PropagateRequestId` did this in two steps, each also storing the id
//! in the request's and the answer's extensions, which nothing here reads.
//! Must not look at anything else in the request or the answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::{Entry, HeaderName};
use http::{HeaderValue, Request, Response};
use tower::Service;

/// The header, named once.
pub(super) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `inner` with the request id set on the request and copied to its answer.
pub(super) fn request_id<S>(inner: S) -> RequestId<S> {
    RequestId { inner }
}

/// The step (see [`request_id`]). A plain service and future rather than
/// an `async` block: a block would hold the request twice (as its
/// argument and inside the inner call), and this future is the outermost
/// of the edge's, stored in each connection's slot.
#[derive(Clone, Debug)]
pub(super) struct RequestId<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for RequestId<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = WithId<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = settle_request_id(req.headers_mut());
        WithId {
            inner: self.inner.call(req),
            id,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, given the request's id.
    pub(super) struct WithId<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, RB, E> Future for WithId<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().entry(&X_REQUEST_ID).or_insert(id);
        }
        Poll::Ready(Ok(response))
    }
}

/// The request's id after sanitising: the client's own (every value sane),
/// else a fresh one put in its place. `None` only if none could be made.
/// The header is looked up once (`entry`).
fn settle_request_id(headers: &mut http::HeaderMap) -> Option<HeaderValue> {
    match headers.entry(&X_REQUEST_ID) {
        Entry::Occupied(e) if e.iter().all(sane_request_id) => Some(e.get().clone()),
        Entry::Occupied(mut e) => match fresh_request_id() {
            Some(fresh) => {
                // Replaces every value the client sent.
                e.insert(fresh.clone());
                Some(fresh)
            }
            None => {
                drop(e.remove_entry_mult());
                None
            }
        },
        Entry::Vacant(e) => {
            let fresh = fresh_request_id()?;
            e.insert(fresh.clone());
            Some(fresh)
        }
    }
}

/// A sane token: 1..=128 visible ASCII characters.
fn sane_request_id(given: &HeaderValue) -> bool {
    let v = given.as_bytes();
    !v.is_empty() && v.len() <= 128 && v.iter().all(u8::is_ascii_graphic)
}

/// A new request id: 32 hex digits.
fn fresh_request_id() -> Option<HeaderValue> {
    hex_id(fastrand::u128(..))
}

/// `n` as 32 lower-case hex digits (`format!("{n:032x}")`, without the
/// formatting machinery and the `String`).
fn hex_id(n: u128) -> Option<HeaderValue> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits: [u8; 32] = std::array::from_fn(|i| HEX[(n >> (124 - 4 * i)) as usize & 15]);
    HeaderValue::from_bytes(&digits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(values: &[&[u8]]) -> (Option<HeaderValue>, Vec<HeaderValue>) {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(&X_REQUEST_ID, HeaderValue::from_bytes(v).unwrap());
        }
        let id = settle_request_id(&mut h);
        (id, h.get_all(&X_REQUEST_ID).iter().cloned().collect())
    }

    fn is_fresh(v: &HeaderValue) -> bool {
        v.len() == 32 && v.as_bytes().iter().all(|b| b"0123456789abcdef".contains(b))
    }

    #[test]
    fn a_sane_id_is_kept_and_anything_else_replaced_by_a_fresh_one() {
        let (id, sent) = settled(&[b"req-42"]);
        assert_eq!(id.unwrap(), "req-42");
        assert_eq!(sent, ["req-42"]);

        let (id, sent) = settled(&[b"a", b"b"]);
        assert_eq!(id.unwrap(), "a");
        assert_eq!(sent, ["a", "b"]);

        let long = [b'x'; 129];
        let cases: [&[&[u8]]; 5] = [
            &[b"a", b"has space"],
            &[b"tab\there"],
            &[&long],
            &[b""],
            &[],
        ];
        for insane in cases {
            let (id, sent) = settled(insane);
            let id = id.unwrap();
            assert!(is_fresh(&id), "{insane:?} -> {id:?}");
            assert_eq!(sent, [id], "{insane:?}");
        }
        assert_ne!(settled(&[]).0, settled(&[]).0, "two fresh ids alike");
    }

    #[test]
    fn hex_id_is_format_032x() {
        for n in [
            0u128,
            1,
            0xdead_beef,
            u128::MAX,
            1 << 127,
            fastrand::u128(..),
        ] {
            assert_eq!(hex_id(n).unwrap(), format!("{n:032x}").as_str());
        }
    }
}
