//! Finding the route a requested model name selects.
//!
//! Place in the pipeline: called by `server` (access control) with the
//! `model` a client sent, before admission. Exact route names first, then
//! aliases, then the most specific `match` pattern (see
//! `config::ModelNames`). A route whose targets' models depend on the
//! requested name (`{model}`, `{*}`; a pattern route's targets without a
//! `model`) answers a handle whose targets hold the filled-in names; its
//! limiter, retry budget and everything else are the route's own, shared.
//! Exact names and aliases are filled in once when the table is built;
//! only a pattern match makes a new handle (a few small strings). Must not
//! check who may call the route: that is `server::access`.

use std::sync::Arc;

use super::table::{RouteHandle, RouteTable};
use crate::config::Via;

/// A route found for a requested name.
#[derive(Debug)]
pub struct Found {
    pub route: Arc<RouteHandle>,
    /// How the name selected it.
    pub via: Via,
}

impl RouteTable {
    /// The route `requested` selects, with its targets' models for it.
    pub fn lookup(&self, requested: &str) -> Option<Found> {
        let resolved = self
            .names
            .resolve(requested, |n| self.routes.contains_key(n))?;
        let route = self.routes.get(resolved.route)?;
        let via = resolved.via;
        let found = |route| Some(Found { route, via });
        let (Some(templates), Via::Pattern { .. }) = (&route.templates, via) else {
            return found(Arc::clone(route));
        };
        found(Arc::new(route.for_name(templates, requested, via)))
    }
}

impl RouteHandle {
    /// This route with each target's model filled in for `requested`.
    fn for_name(&self, templates: &[String], requested: &str, via: Via) -> RouteHandle {
        let mut spec = self.spec.clone();
        for (t, template) in spec.targets.iter_mut().zip(templates) {
            t.model.clone_from(template);
            t.model = t.model_for(&self.spec.name, requested, via);
        }
        RouteHandle {
            spec,
            label: Arc::clone(&self.label),
            limiter: self.limiter.clone(),
            budget: Arc::clone(&self.budget),
            sub_batch: self.sub_batch,
            capabilities: self.capabilities,
            handles: Arc::clone(&self.handles),
            series: Arc::clone(&self.series),
            provider_tpm: Arc::clone(&self.provider_tpm),
            warnings: Arc::clone(&self.warnings),
            templates: None,
            hedge_cap: self.hedge_cap.clone(),
            affinity: self.affinity.clone(),
        }
    }
}
