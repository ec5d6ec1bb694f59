//! Validation of a route's target lists and of how it routes on what the
//! gateway sees: `targets` (with `context_window`), `hedge`, `affinity`,
//! `fallbacks`, and the checks that need every route and the prices (a
//! fallback naming another route; a `cost` route's prices).
//!
//! Place in the pipeline: called by `entries::route` for each route, then
//! by `validate` once every route and the prices are known. Every error is
//! recorded at its field's [`Loc`]. Must not build runtime objects.

use std::collections::BTreeMap;
use std::time::Duration;

use super::access::Prices;
use super::fields::{FieldReader, parse_duration};
use super::merge::Merged;
use super::policy::*;
use super::raw::{RawAffinity, RawFallback, RawHedge, RawRoute, RawTarget};
use super::report::{Errors, Loc};
use super::route_spec::*;

/// A list of targets (`routes.<name>.targets`, or a fallback's): each names
/// a defined provider; `model` defaults to the route's name.
pub(super) fn targets(
    cx: &mut FieldReader,
    loc: &Loc,
    route: &str,
    patterned: bool,
    raw: &[RawTarget],
    m: &Merged,
    providers: &BTreeMap<String, ProviderSpec>,
) -> Vec<TargetSpec> {
    let mut targets = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let tloc = loc.index(i);
        let Some(pname) = t.provider.as_deref() else {
            cx.errors.at(&tloc.field("provider"), "is required");
            continue;
        };
        let provider_max = match providers.get(pname) {
            Some(p) => p.max_batch_inputs,
            None if m.providers.contains_key(pname) => 1, // invalid provider, reported already
            None => {
                let known: Vec<&str> = m.providers.keys().map(String::as_str).collect();
                cx.errors.at(
                    &tloc.field("provider"),
                    format!(
                        "unknown provider {pname:?} (defined: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                1
            }
        };
        let weight = t.weight.unwrap_or(1);
        if weight == 0 {
            cx.errors.at(&tloc.field("weight"), "must be at least 1");
        }
        let max_batch_inputs = cx.positive(
            &tloc.field("max_batch_inputs"),
            t.max_batch_inputs,
            provider_max,
        );
        if t.context_window == Some(0) {
            cx.errors
                .at(&tloc.field("context_window"), "must be at least 1 token");
        }
        // A pattern route forwards the name the client asked for.
        let model = match &t.model {
            Some(m) => {
                super::names::check_model_template(cx.errors, &tloc.field("model"), m);
                m.clone()
            }
            None if patterned => "{model}".to_string(),
            None => route.to_string(),
        };
        targets.push(TargetSpec {
            location: cx.errors.location(tloc.file(), tloc.path()),
            provider: pname.to_string(),
            model,
            weight,
            max_batch_inputs: max_batch_inputs.min(provider_max),
            context_window: t.context_window,
        });
    }
    targets
}

/// `hedge: { delay: 150ms | p95, max_per_second: 10 }`.
pub(super) fn hedge(cx: &mut FieldReader, loc: &Loc, h: &RawHedge) -> HedgeSpec {
    let delay_loc = loc.field("delay");
    let delay = match h.delay.as_deref().map(str::trim) {
        None => {
            cx.errors.at(
                &delay_loc,
                "is required: a duration (150ms) or a latency percentile (p95)",
            );
            HedgeDelay::Fixed(Duration::from_secs(1))
        }
        Some(p) if p.starts_with('p') => match p[1..].parse::<f64>() {
            Ok(v) if v > 0.0 && v < 100.0 => HedgeDelay::Percentile(v),
            _ => {
                cx.errors.at(
                    &delay_loc,
                    format!("{p:?} is not a percentile between p1 and p99.9"),
                );
                HedgeDelay::Fixed(Duration::from_secs(1))
            }
        },
        Some(text) => match parse_duration(text) {
            Ok(d) if !d.is_zero() => HedgeDelay::Fixed(d),
            Ok(_) => {
                cx.errors.at(&delay_loc, "must be greater than zero");
                HedgeDelay::Fixed(Duration::from_secs(1))
            }
            Err(e) => {
                cx.errors.at(&delay_loc, e.to_string());
                HedgeDelay::Fixed(Duration::from_secs(1))
            }
        },
    };
    let max_per_second = h.max_per_second.unwrap_or(10.0);
    if !max_per_second.is_finite() || max_per_second <= 0.0 || max_per_second > 1_000_000.0 {
        cx.errors.at(
            &loc.field("max_per_second"),
            "must be a number greater than zero (at most 1000000)",
        );
    }
    HedgeSpec {
        delay,
        max_per_second: max_per_second.clamp(0.001, 1_000_000.0),
    }
}

/// `affinity: { by: user | header | prefix, header: <name>, messages: 2, ttl, max_entries }`.
pub(super) fn affinity(cx: &mut FieldReader, loc: &Loc, a: &RawAffinity) -> AffinitySpec {
    let by = match a.by.as_deref() {
        None | Some("user") => AffinityBy::User,
        Some("header") => match a.header.as_deref() {
            Some(h) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {
                AffinityBy::Header(h.to_ascii_lowercase())
            }
            Some(h) => {
                cx.errors
                    .at(&loc.field("header"), format!("{h:?} is not a header name"));
                AffinityBy::User
            }
            None => {
                cx.errors
                    .at(&loc.field("header"), "is required with by: header");
                AffinityBy::User
            }
        },
        Some("prefix") => AffinityBy::Prefix(cx.positive(&loc.field("messages"), a.messages, 2)),
        Some(other) => {
            cx.errors.at(
                &loc.field("by"),
                format!("unknown source {other:?} (expected user, header or prefix)"),
            );
            AffinityBy::User
        }
    };
    if a.header.is_some() && !matches!(by, AffinityBy::Header(_)) {
        cx.errors.at(&loc.field("header"), "is only for by: header");
    }
    if a.messages.is_some() && !matches!(by, AffinityBy::Prefix(_)) {
        cx.errors
            .at(&loc.field("messages"), "is only for by: prefix");
    }
    AffinitySpec {
        by,
        ttl: cx.duration(&loc.field("ttl"), &a.ttl, Duration::from_secs(30 * 60)),
        max_entries: cx.positive(&loc.field("max_entries"), a.max_entries, 100_000),
    }
}

/// `fallbacks: { context_window | content_policy | quota: { route | targets } }`;
/// a `route` is resolved later ([`resolve`]), once every route is known.
pub(super) fn fallbacks(
    cx: &mut FieldReader,
    loc: &Loc,
    route: &str,
    r: &RawRoute,
    m: &Merged,
    providers: &BTreeMap<String, ProviderSpec>,
) -> Fallbacks {
    let Some(raw) = &r.fallbacks else {
        return Fallbacks::default();
    };
    let mut one = |key: &str, f: &Option<RawFallback>| -> Option<Fallback> {
        let f = f.as_ref()?;
        let floc = loc.field(key);
        let location = cx.errors.location(floc.file(), floc.path());
        match (&f.route, &f.targets) {
            (Some(other), None) => {
                if other == route {
                    cx.errors.at(
                        &floc.field("route"),
                        "must name another route, not this one",
                    );
                }
                Some(Fallback {
                    location,
                    route: Some(other.clone()),
                    targets: Vec::new(),
                })
            }
            (None, Some(list)) if !list.is_empty() => Some(Fallback {
                location,
                route: None,
                targets: targets(cx, &floc.field("targets"), route, false, list, m, providers),
            }),
            (None, Some(_)) => {
                cx.errors
                    .at(&floc.field("targets"), "needs at least one target");
                None
            }
            (Some(_), Some(_)) => {
                cx.errors.at(&floc, "give route or targets, not both");
                None
            }
            (None, None) => {
                cx.errors
                    .at(&floc, "needs route (another route's targets) or targets");
                None
            }
        }
    };
    Fallbacks {
        context_window: one("context_window", &raw.context_window),
        content_policy: one("content_policy", &raw.content_policy),
        quota: one("quota", &raw.quota),
    }
}

/// Gives each fallback that names a route that route's targets.
/// A named route that is defined but invalid has its own errors already.
pub(super) fn resolve(routes: &mut BTreeMap<String, RouteSpec>, m: &Merged, errors: &mut Errors) {
    // (route, class, the named route, where the fallback is written)
    let refs: Vec<(String, FallbackClass, String, String)> = routes
        .values()
        .flat_map(|r| {
            r.fallbacks.iter().filter_map(|(class, f)| {
                let other = f.route.clone()?;
                Some((r.name.clone(), class, other, f.location.clone()))
            })
        })
        .collect();
    for (name, class, other, location) in refs {
        let Some(targets) = routes.get(&other).map(|o| o.targets.clone()) else {
            if m.routes.contains_key(&other) {
                continue;
            }
            let known: Vec<&str> = routes.keys().map(String::as_str).collect();
            errors.push(
                format!("{location}.route"),
                format!("unknown route {other:?} (defined: {})", known.join(", ")),
            );
            continue;
        };
        let fallbacks = &mut routes.get_mut(&name).expect("listed above").fallbacks;
        let slot = match class {
            FallbackClass::ContextWindow => &mut fallbacks.context_window,
            FallbackClass::ContentPolicy => &mut fallbacks.content_policy,
            FallbackClass::Quota => &mut fallbacks.quota,
        };
        if let Some(f) = slot {
            f.targets = targets;
        }
    }
}

/// A `cost` route ranks its targets by price: each one (fallbacks too)
/// must have one.
pub(super) fn cost_prices(
    routes: &BTreeMap<String, RouteSpec>,
    prices: &Prices,
    errors: &mut Errors,
) {
    for r in routes.values().filter(|r| r.strategy == Strategy::Cost) {
        let all = r
            .targets
            .iter()
            .chain(r.fallbacks.iter().flat_map(|(_, f)| f.targets.iter()));
        for t in all {
            if prices.lookup(&t.provider, &t.model).is_none() {
                errors.push(
                    t.location.clone(),
                    format!(
                        "route {} uses strategy cost, but model {:?} of provider {} has no \
                         entry in prices (add prices.{} or prices.{}/{})",
                        r.name, t.model, t.provider, t.model, t.provider, t.model
                    ),
                );
            }
        }
    }
}
