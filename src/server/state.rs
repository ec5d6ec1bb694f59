//! Gateway state: the live runtime behind an `ArcSwap`, and reload.
//!
//! Place in the pipeline: every request loads one [`Runtime`] snapshot and
//! uses it to the end, so a reload never changes a request mid-flight.
//! [`AppState::reload`] runs parse -> validate -> build (off the request path)
//! -> swap; on any error the old runtime stays and the failure is counted.
//! Must not be reached by lower layers: they get the pieces they need.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use super::access::keys::KeyTable;
use super::edge::busy_poll::BusyPoll;
use super::edge::limit::Resizable;
use super::flows::flights::Flights;
use crate::cache::ResponseCache;
use crate::config::{self, ConfigError, ConfigErrors, Env, Policy, Source};
use crate::metrics::warn::WarnEvery;
use crate::metrics::window::Ring;
use crate::metrics::{Metrics, UNKNOWN_KEY, UNKNOWN_ROUTE};
use crate::resilience::{KeyedLimiter, Refused};
use crate::routing::RouteTable;
use crate::state::Store;

/// Everything built from one policy.
#[derive(Debug)]
pub struct Runtime {
    pub generation: u64,
    pub fingerprint: u64,
    pub policy: Arc<Policy>,
    pub table: RouteTable,
    pub client_limiter: Option<Arc<KeyedLimiter>>,
    pub cache: Arc<ResponseCache>,
    /// `server.cors` as a ready layer; `None` when CORS is off.
    pub cors: Option<tower_http::cors::CorsLayer>,
    /// `server.compression` as a ready layer; `None` when answers go out
    /// as they are (the default).
    pub compression:
        Option<tower_http::compression::CompressionLayer<super::edge::compress::Worth>>,
    /// `keys:` by secret digest, and `server.auth`.
    pub(crate) keys: KeyTable,
    /// The labels of a request with no route ([`UNKNOWN_ROUTE`]) and of a
    /// caller with no configured key ([`UNKNOWN_KEY`]), made once: each
    /// request's context starts with them.
    pub(crate) unknown: Unknown,
}

/// See [`Runtime::unknown`].
#[derive(Debug)]
pub(crate) struct Unknown {
    pub(crate) route: Arc<str>,
    pub(crate) key: Arc<str>,
}

impl Default for Unknown {
    fn default() -> Self {
        Unknown {
            route: Arc::from(UNKNOWN_ROUTE),
            key: Arc::from(UNKNOWN_KEY),
        }
    }
}

/// Streams outlive their handler: routing reaches the route table through
/// the runtime they hold.
impl AsRef<RouteTable> for Runtime {
    fn as_ref(&self) -> &RouteTable {
        &self.table
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Reloaded { generation: u64 },
    Unchanged { generation: u64 },
}

pub struct AppState {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
    /// Upstream calls in flight that identical requests join.
    pub(crate) flights: Flights,
    /// Retry hints of the gateway's own 429s, spread over the backlog.
    pub(crate) backlog: crate::resilience::Backlog,
    pub policy_dir: PathBuf,
    pub env: Env,
    pub draining: AtomicBool,
    /// `server.max_concurrent_requests`, resized on reload.
    pub request_limit: Resizable,
    /// The requests in flight, and the lanes that busy-poll for them
    /// (`--busy-poll`; set by `Gateway::start`, off until then).
    pub(crate) busy_poll: Arc<BusyPoll>,
    /// `server.connections.max`, resized on reload.
    pub connection_limit: Resizable,
    /// `--listen` was given, so `server.listen` is not in force.
    pub listen_override: bool,
    /// Overrides `server.drain_delay` (`--drain-delay`, tests).
    pub drain_delay_override: Option<std::time::Duration>,
    /// See [`super::DispatchHook`]; `None` in the binary.
    pub dispatch_hook: Option<super::DispatchHook>,
    /// The last minutes of metric samples, for the live page (empty while
    /// it is disabled).
    pub stats: Ring,
    /// When the gateway started (the live page's uptime).
    pub started: tokio::time::Instant,
    /// Admission's warning when the state store cannot check limits
    /// (`fail_closed`): at most one line a second, with a count.
    pub(crate) store_refusals: WarnEvery,
    reload_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("policy_dir", &self.policy_dir)
            .field("generation", &self.runtime.load().generation)
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

fn fingerprint(sources: &[Source]) -> u64 {
    let mut h = DefaultHasher::new();
    sources.hash(&mut h);
    h.finish()
}

fn build(
    policy: Policy,
    fingerprint: u64,
    generation: u64,
    previous: Option<&Runtime>,
    metrics: &Arc<Metrics>,
    env: &Env,
) -> Result<Runtime, ConfigErrors> {
    let client_limiter = policy.client_limit.as_ref().map(|spec| {
        match previous.and_then(|p| p.client_limiter.as_ref()) {
            Some(l) if l.spec() == spec => Arc::clone(l),
            _ => Arc::new(KeyedLimiter::new(spec)),
        }
    });
    // The store (and its Redis connection) lives on while `state:` is unchanged.
    let store = match previous {
        Some(p) if p.policy.state == policy.state => p.table.store.clone(),
        _ => Store::new(&policy.state, Arc::clone(metrics)).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                location: "state".into(),
                message: e.to_string(),
            }])
        })?,
    };
    let table = RouteTable::build(&policy, previous.map(|p| &p.table), metrics, env, &store)?;
    let cache = match previous {
        Some(p)
            if p.cache.max_bytes() == policy.cache.max_bytes
                && p.cache.max_entry_bytes() == policy.cache.max_entry_bytes
                && p.policy.state == policy.state =>
        {
            Arc::clone(&p.cache)
        }
        _ => Arc::new(
            ResponseCache::new(policy.cache.max_bytes, policy.cache.max_entry_bytes)
                .with_shared(&store),
        ),
    };
    let cors = policy.server.cors.as_ref().map(super::edge::cors::layer);
    let compression = (policy.server.compression.as_ref()).map(super::edge::compress::layer);
    let keys = KeyTable::build(policy.server.auth, &policy.keys);
    Ok(Runtime {
        keys,
        unknown: Unknown::default(),
        generation,
        fingerprint,
        cors,
        compression,
        policy: Arc::new(policy),
        table,
        client_limiter,
        cache,
    })
}

async fn read_sources(dir: PathBuf) -> Result<Vec<Source>, ConfigErrors> {
    tokio::task::spawn_blocking(move || config::read_dir(&dir))
        .await
        .unwrap_or_else(|e| {
            Err(ConfigErrors(vec![ConfigError {
                location: "policies".into(),
                message: format!("reading policy files failed: {e}"),
            }]))
        })
}

/// For unit tests: a gateway's state on a one-route policy over the
/// built-in mock provider, and the folder that holds the policy (kept
/// for as long as the state is used).
#[cfg(test)]
pub(crate) async fn mock_state() -> (tempfile::TempDir, Arc<AppState>) {
    const POLICY: &str =
        "providers:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    let env: Env = Arc::new(|_| None);
    let state = AppState::load(
        dir.path().to_path_buf(),
        env,
        Arc::new(Metrics::new()),
        true,
    )
    .await
    .unwrap();
    (dir, Arc::new(state))
}

impl AppState {
    /// Loads the policy folder and builds the first runtime.
    pub async fn load(
        policy_dir: PathBuf,
        env: Env,
        metrics: Arc<Metrics>,
        listen_override: bool,
    ) -> Result<Self, ConfigErrors> {
        let sources = read_sources(policy_dir.clone()).await?;
        let policy = config::load_sources(&sources, &env, crate::providers::check_kind)?;
        let runtime = build(policy, fingerprint(&sources), 1, None, &metrics, &env)?;
        metrics.policy_generation.set(1);
        metrics.last_reload_success.set(1);
        let server = &runtime.policy.server;
        let request_limit = Resizable::new(server.max_concurrent_requests);
        let connection_limit = Resizable::new(server.connections.max);
        Ok(AppState {
            request_limit,
            busy_poll: BusyPoll::off(&metrics),
            connection_limit,
            listen_override,
            drain_delay_override: None,
            dispatch_hook: None,
            stats: Ring::default(),
            started: tokio::time::Instant::now(),
            store_refusals: WarnEvery::per_second(),
            runtime: ArcSwap::from_pointee(runtime),
            metrics,
            flights: Flights::default(),
            backlog: crate::resilience::Backlog::new(),
            policy_dir,
            env,
            draining: AtomicBool::new(false),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn drain_delay(&self) -> std::time::Duration {
        self.drain_delay_override
            .unwrap_or_else(|| self.runtime.load().policy.server.drain_delay)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Re-reads the policy folder. With `force` false (file watching), an
    /// unchanged folder is not rebuilt. `trigger` is for logs.
    pub async fn reload(&self, trigger: &str, force: bool) -> Result<ReloadOutcome, ConfigErrors> {
        let _serial = self.reload_lock.lock().await;
        let current = self.runtime.load_full();
        let result = async {
            let sources = read_sources(self.policy_dir.clone()).await?;
            let fp = fingerprint(&sources);
            if !force && fp == current.fingerprint {
                return Ok(None);
            }
            let policy = config::load_sources(&sources, &self.env, crate::providers::check_kind)?;
            if !self.listen_override && policy.server.listen != current.policy.server.listen {
                return Err(ConfigErrors(vec![ConfigError {
                    location: "server.listen".into(),
                    message: format!(
                        "changed from {} to {}; the listen address is bound at start, so this \
                         reload is refused: restart the gateway to move it",
                        current.policy.server.listen, policy.server.listen
                    ),
                }]));
            }
            if policy.tracing != current.policy.tracing {
                // The exporter is part of the process's subscriber, set up once.
                tracing::warn!(
                    "the tracing settings (tracing:, OTEL_*) changed; they are read at start: \
                     restart the gateway to apply them (the rest of the policy is reloaded)"
                );
            }
            build(
                policy,
                fp,
                current.generation + 1,
                Some(&current),
                &self.metrics,
                &self.env,
            )
            .map(Some)
        }
        .await;
        match result {
            Ok(None) => {
                // The folder matches the running policy again (say, a bad
                // edit was reverted): the running policy is the folder's.
                self.metrics.last_reload_success.set(1);
                Ok(ReloadOutcome::Unchanged {
                    generation: current.generation,
                })
            }
            Ok(Some(runtime)) => {
                let generation = runtime.generation;
                for gone in current.table.providers.keys() {
                    if !runtime.table.providers.contains_key(gone) {
                        let m = &self.metrics;
                        for gauge in [
                            &m.breaker_state,
                            &m.provider_limit,
                            &m.provider_in_flight,
                            &m.provider_connections,
                        ] {
                            let _ = gauge.remove_label_values(&[gone]);
                        }
                        for why in Refused::ALL {
                            let labels = [gone.as_str(), why.label()];
                            let _ = m.provider_refusals.remove_label_values(&labels);
                        }
                    }
                }
                let server = &runtime.policy.server;
                self.request_limit.resize(server.max_concurrent_requests);
                self.connection_limit.resize(server.connections.max);
                self.runtime.store(Arc::new(runtime));
                self.metrics.reloads.with_label_values(&["success"]).inc();
                self.metrics.policy_generation.set(generation as i64);
                self.metrics.last_reload_success.set(1);
                tracing::info!(trigger, generation, "policy reloaded");
                Ok(ReloadOutcome::Reloaded { generation })
            }
            Err(errors) => {
                self.metrics.reloads.with_label_values(&["failure"]).inc();
                self.metrics.last_reload_success.set(0);
                for e in &errors.0 {
                    tracing::error!(trigger, "policy rejected, keeping the old one: {e}");
                }
                Err(errors)
            }
        }
    }

    /// Whether the policy folder differs from what was last attempted.
    pub async fn folder_fingerprint(&self) -> Option<u64> {
        read_sources(self.policy_dir.clone())
            .await
            .ok()
            .map(|s| fingerprint(&s))
    }
}
