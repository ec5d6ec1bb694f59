//! An upstream's stream body, translated to OpenAI chunks.
//!
//! Place in the pipeline: inside a provider kind's streaming call, after
//! [`super::upstream::Upstream::send`] has a successful answer. A kind
//! gives a [`StreamTranslate`] (SSE events in) or a [`ChunkTranslate`]
//! (raw bytes in: AWS event-stream); [`translated_sse`] and
//! [`translated_stream`] read the body chunk by chunk under its limits and
//! yield whole `data:` events only. Must not know any kind's wire format
//! or send anything upstream.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::UpstreamError;
use super::body::{ByteStream, Limits, StreamTimer};
use super::client::Response;
use super::translate::TranslateError;
use crate::api::sse::{SseDecoder, SseEvent};

/// A provider kind's stream translator: upstream events in, OpenAI chunks
/// (whole `data:` events) out.
pub trait StreamTranslate: Send + 'static {
    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError>;
    /// At the upstream's end: the closing chunks and `[DONE]`, or an error
    /// when the upstream ended before its own terminal event.
    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), TranslateError>;
}

/// Turns the raw bytes of an upstream stream body, chunk by chunk, into
/// whole OpenAI chunks: the framing (SSE, AWS event-stream) and the kind's
/// translation together.
pub trait ChunkTranslate: Send + 'static {
    /// Translates what `chunk` completes; what was translated before an
    /// error is still in `out`.
    fn on_chunk(
        &mut self,
        chunk: &[u8],
        max_bytes: u64,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamError>;
    /// At the end of the body.
    fn on_end(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamError>;
}

/// SSE framing around a kind's [`StreamTranslate`].
struct Sse<T> {
    decoder: SseDecoder,
    events: Vec<SseEvent>,
    translator: T,
}

impl<T: StreamTranslate> ChunkTranslate for Sse<T> {
    fn on_chunk(
        &mut self,
        chunk: &[u8],
        _max: u64,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamError> {
        self.events.clear();
        self.decoder.feed(chunk, &mut self.events);
        for ev in &self.events {
            self.translator
                .on_event(ev, out)
                .map_err(UpstreamError::Translate)?;
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamError> {
        self.translator
            .finish(out)
            .map_err(UpstreamError::Translate)
    }
}

/// An upstream SSE body translated to OpenAI chunks, under the body limits.
/// Ends after the first error.
pub fn translated_sse<T: StreamTranslate>(
    response: Response,
    limits: Limits,
    translator: T,
) -> BoxStream<'static, Result<Bytes, UpstreamError>> {
    let sse = Sse {
        decoder: SseDecoder::new(),
        events: Vec::new(),
        translator,
    };
    translated_stream(response, limits, sse)
}

/// An upstream stream body translated chunk by chunk under the body limits
/// (idle and total timeouts, `max_bytes` for one unfinished frame). Yields
/// whole events only; ends after the first error, which comes after every
/// chunk translated before it.
pub fn translated_stream<T: ChunkTranslate>(
    response: Response,
    limits: Limits,
    translator: T,
) -> BoxStream<'static, Result<Bytes, UpstreamError>> {
    struct State<T> {
        body: ByteStream,
        limits: Limits,
        timer: StreamTimer,
        out: Vec<Bytes>,
        translator: T,
        ended: bool,
        failed: Option<UpstreamError>,
    }
    let state = State {
        body: limits.body(response),
        timer: limits.stream_timer(),
        limits,
        out: Vec::new(),
        translator,
        ended: false,
        failed: None,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        loop {
            if !s.out.is_empty() {
                // Chunks translated before an error still reach the client.
                let mut joined = BytesMut::new();
                for b in s.out.drain(..) {
                    joined.extend_from_slice(&b);
                }
                let more = !s.ended || s.failed.is_some();
                return Some((Ok(joined.freeze()), more.then_some(s)));
            }
            if let Some(e) = s.failed.take() {
                return Some((Err(e), None));
            }
            if s.ended {
                return None;
            }
            let result = match s.limits.next_on(&mut s.timer, &mut s.body).await {
                None => {
                    s.ended = true;
                    s.translator.on_end(&mut s.out)
                }
                Some(Err(e)) => Err(e),
                Some(Ok(chunk)) => s
                    .translator
                    .on_chunk(&chunk, s.limits.max_bytes, &mut s.out),
            };
            if let Err(e) = result {
                s.ended = true;
                s.failed = Some(e);
            }
        }
    })
    .boxed()
}
