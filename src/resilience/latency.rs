//! Latency estimates of one upstream: a peak-EWMA (the cost `least_latency`
//! ranks by) and a window of recent samples (the percentile a hedge waits).
//!
//! Place in the pipeline: `routing` keeps one of each per provider and kind
//! of measure, feeds them from its measuring layer and reads them when it
//! orders targets or decides when to hedge. [`PeakEwma`] is tower's
//! `load::peak_ewma` (linkerd's balancer): a sample above the estimate
//! replaces it at once (peaks count in full), one below pulls it down with
//! a weight that grows with the time since the last update, and reading it
//! decays it towards zero, so an upstream left alone for a while is tried
//! again (which is how traffic comes back after a recovery); the cost is the
//! estimate times the calls in flight plus one. [`Recent`] keeps the last
//! [`WINDOW`] samples. Timing is `tokio::time`, so tests run on paused
//! time. Must not know providers, routes or what is measured.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A peak-sensitive exponentially weighted moving average of latency.
#[derive(Debug)]
pub struct PeakEwma {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// The estimate, in nanoseconds (per unit when samples are normalised).
    estimate: f64,
    updated: Instant,
}

impl Default for PeakEwma {
    fn default() -> Self {
        PeakEwma::new()
    }
}

impl PeakEwma {
    /// No estimate yet (zero: an upstream never measured is tried).
    pub fn new() -> Self {
        PeakEwma {
            state: Mutex::new(State {
                estimate: 0.0,
                updated: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds in one sample (`nanos`, already normalised by the caller);
    /// `decay` is how fast older samples stop counting.
    pub fn observe(&self, nanos: f64, decay: Duration) {
        let now = Instant::now();
        let mut s = self.lock();
        s.update(now, nanos.max(0.0), decay);
    }

    /// A lower bound: an attempt cancelled after `nanos` took at least that
    /// long. Raises the estimate to it when it is higher; never lowers it.
    pub fn observe_at_least(&self, nanos: f64, decay: Duration) {
        let now = Instant::now();
        let mut s = self.lock();
        s.decay(now, decay);
        if nanos > s.estimate {
            s.estimate = nanos;
        }
    }

    /// The estimate now (decayed towards zero since its last update).
    pub fn estimate(&self, decay: Duration) -> f64 {
        let now = Instant::now();
        let mut s = self.lock();
        s.decay(now, decay)
    }

    /// What sending one more call costs: the estimate times the calls in
    /// flight plus one.
    pub fn cost(&self, in_flight: usize, decay: Duration) -> f64 {
        self.estimate(decay) * (in_flight as f64 + 1.0)
    }
}

impl State {
    fn update(&mut self, now: Instant, sample: f64, decay: Duration) -> f64 {
        if sample > self.estimate {
            // Peak: the worst recent sample is the estimate.
            self.estimate = sample;
        } else {
            let elapsed = now.saturating_duration_since(self.updated).as_nanos() as f64;
            let tau = (decay.as_nanos() as f64).max(1.0);
            let keep = (-elapsed / tau).exp();
            self.estimate = self.estimate * keep + sample * (1.0 - keep);
        }
        self.updated = now;
        self.estimate
    }

    /// Decays towards zero, as tower does when it reads the load.
    fn decay(&mut self, now: Instant, decay: Duration) -> f64 {
        self.update(now, 0.0, decay)
    }
}

/// Samples a [`Recent`] window keeps.
pub const WINDOW: usize = 128;

/// Fewer samples than this give no percentile.
pub const MIN_SAMPLES: usize = 20;

/// The last [`WINDOW`] latency samples, for percentiles.
#[derive(Debug, Default)]
pub struct Recent {
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    micros: [u32; WINDOW],
    next: usize,
    len: usize,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            micros: [0; WINDOW],
            next: 0,
            len: 0,
        }
    }
}

impl Recent {
    pub fn record(&self, d: Duration) {
        let micros = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let mut r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let at = r.next;
        r.micros[at] = micros;
        r.next = (at + 1) % WINDOW;
        r.len = (r.len + 1).min(WINDOW);
    }

    /// The `p`th percentile (0 < p < 100) of the window, or `None` with
    /// fewer than [`MIN_SAMPLES`] samples.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let (mut copy, len) = {
            let r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            (r.micros, r.len)
        };
        if len < MIN_SAMPLES {
            return None;
        }
        let samples = &mut copy[..len];
        let rank = ((p / 100.0) * len as f64).ceil() as usize;
        let at = rank.clamp(1, len) - 1;
        let (_, v, _) = samples.select_nth_unstable(at);
        Some(Duration::from_micros(u64::from(*v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECAY: Duration = Duration::from_secs(1);
    const MS: f64 = 1e6;

    #[tokio::test(start_paused = true)]
    async fn a_peak_counts_at_once_and_fades_with_time() {
        let e = PeakEwma::new();
        assert_eq!(e.estimate(DECAY), 0.0, "unmeasured: free to try");
        e.observe(10.0 * MS, DECAY);
        assert_eq!(e.estimate(DECAY), 10.0 * MS);
        e.observe(100.0 * MS, DECAY);
        assert_eq!(
            e.estimate(DECAY),
            100.0 * MS,
            "a peak replaces the estimate"
        );
        // One decay time later, untouched: e^-1 of it.
        tokio::time::advance(DECAY).await;
        let faded = e.estimate(DECAY);
        assert!(
            (faded / (100.0 * MS) - (-1.0f64).exp()).abs() < 1e-6,
            "{faded}"
        );
        tokio::time::advance(DECAY * 5).await;
        assert!(
            e.estimate(DECAY) < 1.0 * MS,
            "left alone, it is tried again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lower_samples_pull_the_estimate_down_by_elapsed_time() {
        let e = PeakEwma::new();
        e.observe(100.0 * MS, DECAY);
        // Right after, a low sample barely counts...
        tokio::time::advance(Duration::from_millis(10)).await;
        e.observe(10.0 * MS, DECAY);
        let soon = e.estimate(DECAY);
        assert!(soon > 95.0 * MS, "{soon}");
        // ...a long while after, it almost replaces it.
        tokio::time::advance(DECAY * 3).await;
        e.observe(10.0 * MS, DECAY);
        let later = e.estimate(DECAY);
        assert!(later < 15.0 * MS, "{later}");
    }

    #[tokio::test(start_paused = true)]
    async fn cost_grows_with_calls_in_flight_and_a_cancelled_call_only_raises() {
        let e = PeakEwma::new();
        e.observe(20.0 * MS, DECAY);
        assert_eq!(e.cost(0, DECAY), 20.0 * MS);
        assert_eq!(e.cost(3, DECAY), 80.0 * MS);
        e.observe_at_least(5.0 * MS, DECAY);
        assert_eq!(
            e.estimate(DECAY),
            20.0 * MS,
            "a short cancelled call says nothing"
        );
        e.observe_at_least(50.0 * MS, DECAY);
        assert_eq!(e.estimate(DECAY), 50.0 * MS);
    }

    #[test]
    fn percentiles_need_enough_samples_and_keep_the_last_window() {
        let r = Recent::default();
        for ms in 1..MIN_SAMPLES as u64 {
            r.record(Duration::from_millis(ms));
        }
        assert_eq!(r.percentile(50.0), None, "too few");
        let r = Recent::default();
        for ms in 1..=100u64 {
            r.record(Duration::from_millis(ms));
        }
        assert_eq!(r.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(r.percentile(95.0), Some(Duration::from_millis(95)));
        // 128 more at 7ms: the old ones are out of the window.
        for _ in 0..WINDOW {
            r.record(Duration::from_millis(7));
        }
        assert_eq!(r.percentile(99.0), Some(Duration::from_millis(7)));
    }
}
