//! Reading upstream bodies under the provider's timeouts and size cap.
//!
//! Place in the pipeline: used by HTTP providers for one attempt, after the
//! response headers arrived. A body must keep moving (`timeouts.idle`
//! between chunks), a non-streaming body must be complete within
//! `timeouts.body` of its headers (a one-byte trickle never trips `idle`),
//! everything within `timeouts.total`, and no answer may exceed
//! `max_response_bytes`. Every body is read through [`Limits::body`], which
//! scrubs the provider's secrets out of each chunk as it arrives (see
//! `scrub`). Must not interpret what it reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::{Instant, Sleep, sleep_until};

use super::UpstreamError;
use super::client::{BodyError, Response, classify_body};
use super::scrub::{ScrubStream, Scrubber};
use crate::config::Timeouts;
use crate::on_wake::OnWake;

/// The byte stream of one upstream response, with its limits.
#[derive(Debug)]
pub struct Limits {
    pub idle: std::time::Duration,
    pub total_deadline: Instant,
    pub max_bytes: u64,
    /// The provider's secrets, scrubbed out of every body read.
    pub scrubber: Arc<Scrubber>,
}

pub type ByteStream = BoxStream<'static, Result<Bytes, BodyError>>;

/// The one timer of a stream read with [`Limits::next_on`], looked at
/// only when it fires (a deadline moved later keeps its waker).
pub struct StreamTimer(Pin<Box<OnWake<Sleep>>>);

impl std::fmt::Debug for StreamTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTimer").finish_non_exhaustive()
    }
}

impl Limits {
    pub fn new(
        timeouts: &Timeouts,
        started: Instant,
        max_bytes: u64,
        scrubber: Arc<Scrubber>,
    ) -> Self {
        Limits {
            idle: timeouts.idle,
            total_deadline: started + timeouts.total,
            max_bytes,
            scrubber,
        }
    }

    /// The body of `response`, scrubbed of the provider's secrets as it
    /// arrives, a secret split over two chunks included: in a text body the
    /// bytes after a chunk's last line break wait for the next chunk
    /// (nobody could use them before; see `ScrubStream`).
    pub fn body(&self, response: Response) -> ByteStream {
        let text = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|t| t.starts_with("text/") || names_json(t));
        let raw = response.bytes_stream();
        if self.scrubber.is_empty() {
            return raw.boxed();
        }
        let scrub = ScrubStream::new(Arc::clone(&self.scrubber), text);
        // One item per chunk received, empty when all of it waits: the
        // reader's idle timeout sees the upstream moving.
        futures_util::stream::unfold(Some((raw, scrub)), |state| async move {
            let (mut raw, mut scrub) = state?;
            match raw.next().await {
                Some(Ok(chunk)) => Some((Ok(scrub.chunk(chunk)), Some((raw, scrub)))),
                Some(Err(e)) => Some((Err(e), None)),
                None => {
                    let rest = scrub.finish();
                    (!rest.is_empty()).then_some((Ok(rest), None))
                }
            }
        })
        .boxed()
    }

    /// The next chunk, or which deadline passed. `None` at the end.
    pub async fn next(
        &self,
        body: &mut ByteStream,
        body_deadline: Option<Instant>,
    ) -> Option<Result<Bytes, UpstreamError>> {
        // A chunk that is already there (a small answer, read with its
        // head) needs no timer: one is set up at the first wait only.
        let mut timer = std::pin::pin!(None::<Sleep>);
        let mut which = "idle";
        std::future::poll_fn(|cx| {
            if let Poll::Ready(item) = body.poll_next_unpin(cx) {
                return Poll::Ready(chunk(item));
            }
            if timer.is_none() {
                let (deadline, due) = self.chunk_deadline(body_deadline);
                which = due;
                timer.as_mut().set(Some(sleep_until(deadline)));
            }
            match timer.as_mut().as_pin_mut().map(|t| t.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Some(Err(UpstreamError::Timeout(which)))),
                _ => Poll::Pending,
            }
        })
        .await
    }

    /// When the next chunk must have arrived (the idle timeout from now,
    /// within the total deadline and `body_deadline`), and which deadline
    /// that is.
    fn chunk_deadline(&self, body_deadline: Option<Instant>) -> (Instant, &'static str) {
        let idle_at = Instant::now() + self.idle;
        let mut due = if idle_at <= self.total_deadline {
            (idle_at, "idle")
        } else {
            (self.total_deadline, "total")
        };
        if let Some(b) = body_deadline
            && b < due.0
        {
            due = (b, "body");
        }
        due
    }

    /// One timer for a whole stream's idle and total deadlines (see
    /// [`Limits::next_on`]).
    pub fn stream_timer(&self) -> StreamTimer {
        StreamTimer(Box::pin(OnWake::new(sleep_until(self.total_deadline))))
    }

    /// The next chunk of a stream, or which deadline passed; `None` at the
    /// end. As [`Limits::next`], but re-arming the stream's one timer
    /// (moving a deadline later only updates the timer's entry) instead of
    /// setting up a new one for every chunk.
    pub async fn next_on(
        &self,
        timer: &mut StreamTimer,
        body: &mut ByteStream,
    ) -> Option<Result<Bytes, UpstreamError>> {
        self.next_noting(timer, body, &mut false).await
    }

    /// As [`Limits::next_on`], setting `waited` when the chunk was not
    /// there at the first look (the stream is slower than its reader).
    pub async fn next_noting(
        &self,
        timer: &mut StreamTimer,
        body: &mut ByteStream,
        waited: &mut bool,
    ) -> Option<Result<Bytes, UpstreamError>> {
        let (deadline, which) = self.chunk_deadline(None);
        let mut sleep = timer.0.as_mut();
        sleep.as_mut().inner().reset(deadline);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(item) = body.poll_next_unpin(cx) {
                return Poll::Ready(chunk(item));
            }
            *waited = true;
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(UpstreamError::Timeout(which)))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Reads a whole non-streaming body into one buffer of its own.
    pub async fn read_all(
        &self,
        body: ByteStream,
        declared: Option<u64>,
        body_time: std::time::Duration,
    ) -> Result<Bytes, UpstreamError> {
        // A body that came as one chunk (a small answer, read whole with
        // its head) is that chunk, not a copy of it.
        let mut first = None::<Bytes>;
        let mut buf = BytesMut::new();
        self.read_pieces(body, declared, body_time, |chunk| {
            if buf.is_empty() {
                let Some(one) = first.take() else {
                    first = Some(chunk);
                    return;
                };
                let size = declared.unwrap_or(0) as usize;
                buf.reserve(size.max(one.len() + chunk.len()));
                buf.extend_from_slice(&one);
            }
            buf.extend_from_slice(&chunk);
        })
        .await?;
        Ok(first.unwrap_or_else(|| buf.freeze()))
    }

    /// As [`Self::read_all`], each chunk handed to `take` as it comes, kept
    /// as it is (a check can walk it while the rest arrives).
    pub async fn read_pieces(
        &self,
        mut body: ByteStream,
        declared: Option<u64>,
        body_time: std::time::Duration,
        mut take: impl FnMut(Bytes),
    ) -> Result<(), UpstreamError> {
        if declared.is_some_and(|n| n > self.max_bytes) {
            return Err(UpstreamError::TooLarge(self.max_bytes));
        }
        let body_deadline = Instant::now() + body_time;
        let mut len = 0u64;
        while let Some(chunk) = self.next(&mut body, Some(body_deadline)).await {
            let chunk = chunk?;
            len += chunk.len() as u64;
            if len > self.max_bytes {
                return Err(UpstreamError::TooLarge(self.max_bytes));
            }
            take(chunk);
        }
        Ok(())
    }
}

/// A body stream's item with its error classified (without its URL).
fn chunk(item: Option<Result<Bytes, BodyError>>) -> Option<Result<Bytes, UpstreamError>> {
    item.map(|r| r.map_err(classify_body))
}

/// Whether a content type names JSON anywhere (`application/json`,
/// `application/problem+json`, ...). A byte loop: `str::contains` sets up a
/// substring searcher per call, which cost more than the look itself on
/// every answer (0.7 % of a 1 KB chat request's instructions).
fn names_json(content_type: &str) -> bool {
    content_type.as_bytes().windows(4).any(|w| w == b"json")
}
