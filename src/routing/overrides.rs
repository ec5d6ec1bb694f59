//! Per-request overrides of a route's strategy and targets.
//!
//! Place in the pipeline: `server`'s access control reads the override
//! headers (`x-switchyard-route-strategy`, `x-switchyard-targets`) of a
//! caller whose key allows them and asks [`RouteHandle::overridden`] for the
//! route as that one request sees it: the same live pieces (retry budget,
//! rate limit, hedge cap, affinity), a different strategy, or a subset of
//! its targets in the order given. Targets are named by provider, or
//! `provider/model` where a route has the same provider twice; only the
//! route's own targets can be named, so an override never reaches a
//! provider the route does not use. Must not check who may override:
//! access control does.

use std::sync::Arc;

use super::table::{RouteHandle, RouteTable, resolve, warnings};
use crate::config::{Strategy, TargetSpec};
use crate::providers::Capabilities;

/// An override the route cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("unknown strategy {0:?} (expected {names})", names = Strategy::NAMES)]
    UnknownStrategy(String),
    #[error("model `{route}` has no target {name:?} (its targets: {known})")]
    UnknownTarget {
        route: String,
        name: String,
        known: String,
    },
    #[error("names no target")]
    NoTargets,
    #[error("strategy cost needs a price for every target, and {0} has none")]
    Unpriced(String),
}

impl RouteHandle {
    /// The route as one request sees it, with `strategy` (a strategy name)
    /// and `targets` (comma-separated target names) when given.
    pub fn overridden(
        &self,
        table: &RouteTable,
        strategy: Option<&str>,
        targets: Option<&str>,
    ) -> Result<RouteHandle, OverrideError> {
        let mut spec = self.spec.clone();
        if let Some(name) = strategy {
            spec.strategy = Strategy::parse(name.trim())
                .ok_or_else(|| OverrideError::UnknownStrategy(name.trim().to_string()))?;
        }
        if let Some(list) = targets {
            spec.targets = self.pick(list)?;
        }
        if spec.strategy == Strategy::Cost
            && let Some(t) = spec
                .targets
                .iter()
                .find(|t| table.prices.lookup(&t.provider, &t.model).is_none())
        {
            return Err(OverrideError::Unpriced(format!(
                "{}/{}",
                t.provider, t.model
            )));
        }
        let handles = resolve(&table.providers, &spec.targets);
        let all = handles
            .iter()
            .flatten()
            .map(|h| h.capabilities)
            .reduce(Capabilities::intersect);
        let warnings = warnings(spec.targets.len());
        Ok(RouteHandle {
            capabilities: all.unwrap_or_default().narrowed(&spec.endpoints),
            handles,
            series: Arc::clone(&self.series),
            label: Arc::clone(&self.label),
            spec,
            limiter: self.limiter.clone(),
            budget: Arc::clone(&self.budget),
            sub_batch: self.sub_batch,
            provider_tpm: Arc::clone(&self.provider_tpm),
            warnings,
            // The targets picked are the route's, models filled in already.
            templates: None,
            hedge_cap: self.hedge_cap.clone(),
            affinity: self.affinity.clone(),
        })
    }

    /// The route's targets named in `list`, in its order, each once.
    fn pick(&self, list: &str) -> Result<Vec<TargetSpec>, OverrideError> {
        let mut out: Vec<TargetSpec> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let found = self.spec.targets.iter().find(|t| {
                t.provider == name
                    || name
                        .split_once('/')
                        .is_some_and(|(p, m)| t.provider == p && t.model == m)
            });
            let Some(t) = found else {
                let known: Vec<String> = self
                    .spec
                    .targets
                    .iter()
                    .map(|t| format!("{}/{}", t.provider, t.model))
                    .collect();
                return Err(OverrideError::UnknownTarget {
                    route: self.spec.name.clone(),
                    name: name.to_string(),
                    known: known.join(", "),
                });
            };
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        if out.is_empty() {
            return Err(OverrideError::NoTargets);
        }
        Ok(out)
    }
}
