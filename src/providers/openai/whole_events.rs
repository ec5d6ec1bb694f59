//! An OpenAI-compatible SSE body passed on in whole events.
//!
//! Place in the pipeline: wraps an upstream stream body for the `openai`
//! provider's chat and pass-through streams, before the endpoint's stream
//! handling. Must not change an event's bytes.

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};

use crate::api::sse_cut::SseCuts;
use crate::providers::UpstreamError;
use crate::providers::body::{ByteStream, Limits, StreamTimer};

/// An upstream SSE body re-cut at event boundaries: only whole events are
/// passed on, the stream must end with `[DONE]`, and it is bounded by the
/// idle and total timeouts (one timer for the stream) and by the size of
/// one unfinished event. Chunks that have already arrived when a run is
/// cut are joined to it (up to [`RUN_BYTES`]): a fast upstream's hundreds
/// of small chunks go to the client in a few writes, a slow one's each at
/// once.
pub(super) struct WholeEvents {
    body: ByteStream,
    limits: Limits,
    timer: StreamTimer,
    cuts: SseCuts,
    pending: BytesMut,
    done: bool,
    /// The stream must end with `data: [DONE]`.
    require_done: bool,
    /// What ended the body while a run was being joined, for the next call.
    ended: Option<Option<UpstreamError>>,
    /// Turns the next run may take: [`TURNS`], or none once a run's turns
    /// found no chunk (a slow stream), until a chunk is there at the first
    /// look or without a turn. A slow stream's run is the chunk it waited
    /// for: no look for more.
    turns: u8,
}

/// The most bytes of already-arrived chunks joined into one run.
const RUN_BYTES: usize = 64 * 1024;

/// Scheduler turns a run gives the connection's task to hand over a chunk
/// it has read (measured: with one, 500 back-to-back chunks took about 128
/// writes; with three, the CPU per stream fell by a third more). A stream
/// whose turns found nothing stops taking them until a chunk is there
/// without one (see `WholeEvents::turns`): each turn is a poll of the
/// whole body stack and, with nothing else to run, a poll of the sockets.
const TURNS: u8 = 3;

impl WholeEvents {
    pub(super) fn new(body: ByteStream, limits: Limits, require_done: bool) -> Self {
        WholeEvents {
            body,
            timer: limits.stream_timer(),
            limits,
            cuts: SseCuts::new(),
            pending: BytesMut::new(),
            done: false,
            require_done,
            ended: None,
            turns: TURNS,
        }
    }

    /// The end of the stream: fine, or an error.
    fn end(&self, error: Option<UpstreamError>) -> Option<Result<Bytes, UpstreamError>> {
        match error {
            Some(e) => Some(Err(e)),
            None if self.done || !self.require_done => None,
            None => Some(Err(UpstreamError::Protocol(
                "stream ended without [DONE]".into(),
            ))),
        }
    }

    /// Takes in `chunk`: the whole events it completes, if any (the rest
    /// waits in `pending`).
    fn take(&mut self, chunk: Bytes) -> Result<Option<Bytes>, UpstreamError> {
        let cut = self.cuts.feed(&chunk);
        self.done |= cut.done;
        let Some(at) = cut.last_boundary else {
            if (self.pending.len() + chunk.len()) as u64 > self.limits.max_bytes {
                return Err(UpstreamError::TooLarge(self.limits.max_bytes));
            }
            self.pending.extend_from_slice(&chunk);
            return Ok(None);
        };
        let whole = if self.pending.is_empty() {
            chunk.slice(..at)
        } else {
            self.pending.extend_from_slice(&chunk[..at]);
            self.pending.split().freeze()
        };
        self.pending.extend_from_slice(&chunk[at..]);
        Ok(Some(whole))
    }

    /// The next run of whole events, an error, or the end.
    async fn next(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        if let Some(error) = self.ended.take() {
            return self.end(error);
        }
        let mut waited = false;
        let first = loop {
            let next = self
                .limits
                .next_noting(&mut self.timer, &mut self.body, &mut waited);
            let chunk = match next.await {
                None => return self.end(None),
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(chunk)) => chunk,
            };
            match self.take(chunk) {
                Err(e) => return Some(Err(e)),
                Ok(Some(whole)) => break whole,
                Ok(None) => continue,
            }
        };
        if !waited {
            // There at the first look: the stream is fast (again).
            self.turns = TURNS;
        } else if self.turns == 0 {
            // Slow, and this chunk was waited for: the next is not there
            // yet either, and looking would poll the whole connection.
            return Some(Ok(first));
        }
        // Join what has already arrived, without waiting for more. The
        // connection's task hands the body over one chunk at a time: it
        // gets up to `self.turns` scheduler turns (yields) to hand over
        // the next it has already read; a chunk that is not there after
        // them is not waited for.
        let mut run: Option<BytesMut> = None;
        let mut yielded = 0;
        while run.as_ref().map_or(first.len(), BytesMut::len) < RUN_BYTES {
            let Some(item) = self.body.next().now_or_never() else {
                if yielded >= self.turns {
                    // Turns taken in vain: the stream is slow for now.
                    if yielded > 0 {
                        self.turns = 0;
                    }
                    break;
                }
                yielded += 1;
                tokio::task::yield_now().await;
                continue;
            };
            if yielded == 0 {
                // There without a turn: the stream is fast again.
                self.turns = TURNS;
            }
            yielded = 0;
            let chunk = match item {
                None => {
                    self.ended = Some(None);
                    break;
                }
                Some(Err(e)) => {
                    self.ended = Some(Some(crate::providers::client::classify_body(e)));
                    break;
                }
                Some(Ok(chunk)) => chunk,
            };
            match self.take(chunk) {
                Err(e) => {
                    self.ended = Some(Some(e));
                    break;
                }
                Ok(Some(whole)) => run
                    .get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&whole),
                Ok(None) => {}
            }
        }
        Some(Ok(run.map_or(first, BytesMut::freeze)))
    }

    pub(super) fn into_stream(
        self,
    ) -> futures_util::stream::BoxStream<'static, Result<Bytes, UpstreamError>> {
        // Boxed: the stream's state moves in and out of each item's future,
        // and a pointer moves for nothing where the struct is a memcpy.
        futures_util::stream::unfold(Some(Box::new(self)), |state| async move {
            let mut s = state?;
            match s.next().await? {
                Ok(bytes) => Some((Ok(bytes), Some(s))),
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use futures_util::{Stream, StreamExt};
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
    use tokio::time::{Duration, Instant};

    use super::*;
    use crate::providers::client::BodyError;
    use crate::providers::scrub::Scrubber;

    /// An upstream body fed by hand, counting how often it is polled.
    struct Counted {
        rx: UnboundedReceiver<&'static str>,
        polls: Arc<AtomicUsize>,
    }

    impl Stream for Counted {
        type Item = Result<Bytes, BodyError>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            self.rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Bytes::from_static(c.as_bytes()))))
        }
    }

    #[tokio::test]
    async fn a_stream_takes_turns_only_while_they_find_chunks() {
        let (tx, rx) = unbounded_channel();
        let polls = Arc::new(AtomicUsize::new(0));
        let body = Counted {
            rx,
            polls: Arc::clone(&polls),
        };
        let limits = Limits {
            idle: Duration::from_secs(60),
            total_deadline: Instant::now() + Duration::from_secs(600),
            max_bytes: 1 << 20,
            scrubber: Arc::new(Scrubber::default()),
        };
        let mut events = WholeEvents::new(body.boxed(), limits, false);
        // A run from `sent` (sent first) and how often the body was polled.
        async fn run(
            events: &mut WholeEvents,
            tx: &tokio::sync::mpsc::UnboundedSender<&'static str>,
            polls: &AtomicUsize,
            sent: &[&'static str],
        ) -> (Bytes, usize) {
            for chunk in sent {
                tx.send(*chunk).unwrap();
            }
            let before = polls.load(Ordering::Relaxed);
            let run = events.next().await.unwrap().unwrap();
            (run, polls.load(Ordering::Relaxed) - before)
        }
        // A fresh stream: the chunk, a look, then three turns in vain.
        let (first, looked) = run(&mut events, &tx, &polls, &["data: a\n\n"]).await;
        assert_eq!(
            (&first[..], looked),
            (&b"data: a\n\n"[..], 2 + usize::from(TURNS))
        );
        // Slow now, and the chunk waited for: a look that found nothing,
        // the chunk, and no look for more.
        let before = polls.load(Ordering::Relaxed);
        {
            let mut next = std::pin::pin!(events.next());
            assert!(futures_util::poll!(next.as_mut()).is_pending());
            tx.send("data: b\n\n").unwrap();
            let second = next.await.unwrap().unwrap();
            assert_eq!(&second[..], b"data: b\n\n");
        }
        assert_eq!(polls.load(Ordering::Relaxed) - before, 2);
        // Still slow, the chunk there at the first look: fast again, the
        // two joined, and the turns taken once more.
        let sent = ["data: c\n\n", "data: d\n\n"];
        let (third, looked) = run(&mut events, &tx, &polls, &sent).await;
        assert_eq!(
            (&third[..], looked),
            (&b"data: c\n\ndata: d\n\n"[..], 3 + usize::from(TURNS))
        );
    }
}
