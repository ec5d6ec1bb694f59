//! The route table: policy providers and routes turned into live handles.
//!
//! Place in the pipeline: built by `server` at startup, on every reload and
//! by `switchyard check`, off the request path, then swapped in whole. Here
//! each provider entry's kind settings are read by its kind
//! (`ProviderConfig::parse`, errors at `file:line`), the provider is built,
//! and every route is checked against its targets' capabilities. A rebuild
//! reuses the live pieces whose configuration did not change (connection
//! pools, breaker state, rate-limit buckets, retry budgets, concurrency
//! limits with what they learned and what they have in flight, latency
//! measures, hedge caps, conversation affinities), so a reload does not
//! reset a tripped breaker, refill a spent bucket or forget an adaptive
//! limit or what it saw; only a provider's share of the gateway's slots is
//! set anew. Must not be mutated once built.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::affinity::Affinity;
use super::attempt::{AttemptStack, Parts, stack};
use super::live::Live;
use super::provider_watch::{breaker_metrics, concurrency_limit};
use crate::config::{
    ConfigError, ConfigErrors, Endpoint, Env, Policy, Prices, ProviderSpec, RateSpec, RouteSpec,
    ServerSettings, TargetSpec, Via,
};
use crate::metrics::Metrics;
use crate::metrics::series::RouteSeries;
use crate::metrics::warn::WarnEvery;
use crate::providers::{Capabilities, Need, Provider, ProviderConfig};
use crate::resilience::{Breaker, ConcurrencyLimit, Limiter, RetryBudget};
use crate::state::Store;

pub struct ProviderHandle {
    /// The provider's name (its key under `providers:`).
    pub name: Arc<str>,
    pub spec: ProviderSpec,
    pub config: ProviderConfig,
    pub provider: Arc<dyn Provider>,
    /// What the provider declares it can do (`Provider::capabilities`).
    pub capabilities: Capabilities,
    pub breaker: Arc<Breaker>,
    pub limiter: Option<Arc<Limiter>>,
    /// Its bulkhead: calls in flight, fixed or adaptive, under its share.
    pub concurrency: Arc<ConcurrencyLimit>,
    /// Latency by kind of call, as the attempt stack measures it.
    pub live: Arc<Live>,
    /// Bulkhead -> limit -> TPM hold -> breaker -> measure -> metrics ->
    /// adapter, built once.
    pub attempt: AttemptStack,
    /// "Stream failed mid-way" at most once a second, with the count.
    pub stream_breaks: WarnEvery,
}

#[derive(Debug)]
pub struct RouteHandle {
    pub spec: RouteSpec,
    /// `spec.name`, shared: what a request's context labels its logs and
    /// metrics with, without a copy per request.
    pub label: Arc<str>,
    pub limiter: Option<Arc<Limiter>>,
    pub budget: Arc<RetryBudget>,
    /// The largest embedding sub-batch every target takes, its provider's
    /// own per-call limit included.
    pub sub_batch: usize,
    /// What every target of the route can do, narrowed to the route's
    /// declared `endpoints` when it has some.
    pub capabilities: Capabilities,
    /// Each target's provider, in target order (`None` where it does not
    /// exist): resolved when the table is built, not looked up per call.
    pub handles: Arc<[Option<Arc<ProviderHandle>>]>,
    /// The route's providers that have a TPM limit, with the limit: what
    /// a settlement charges once it knows what each served.
    pub provider_tpm: Arc<[(Arc<str>, u64)]>,
    /// One "target failed" warning a second per target (by target index;
    /// the last one for fallback targets).
    pub warnings: Arc<[WarnEvery]>,
    /// The targets' configured models when some depend on the requested
    /// name (`{model}`, `{*}`); `spec`'s targets then hold them filled in
    /// for the route's own name (see `RouteTable::lookup`).
    pub templates: Option<Arc<[String]>>,
    /// Hedges per second (`hedge.max_per_second`), when the route hedges.
    pub hedge_cap: Option<Arc<Limiter>>,
    /// The route's per-request series, kept once looked up (shared by the
    /// route's per-request views).
    pub series: Arc<RouteSeries>,
    /// Conversation -> target, when the route has `affinity`.
    pub affinity: Option<Arc<Affinity>>,
}

#[derive(Debug)]
pub struct RouteTable {
    pub providers: HashMap<String, Arc<ProviderHandle>>,
    pub routes: BTreeMap<String, Arc<RouteHandle>>,
    /// Aliases and `match` patterns of the routes (`RouteTable::lookup`).
    pub names: crate::config::ModelNames,
    /// The state store (`state:`): providers' TPM buckets here, and
    /// admission's limits and budgets and the cache's shared tier.
    pub store: Store,
    /// `prices:`, for the `cost` strategy.
    pub prices: Prices,
}

impl std::fmt::Debug for ProviderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderHandle")
            .field("name", &self.spec.name)
            .field("kind", &self.spec.kind)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

fn reuse_limiter(spec: &Option<RateSpec>, old: Option<&Arc<Limiter>>) -> Option<Arc<Limiter>> {
    let spec = spec.as_ref()?;
    match old {
        Some(l) if l.spec() == spec => Some(Arc::clone(l)),
        _ => Some(Arc::new(Limiter::new(spec))),
    }
}

/// The warning limiters of a route of `targets` targets, and its fallbacks.
pub(super) fn warnings(targets: usize) -> Arc<[WarnEvery]> {
    (0..=targets).map(|_| WarnEvery::per_second()).collect()
}

/// How many of the gateway's request slots one provider may hold.
pub fn provider_share(server: &ServerSettings) -> usize {
    ((server.max_concurrent_requests as f64) * server.provider_share).ceil() as usize
}

/// Each of `targets`' providers, in target order (`None` where it does not
/// exist).
pub(super) fn resolve(
    providers: &HashMap<String, Arc<ProviderHandle>>,
    targets: &[TargetSpec],
) -> Arc<[Option<Arc<ProviderHandle>>]> {
    targets
        .iter()
        .map(|t| providers.get(&t.provider).cloned())
        .collect()
}

impl RouteHandle {
    /// Whether some target of the route serves `need` (a route can serve
    /// a natively passed endpoint through the targets that have it).
    pub fn any_serves(&self, need: Need) -> bool {
        self.served().any(|c| c.serves(need))
    }

    /// Whether every target of the route serves `need`.
    pub fn all_serve(&self, need: Need) -> bool {
        self.served().next().is_some() && self.served().all(|c| c.serves(need))
    }

    /// What each target whose provider exists can do, in target order.
    fn served(&self) -> impl Iterator<Item = Capabilities> + '_ {
        self.handles.iter().flatten().map(|h| h.capabilities)
    }
}

impl RouteTable {
    pub fn build(
        policy: &Policy,
        previous: Option<&RouteTable>,
        metrics: &Arc<Metrics>,
        env: &Env,
        store: &Store,
    ) -> Result<RouteTable, ConfigErrors> {
        let mut errors: Vec<ConfigError> = Vec::new();
        let mut providers = HashMap::new();
        let share = provider_share(&policy.server);
        for (name, spec) in &policy.providers {
            let config = match ProviderConfig::parse(spec, env) {
                Ok(c) => c,
                Err(e) => {
                    errors.extend(e);
                    continue;
                }
            };
            let old = previous.and_then(|p| p.providers.get(name));
            if let Some(h) = old
                && h.spec == *spec
                && h.config == config
            {
                h.concurrency.set_share(share);
                providers.insert(name.clone(), Arc::clone(h));
                continue;
            }
            let provider = match config.build(spec) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(spec.settings.error("", e.message));
                    continue;
                }
            };
            let breaker = match old {
                Some(h) if *h.breaker.spec() == spec.breaker => Arc::clone(&h.breaker),
                _ => Breaker::new(spec.breaker.clone(), breaker_metrics(name, metrics)),
            };
            let limiter = reuse_limiter(&spec.rate_limit, old.and_then(|h| h.limiter.as_ref()));
            let old_limit = old.map(|h| &h.concurrency);
            let concurrency = concurrency_limit(name, &spec.concurrency, old_limit, share, metrics);
            // The same upstream: what was measured of it still holds.
            let live = match old {
                Some(h) if h.spec.kind == spec.kind && h.spec.settings == spec.settings => {
                    Arc::clone(&h.live)
                }
                _ => Arc::default(),
            };
            let parts = Parts {
                breaker: Arc::clone(&breaker),
                limiter: limiter.clone(),
                concurrency: Arc::clone(&concurrency),
                live: Arc::clone(&live),
            };
            let attempt = stack(spec, Arc::clone(&provider), parts, store, metrics);
            let handle = ProviderHandle {
                name: Arc::from(name.as_str()),
                spec: spec.clone(),
                config,
                capabilities: provider.capabilities(),
                provider,
                breaker,
                limiter,
                concurrency,
                live,
                attempt,
                stream_breaks: WarnEvery::per_second(),
            };
            providers.insert(name.clone(), Arc::new(handle));
        }
        let mut routes = BTreeMap::new();
        for (name, spec) in &policy.routes {
            let mut capabilities: Option<Capabilities> = None;
            let handles = resolve(&providers, &spec.targets);
            // A provider that failed to parse has its own errors already.
            let resolved = || spec.targets.iter().zip(handles.iter().flatten());
            let mut sub_batch = usize::MAX;
            for (t, h) in resolved() {
                let has = h.capabilities;
                capabilities = Some(capabilities.map_or(has, |c| c.intersect(has)));
                sub_batch = sub_batch
                    .min(t.max_batch_inputs)
                    .min(h.provider.max_batch_inputs(&t.model));
            }
            // Declared endpoints are all the route serves.
            let capabilities = capabilities.unwrap_or_default().narrowed(&spec.endpoints);
            // A route declared to serve an endpoint: every target must.
            for endpoint in &spec.endpoints {
                for (t, h) in resolved() {
                    let need = match endpoint {
                        Endpoint::Chat => Need::Chat { stream: false },
                        Endpoint::Embeddings => Need::Embeddings,
                        Endpoint::Rerank => Need::Rerank,
                    };
                    if !h.capabilities.serves(need) {
                        errors.push(ConfigError {
                            location: t.location.clone(),
                            message: format!(
                                "provider {} (kind {}) cannot serve {}, which route {name} \
                                 declares in `endpoints`",
                                h.spec.name,
                                h.spec.kind,
                                endpoint.name()
                            ),
                        });
                    }
                }
            }
            if !spec.targets.is_empty()
                && !capabilities.chat
                && !capabilities.embeddings
                && !spec.endpoints.contains(&Endpoint::Rerank)
            {
                let kinds: Vec<String> = handles
                    .iter()
                    .flatten()
                    .map(|h| format!("{} ({})", h.spec.name, h.spec.kind))
                    .collect();
                errors.push(ConfigError {
                    location: spec.targets[0].location.clone(),
                    message: format!(
                        "the targets of route {name} share no endpoint: every target must \
                         serve chat, or every target embeddings ({})",
                        kinds.join(", ")
                    ),
                });
            }
            let old = previous.and_then(|p| p.routes.get(name));
            let limiter = reuse_limiter(&spec.rate_limit, old.and_then(|r| r.limiter.as_ref()));
            let budget = match old {
                Some(r) if r.budget.spec() == &spec.retry.budget => Arc::clone(&r.budget),
                _ => Arc::new(RetryBudget::new(&spec.retry.budget)),
            };
            let mut provider_tpm: Vec<(Arc<str>, u64)> = Vec::new();
            for h in handles.iter().flatten() {
                if let Some(tpm) = h.spec.tpm
                    && !provider_tpm.iter().any(|(p, _)| **p == h.spec.name)
                {
                    provider_tpm.push((Arc::from(h.spec.name.as_str()), tpm));
                }
            }
            let hedge_rate = spec.hedge.as_ref().map(|h| RateSpec {
                per_second: h.max_per_second,
                burst: h.max_per_second.ceil().max(1.0) as u32,
            });
            let hedge_cap = reuse_limiter(&hedge_rate, old.and_then(|r| r.hedge_cap.as_ref()));
            let affinity =
                spec.affinity
                    .as_ref()
                    .map(|a| match old.and_then(|r| r.affinity.as_ref()) {
                        Some(kept) if kept.spec() == a => Arc::clone(kept),
                        _ => Arc::new(Affinity::new(a.clone())),
                    });
            let warnings = warnings(spec.targets.len());
            let mut spec = spec.clone();
            let templates = spec.targets.iter().any(|t| t.is_templated()).then(|| {
                let models: Arc<[String]> = spec.targets.iter().map(|t| t.model.clone()).collect();
                for t in &mut spec.targets {
                    t.model = t.model_for(name, name, Via::Exact);
                }
                models
            });
            let handle = RouteHandle {
                label: Arc::from(name.as_str()),
                hedge_cap,
                affinity,
                spec,
                templates,
                limiter,
                budget,
                sub_batch: sub_batch.clamp(1, usize::MAX),
                capabilities,
                handles,
                series: Arc::default(),
                provider_tpm: provider_tpm.into(),
                warnings,
            };
            routes.insert(name.clone(), Arc::new(handle));
        }
        if errors.is_empty() {
            Ok(RouteTable {
                providers,
                routes,
                names: policy.names.clone(),
                store: store.clone(),
                prices: policy.prices.clone(),
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}
