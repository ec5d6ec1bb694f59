//! The route table: policy providers and routes turned into live handles.
//!
//! Place in the pipeline: built by `server` at startup and on every reload,
//! off the request path, then swapped in whole. A rebuild reuses the live
//! pieces whose configuration did not change (connection pools, breaker
//! state, rate-limit buckets), so a reload does not reset a tripped breaker
//! or refill a spent bucket. Must not be mutated once built.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{Policy, ProviderSpec, RateSpec, RouteSpec};
use crate::metrics::Metrics;
use crate::providers::Provider;
use crate::resilience::{Breaker, Limiter, RetryBudget};

pub struct ProviderHandle {
    pub spec: ProviderSpec,
    pub provider: Provider,
    pub breaker: Arc<Breaker>,
    pub limiter: Option<Arc<Limiter>>,
}

pub struct RouteHandle {
    pub spec: RouteSpec,
    pub limiter: Option<Arc<Limiter>>,
    pub budget: Arc<RetryBudget>,
}

pub struct RouteTable {
    pub providers: HashMap<String, Arc<ProviderHandle>>,
    pub routes: BTreeMap<String, Arc<RouteHandle>>,
}

fn reuse_limiter(spec: &Option<RateSpec>, old: Option<&Arc<Limiter>>) -> Option<Arc<Limiter>> {
    let spec = spec.as_ref()?;
    match old {
        Some(l) if l.spec() == spec => Some(Arc::clone(l)),
        _ => Some(Arc::new(Limiter::new(spec))),
    }
}

impl RouteTable {
    pub fn build(
        policy: &Policy,
        previous: Option<&RouteTable>,
        metrics: &Arc<Metrics>,
    ) -> Result<RouteTable, String> {
        let mut providers = HashMap::new();
        for (name, spec) in &policy.providers {
            let old = previous.and_then(|p| p.providers.get(name));
            let handle = match old {
                Some(h) if h.spec == *spec => Arc::clone(h),
                _ => {
                    let provider =
                        Provider::build(spec).map_err(|e| format!("provider {name}: {e}"))?;
                    let breaker = match old {
                        Some(h) if *h.breaker.spec() == spec.breaker => Arc::clone(&h.breaker),
                        _ => Breaker::new(name, spec.breaker.clone(), Arc::clone(metrics)),
                    };
                    let limiter =
                        reuse_limiter(&spec.rate_limit, old.and_then(|h| h.limiter.as_ref()));
                    Arc::new(ProviderHandle {
                        spec: spec.clone(),
                        provider,
                        breaker,
                        limiter,
                    })
                }
            };
            providers.insert(name.clone(), handle);
        }
        let mut routes = BTreeMap::new();
        for (name, spec) in &policy.routes {
            let old = previous.and_then(|p| p.routes.get(name));
            let limiter = reuse_limiter(&spec.rate_limit, old.and_then(|r| r.limiter.as_ref()));
            let budget = match old {
                Some(r) if r.budget.spec() == &spec.retry.budget => Arc::clone(&r.budget),
                _ => Arc::new(RetryBudget::new(&spec.retry.budget)),
            };
            routes.insert(
                name.clone(),
                Arc::new(RouteHandle {
                    spec: spec.clone(),
                    limiter,
                    budget,
                }),
            );
        }
        Ok(RouteTable { providers, routes })
    }
}
