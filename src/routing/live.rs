//! What the gateway sees of each provider's latency, per kind of measure,
//! kept by a measuring layer of the attempt stack.
//!
//! Place in the pipeline: [`MeasureLayer`] sits in every provider's attempt
//! stack (`attempt`) inside the breaker, so it times the calls that reached
//! the provider; the strategies (`strategy`) and hedging (`run`) read the
//! provider's [`Live`] (calls in flight are the bulkhead's count, read
//! through `strategy::busy`). An attempt is measured by its call's [`Pace`]: a
//! stream to its first event, a whole answer per output token, embeddings
//! and rerank per input item, each in its own peak-EWMA (so answers of
//! different sizes and endpoints compare fairly) and its own window of raw
//! durations (for a hedge's percentile delay). A success is a sample; a
//! timeout or a cancelled attempt (a lost hedge, a deadline, a client gone)
//! only raises the estimate to the time it took; other failures are the
//! breaker's business, not latency. `table` keeps a provider's `Live` over
//! reloads while its kind and settings are unchanged. Must not decide
//! anything: it only measures.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::call::{AnyReply, Attempt, Pace};
use crate::boxed::in_place;
use crate::providers::UpstreamError;
use crate::resilience::latency::{PeakEwma, Recent};

/// One provider's live measures.
#[derive(Debug, Default)]
pub struct Live {
    ewma: [PeakEwma; 3],
    recent: [Recent; 3],
}

impl Live {
    /// The peak-EWMA latency (nanoseconds per unit) of calls measured by
    /// `pace`, decayed by `decay`.
    pub fn latency(&self, pace: Pace, decay: Duration) -> f64 {
        self.ewma[pace.index()].estimate(decay)
    }

    /// The `p`th percentile of the recent raw durations of `pace` calls.
    pub fn percentile(&self, pace: Pace, p: f64) -> Option<Duration> {
        self.recent[pace.index()].percentile(p)
    }

    fn record(&self, attempt: &Attempt, elapsed: Duration, units: u64) {
        let i = attempt.pace.index();
        let per_unit = elapsed.as_nanos() as f64 / units.max(1) as f64;
        self.ewma[i].observe(per_unit, attempt.decay);
        self.recent[i].record(elapsed);
    }
}

#[cfg(test)]
impl Live {
    /// A sample of `d` for `pace` calls, as if measured.
    pub(super) fn sample(&self, pace: Pace, d: Duration, decay: Duration) {
        self.ewma[pace.index()].observe(d.as_nanos() as f64, decay);
        self.recent[pace.index()].record(d);
    }
}

/// Times an attempt; if it ends without an answer (a timeout, or
/// cancelled), raises the estimate to what it took.
struct Measuring {
    live: Arc<Live>,
    pace: Pace,
    decay: Duration,
    start: Instant,
    measured: bool,
}

impl Measuring {
    fn start(live: &Arc<Live>, attempt: &Attempt) -> Self {
        Measuring {
            live: Arc::clone(live),
            pace: attempt.pace,
            decay: attempt.decay,
            start: Instant::now(),
            measured: false,
        }
    }
}

impl Measuring {
    /// A sample: the time to the answer, per unit of it.
    fn answered(&mut self, attempt: &Attempt, reply: &AnyReply) {
        let units = attempt.units(reply);
        self.live.record(attempt, self.start.elapsed(), units);
        self.measured = true;
    }

    /// Says nothing of latency (a fast failure).
    fn ignore(&mut self) {
        self.measured = true;
    }
}

impl Drop for Measuring {
    fn drop(&mut self) {
        if !self.measured {
            let took = self.start.elapsed().as_nanos() as f64;
            self.live.ewma[self.pace.index()].observe_at_least(took, self.decay);
        }
    }
}

/// Measures each attempt into the provider's [`Live`].
#[derive(Debug, Clone)]
pub(super) struct MeasureLayer {
    live: Arc<Live>,
}

impl MeasureLayer {
    pub(super) fn new(live: Arc<Live>) -> Self {
        MeasureLayer { live }
    }
}

impl<S> Layer<S> for MeasureLayer {
    type Service = Measure<S>;
    fn layer(&self, inner: S) -> Measure<S> {
        Measure {
            inner,
            live: Arc::clone(&self.live),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Measure<S> {
    inner: S,
    live: Arc<Live>,
}

impl<S> Service<Attempt> for Measure<S>
where
    S: Service<Attempt, Response = AnyReply, Error = UpstreamError>,
    S::Future: Send + 'static,
{
    type Response = AnyReply;
    type Error = UpstreamError;
    type Future = BoxFuture<'static, Result<AnyReply, UpstreamError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, attempt: Attempt) -> Self::Future {
        let mut measuring = Measuring::start(&self.live, &attempt);
        let call = self.inner.call(attempt.clone());
        in_place(move || async move {
            let result = call.await;
            match &result {
                Ok(reply) => measuring.answered(&attempt, reply),
                // A slow failure says the provider is slow: left to the drop.
                Err(UpstreamError::Timeout(_)) => {}
                Err(_) => measuring.ignore(),
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Need, Provider};
    use crate::routing::call::Call;
    use tower::ServiceExt;

    struct Chat;
    impl Call for Chat {
        type Reply = ();
        fn need(&self) -> Need {
            Need::Chat { stream: false }
        }
        fn estimated_tokens(&self) -> u64 {
            1
        }
        async fn attempt(
            self: Arc<Self>,
            _: Arc<dyn Provider>,
            _: Arc<str>,
        ) -> Result<(), UpstreamError> {
            Ok(())
        }
    }

    fn attempt() -> Attempt {
        let mut a = Attempt::new(&Arc::new(Chat), "m", 1);
        a.decay = Duration::from_secs(1);
        a
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_timed_and_cancelled_attempts_count_as_slow() {
        let live = Arc::new(Live::default());
        let slow = tower::service_fn(|_: Attempt| async {
            tokio::time::sleep(Duration::from_millis(40)).await;
            Ok::<AnyReply, UpstreamError>(Box::new(()))
        });
        let svc = MeasureLayer::new(Arc::clone(&live)).layer(slow);
        svc.clone().oneshot(attempt()).await.unwrap();
        let decay = Duration::from_secs(1);
        let ms = |n: f64| n * 1e6;
        assert_eq!(live.latency(Pace::PerToken, decay), ms(40.0));
        assert_eq!(live.latency(Pace::FirstByte, decay), 0.0, "kept apart");

        // Cut after 200ms (a lost hedge): at least that slow.
        let hang = tower::service_fn(|_: Attempt| {
            std::future::pending::<Result<AnyReply, UpstreamError>>()
        });
        let svc = MeasureLayer::new(Arc::clone(&live)).layer(hang);
        let cut = tokio::time::timeout(Duration::from_millis(200), svc.oneshot(attempt())).await;
        assert!(cut.is_err());
        assert_eq!(live.latency(Pace::PerToken, decay), ms(200.0));

        // A fast failure says nothing of latency.
        let fail = tower::service_fn(|_: Attempt| async {
            Err::<AnyReply, _>(UpstreamError::Connect("refused".into()))
        });
        let svc = MeasureLayer::new(Arc::clone(&live)).layer(fail);
        let _ = svc.oneshot(attempt()).await;
        assert_eq!(live.latency(Pace::PerToken, decay), ms(200.0));
    }
}
