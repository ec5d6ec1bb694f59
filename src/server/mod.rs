//! The server: the edge, access control, the endpoints and the flows they
//! share, the gateway state, and the gateway's lifecycle.
//!
//! Place in the pipeline: the top. [`Gateway::start`] loads the policy,
//! binds, and hands the listener to `edge::accept` (connections, timeouts,
//! drain), which serves every connection with the edge stack that
//! `edge::stack` builds once. A request's one context (`edge::context`) is
//! made at the edge and passed `&mut` through `router` (one `match` of
//! method and path) to its endpoint (`endpoints/`), which uses `access/`
//! (keys, admission, usage) and a shared flow (`flows/`) over `routing`.
//! Shutdown is an explicit `CancellationToken`: on cancel the gateway turns
//! not ready, keeps serving for `drain_delay`, stops accepting, lets
//! in-flight requests finish for up to `shutdown_grace`, then returns.
//! Reload triggers (file watch, SIGHUP, `/admin/reload`) all call
//! `AppState::reload`. This is the only module that knows HTTP status codes
//! (`http`).
//!
//! Adding an endpoint, exactly:
//! 1. Its wire types in `src/api/<name>.rs`: the request's `parse` and
//!    `Routed` (model and output bound, for the token estimate), and its
//!    answer's shapes.
//! 2. `src/server/endpoints/<name>.rs` with `pub(crate) async fn
//!    handle(rc: &mut RequestCtx, req) -> Result<Response<Body>,
//!    GatewayError>`: `parse_routed` (body, route, access, admission), a
//!    check of what the route's targets can do (`Need`), a `routing::Call`
//!    for its upstream work, and one of the shared flows (`flows::call`
//!    for one answer, `flows::items` for per-item cached lists); plus
//!    `pub(crate) mod <name>;` in `endpoints/mod.rs`.
//! 3. One arm in `router.rs`'s `match`: path, endpoint label, methods.
//!
//! Nothing else changes: routing, retries, breakers, limits, budgets, the
//! cache, usage, metrics and the access log apply to it as to every
//! endpoint. A provider kind that serves it natively lists its path in its
//! `Capabilities::native`.

mod access;
mod edge;
mod endpoints;
mod flows;
pub mod http;
mod router;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, ConfigErrors, Env};
use crate::metrics::Metrics;
use edge::busy_poll::BusyPoll;
pub use edge::busy_poll::DEFAULT_BUSY_POLL;
pub use state::{AppState, ReloadOutcome};

pub struct GatewayOptions {
    pub policy_dir: PathBuf,
    pub env: Env,
    /// Overrides `server.listen` from the policy.
    pub listen: Option<String>,
    /// Poll the policy folder for changes every `server.reload_interval`.
    pub watch: bool,
    /// Reload on SIGHUP (leave off when several gateways share a process).
    pub sighup: bool,
    /// Overrides `server.drain_delay`.
    pub drain_delay: Option<std::time::Duration>,
    /// How long the runtime may keep polling sockets after a request
    /// starts or ends instead of sleeping (`--busy-poll`; see
    /// [`DEFAULT_BUSY_POLL`]); `Duration::ZERO` turns it off.
    pub busy_poll: std::time::Duration,
    /// Called before each admitted request is dispatched. For tests only:
    /// the binary leaves it `None`.
    pub dispatch_hook: Option<DispatchHook>,
}

/// Called with a request's path and headers just before the router sees
/// it, inside the edge layers: lets a test make a handler fail in ways no
/// input can (a panic) to check what the edge does about it.
pub type DispatchHook = Arc<dyn Fn(&str, &::http::HeaderMap) + Send + Sync>;

#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    state: Arc<AppState>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("policy_dir", &self.policy_dir)
            .field("listen", &self.listen)
            .field("watch", &self.watch)
            .field("sighup", &self.sighup)
            .field("drain_delay", &self.drain_delay)
            .field("busy_poll", &self.busy_poll)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Loads the policy and starts serving; returns once the port is bound.
    pub async fn start(
        opts: GatewayOptions,
        shutdown: CancellationToken,
    ) -> Result<Gateway, ConfigErrors> {
        let metrics = Arc::new(Metrics::new());
        let mut state = AppState::load(
            opts.policy_dir.clone(),
            opts.env.clone(),
            metrics,
            opts.listen.is_some(),
        )
        .await?;
        state.drain_delay_override = opts.drain_delay;
        state.dispatch_hook = opts.dispatch_hook;
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        state.busy_poll = BusyPoll::new(opts.busy_poll, workers, &state.metrics);
        let state = Arc::new(state);
        let policy = state.runtime.load().policy.clone();
        let listen = opts
            .listen
            .clone()
            .unwrap_or_else(|| policy.server.listen.clone());
        let listener = TcpListener::bind(&listen).await.map_err(|e| {
            ConfigErrors(vec![ConfigError {
                location: "server.listen".into(),
                message: format!("cannot listen on {listen}: {e}"),
            }])
        })?;
        let addr = listener.local_addr().map_err(|e| {
            ConfigErrors(vec![ConfigError {
                location: "server.listen".into(),
                message: e.to_string(),
            }])
        })?;
        if opts.watch {
            tokio::spawn(watch_folder(Arc::clone(&state), shutdown.clone()));
        }
        if opts.sighup {
            // Registered before `start` returns (and the caller says it is
            // listening), so an early SIGHUP reloads instead of killing.
            reload_on_sighup(Arc::clone(&state), shutdown.clone());
        }
        for lane in 0..state.busy_poll.lanes() {
            tokio::spawn(Arc::clone(&state.busy_poll).lane(lane, shutdown.clone()));
        }
        tokio::spawn(prune_limiters(Arc::clone(&state), shutdown.clone()));
        tokio::spawn(maintain_cache(Arc::clone(&state), shutdown.clone()));
        // The first sample before serving: the live page's windows start
        // at zero traffic, not at the sampler's first tick.
        sample_stats_now(&state);
        tokio::spawn(sample_stats(Arc::clone(&state), shutdown.clone()));
        let task = tokio::spawn(edge::accept::serve(listener, Arc::clone(&state), shutdown));
        tracing::info!(%addr, "switchyard listening");
        Ok(Gateway { addr, state, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Waits until the gateway has shut down and drained.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

async fn watch_folder(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut last_seen = state.runtime.load().fingerprint;
    loop {
        let interval = state.runtime.load().policy.server.reload_interval;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let Some(now) = state.folder_fingerprint().await else {
            continue;
        };
        // Each distinct folder content is tried once, so a bad file is
        // reported (and counted) once, not on every poll.
        if now != last_seen {
            last_seen = now;
            let _ = state.reload("file-watch", false).await;
        }
    }
}

#[cfg(unix)]
fn reload_on_sighup(state: Arc<AppState>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            let _ = state.reload("sighup", true).await;
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(_state: Arc<AppState>, _shutdown: CancellationToken) {}

/// One sample a second for the live page's windows and sparklines, while
/// the page is enabled (`server.dashboard.enabled`, read at each tick so a
/// reload turns it on or off). Off the request path: it reads the metrics.
async fn sample_stats(state: Arc<AppState>, shutdown: CancellationToken) {
    use crate::metrics::window::SAMPLE_EVERY;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        sample_stats_now(&state);
    }
}

fn sample_stats_now(state: &AppState) {
    if state.runtime.load().policy.server.dashboard.enabled {
        let sample = crate::metrics::sample::Sample::take(&state.metrics);
        state.stats.push(sample);
    } else if !state.stats.is_empty() {
        state.stats.clear();
    }
}

/// The response cache's upkeep on a timer (`cache::housekeeping`): expired
/// entries go, and their memory returns, even when nothing reads or scrapes
/// the cache.
async fn maintain_cache(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(crate::cache::MAINTAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cache = Arc::clone(&state.runtime.load().cache);
        cache.maintain().await;
    }
}

async fn prune_limiters(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
        }
        if let Some(l) = &state.runtime.load().client_limiter {
            l.prune();
        }
    }
}
