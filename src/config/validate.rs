//! Validation: the merged policy files -> one immutable [`Policy`], or
//! every error.
//!
//! Place in the pipeline: the step of loading after parsing and merging
//! (`merge`) and before anything is built. It applies defaults, parses durations,
//! resolves secrets from the environment and checks cross references. It never
//! stops at the first problem: every error is collected with its location
//! (`file:line: path`) so `switchyard check` can print them all at once. A
//! check names the [`Loc`] of the offending field; `report` gives it the line
//! of that field's key (of the entry's name for duplicates across files).
//! Must not build runtime objects or touch the network.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Env;
use super::access::{AuthMode, StateSettings};
use super::entries::{provider, route};
use super::fields::FieldReader;
use super::merge::Merged;
use super::policy::*;
use super::raw::*;
use super::report::{Errors, Loc};
use super::server_entries::server_settings;
use super::{access_entries, route_entries, state_entries};

const DEFAULT_MAX_ENTRY_BYTES: u64 = 1024 * 1024;

pub(super) fn validate(
    m: Merged,
    env: &Env,
    kinds: super::KindCheck,
    errors: &mut Errors,
) -> Option<Policy> {
    let before = errors.len();
    let mut cx = FieldReader { errors, env };

    let server = match &m.server {
        Some((file, s)) => server_settings(&mut cx, &Loc::new(file, "server"), s),
        None => server_settings(&mut cx, &Loc::new("", "server"), &RawServer::default()),
    };
    let cache = match &m.cache {
        Some((file, c)) => {
            let loc = Loc::new(file, "cache");
            let max_bytes = match c.max_bytes {
                Some(0) => {
                    cx.errors.at(&loc.field("max_bytes"), "must be at least 1");
                    0
                }
                Some(v) => v,
                None => 64 * 1024 * 1024,
            };
            let max_entry_bytes = match c.max_entry_bytes {
                Some(0) => {
                    cx.errors
                        .at(&loc.field("max_entry_bytes"), "must be at least 1");
                    0
                }
                Some(v) if v > max_bytes => {
                    cx.errors.at(
                        &loc.field("max_entry_bytes"),
                        "must not exceed cache.max_bytes",
                    );
                    v
                }
                Some(v) => v,
                None => DEFAULT_MAX_ENTRY_BYTES.min(max_bytes),
            };
            CacheSettings {
                max_bytes,
                max_entry_bytes,
                default_ttl: cx.duration(
                    &loc.field("default_ttl"),
                    &c.default_ttl,
                    Duration::from_secs(300),
                ),
            }
        }
        None => CacheSettings {
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            default_ttl: Duration::from_secs(300),
        },
    };
    let client_limit = m
        .limits
        .as_ref()
        .and_then(|(file, l)| cx.rate(&Loc::new(file, "limits.per_client"), &l.per_client));

    let mut providers = BTreeMap::new();
    for (name, (file, p)) in &m.providers {
        let loc = Loc::new(file, format!("providers.{name}"));
        if let Some((spec, ok)) = provider(&mut cx, &loc, name, p) {
            let kind_errors = kinds(&spec, env);
            if ok && kind_errors.is_empty() {
                providers.insert(name.clone(), spec);
            } else {
                for e in kind_errors {
                    cx.errors.push(e.location, e.message);
                }
            }
        }
    }
    let mut routes = BTreeMap::new();
    for (name, (file, r)) in &m.routes {
        let loc = Loc::new(file, format!("routes.{name}"));
        if let Some(spec) = route(&mut cx, &loc, name, r, &m, &providers, &cache) {
            routes.insert(name.clone(), spec);
        }
    }
    let names = super::names::index(cx.errors, &m.routes, &routes);
    if m.routes.is_empty() && cx.errors.is_empty() {
        cx.errors.push("routes", "no routes are defined");
    }
    route_entries::resolve(&mut routes, &m, cx.errors);
    let prices = access_entries::prices(&mut cx, &m.prices);
    route_entries::cost_prices(&routes, &prices, cx.errors);
    let keys = access_entries::keys(&mut cx, &m.keys, &routes, &prices);
    if server.auth == AuthMode::Required && m.keys.is_empty() {
        let file = m.server.as_ref().map_or("", |(f, _)| f.as_str());
        cx.errors.at(
            &Loc::new(file, "server").field("auth"),
            "is required, but no keys are defined: every request would be refused",
        );
    }
    let state = match &m.state {
        Some((file, s)) => state_entries::state(&mut cx, &Loc::new(file, "state"), s),
        None => StateSettings::default(),
    };
    let tracing = super::telemetry::settings(&mut cx, m.tracing.as_ref());
    (errors.len() == before).then_some(Policy {
        server,
        cache,
        client_limit,
        providers,
        routes,
        keys,
        prices,
        state,
        names,
        tracing,
    })
}
