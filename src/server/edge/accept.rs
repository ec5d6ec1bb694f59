//! The accept loop: client connections, their limits and timeouts, and the
//! order of a graceful shutdown.
//!
//! Place in the pipeline: the outermost layer. It waits for a connection
//! slot (`server.connections.max`: beyond it connections wait in the
//! kernel's backlog instead of exhausting file descriptors), accepts with
//! backoff on errors (a full fd table must not spin; the warning is written
//! at most once a second, with a count), closes at once a connection from
//! a peer that holds `max_per_peer` already (`peers`), and serves HTTP/1.1
//! and HTTP/2 with a first-request timeout (a connection that has not sent a
//! whole request head within `first_request_timeout` of being accepted is
//! closed, so idle sockets cannot sit on slots), a header-read timeout
//! (which, for HTTP/1, also bounds the wait for the next request on a
//! kept-alive connection), HTTP/2 keep-alive pings and a stream cap, and an
//! idle timeout that closes a connection with no request in flight (the
//! three timeouts kept by one timer per connection, which requests do not touch,
//! and which, like the drain signal, is looked at only when its own wake-up
//! comes: `crate::on_wake`).
//! Settings are read from the live policy for each new connection. Every
//! connection is served by a clone of the edge stack that `stack` builds
//! once, with the connection's peer address and activity counter added to
//! each request; after each poll of a connection, the access lines of the
//! requests it has just answered are written (`access_line`). Shutdown
//! goes: not ready (`/readyz` 503) for `server.drain_delay` while still
//! serving, then stop accepting, then drain in-flight requests and streams
//! within `server.shutdown_grace`.
//! Must not look into requests: `stack` does that.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::conn::{ConnActivity, ConnInfo};
use super::peers::Peers;
use super::stack;
use crate::config::ConnectionSettings;
use crate::metrics::warn::WarnEvery;
use crate::on_wake::OnWake;
use crate::server::state::AppState;

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) {
    let stop_accepting = CancellationToken::new();
    tokio::spawn(go_unready_then_stop(
        Arc::clone(&state),
        shutdown,
        stop_accepting.clone(),
    ));
    // Draining: each connection holds a receiver until it ends; a send
    // asks them to finish (HTTP/1: after the request in flight; HTTP/2:
    // GOAWAY), and the drain is over when every receiver is gone.
    let (drain, draining) = tokio::sync::watch::channel(());
    let edge = stack::build(&state);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let peers = Arc::new(Peers::default());
    let (accept_warnings, peer_warnings) = (WarnEvery::per_second(), WarnEvery::per_second());
    let closed = |reason: &str| {
        state
            .metrics
            .connections_closed
            .with_label_values(&[reason])
    };
    let (over_cap, unrequested, idled, headless) = (
        closed("per_peer_limit"),
        closed("first_request_timeout"),
        closed("idle_timeout"),
        closed("header_read_timeout"),
    );
    loop {
        let slot = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            slot = state.connection_limit.acquire() => slot,
        };
        let (stream, peer) = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    a
                }
                Err(e) => {
                    state.metrics.accept_errors.inc();
                    if let Some(suppressed) = accept_warnings.check() {
                        tracing::warn!(suppressed, "accept failed: {e}; backing off");
                    }
                    tokio::select! {
                        _ = stop_accepting.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
        };
        let settings = state.runtime.load().policy.server.connections.clone();
        let Ok(peer_place) = peers.enter(peer.ip(), &settings) else {
            over_cap.inc();
            if let Some(suppressed) = peer_warnings.check() {
                let (ip, max) = (peer.ip(), settings.max_per_peer);
                tracing::warn!(%ip, max, suppressed, "peer holds its connections.max_per_peer; closing a new one");
            }
            continue; // closes it, and gives the slot back
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(ConnActivity::new());
        let info = ConnInfo {
            peer,
            activity: Arc::clone(&activity),
        };
        let svc = TowerToHyperService::new(edge.clone().map_request(
            move |mut req: ::http::Request<Incoming>| {
                if req.version() == ::http::Version::HTTP_2 {
                    info.activity.h2.store(true, Ordering::Relaxed);
                }
                req.extensions_mut().insert(info.clone());
                req
            },
        ));
        let conn = builder(&settings)
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let metrics = Arc::clone(&state.metrics);
        let (unrequested, idled, headless) = (unrequested.clone(), idled.clone(), headless.clone());
        let mut draining = draining.clone();
        tokio::spawn(async move {
            let _places = (slot, peer_place);
            metrics.client_connections.inc();
            let mut conn = std::pin::pin!(conn);
            // The side watches, each polled only when its own wake-up
            // came: the connection's task wakes for every request and
            // every chunk of a stream.
            let waits = Waits {
                first: settings.first_request_timeout,
                idle: settings.idle_timeout,
                head: settings.header_read_timeout,
            };
            let mut quiet = std::pin::pin!(OnWake::new(quiet(&activity, waits)));
            let mut drain = std::pin::pin!(OnWake::new(async move {
                let _ = draining.changed().await;
                draining
            }));
            // Held from the drain signal to the connection's end.
            let mut drained = None;
            let ended = std::future::poll_fn(|cx| {
                if drained.is_none()
                    && let Poll::Ready(rx) = drain.as_mut().poll(cx)
                {
                    drained = Some(rx);
                    conn.as_mut().graceful_shutdown();
                }
                if let Poll::Ready(why) = quiet.as_mut().poll(cx) {
                    return Poll::Ready(Err(why));
                }
                // After each poll (which ends with hyper's flush), the
                // access lines of the requests just answered: off the
                // answer's path.
                let polled = conn.as_mut().poll(cx);
                activity.after_write.run();
                polled.map(Ok)
            })
            .await;
            match ended {
                Ok(Err(e)) => tracing::debug!("connection ended: {e}"),
                Ok(Ok(())) => {}
                Err(Quiet::Idle) => {
                    idled.inc();
                    tracing::debug!("closing idle connection");
                }
                Err(Quiet::HeadUnread) => {
                    headless.inc();
                    tracing::debug!(
                        "closing an HTTP/1 connection whose next request head did not come"
                    );
                }
                Err(Quiet::Unrequested) => {
                    unrequested.inc();
                    tracing::debug!("closing a connection that sent no request");
                }
            }
            activity.after_write.run();
            metrics.client_connections.dec();
        });
    }
    drop(listener);
    drop(draining);
    let grace = state.runtime.load().policy.server.shutdown_grace;
    tracing::info!(?grace, "stopped accepting: draining in-flight requests");
    drain.send_replace(());
    match tokio::time::timeout(grace, drain.closed()).await {
        Ok(()) => tracing::info!("drained"),
        Err(_) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

fn builder(s: &ConnectionSettings) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // The header-read timeout is kept by the connection's quiet timer
    // (`quiet`), not by hyper's, which it arms and drops for every request.
    b.http1().header_read_timeout(None);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(s.http2_keep_alive_interval)
        .keep_alive_timeout(s.http2_keep_alive_timeout)
        .max_concurrent_streams(s.http2_max_concurrent_streams);
    b
}

/// Why a quiet connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quiet {
    /// No request within the first-request timeout of being accepted.
    Unrequested,
    /// No request in flight for the idle timeout.
    Idle,
    /// HTTP/1: no whole request head within the header-read timeout of
    /// the connection starting to wait for one.
    HeadUnread,
}

/// The quiet timer's limits (`server.connections`).
#[derive(Debug, Clone, Copy)]
struct Waits {
    /// `first_request_timeout`.
    first: Duration,
    /// `idle_timeout`.
    idle: Duration,
    /// `header_read_timeout`: HTTP/1 only.
    head: Duration,
}

impl Waits {
    /// How long the connection may have no request in flight, and why it
    /// is closed after that: an HTTP/1 connection with no request in flight
    /// is waiting for the next request's head, so the header-read timeout
    /// bounds that wait too (as hyper's own timer did).
    fn quiet(&self, activity: &ConnActivity) -> (Duration, Quiet) {
        if self.head < self.idle && !activity.h2.load(Ordering::Relaxed) {
            (self.head, Quiet::HeadUnread)
        } else {
            (self.idle, Quiet::Idle)
        }
    }
}

/// Completes when the connection should be closed for quiet: it sent no
/// request within `first` of being accepted, or has had none in flight for
/// `idle` (HTTP/1: `head`, when shorter), whichever comes first. One timer:
/// it sleeps until the earliest moment either could be true, and looks
/// again when it fires; requests never wake it or re-arm it.
async fn quiet(activity: &ConnActivity, waits: Waits) -> Quiet {
    loop {
        let unrequested = (!activity.requested.load(Ordering::SeqCst))
            .then(|| (activity.opened + waits.first, Quiet::Unrequested));
        let (wait, why) = waits.quiet(activity);
        let idled = activity.quiet_since().map(|t| (t + wait, why));
        let due = match (unrequested, idled) {
            (Some(u), Some(i)) => Some(if u.0 <= i.0 { u } else { i }),
            (u, i) => u.or(i),
        };
        match due {
            Some((at, why)) if at <= tokio::time::Instant::now() => return why,
            Some((at, _)) => tokio::time::sleep_until(at).await,
            // A request in flight: nothing can be due before `wait` from now.
            None => tokio::time::sleep(wait).await,
        }
    }
}

/// Shutdown, in the order load balancers need: fail readiness first and
/// keep serving for `drain_delay`, then stop accepting.
async fn go_unready_then_stop(
    state: Arc<AppState>,
    shutdown: CancellationToken,
    stop_accepting: CancellationToken,
) {
    shutdown.cancelled().await;
    state.draining.store(true, Ordering::SeqCst);
    let delay = state.drain_delay();
    tracing::info!(?delay, "shutting down: not ready, still serving");
    tokio::time::sleep(delay).await;
    stop_accepting.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::edge::conn::ConnGuard;
    use tokio::time::Instant;

    const FIRST: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);
    /// A header-read timeout longer than the idle one: never the reason.
    const LONG: Duration = Duration::from_secs(3600);

    fn waits(first: Duration, idle: Duration) -> Waits {
        Waits {
            first,
            idle,
            head: LONG,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_closes_at_the_first_request_timeout() {
        let a = ConnActivity::new();
        assert_eq!(quiet(&a, waits(FIRST, IDLE)).await, Quiet::Unrequested);
        assert_eq!(a.opened.elapsed(), FIRST);
        // With the idle timeout the shorter, that one closes it.
        let a = ConnActivity::new();
        assert_eq!(quiet(&a, waits(IDLE, FIRST)).await, Quiet::Idle);
        assert_eq!(a.opened.elapsed(), FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_holds_it_open_and_idle_counts_from_its_end() {
        let a = Arc::new(ConnActivity::new());
        let watch = quiet(&a, waits(FIRST, IDLE));
        tokio::pin!(watch);
        let guard = ConnGuard::enter(&a);
        // In flight for three idle timeouts: never closed.
        let busy = tokio::time::sleep(IDLE * 3);
        tokio::select! {
            why = &mut watch => panic!("closed with a request in flight: {why:?}"),
            () = busy => {}
        }
        let ended = Instant::now();
        drop(guard);
        assert_eq!(watch.await, Quiet::Idle);
        assert_eq!(ended.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn http1_waits_for_a_head_at_most_the_header_read_timeout() {
        let head = Duration::from_secs(30);
        let w = Waits {
            first: FIRST,
            idle: IDLE,
            head,
        };
        let a = Arc::new(ConnActivity::new());
        drop(ConnGuard::enter(&a));
        let ended = Instant::now();
        assert_eq!(quiet(&a, w).await, Quiet::HeadUnread);
        assert_eq!(ended.elapsed(), head);
        // HTTP/2 has no such timeout: its idle one closes it.
        let a = Arc::new(ConnActivity::new());
        a.h2.store(true, Ordering::Relaxed);
        drop(ConnGuard::enter(&a));
        let ended = Instant::now();
        assert_eq!(quiet(&a, w).await, Quiet::Idle);
        assert_eq!(ended.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_request_moves_the_idle_deadline() {
        let a = Arc::new(ConnActivity::new());
        drop(ConnGuard::enter(&a));
        tokio::time::sleep(IDLE / 2).await;
        drop(ConnGuard::enter(&a));
        let second = Instant::now();
        assert_eq!(quiet(&a, waits(FIRST, IDLE)).await, Quiet::Idle);
        assert_eq!(second.elapsed(), IDLE);
    }
}
