//! Busy polling in the real binary: by default, requests one at a time wake
//! the polling lanes, which poll for a while, give up, and count the time;
//! `SWITCHYARD_BUSY_POLL=0` turns them off; a window without a unit is a
//! command-line error. (The lanes' window logic has unit tests in
//! `server::edge::busy_poll`; what it does to latency is the c=1 row of
//! `cargo bench --bench proxy`.)

use crate::common;

use common::faults::route_yaml;
use common::served::{BIN, Served};
use common::*;

async fn chats(served: &Served, n: usize) {
    for i in 0..n {
        let r = served.chat("m", &format!("hi {i}")).await;
        assert_eq!(r.status(), 200);
    }
}

fn policy(up: &FakeUpstream) -> String {
    let route = route_yaml("m", &["p0"], "");
    format!("{}routes:\n{route}", providers_yaml(&[up], ""))
}

#[tokio::test]
async fn requests_one_at_a_time_are_polled_for_by_default_within_the_window() {
    let up = FakeUpstream::openai().await;
    let served = Served::with_policy(&policy(&up), &[]).await;
    let window = served.metric("switchyard_busy_poll_window_seconds ").await;
    assert_eq!(window, 100e-6, "the default window, before any request");
    chats(&served, 20).await;
    // A lane counts its time when it gives up, at most 100 us after the
    // last request ended.
    let mut polled = 0.0;
    eventually(async || {
        polled = served.metric("switchyard_busy_poll_seconds_total ").await;
        polled > 0.0
    })
    .await;
    assert!(polled > 0.0, "no lane polled");
    let window = served.metric("switchyard_busy_poll_window_seconds ").await;
    assert!((0.0..=100e-6).contains(&window), "window {window}");
    assert_eq!(served.metric("switchyard_requests_in_flight ").await, 0.0);
    served.stop().await;
}

#[tokio::test]
async fn busy_poll_0_turns_the_lanes_off() {
    let up = FakeUpstream::openai().await;
    let served = Served::with_policy(&policy(&up), &[("SWITCHYARD_BUSY_POLL", "0")]).await;
    chats(&served, 20).await;
    // A window of 0 from the start: no lane was made to count anything.
    assert_eq!(
        served.metric("switchyard_busy_poll_seconds_total ").await,
        0.0
    );
    assert_eq!(
        served.metric("switchyard_busy_poll_window_seconds ").await,
        0.0
    );
    served.stop().await;
}

#[test]
fn a_window_without_a_unit_is_a_command_line_error() {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--busy-poll", "100"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--busy-poll") && err.contains("needs a unit (us, ms, s, m or h)"),
        "{err}"
    );
}
