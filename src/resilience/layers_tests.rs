//! The attempt layers: a spent rate limit refuses without calling the
//! provider, the breaker counts what it is told and opens, and the
//! upstream metrics name each outcome.

use super::*;
use crate::config::{BreakerSpec, RateSpec};
use crate::metrics::Metrics;
use tower::ServiceExt;

#[derive(Debug, PartialEq)]
enum E {
    Limited,
    Open,
    Boom,
}
impl Refusal for E {
    fn rate_limited(_: Duration) -> Self {
        E::Limited
    }
    fn breaker_open() -> Self {
        E::Open
    }
    fn saturated() -> Self {
        E::Limited
    }
}

#[tokio::test(start_paused = true)]
async fn a_spent_limit_refuses_without_calling_the_provider() {
    let limiter = Arc::new(Limiter::new(&RateSpec {
        per_second: 1.0,
        burst: 1,
    }));
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    let mock = mock.map_err(|_| E::Boom);
    let svc = RateLimitLayer::new(Some(limiter)).layer(mock);
    let first = tokio::spawn(svc.clone().oneshot(1));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req, 1);
    send.send_response(10);
    assert_eq!(first.await.unwrap(), Ok(10));
    assert_eq!(svc.oneshot(2).await, Err(E::Limited));
}

#[tokio::test(start_paused = true)]
async fn the_breaker_counts_what_it_is_told_and_opens() {
    let metrics = Arc::new(Metrics::new());
    let breaker = Breaker::new(
        BreakerSpec {
            failure_threshold: 2,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
            count_rate_limits: true,
        },
        Box::new(|_| {}),
    );
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    let mock = mock.map_err(|_| E::Boom);
    let svc = BreakerLayer::new(Arc::clone(&breaker), |e: &E| *e == E::Boom).layer(mock);
    for _ in 0..2 {
        let call = tokio::spawn(svc.clone().oneshot(1));
        let (_, send) = handle.next_request().await.unwrap();
        send.send_error("upstream down");
        assert_eq!(call.await.unwrap(), Err(E::Boom));
    }
    assert_eq!(svc.clone().oneshot(3).await, Err(E::Open), "open after two");
    let _ = metrics;
}

#[tokio::test]
async fn upstream_metrics_name_each_outcome() {
    let metrics = Arc::new(Metrics::new());
    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    let mock = mock.map_err(|_| E::Boom);
    let layer = UpstreamMetricsLayer::new("p", Arc::clone(&metrics), |r: &Result<u32, E>| {
        if r.is_ok() { "success" } else { "status_5xx" }
    });
    let svc = layer.layer(mock);
    let call = tokio::spawn(svc.clone().oneshot(1));
    handle.next_request().await.unwrap().1.send_response(1);
    call.await.unwrap().unwrap();
    let call = tokio::spawn(svc.oneshot(2));
    handle.next_request().await.unwrap().1.send_error("x");
    assert!(call.await.unwrap().is_err());
    let text = metrics.render();
    for outcome in ["success", "status_5xx"] {
        let line =
            format!("switchyard_upstream_requests_total{{outcome=\"{outcome}\",provider=\"p\"}} 1");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
}
