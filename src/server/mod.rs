//! The server: accept loop, pipeline assembly, background tasks, drain.
//!
//! Place in the pipeline: the top. [`Gateway::start`] loads the policy,
//! binds, and hands the listener to `accept` (connections, timeouts, drain),
//! which serves every connection with the edge stack that `stack` builds
//! once (the pipeline, assembled in one place). Shutdown is an explicit
//! `CancellationToken`: on cancel the gateway turns not ready, keeps serving
//! for `drain_delay`, stops accepting, lets in-flight requests finish for up
//! to `shutdown_grace`, then returns. Reload triggers (file watch, SIGHUP,
//! `/admin/reload`) all call `AppState::reload`. This is the only module
//! that knows HTTP status codes.

mod accept;
mod admission;
mod chat;
mod chat_stream;
mod completions;
mod context;
mod cors;
mod embeddings;
pub mod http;
mod keys;
mod limit;
mod messages;
mod rerank;
mod responses;
mod router;
mod stack;
#[cfg(test)]
mod stack_tests;
pub mod state;
mod usage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, ConfigErrors, Env};
use crate::metrics::Metrics;
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
            tokio::spawn(reload_on_sighup(Arc::clone(&state), shutdown.clone()));
        }
        tokio::spawn(prune_limiters(Arc::clone(&state), shutdown.clone()));
        let task = tokio::spawn(accept::serve(listener, Arc::clone(&state), shutdown));
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
async fn reload_on_sighup(state: Arc<AppState>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP");
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        let _ = state.reload("sighup", true).await;
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(_state: Arc<AppState>, _shutdown: CancellationToken) {}

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
