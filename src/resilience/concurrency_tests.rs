//! Unit tests of the concurrency limit, on paused time: fixed limits and
//! the share, waiting, the adaptive algorithm against a simulated capped
//! upstream, latency, one cut per round, and slow start after a breaker.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn spec(limit: LimitSpec, max_wait: Duration) -> ConcurrencySpec {
    ConcurrencySpec { limit, max_wait }
}

fn adaptive(min: usize, max: usize) -> Arc<ConcurrencyLimit> {
    let spec = spec(LimitSpec::Adaptive { min, max }, Duration::ZERO);
    ConcurrencyLimit::new(spec, 10_000, Box::new(|_, _| {}))
}

#[tokio::test(start_paused = true)]
async fn a_fixed_limit_refuses_past_it_and_the_share_caps_it() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&seen);
    let limit = ConcurrencyLimit::new(
        spec(LimitSpec::Fixed(Some(3)), Duration::ZERO),
        10,
        Box::new(move |_, in_flight| s.store(in_flight, Ordering::SeqCst)),
    );
    let held: Vec<Slot> = (0..3).map(|_| limit.try_acquire().unwrap()).collect();
    assert!(limit.try_acquire().is_none());
    assert_eq!(seen.load(Ordering::SeqCst), 3, "the observer follows");
    assert_eq!(limit.acquire(true).await.err(), Some(Refused::AtLimit));
    drop(held);
    assert_eq!(limit.in_flight(), 0);
    limit.set_share(2);
    assert_eq!(limit.limit(), 2, "the share is a ceiling on every limit");
}

#[tokio::test(start_paused = true)]
async fn the_last_target_waits_for_a_slot_within_max_wait_and_waiters_count_in_the_share() {
    let limit = ConcurrencyLimit::new(
        spec(LimitSpec::Fixed(Some(1)), Duration::from_secs(2)),
        3,
        Box::new(|_, _| {}),
    );
    let first = limit.try_acquire().unwrap();
    let waiter = tokio::spawn({
        let limit = Arc::clone(&limit);
        async move { limit.acquire(true).await.map(drop) }
    });
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_millis(500)).await;
    drop(first);
    assert_eq!(waiter.await.unwrap(), Ok(()), "served once a slot freed");

    let held = limit.try_acquire().unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let limit = Arc::clone(&limit);
            tokio::spawn(async move { limit.acquire(true).await.map(drop) })
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(
        limit.acquire(true).await.err(),
        Some(Refused::ShareFull),
        "one in flight and two waiting fill a share of three"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    for w in waiters {
        assert_eq!(w.await.unwrap(), Err(Refused::WaitTimeout));
    }
    drop(held);
    assert!(limit.try_acquire().is_some(), "the queue is empty again");
}

/// One round trip against an upstream that takes `cap` calls at once and
/// answers 429 to the rest: as many calls as the limit allows (of
/// `demand`), 429s answered at once, the rest after 50ms. Returns the 429s.
async fn round(limit: &Arc<ConcurrencyLimit>, demand: usize, cap: usize) -> usize {
    let slots: Vec<Slot> = (0..demand).map_while(|_| limit.try_acquire()).collect();
    let (ok, refused) = slots.split_at(slots.len().min(cap));
    for s in refused {
        s.record(Signal::Overload);
    }
    tokio::time::advance(Duration::from_millis(50)).await;
    for s in ok {
        s.record(Signal::Success);
    }
    refused.len()
}

#[tokio::test(start_paused = true)]
async fn adaptive_settles_under_a_capped_upstream_without_a_429_storm_and_rises_when_it_lifts() {
    let limit = adaptive(1, 200);
    // Slow start: doubling-ish per round until the cap answers 429.
    let mut rounds_to_cap = 0;
    while round(&limit, 64, 8).await == 0 {
        rounds_to_cap += 1;
        assert!(rounds_to_cap < 20, "slow start never reached the cap");
    }
    assert!(
        rounds_to_cap <= 8,
        "exponential start: {rounds_to_cap} rounds"
    );
    // Steady state: mostly at or under the cap, rare probes above it.
    let (mut calls, mut refused, mut at_or_under) = (0, 0, 0);
    for _ in 0..300 {
        let before = limit.limit();
        calls += before;
        refused += round(&limit, 64, 8).await;
        at_or_under += usize::from(before <= 8);
    }
    let rate = refused as f64 / calls as f64;
    assert!(rate < 0.02, "{refused} 429s in {calls} calls");
    // Above the cap only for a probe round now and then.
    assert!(
        at_or_under >= 270,
        "at or under the cap in {at_or_under}/300 rounds"
    );
    assert!(limit.limit() >= 5, "not collapsed: {}", limit.limit());
    // The cap lifts: the limit climbs well past the old ceiling.
    for _ in 0..150 {
        round(&limit, 64, 64).await;
    }
    assert!(limit.limit() >= 24, "rose to {}", limit.limit());
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_overloads_from_one_round_cuts_once() {
    let limit = adaptive(1, 100);
    while limit.limit() < 20 {
        round(&limit, 40, 40).await;
    }
    let before = limit.limit();
    let slots: Vec<Slot> = (0..before).map_while(|_| limit.try_acquire()).collect();
    for s in &slots {
        s.record(Signal::Overload);
    }
    assert_eq!(limit.limit(), (before as f64 * BACKOFF).floor() as usize);
    drop(slots);
    // Calls started after the cut are a new round.
    let s = limit.try_acquire().unwrap();
    s.record(Signal::Overload);
    assert_eq!(
        limit.limit(),
        ((before as f64 * BACKOFF).floor() * BACKOFF).floor() as usize
    );
}

#[tokio::test(start_paused = true)]
async fn timeouts_bring_it_down_to_min_and_latency_rise_cuts_it() {
    let limit = adaptive(2, 100);
    for _ in 0..6 {
        round(&limit, 64, 64).await;
    }
    let grown = limit.limit();
    assert!(grown >= 30, "{grown}");
    for _ in 0..20 {
        let s = limit.try_acquire().unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        s.record(Signal::Overload);
    }
    assert_eq!(limit.limit(), 2, "timeouts: down to min, not below");

    // Latency: steady at 50ms while busy, then four times slower.
    let limit = adaptive(1, 100);
    for _ in 0..40 {
        round(&limit, 30, 30).await;
    }
    let steady = limit.limit();
    for _ in 0..10 {
        let slots: Vec<Slot> = (0..30).map_while(|_| limit.try_acquire()).collect();
        tokio::time::advance(Duration::from_millis(200)).await;
        for s in &slots {
            s.record(Signal::Success);
        }
    }
    assert!(limit.limit() < steady, "{} !< {steady}", limit.limit());
}

#[tokio::test(start_paused = true)]
async fn after_an_open_breaker_the_limit_ramps_up_instead_of_jumping_back() {
    let limit = ConcurrencyLimit::new(
        spec(LimitSpec::Fixed(Some(100)), Duration::ZERO),
        1000,
        Box::new(|_, _| {}),
    );
    let refused = limit.try_acquire().unwrap();
    refused.record(Signal::Unavailable);
    drop(refused);
    assert_eq!(limit.limit(), 100, "refusals alone change nothing");
    let probe = limit.try_acquire().unwrap();
    probe.record(Signal::Success);
    drop(probe);
    assert_eq!(
        limit.limit(),
        10,
        "the first success starts the ramp at a tenth"
    );
    let mut seen = vec![];
    while limit.limit() < 100 {
        seen.push(limit.limit());
        round(&limit, 1000, 1000).await;
        assert!(seen.len() < 20, "never ramped back: {seen:?}");
    }
    assert!(
        seen.windows(2).all(|w| w[1] > w[0]),
        "grows each round: {seen:?}"
    );

    let limit = adaptive(2, 100);
    for _ in 0..6 {
        round(&limit, 64, 64).await;
    }
    let learned = limit.limit();
    limit.try_acquire().unwrap().record(Signal::Unavailable);
    limit.try_acquire().unwrap().record(Signal::Success);
    assert_eq!(limit.limit(), 2, "adaptive: from min");
    for _ in 0..10 {
        round(&limit, 200, 200).await;
    }
    assert!(limit.limit() >= learned, "back to what it had learned");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_slot_or_waiter_gives_everything_back() {
    let limit = ConcurrencyLimit::new(
        spec(LimitSpec::Fixed(Some(1)), Duration::from_secs(60)),
        2,
        Box::new(|_, _| {}),
    );
    let held = limit.try_acquire().unwrap();
    let waiter = tokio::spawn({
        let limit = Arc::clone(&limit);
        async move { limit.acquire(true).await.map(drop) }
    });
    tokio::task::yield_now().await;
    waiter.abort();
    let _ = waiter.await;
    assert_eq!(
        limit.acquire(true).await.err(),
        Some(Refused::WaitTimeout),
        "queued (not share_full): the cancelled waiter left the queue"
    );
    drop(held);
    assert_eq!(limit.in_flight(), 0);
}
