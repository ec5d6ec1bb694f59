//! Per-provider circuit breaker: closed -> open -> half-open -> closed.
//!
//! Place in the pipeline: `routing` asks [`Breaker::try_acquire`] before each
//! attempt and reports the outcome on the returned permit. Closed counts
//! consecutive failures; at the threshold it opens for `open_for`; then it
//! lets `half_open_probes` attempts through: one success closes it, one
//! failure opens it again. Must not decide what counts as a failure (the
//! caller does), must not sleep, and keeps no metrics: state changes are
//! reported to the `OnTransition` hook its owner gives it.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::config::BreakerSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The value of `switchyard_breaker_state`.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probes: u32 },
}

impl Inner {
    fn state(&self) -> BreakerState {
        match self {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// Told every state change (for metrics and logs, owned by the caller).
pub type OnTransition = Box<dyn Fn(BreakerState) + Send + Sync>;

pub struct Breaker {
    spec: BreakerSpec,
    inner: Mutex<Inner>,
    on_transition: OnTransition,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("spec", &self.spec)
            .field("state", &self.lock().state())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    pub fn new(spec: BreakerSpec, on_transition: OnTransition) -> Arc<Self> {
        on_transition(BreakerState::Closed);
        Arc::new(Breaker {
            spec,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
            on_transition,
        })
    }

    pub fn spec(&self) -> &BreakerSpec {
        &self.spec
    }

    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        inner.state()
    }

    /// A permit to make one attempt, or `None` while the breaker is open (or
    /// half-open with all probe slots taken).
    pub fn try_acquire(self: &Arc<Self>) -> Option<BreakerPermit> {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        let probe = match &mut *inner {
            Inner::Closed { .. } => false,
            Inner::Open { .. } => return None,
            Inner::HalfOpen { probes } if *probes >= self.spec.half_open_probes => return None,
            Inner::HalfOpen { probes } => {
                *probes += 1;
                true
            }
        };
        Some(BreakerPermit {
            breaker: Arc::clone(self),
            probe,
            done: false,
        })
    }

    /// A failure seen outside an attempt (a stream that broke after its
    /// attempt had already been reported as a success).
    pub fn record_failure(&self) {
        self.record(false, false);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open -> half-open once `open_for` has passed.
    fn refresh(&self, inner: &mut Inner) {
        if let Inner::Open { until } = inner
            && Instant::now() >= *until
        {
            self.transition(inner, Inner::HalfOpen { probes: 0 });
        }
    }

    fn transition(&self, inner: &mut Inner, to: Inner) {
        let state = to.state();
        *inner = to;
        (self.on_transition)(state);
    }

    fn record(&self, probe: bool, success: bool) {
        let mut inner = self.lock();
        match (&mut *inner, probe, success) {
            (Inner::Closed { failures }, false, true) => *failures = 0,
            (Inner::Closed { failures }, false, false) => {
                *failures += 1;
                if *failures >= self.spec.failure_threshold {
                    let until = Instant::now() + self.spec.open_for;
                    self.transition(&mut inner, Inner::Open { until });
                }
            }
            (Inner::HalfOpen { .. }, true, true) => {
                self.transition(&mut inner, Inner::Closed { failures: 0 })
            }
            (Inner::HalfOpen { .. }, true, false) => {
                let until = Instant::now() + self.spec.open_for;
                self.transition(&mut inner, Inner::Open { until });
            }
            // Outcomes of attempts admitted under an earlier state.
            _ => {}
        }
    }

    fn release_probe(&self) {
        if let Inner::HalfOpen { probes } = &mut *self.lock() {
            *probes = probes.saturating_sub(1);
        }
    }
}

/// One admitted attempt. Report with `success` or `failure`; dropping it
/// unreported (a cancelled request) frees a half-open probe slot and
/// counts as neither.
#[derive(Debug)]
pub struct BreakerPermit {
    breaker: Arc<Breaker>,
    probe: bool,
    done: bool,
}

impl BreakerPermit {
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(self.probe, true);
    }
    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker(threshold: u32, probes: u32) -> (Arc<Breaker>, Arc<Mutex<Vec<BreakerState>>>) {
        let spec = BreakerSpec {
            failure_threshold: threshold,
            open_for: Duration::from_secs(10),
            half_open_probes: probes,
            count_rate_limits: true,
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let b = Breaker::new(spec, Box::new(move |s| log.lock().unwrap().push(s)));
        (b, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_half_opens_and_closes() {
        let (b, _) = breaker(3, 1);
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().success(); // resets the count
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(b.try_acquire().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_none(), "only one probe at a time");
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_and_dropped_probe_frees_slot() {
        let (b, seen) = breaker(1, 1);
        b.try_acquire().unwrap().failure();
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(b.try_acquire().unwrap());
        let probe = b.try_acquire().expect("slot freed by drop");
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
        use BreakerState::*;
        assert_eq!(*seen.lock().unwrap(), [Closed, Open, HalfOpen, Open]);
    }
}
