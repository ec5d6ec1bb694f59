//! A chat completions stream turned into another API's event stream, as it
//! arrives.
//!
//! Place in the pipeline: inside an attempt on a translated target (the
//! Responses and Messages endpoints' calls): the provider's chat stream
//! goes through [`translate`] with the endpoint's [`StreamTranslator`]
//! before routing hands it back, so failover, the breaker and the SSE
//! piping see the client's own format. Events translated before an error
//! are sent, then the error ends the stream. Must not buffer the stream
//! whole.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::providers::UpstreamError;

/// Chat SSE runs in, the client API's events out.
pub(crate) trait StreamTranslator: Send + 'static {
    /// Translates one run of whole chat events into `out` (which may stay
    /// empty); an error ends the stream after `out` is sent.
    fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), UpstreamError>;
    /// The events that end the stream, after the last chunk.
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), UpstreamError>;
}

type Events = BoxStream<'static, Result<Bytes, UpstreamError>>;

/// `chunks` (a chat stream) as the translator's events; ends after the
/// first error.
pub(crate) fn translate<T: StreamTranslator>(chunks: Events, translator: T) -> Events {
    struct State<T> {
        chunks: Events,
        translator: T,
        ended: bool,
        /// An error to send after the events translated before it.
        failed: Option<UpstreamError>,
    }
    let state = State {
        chunks,
        translator,
        ended: false,
        failed: None,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        if let Some(e) = s.failed.take() {
            return Some((Err(e), None));
        }
        if s.ended {
            return None;
        }
        loop {
            let mut out = BytesMut::new();
            let step = match s.chunks.next().await {
                None => {
                    s.ended = true;
                    s.translator.finish(&mut out)
                }
                Some(Err(e)) => return Some((Err(e), None)),
                Some(Ok(chunk)) => s.translator.feed(&chunk, &mut out),
            };
            if let Err(e) = step {
                s.failed = Some(e);
            }
            if !out.is_empty() {
                return Some((Ok(out.freeze()), Some(s)));
            }
            if let Some(e) = s.failed.take() {
                return Some((Err(e), None));
            }
            if s.ended {
                return None;
            }
        }
    })
    .boxed()
}
