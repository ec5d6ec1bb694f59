//! Per-provider concurrency limits (bulkheads): fixed (`max_in_flight`) or
//! adaptive (`adaptive: {min, max}`), always under the provider's share of
//! the gateway's request slots.
//!
//! Place in the pipeline: the outermost layer of each provider's attempt
//! stack (`bulkhead`) takes a [`Slot`] before an attempt, or is refused
//! ([`Refused`]); it reports the attempt's outcome on the slot
//! ([`Signal`]). A slot is released when it is dropped: after its attempt,
//! or, for a stream, when the stream ends; a cancelled attempt never keeps
//! one. Embedding fan-out reads the current [`ConcurrencyLimit::limit`].
//!
//! The adaptive limit is AIMD steered by latency, after Netflix's
//! concurrency-limits (AIMD, Gradient2) and Envoy's adaptive concurrency:
//! - it starts at `min` and grows by one per success (doubling each round
//!   trip: slow start) until the first overload signal, then by one per
//!   round trip (`1/limit` per success), and only while the provider is
//!   kept busy (at least half the limit in flight) and its latency stays
//!   near its usual level (a short moving average under twice a slow one:
//!   LLM answers vary in length, so a minimum would be no baseline);
//! - an overload signal (a timeout, a 429, a 5xx, a refused connection)
//!   cuts it to 0.7 of itself and remembers where that happened: growth
//!   within 10% of that ceiling is eight times slower, so a capped upstream
//!   sees a rare probe rather than a 429 storm; a limit well past the
//!   ceiling forgets it (the cap has lifted);
//! - latency above twice its usual level cuts it to 0.9 of itself;
//! - one cut per round: signals from calls that started before the last
//!   cut are not cut again (`epoch`), so a burst of failures of calls that
//!   were already in flight costs one cut, not one per call.
//!
//! Both kinds ramp back up after the provider's circuit breaker refused
//! calls: the first success after a refusal restarts from a low ramp (the
//! adaptive `min`, or a tenth of a fixed limit) that grows by one per
//! success up to the limit, so a provider that just recovered is not sent
//! full traffic at once (slow start).
//!
//! Must not know providers, HTTP or metrics: its owner gives it an
//! observer. All timing is `tokio::time`, so tests run it on paused time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{ConcurrencySpec, LimitSpec};

/// What an attempt's outcome says about the provider's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered: a latency sample.
    Success,
    /// Timed out, 429, 5xx, connection refused: over its capacity.
    Overload,
    /// Not tried: its breaker is open (the next success ramps up).
    Unavailable,
    /// Says nothing about capacity (the client's own error, a local limit).
    Ignore,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// At its limit, and the call may not wait (another target is left).
    AtLimit,
    /// The last target stayed at its limit for `max_wait`.
    WaitTimeout,
    /// Calls in flight plus calls waiting fill the provider's share.
    ShareFull,
}

impl Refused {
    /// Every reason, in declaration order (`ALL[r as usize] == r`).
    pub const ALL: [Refused; 3] = [Refused::AtLimit, Refused::WaitTimeout, Refused::ShareFull];

    /// The `reason` label of `switchyard_provider_refusals_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refused::AtLimit => "at_limit",
            Refused::WaitTimeout => "wait_timeout",
            Refused::ShareFull => "share_full",
        }
    }
}

/// Told `(limit, in_flight)` after every change (for gauges).
pub type Observer = Box<dyn Fn(usize, usize) + Send + Sync>;

const BACKOFF: f64 = 0.7;
const LATENCY_BACKOFF: f64 = 0.9;
/// Latency may rise to this multiple of its usual level before it counts.
const TOLERANCE: f64 = 2.0;
/// Weights of the short and the slow moving averages of latency.
const SHORT: f64 = 0.2;
const SLOW: f64 = 0.02;
/// Growth is this many times slower within 10% of the last ceiling.
const NEAR_CEILING: f64 = 8.0;
/// A limit this far past its ceiling forgets it.
const PAST_CEILING: f64 = 1.25;

pub struct ConcurrencyLimit {
    spec: ConcurrencySpec,
    state: Mutex<State>,
    freed: Notify,
    observe: Observer,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    waiting: usize,
    /// The provider's share of the gateway's request slots.
    share: usize,
    /// Adaptive: the learned limit.
    estimate: f64,
    /// Adaptive: still in the first slow start (+1 per success).
    fast: bool,
    /// Adaptive: the limit at the last overload cut.
    ceiling: Option<f64>,
    short: Option<f64>,
    slow: Option<f64>,
    /// Cuts so far; a slot remembers the epoch it started in.
    epoch: u64,
    /// After the breaker refused calls: a cap growing back to the limit.
    ramp: Option<f64>,
    /// The breaker refused a call since the last success.
    down: bool,
}

impl std::fmt::Debug for ConcurrencyLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("spec", &self.spec)
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl ConcurrencyLimit {
    /// A limit under `share` slots of the gateway.
    pub fn new(spec: ConcurrencySpec, share: usize, observe: Observer) -> Arc<Self> {
        let estimate = match spec.limit {
            LimitSpec::Adaptive { min, .. } => min as f64,
            LimitSpec::Fixed(_) => 0.0,
        };
        let limit = Arc::new(ConcurrencyLimit {
            spec,
            state: Mutex::new(State {
                in_flight: 0,
                waiting: 0,
                share: share.max(1),
                estimate,
                fast: true,
                ceiling: None,
                short: None,
                slow: None,
                epoch: 0,
                ramp: None,
                down: false,
            }),
            freed: Notify::new(),
            observe,
        });
        limit.changed(&limit.lock());
        limit
    }

    pub fn spec(&self) -> &ConcurrencySpec {
        &self.spec
    }

    /// A new share of the gateway (a reload changed it); the learned state stays.
    pub fn set_share(&self, share: usize) {
        let mut st = self.lock();
        st.share = share.max(1);
        self.changed(&st);
        drop(st);
        self.freed.notify_waiters();
    }

    /// The limit now: what may be in flight at once.
    pub fn limit(&self) -> usize {
        self.effective(&self.lock())
    }

    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// A slot if one is free now.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let mut st = self.lock();
        if st.in_flight >= self.effective(&st) {
            return None;
        }
        st.in_flight += 1;
        let slot = Slot {
            limit: Arc::clone(self),
            epoch: st.epoch,
            busy: st.in_flight,
            started: Instant::now(),
        };
        self.changed(&st);
        Some(slot)
    }

    /// A slot now, or (when `may_wait`) once one frees within `max_wait`,
    /// while the calls in flight and waiting fit in the provider's share.
    pub async fn acquire(self: &Arc<Self>, may_wait: bool) -> Result<Slot, Refused> {
        if let Some(slot) = self.try_acquire() {
            return Ok(slot);
        }
        if !may_wait || self.spec.max_wait.is_zero() {
            return Err(Refused::AtLimit);
        }
        let _queued = self.queue()?;
        let deadline = Instant::now() + self.spec.max_wait;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_acquire() {
                return Ok(slot);
            }
            tokio::select! {
                _ = &mut freed => {}
                _ = tokio::time::sleep_until(deadline) => return Err(Refused::WaitTimeout),
            }
        }
    }

    fn queue(self: &Arc<Self>) -> Result<Queued, Refused> {
        let mut st = self.lock();
        if st.in_flight + st.waiting >= st.share {
            return Err(Refused::ShareFull);
        }
        st.waiting += 1;
        Ok(Queued(Arc::clone(self)))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fixed or learned limit, before the ramp and the share.
    fn base(&self, st: &State) -> f64 {
        match self.spec.limit {
            LimitSpec::Fixed(Some(n)) => n as f64,
            LimitSpec::Fixed(None) => st.share as f64,
            LimitSpec::Adaptive { .. } => st.estimate,
        }
    }

    fn effective(&self, st: &State) -> usize {
        let mut limit = self.base(st);
        if let Some(ramp) = st.ramp {
            limit = limit.min(ramp);
        }
        (limit.floor() as usize).clamp(1, st.share)
    }

    fn changed(&self, st: &State) {
        (self.observe)(self.effective(st), st.in_flight);
    }

    /// Learns from one attempt's outcome.
    fn learn(&self, signal: Signal, latency: Duration, busy: usize, epoch: u64) {
        let mut st = self.lock();
        let before = self.effective(&st);
        match signal {
            Signal::Ignore => return,
            Signal::Unavailable => st.down = true,
            Signal::Overload => self.cut(&mut st, epoch, BACKOFF, true),
            Signal::Success => self.grow(&mut st, latency, busy, epoch),
        }
        let after = self.effective(&st);
        if after != before {
            self.changed(&st);
        }
        drop(st);
        if after > before {
            self.freed.notify_waiters();
        }
    }

    fn cut(&self, st: &mut State, epoch: u64, factor: f64, remember: bool) {
        if epoch != st.epoch {
            return; // started before the last cut: that cut was for it too
        }
        st.epoch += 1;
        let floor = match self.spec.limit {
            LimitSpec::Adaptive { min, .. } => min as f64,
            LimitSpec::Fixed(_) => 1.0,
        };
        if let Some(ramp) = st.ramp {
            st.ramp = Some((ramp * factor).max(floor));
        }
        if matches!(self.spec.limit, LimitSpec::Adaptive { .. }) {
            if remember {
                st.ceiling = Some(st.estimate);
            }
            st.estimate = (st.estimate * factor).max(floor);
            st.fast = false;
        }
    }

    fn grow(&self, st: &mut State, latency: Duration, busy: usize, epoch: u64) {
        let base = self.base(st);
        if std::mem::take(&mut st.down) {
            // Back from an open breaker: ramp up from a low start.
            let start = match self.spec.limit {
                LimitSpec::Adaptive { min, .. } => min as f64,
                LimitSpec::Fixed(_) => (base / 10.0).ceil().max(1.0),
            };
            st.ramp = (start < base).then_some(start);
            return;
        }
        let used = (busy * 2) as f64 >= self.effective(st) as f64;
        if let Some(ramp) = st.ramp {
            let ramp = if used { ramp + 1.0 } else { ramp };
            st.ramp = (ramp < base).then_some(ramp);
        }
        let LimitSpec::Adaptive { max, .. } = self.spec.limit else {
            return;
        };
        let sample = latency.as_secs_f64();
        let short = st.short.map_or(sample, |s| s + SHORT * (sample - s));
        let slow = st.slow.map_or(sample, |s| s + SLOW * (sample - s));
        (st.short, st.slow) = (Some(short), Some(slow));
        if short > slow * TOLERANCE {
            self.cut(st, epoch, LATENCY_BACKOFF, false);
            return;
        }
        if !used || st.ramp.is_some() {
            return;
        }
        let step = if st.fast {
            1.0
        } else if st
            .ceiling
            .is_some_and(|c| (c * 0.9..c * 1.1).contains(&st.estimate))
        {
            1.0 / (st.estimate * NEAR_CEILING)
        } else {
            1.0 / st.estimate
        };
        st.estimate = (st.estimate + step).min(max as f64);
        if st.ceiling.is_some_and(|c| st.estimate > c * PAST_CEILING) {
            st.ceiling = None;
        }
    }

    fn release(&self) {
        let mut st = self.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
        self.changed(&st);
        drop(st);
        self.freed.notify_one();
    }
}

/// One call in flight; released on drop.
#[derive(Debug)]
pub struct Slot {
    limit: Arc<ConcurrencyLimit>,
    epoch: u64,
    /// Calls in flight when it was taken, itself included.
    busy: usize,
    started: Instant,
}

impl Slot {
    /// Reports the outcome of the slot's attempt (its latency is the time
    /// since the slot was taken).
    pub fn record(&self, signal: Signal) {
        let latency = self.started.elapsed();
        self.limit.learn(signal, latency, self.busy, self.epoch);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limit.release();
    }
}

/// One call waiting for a slot; leaves the queue on drop.
struct Queued(Arc<ConcurrencyLimit>);

impl Drop for Queued {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.waiting = st.waiting.saturating_sub(1);
    }
}

#[cfg(test)]
#[path = "concurrency_tests.rs"]
mod tests;
