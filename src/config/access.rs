//! Policy types for who may call, what it costs, and where shared state
//! lives: virtual keys (`keys:`), per-model prices (`prices:`) and the state
//! backend (`state:`).
//!
//! Place in the pipeline: part of the validated [`super::Policy`]; built by
//! `validate`, read by `server` (authentication, admission, settlement) and
//! `state` (the store). Must not hold runtime state: counters and
//! connections are built from these by their owners.

use std::collections::BTreeMap;
use std::time::Duration;

use super::values::Secret;

/// `server.auth`: whether a configured virtual key is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Any caller is served; a configured key is still recognised (its
    /// limits, budget and label apply), others count as `_unknown`.
    #[default]
    Open,
    /// A missing or unknown key is refused with 401.
    Required,
}

/// One virtual key (`keys.<alias>`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    /// The name used in logs and metrics; never the secret.
    pub alias: String,
    /// SHA-256 of the secret: from `secret_hash: "sha256:<64 hex>"`, or of
    /// the value of the environment variable `secret_env` (read at load).
    pub secret_sha256: [u8; 32],
    /// Glob patterns (`*`, `?`) over route names this key may call;
    /// default `["*"]`.
    pub models: Vec<String>,
    /// Requests per minute (a bucket of `rpm`, refilled continuously).
    pub rpm: Option<u64>,
    /// Tokens per minute (estimate reserved before, real usage charged after).
    pub tpm: Option<u64>,
    pub budget: Option<KeyBudget>,
    /// Free-form metadata (`team: search`), for operators; not metric labels.
    pub labels: BTreeMap<String, String>,
    /// What the key's requests may override per request, by header.
    pub overrides: Overrides,
}

/// `keys.<alias>.overrides`: per-request routing headers a key may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overrides {
    /// `x-switchyard-route-strategy`.
    pub strategy: bool,
    /// `x-switchyard-targets`.
    pub targets: bool,
}

/// A spending cap per calendar period (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyBudget {
    pub period: BudgetPeriod,
    /// Tokens (prompt + completion) per period.
    pub tokens: Option<u64>,
    /// US dollars per period, from `prices`.
    pub usd: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    Day,
    Month,
}

/// Prices of one upstream model, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Prompt tokens the provider served from its own prompt cache; defaults
    /// to `input`.
    pub cached: f64,
}

/// `prices:` keyed by upstream model name, or `provider/model` for a price
/// that only applies to one provider.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prices(pub BTreeMap<String, Price>);

impl Prices {
    /// The price of `model` as served by `provider`, if configured.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&Price> {
        if !self.0.is_empty() {
            let mut both = String::with_capacity(provider.len() + model.len() + 1);
            both.push_str(provider);
            both.push('/');
            both.push_str(model);
            if let Some(p) = self.0.get(&both) {
                return Some(p);
            }
        }
        self.0.get(model)
    }
}

/// `state:`: where limits, budgets and the response cache live.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSettings {
    pub backend: StateBackend,
    pub on_error: OnStateError,
    /// Bound on every call to the shared store (default 250ms).
    pub timeout: Duration,
    /// Prefix of every Redis key (default `switchyard`), so several
    /// gateways' fleets can share one Redis.
    pub prefix: String,
    /// `state.responses`: the conversations the gateway keeps for stateful
    /// Responses on translated routes.
    pub responses: ResponsesStoreSettings,
}

/// `state.responses`: how long and how much of stored Responses
/// conversations (input items + output) the gateway keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesStoreSettings {
    /// How long a stored response can be read or continued.
    pub ttl: Duration,
    /// Memory backend: every stored conversation together; the least
    /// recently used go first. (Redis: bounded by Redis' own `maxmemory`.)
    pub max_bytes: u64,
    /// One stored conversation; a larger one is not stored.
    pub max_entry_bytes: u64,
}

impl Default for ResponsesStoreSettings {
    fn default() -> Self {
        ResponsesStoreSettings {
            ttl: Duration::from_secs(24 * 3600),
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            backend: StateBackend::Memory,
            on_error: OnStateError::FailOpen,
            timeout: Duration::from_millis(250),
            prefix: "switchyard".to_string(),
            responses: ResponsesStoreSettings::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum StateBackend {
    /// In-process (moka and buckets): the default, per replica.
    #[default]
    Memory,
    /// Shared by every replica pointing at the same Redis; the URL
    /// (`redis://` or `rediss://` for TLS) is read from the environment
    /// variable `url_env`.
    Redis {
        url: Secret,
        /// `state.tls`: how a `rediss://` connection checks the server.
        tls: RedisTls,
        /// One server, Sentinel or Cluster (`state.sentinel`, `state.cluster`).
        topology: RedisTopology,
    },
}

/// `state.tls`: certificates for `rediss://`, read from files at load (so a
/// reload after a rotation picks up the new ones).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RedisTls {
    /// PEM CA certificates from `ca_file`; none: the system's roots.
    pub ca_pem: Option<String>,
    /// PEM client certificate chain and private key (mutual TLS).
    pub client: Option<(String, Secret)>,
}

/// Where the Redis of the shared state is.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RedisTopology {
    /// The URL's host is the server.
    #[default]
    Single,
    /// The URL's host and `nodes` are sentinels; the state lives on the
    /// master they name `master`, found again after a failover.
    Sentinel {
        master: String,
        nodes: Vec<String>,
        /// The sentinels' own password (`sentinel.password_env`), if any.
        password: Option<Secret>,
    },
    /// The URL's host and `nodes` are seed nodes of a Redis Cluster.
    Cluster { nodes: Vec<String> },
}

/// What a request does while the shared store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStateError {
    /// Serve: limits and budgets are kept locally meanwhile, the cache
    /// misses; each failure is logged and counted.
    #[default]
    FailOpen,
    /// Requests that need a limit or budget get 503 `state_unavailable`.
    FailClosed,
}

/// `routes.<name>.cache.scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheScope {
    /// One cache for every caller (the default).
    #[default]
    Shared,
    /// Entries are kept per virtual key: callers never see each other's answers.
    PerKey,
}
