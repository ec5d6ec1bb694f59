//! The connection to Redis, kept up by a background task with backoff.
//!
//! Place in the pipeline: owned by the Redis round trips (`remote.rs`).
//! Starting never blocks or fails when Redis is down: the task connects in
//! the background. A caller that finds the link broken reports it, and the
//! task reconnects at once, then with jittered exponential backoff. While
//! the first attempt after a break is under way callers wait for it (within
//! their timeout); once it failed they are told "not connected" at once, so
//! an outage costs requests nothing. Must not decide what a failure means
//! for a request (that is `shared.rs`), nor log the URL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::connect::{Conn, Connector};
use super::types::Unavailable;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Clone)]
enum State {
    /// An attempt is under way (at start, or right after a break).
    Connecting,
    /// `generation` tells a stale break report from a current one.
    Up { conn: Conn, generation: u64 },
    /// The last attempt failed; the next one comes after a backoff.
    Down,
}

pub(crate) struct Link {
    state: Arc<watch::Sender<State>>,
    /// Stops the connection task when the store is dropped.
    _stop: DropGuard,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.state.borrow() {
            State::Connecting => "connecting",
            State::Up { .. } => "up",
            State::Down => "down",
        };
        f.debug_struct("Link").field("state", &state).finish()
    }
}

impl Link {
    /// Starts connecting in the background; `timeout` bounds each attempt
    /// and each reply on the connection.
    pub(crate) fn start(connector: Connector, timeout: Duration) -> Option<Link> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let state = Arc::new(watch::Sender::new(State::Connecting));
        let stop = CancellationToken::new();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        // A connect may take several round trips (TLS, AUTH, asking the
        // sentinels, reading a cluster's slots): bound the whole of it too.
        let bound = timeout.saturating_mul(4);
        runtime.spawn(run(connector, config, bound, state.clone(), stop.clone()));
        Some(Link {
            state,
            _stop: stop.drop_guard(),
        })
    }

    /// The live connection and its generation. Waits (at most `within`)
    /// while an attempt is under way; fails at once while Redis is down.
    pub(crate) async fn get(&self, within: Duration) -> Result<(Conn, u64), Unavailable> {
        let mut rx = self.state.subscribe();
        let settled = rx.wait_for(|s| !matches!(s, State::Connecting));
        match tokio::time::timeout(within, settled).await {
            Err(_) => Err(Unavailable::Timeout(within)),
            Ok(Err(_)) => Err(Unavailable::NotConnected),
            Ok(Ok(s)) => match &*s {
                State::Up { conn, generation } => Ok((conn.clone(), *generation)),
                _ => Err(Unavailable::NotConnected),
            },
        }
    }

    /// Reports that the connection of `generation` failed (an I/O error or
    /// no answer in time): the task reconnects, unless it already has.
    pub(crate) fn broken(&self, generation: u64) {
        self.state.send_if_modified(|s| match s {
            State::Up { generation: g, .. } if *g == generation => {
                *s = State::Connecting;
                true
            }
            _ => false,
        });
    }

    pub(crate) fn is_up(&self) -> bool {
        matches!(*self.state.borrow(), State::Up { .. })
    }
}

async fn run(
    mut connector: Connector,
    config: AsyncConnectionConfig,
    bound: Duration,
    state: Arc<watch::Sender<State>>,
    stop: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    let mut generation = 0;
    loop {
        let attempt = tokio::time::timeout(bound, connector.connect(&config));
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            r = attempt => r,
        };
        match attempt {
            Ok(Ok(conn)) => {
                generation += 1;
                backoff = MIN_BACKOFF;
                state.send_replace(State::Up { conn, generation });
                let mut rx = state.subscribe();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = async { rx.wait_for(|s| matches!(s, State::Connecting)).await.map(|_| ()) } => {}
                }
                // Reported broken: reconnect at once (callers wait for it).
            }
            failed => {
                match failed {
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "state store: cannot connect to Redis; backing off")
                    }
                    _ => tracing::debug!(
                        ?bound,
                        "state store: connecting to Redis timed out; backing off"
                    ),
                }
                state.send_replace(State::Down);
                // Full jitter over the upper half, so replicas spread out.
                let half = backoff / 2;
                let pause = half + half.mul_f64(fastrand::f64());
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
