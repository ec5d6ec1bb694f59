//! The server: accept loop, pipeline assembly, background tasks, drain.
//!
//! Place in the pipeline: the top. [`Gateway::start`] loads the policy,
//! binds, and serves HTTP/1.1 and HTTP/2 through a tower stack (load shed +
//! global concurrency limit) around the router. Shutdown is an explicit
//! `CancellationToken`: on cancel it stops accepting, marks itself not
//! ready, lets in-flight requests finish for up to `shutdown_grace`, then
//! returns. Reload triggers (file watch, SIGHUP, `/admin/reload`) all call
//! `AppState::reload`. This is the only module that knows HTTP status codes.

mod chat;
mod embeddings;
pub mod http;
mod router;
pub mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::{ServiceBuilder, ServiceExt};

use crate::api::{ErrorKind, GatewayError};
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
}

pub struct Gateway {
    addr: SocketAddr,
    state: Arc<AppState>,
    task: JoinHandle<()>,
}

impl Gateway {
    /// Loads the policy and starts serving; returns once the port is bound.
    pub async fn start(
        opts: GatewayOptions,
        shutdown: CancellationToken,
    ) -> Result<Gateway, ConfigErrors> {
        let metrics = Arc::new(Metrics::new());
        let state =
            Arc::new(AppState::load(opts.policy_dir.clone(), opts.env.clone(), metrics).await?);
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
        let limit = Arc::new(Semaphore::new(policy.server.max_concurrent_requests));
        let task = tokio::spawn(serve(listener, Arc::clone(&state), limit, shutdown));
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

async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let st = Arc::clone(&state);
        let limited = ServiceBuilder::new()
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
                Arc::clone(&limit),
            ))
            .service_fn(move |req: ::http::Request<Incoming>| {
                let st = Arc::clone(&st);
                async move { Ok::<_, Infallible>(router::handle(st, peer, req).await) }
            });
        let limited = tower::util::BoxCloneService::new(limited);
        let svc = tower::service_fn(move |req| {
            let limited = limited.clone();
            async move { Ok::<_, Infallible>(limited.oneshot(req).await.unwrap_or_else(overloaded)) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    state.draining.store(true, Ordering::SeqCst);
    let grace = state.runtime.load().policy.server.shutdown_grace;
    tracing::info!(?grace, "shutting down: draining in-flight requests");
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("drained"),
        Err(_) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// Load shedding's refusal becomes a 503 in the OpenAI error format.
fn overloaded(_: tower::BoxError) -> ::http::Response<http::Body> {
    let e = GatewayError::new(
        ErrorKind::Overloaded,
        "The gateway is at its concurrency limit; retry shortly.",
    )
    .with_code("overloaded")
    .with_retry_after(std::time::Duration::from_secs(1));
    http::error_response(&e)
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
