//! Busy polling: for a few tens of microseconds after a request starts or
//! ends, the runtime keeps asking the kernel for ready sockets instead of
//! going to sleep, so the upstream's answer (or the client's next request)
//! is read without the gateway's thread being woken.
//!
//! Why: where an idle core halts (virtual machines whose host turned the
//! guest's halt polling off, as on the benchmark machine), waking a
//! sleeping thread from another core costs tens of microseconds, and a
//! gateway serving one request at a time sleeps twice per request (for the
//! upstream's answer and for the next request). `cargo bench --bench proxy`
//! reads the c=1 row with `--busy-poll 0` and without (docs/benchmarks.md).
//!
//! Place in the pipeline: beside the edge. Every request that holds a
//! `RequestPermit` calls [`BusyPoll::started`] and, when the permit goes,
//! [`BusyPoll::ended`] (these also keep `switchyard_requests_in_flight`).
//! `Gateway::start` spawns [`BusyPoll::lane`] once per runtime worker: a
//! lane woken by a start or an end yields to the runtime in a loop (each
//! yield is a poll of the sockets that does not block) until `window` has
//! passed since the last start or end, then sleeps again.
//!
//! Bounded, like the kernel's haltpoll governor: the window doubles (up to
//! `--busy-poll`) when the gateway went back to work soon after a lane gave
//! up, and halves to nothing when it did not, so a gateway whose requests
//! come seconds apart, or wait seconds on their upstream, stops polling
//! after a few requests. Lanes stop as soon as more than [`QUIET`] requests
//! are in flight: then the runtime has work and does not sleep anyway.
//! Must not: block a thread, hold anything for a request, or keep polling
//! on its own (only a start or an end wakes a lane).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus::{Counter, Gauge, IntGauge};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The window the binary polls for when `--busy-poll` is not given.
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(100);

/// Lanes poll only while at most this many requests are in flight.
pub(crate) const QUIET: i64 = 1;

/// Polls a lane makes at most per wake-up, whatever the clock says (a
/// paused test clock does not move while a lane polls).
const MAX_POLLS: u32 = 4096;

/// The requests in flight and the lanes that poll for them.
#[derive(Debug)]
pub(crate) struct BusyPoll {
    /// The largest window, in nanoseconds; 0 turns polling off.
    max: u64,
    /// The window now, in nanoseconds (0..=max).
    window: AtomicU64,
    /// When a request last started or ended, or a lane last gave up (ns
    /// since `origin`).
    last: AtomicU64,
    /// A lane gave up since the last start or end: the next one says
    /// whether the window was long enough.
    gave_up: AtomicBool,
    origin: Instant,
    lanes: Box<[Lane]>,
    in_flight: IntGauge,
    window_gauge: Gauge,
    polled: Counter,
}

#[derive(Debug, Default)]
struct Lane {
    wake: Notify,
    polling: AtomicBool,
}

impl BusyPoll {
    /// Polls for up to `max` after each start or end (`Duration::ZERO`:
    /// never), with `lanes` lanes (one per runtime worker).
    pub(crate) fn new(max: Duration, lanes: usize, metrics: &Metrics) -> Arc<Self> {
        let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        metrics.busy_poll_window.set(max as f64 / 1e9);
        Arc::new(BusyPoll {
            max,
            window: AtomicU64::new(max),
            last: AtomicU64::new(0),
            gave_up: AtomicBool::new(false),
            origin: Instant::now(),
            lanes: (0..if max == 0 { 0 } else { lanes.max(1) })
                .map(|_| Lane::default())
                .collect(),
            in_flight: metrics.in_flight.clone(),
            window_gauge: metrics.busy_poll_window.clone(),
            polled: metrics.busy_poll_seconds.clone(),
        })
    }

    /// No polling: the requests in flight are only counted.
    pub(crate) fn off(metrics: &Metrics) -> Arc<Self> {
        Self::new(Duration::ZERO, 0, metrics)
    }

    /// How many lanes to spawn.
    pub(crate) fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// A request starts.
    pub(crate) fn started(&self) {
        self.in_flight.inc();
        self.touch();
    }

    /// A request ends.
    pub(crate) fn ended(&self) {
        self.in_flight.dec();
        self.touch();
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        if self.max == 0 || self.in_flight.get() > QUIET {
            return;
        }
        let now = self.now();
        let last = self.last.swap(now, Relaxed);
        let mut window = self.window.load(Relaxed);
        // Only a gap that followed a lane giving up (or no lane polling at
        // all) says whether polling longer would have caught it.
        if window == 0 || self.gave_up.swap(false, Relaxed) {
            window = next_window(window, now.saturating_sub(last), self.max);
            self.window.store(window, Relaxed);
            self.window_gauge.set(window as f64 / 1e9);
        }
        if window > 0 {
            for lane in &self.lanes {
                if !lane.polling.load(Relaxed) {
                    lane.wake.notify_one();
                }
            }
        }
    }

    /// Lane `i`: sleeps until a start or an end, polls until the window has
    /// passed since the last one (or the gateway is busy), and again,
    /// until `stop`.
    pub(crate) async fn lane(self: Arc<Self>, i: usize, stop: CancellationToken) {
        let Some(lane) = self.lanes.get(i) else {
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = lane.wake.notified() => {}
            }
            lane.polling.store(true, Relaxed);
            let began = Instant::now();
            let mut polls = 0;
            loop {
                tokio::task::yield_now().await;
                polls += 1;
                let now = self.now();
                let quiet_for = now.saturating_sub(self.last.load(Relaxed));
                if self.in_flight.get() > QUIET {
                    break;
                }
                if quiet_for >= self.window.load(Relaxed) || polls >= MAX_POLLS {
                    self.last.store(now, Relaxed);
                    self.gave_up.store(true, Relaxed);
                    break;
                }
            }
            lane.polling.store(false, Relaxed);
            self.polled.inc_by(began.elapsed().as_secs_f64());
        }
    }
}

/// The window after a gap of `gap` ns between a lane giving up (or the
/// last start or end, when nothing polls) and the next start or end: a gap
/// within `max` doubles it (from an eighth of `max` when off), a longer
/// one halves it, and under an eighth of `max` it turns off.
fn next_window(window: u64, gap: u64, max: u64) -> u64 {
    let floor = max / 8;
    if gap <= max {
        if window == 0 {
            floor.max(1)
        } else {
            window.saturating_mul(2).min(max)
        }
    } else {
        let half = window / 2;
        if half < floor { 0 } else { half }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_grows_after_short_gaps_and_turns_off_after_long_ones() {
        let max = 80_000;
        // Off: a gap within max turns it on at an eighth.
        assert_eq!(next_window(0, 30_000, max), 10_000);
        // Short gaps double it, up to max.
        assert_eq!(next_window(10_000, 30_000, max), 20_000);
        assert_eq!(next_window(40_000, max, max), max);
        assert_eq!(next_window(max, 1, max), max);
        // Long gaps halve it, and under an eighth it is off.
        assert_eq!(next_window(max, max + 1, max), 40_000);
        assert_eq!(next_window(20_000, 5_000_000, max), 10_000);
        assert_eq!(next_window(10_000, 5_000_000, max), 0);
        assert_eq!(next_window(0, 5_000_000, max), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_start_wakes_a_lane_that_polls_then_gives_up() {
        let metrics = Metrics::new();
        let poll = BusyPoll::new(Duration::from_micros(50), 1, &metrics);
        let stop = CancellationToken::new();
        let lane = tokio::spawn(Arc::clone(&poll).lane(0, stop.clone()));
        let t0 = Instant::now();
        poll.started();
        assert_eq!(metrics.in_flight.get(), 1);
        // The lane gives up once 50 us have passed since the start, and
        // counts the time it polled then.
        let gave_up = async {
            while metrics.busy_poll_seconds.get() == 0.0 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), gave_up)
            .await
            .expect("the lane gives up");
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_micros(50),
            "gave up after {waited:?}"
        );
        assert!(poll.gave_up.load(Relaxed));
        poll.ended();
        assert_eq!(metrics.in_flight.get(), 0);
        stop.cancel();
        lane.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn lanes_stay_asleep_while_the_gateway_is_busy_or_polling_is_off() {
        let metrics = Metrics::new();
        let poll = BusyPoll::new(Duration::from_micros(50), 1, &metrics);
        for _ in 0..=QUIET {
            poll.in_flight.inc();
        }
        poll.started();
        // Nothing woke the lane: no permit is stored for it.
        let lane = &poll.lanes[0];
        assert!(
            tokio::time::timeout(Duration::ZERO, lane.wake.notified())
                .await
                .is_err()
        );
        let off = BusyPoll::off(&Metrics::new());
        assert_eq!(off.lanes(), 0);
        off.started();
        off.ended();
        assert_eq!(off.in_flight.get(), 0);
    }
}
