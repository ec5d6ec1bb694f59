//! Rate-limited warnings: a repeated warning is written at most once per
//! interval, and each line says how many like it were held back since the
//! one before.
//!
//! Place in the pipeline: a leaf next to the metrics. Whoever warns owns one
//! [`WarnEvery`] per warning it repeats (the state store, the accept loop,
//! each circuit breaker, admission's `fail_closed` refusals, each route
//! target): there are no globals, so two gateways in one process (or two
//! tests) never hold each other's lines back. It only decides whether a
//! line goes out now; the caller writes it with the `suppressed` count. A
//! count held back when the warnings stop is reported with the next line.
//! Must not log itself, sleep or allocate per call.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One repeated warning's gate: at most one line per `every`.
#[derive(Debug)]
pub struct WarnEvery {
    every: Duration,
    state: Mutex<Gate>,
}

#[derive(Debug, Default)]
struct Gate {
    last: Option<Instant>,
    held: u64,
}

impl WarnEvery {
    pub fn new(every: Duration) -> Self {
        WarnEvery {
            every,
            state: Mutex::new(Gate::default()),
        }
    }

    /// At most one line a second: what the documentation promises.
    pub fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    /// `Some(suppressed)`: write the line now, with `suppressed` (how many
    /// were held back since the last one written); `None`: hold it back
    /// (it is counted).
    pub fn check(&self) -> Option<u64> {
        let now = Instant::now();
        let mut gate = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if gate
            .last
            .is_some_and(|at| now.duration_since(at) < self.every)
        {
            gate.held += 1;
            return None;
        }
        gate.last = Some(now);
        Some(std::mem::take(&mut gate.held))
    }
}

impl Default for WarnEvery {
    fn default() -> Self {
        Self::per_second()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval_with_the_count_held_back() {
        let w = WarnEvery::per_second();
        assert_eq!(w.check(), Some(0), "the first line goes out");
        for _ in 0..99 {
            assert_eq!(w.check(), None);
        }
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(w.check(), None, "still within the second");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(w.check(), Some(100), "the next line says what was held");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(w.check(), Some(0), "nothing held since");
    }
}
