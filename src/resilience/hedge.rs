//! Hedged requests: when a first attempt is slow, a second one races it and
//! the first good answer wins.
//!
//! Place in the pipeline: `routing` runs a call's first attempt through
//! [`race`] when its route hedges and the call may be sent twice (the
//! endpoint says it is idempotent; a stream counts as answered at its first
//! event). If the first attempt has not answered within the delay, `hedge`
//! is asked for a second attempt (it says no when the route's hedge cap or
//! retry budget is spent); both then run, the first success wins and the
//! other is dropped, which cancels it (everything it holds is released by
//! its guards). A failure waits for the other attempt. Must not know what
//! an attempt is or decide the delay or the cap: its caller does.

use std::future::Future;
use std::time::Duration;

/// How a hedged attempt ended.
#[derive(Debug)]
pub enum Raced<T, E> {
    /// No hedge was sent: the first attempt's own result.
    Alone(Result<T, E>),
    /// A hedge was sent and one of the two succeeded (`hedge`: the second
    /// one did); `lost` is the other one's error, when it had failed.
    Won {
        value: T,
        hedge: bool,
        lost: Option<E>,
    },
    /// A hedge was sent and both failed.
    BothFailed { first: E, hedge: E },
}

/// Runs `first`; if it has not finished after `delay` (`None`: never
/// hedge), asks `hedge` for a second attempt and races the two.
pub async fn race<T, E, A, B>(
    first: A,
    delay: Option<Duration>,
    hedge: impl FnOnce() -> Option<B>,
) -> Raced<T, E>
where
    A: Future<Output = Result<T, E>>,
    B: Future<Output = Result<T, E>>,
{
    let mut first = std::pin::pin!(first);
    let Some(delay) = delay else {
        return Raced::Alone(first.await);
    };
    tokio::select! {
        biased;
        r = &mut first => return Raced::Alone(r),
        _ = tokio::time::sleep(delay) => {}
    }
    let Some(second) = hedge() else {
        return Raced::Alone(first.await);
    };
    let mut second = std::pin::pin!(second);
    tokio::select! {
        biased;
        r = &mut first => match r {
            Ok(value) => Raced::Won { value, hedge: false, lost: None },
            Err(e1) => match second.await {
                Ok(value) => Raced::Won { value, hedge: true, lost: Some(e1) },
                Err(e2) => Raced::BothFailed { first: e1, hedge: e2 },
            },
        },
        r = &mut second => match r {
            Ok(value) => Raced::Won { value, hedge: true, lost: None },
            Err(e2) => match first.await {
                Ok(value) => Raced::Won { value, hedge: false, lost: Some(e2) },
                Err(e1) => Raced::BothFailed { first: e1, hedge: e2 },
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::time::{Instant, sleep};

    const MS: Duration = Duration::from_millis(1);

    async fn answer(after: Duration, v: Result<u32, &'static str>) -> Result<u32, &'static str> {
        sleep(after).await;
        v
    }

    /// Sets its flag when dropped before it finished.
    struct Cancelled(Arc<AtomicBool>, bool);
    impl Drop for Cancelled {
        fn drop(&mut self) {
            if !self.1 {
                self.0.store(true, Ordering::SeqCst);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_first_attempt_sends_no_hedge() {
        let mut asked = false;
        let r = race(answer(5 * MS, Ok(1)), Some(20 * MS), || {
            asked = true;
            Some(answer(MS, Ok(2)))
        })
        .await;
        assert!(matches!(r, Raced::Alone(Ok(1))));
        assert!(!asked);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_first_attempt_loses_to_the_hedge_and_is_cancelled() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        let first = async move {
            let mut guard = Cancelled(flag, false);
            sleep(400 * MS).await;
            guard.1 = true;
            Ok::<u32, &str>(1)
        };
        let start = Instant::now();
        let r = race(first, Some(20 * MS), || Some(answer(10 * MS, Ok(2)))).await;
        assert!(
            matches!(
                r,
                Raced::Won {
                    value: 2,
                    hedge: true,
                    lost: None
                }
            ),
            "{r:?}"
        );
        assert_eq!(start.elapsed(), 30 * MS, "delay + the hedge's own time");
        assert!(
            dropped.load(Ordering::SeqCst),
            "the slow attempt was cancelled"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_hedge_waits_for_the_first_and_failures_wait_for_the_other() {
        let r = race(answer(50 * MS, Ok(1)), Some(20 * MS), || {
            None::<std::future::Ready<_>>
        })
        .await;
        assert!(matches!(r, Raced::Alone(Ok(1))));
        // The hedge fails fast: the first one's answer still wins.
        let r = race(answer(50 * MS, Ok(1)), Some(20 * MS), || {
            Some(answer(MS, Err("hedge down")))
        })
        .await;
        assert!(
            matches!(
                r,
                Raced::Won {
                    value: 1,
                    hedge: false,
                    lost: Some("hedge down")
                }
            ),
            "{r:?}"
        );
        // The first fails after the hedge was sent: the hedge answers.
        let r = race(answer(30 * MS, Err("first down")), Some(20 * MS), || {
            Some(answer(40 * MS, Ok(2)))
        })
        .await;
        assert!(
            matches!(
                r,
                Raced::Won {
                    value: 2,
                    hedge: true,
                    lost: Some("first down")
                }
            ),
            "{r:?}"
        );
        let r = race(answer(30 * MS, Err("a")), Some(20 * MS), || {
            Some(answer(MS, Err("b")))
        })
        .await;
        assert!(
            matches!(
                r,
                Raced::BothFailed {
                    first: "a",
                    hedge: "b"
                }
            ),
            "{r:?}"
        );
        // No delay: never hedged.
        let r = race(answer(500 * MS, Ok(1)), None, || Some(answer(MS, Ok(2)))).await;
        assert!(matches!(r, Raced::Alone(Ok(1))));
    }
}
