//! A stream after its first content: the route's throughput guard and
//! stream continuation.
//!
//! Place in the pipeline: the flows that pipe streams call
//! [`execute_stream`] instead of `execute`. Before a stream is handed back,
//! the attempt held it until real content arrived (`providers::hold`), so a
//! break before content has already failed over. After that, for routes
//! that ask for it:
//! - `stream_min_rate`: fewer tokens per second than the minimum, measured
//!   over the window while the gateway waits on the upstream (a slow client
//!   does not count), is a stall: counted, charged to the provider's
//!   breaker, and then a break like any other.
//! - `stream_continuation` (chat streams): a break or stall after content
//!   asks the route's next target (the one that broke last) to continue the
//!   partial answer ([`Call::resume`]; prefill or the text as context, per
//!   provider), and its events are passed on as the first stream's (same
//!   `id`, `created`, `model`, no second role chunk), the finishing chunk
//!   marked with a `switchyard` member. Tool calls, several choices and
//!   finished answers are not continued (a finished one gets its `[DONE]`).
//!   At most [`MAX_CONTINUATIONS`] per stream.
//!
//! A break that is not continued is handed on as the stream's error. Must
//! not know endpoints: the call's `need` says the stream's format.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::Instant;

use super::call::{Call, Served};
use super::run::{execute, execute_avoiding};
use super::table::{RouteHandle, RouteTable};
use crate::api::GatewayError;
use crate::api::continuation::{Partial, marker};
use crate::api::sse::{SseDecoder, SseEvent};
use crate::api::stream_content::{Seen, StreamKind};
use crate::metrics::Metrics;
use crate::providers::{ChatReply, Need, UpstreamError, hold};

/// Continuations one stream may go through.
pub(super) const MAX_CONTINUATIONS: u32 = 2;

type Events = BoxStream<'static, Result<Bytes, UpstreamError>>;

/// How many times a watched stream was continued so far (a continued
/// answer is not cached, say).
#[derive(Debug, Clone, Default)]
pub struct Continuations(Arc<AtomicU32>);

impl Continuations {
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The format of the stream a call with `need` answers.
fn stream_kind(need: Need) -> StreamKind {
    match need {
        Need::Native(path) | Need::NativeOrChat { path, .. } => StreamKind::for_path(path),
        _ => StreamKind::Chat,
    }
}

/// Tokens per second over windows of upstream waiting time.
#[derive(Debug)]
struct Rate {
    min: f64,
    window: Duration,
    waited: Duration,
    tokens: u64,
}

impl Rate {
    /// Waiting time left in the current window.
    fn left(&self) -> Duration {
        self.window.saturating_sub(self.waited)
    }

    /// Counts `waited`; at the end of a window, whether it was fast enough.
    fn wait(&mut self, waited: Duration) -> Option<bool> {
        self.waited += waited;
        if self.waited < self.window {
            return None;
        }
        let fast = self.tokens as f64 >= self.min * self.window.as_secs_f64();
        self.waited = Duration::ZERO;
        self.tokens = 0;
        Some(fast)
    }

    /// About four bytes of generated text a token.
    fn add(&mut self, bytes: usize) {
        self.tokens += (bytes as u64).div_ceil(4);
    }
}

/// Runs `call` on `route` like `execute`; a stream comes back watched as
/// the route's `stream_min_rate` and `stream_continuation` say (see the
/// module doc), with a count of its continuations. `rt` owns the route
/// table (the stream outlives the caller).
pub async fn execute_stream<R, C>(
    rt: Arc<R>,
    route: Arc<RouteHandle>,
    metrics: Arc<Metrics>,
    call: Arc<C>,
) -> Result<(Served<ChatReply>, Continuations), GatewayError>
where
    R: AsRef<RouteTable> + Send + Sync + 'static,
    C: Call<Reply = ChatReply>,
{
    let served = execute((*rt).as_ref(), &route, &metrics, Arc::clone(&call)).await?;
    let spec = &route.spec.stream;
    let kind = stream_kind(call.need());
    let continues = spec.continuation && kind == StreamKind::Chat;
    let rate = spec.min_tokens_per_second.map(|min| Rate {
        min,
        window: spec.window,
        waited: Duration::ZERO,
        tokens: 0,
    });
    let events = match served.value {
        ChatReply::Stream(events) if continues || rate.is_some() => events,
        other => {
            let served = Served {
                value: other,
                ..served
            };
            return Ok((served, Continuations::default()));
        }
    };
    let count = Continuations::default();
    let watch = Watch {
        rt,
        route,
        metrics,
        call,
        events,
        provider: Arc::clone(&served.provider),
        providers: vec![Arc::clone(&served.provider)],
        kind,
        rate,
        partial: continues.then(Partial::default),
        decoder: SseDecoder::new(),
        continued: 0,
        count: count.clone(),
        trim: false,
        stalled: false,
        ended: false,
    };
    let events = futures_util::stream::unfold(watch, |mut w| async move {
        let item = w.next().await?;
        Some((item, w))
    })
    .boxed();
    let served = Served {
        value: ChatReply::Stream(events),
        ..served
    };
    Ok((served, count))
}

/// One watched stream.
struct Watch<R, C> {
    rt: Arc<R>,
    route: Arc<RouteHandle>,
    metrics: Arc<Metrics>,
    call: Arc<C>,
    events: Events,
    /// Who serves the stream now.
    provider: Arc<str>,
    providers: Vec<Arc<str>>,
    kind: StreamKind,
    rate: Option<Rate>,
    /// The answer so far, when the stream may be continued.
    partial: Option<Partial>,
    decoder: SseDecoder,
    continued: u32,
    count: Continuations,
    /// The continuation's first text loses its leading whitespace.
    trim: bool,
    /// The last window was too slow: a stall, once its chunk has left.
    stalled: bool,
    ended: bool,
}

impl<R, C> Watch<R, C>
where
    R: AsRef<RouteTable> + Send + Sync + 'static,
    C: Call<Reply = ChatReply>,
{
    async fn next(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        loop {
            if self.ended {
                return None;
            }
            if std::mem::take(&mut self.stalled) {
                self.stall();
                match self
                    .recover(UpstreamError::Timeout("stream_min_rate"))
                    .await
                {
                    Some(item) => return Some(item),
                    None => continue,
                }
            }
            let started = Instant::now();
            let item = match &self.rate {
                Some(r) => match tokio::time::timeout(r.left(), self.events.next()).await {
                    Ok(item) => item,
                    Err(_) => {
                        self.stalled |= self.waited(started) == Some(false);
                        continue;
                    }
                },
                None => self.events.next().await,
            };
            let waited = self.rate.is_some().then(|| self.waited(started));
            match item {
                None => {
                    self.ended = true;
                    return None;
                }
                Some(Err(e)) => match self.recover(e).await {
                    Some(item) => return Some(item),
                    None => continue,
                },
                Some(Ok(bytes)) => {
                    self.stalled |= waited.flatten() == Some(false);
                    let (out, failed) = self.read(bytes);
                    if let Some(e) = failed {
                        if !out.is_empty() {
                            // The events before the error first; the error next.
                            self.events = futures_util::stream::iter([Err(e)]).boxed();
                            return Some(Ok(out));
                        }
                        match self.recover(e).await {
                            Some(item) => return Some(item),
                            None => continue,
                        }
                    }
                    if !out.is_empty() {
                        return Some(Ok(out));
                    }
                }
            }
        }
    }

    /// Counts upstream waiting time since `started` in the rate window.
    fn waited(&mut self, started: Instant) -> Option<bool> {
        self.rate.as_mut()?.wait(started.elapsed())
    }

    /// Reads a run of events: what to pass on, and an error event's
    /// failure when the stream may be continued (the events before it are
    /// passed on first). After a continuation, events are rewritten as the
    /// first stream's.
    fn read(&mut self, bytes: Bytes) -> (Bytes, Option<UpstreamError>) {
        let mut events: Vec<SseEvent> = Vec::new();
        self.decoder.feed(&bytes, &mut events);
        let rewrite = self.continued > 0;
        let mark = rewrite.then(|| marker(self.continued, &self.names()));
        let mut out = BytesMut::new();
        for ev in &events {
            let seen = self.kind.classify(ev);
            if let Seen::Error(e) = &seen
                && self.partial.is_some()
            {
                return (out.freeze(), Some(hold::failure(e)));
            }
            if let (Some(r), Seen::Content { bytes }) = (&mut self.rate, &seen) {
                r.add(*bytes);
            }
            let Some(partial) = &mut self.partial else {
                continue;
            };
            if rewrite {
                if let Some(b) = partial.rewrite(ev, mark.as_ref(), &mut self.trim) {
                    out.extend_from_slice(&b);
                }
            } else {
                // Kept in case an error event follows in this run.
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(ev.data.as_bytes());
                out.extend_from_slice(b"\n\n");
            }
            partial.feed(ev);
        }
        if rewrite {
            (out.freeze(), None)
        } else {
            (bytes, None)
        }
    }

    fn names(&self) -> Vec<&str> {
        self.providers.iter().map(|p| &**p).collect()
    }

    fn stall(&self) {
        let (route, provider) = (self.route.spec.name.as_str(), &*self.provider);
        self.metrics
            .stream_stalls
            .with_label_values(&[route, provider])
            .inc();
        tracing::warn!(
            route,
            provider,
            "stream too slow after its first token: a stall"
        );
    }

    /// After a break or a stall: continue elsewhere (`None`: go on with
    /// the new stream), end a finished answer, or hand the error on.
    async fn recover(&mut self, e: UpstreamError) -> Option<Result<Bytes, UpstreamError>> {
        self.ended = true;
        let Some(partial) = &self.partial else {
            return Some(Err(e));
        };
        if partial.finished() && !partial.done() {
            // The answer was whole; only its end was lost.
            return Some(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
        }
        if !partial.continuable() || self.continued >= MAX_CONTINUATIONS {
            return Some(Err(e));
        }
        let trim = partial.text().ends_with(char::is_whitespace);
        let Some(call) = self.call.resume(partial.text()) else {
            return Some(Err(e));
        };
        let table: &RouteTable = (*self.rt).as_ref();
        let (route, broken) = (self.route.spec.name.as_str(), Arc::clone(&self.provider));
        if let Some(h) = table.providers.get(&*broken) {
            h.breaker.record_failure();
        }
        tracing::warn!(route, provider = &*broken, error = %e, "stream broke after content; continuing on another target");
        let call = Arc::new(call);
        let resumed =
            execute_avoiding(table, &self.route, &self.metrics, call, Some(&broken)).await;
        let served = match resumed {
            Ok(s) => s,
            Err(g) => {
                tracing::warn!(route, error = %g, "stream continuation failed");
                return Some(Err(e));
            }
        };
        let ChatReply::Stream(events) = served.value else {
            return Some(Err(e));
        };
        self.metrics
            .stream_continuations
            .with_label_values(&[route, &broken])
            .inc();
        self.trim = trim;
        self.events = events;
        self.decoder = SseDecoder::new();
        self.provider = Arc::clone(&served.provider);
        self.providers.push(served.provider);
        self.continued += 1;
        self.count.0.store(self.continued, Ordering::Relaxed);
        self.ended = false;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_judged_per_window_of_waiting() {
        let mut r = Rate {
            min: 2.0,
            window: Duration::from_secs(5),
            waited: Duration::ZERO,
            tokens: 0,
        };
        r.add(20); // 5 tokens
        assert_eq!(r.wait(Duration::from_secs(3)), None);
        assert_eq!(r.left(), Duration::from_secs(2));
        r.add(20);
        assert_eq!(
            r.wait(Duration::from_secs(2)),
            Some(true),
            "10 tokens in 5s"
        );
        r.add(4);
        assert_eq!(r.wait(Duration::from_secs(5)), Some(false), "1 token in 5s");
        assert_eq!(stream_kind(Need::Native("/messages")), StreamKind::Messages);
        assert_eq!(stream_kind(Need::Chat { stream: true }), StreamKind::Chat);
    }
}
