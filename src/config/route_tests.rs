//! Unit tests for how a route routes on what the gateway sees: strategies,
//! `latency`, `hedge`, `affinity`, `fallbacks`, `context_window`, the
//! prices a `cost` route needs, and a key's `overrides`; every error at the
//! line of its key.

use std::time::Duration;

use super::error_tests::{assert_exactly, errors};
use super::*;

fn load(text: &str) -> Policy {
    let env: Env = std::sync::Arc::new(|_| None);
    let sources = [Source {
        name: "p.yaml".into(),
        text: text.into(),
    }];
    load_sources(&sources, &env, crate::providers::check_kind).unwrap_or_else(|e| panic!("{e}"))
}

const PROVIDERS: &str = "providers:\n  a: {kind: mock}\n  b: {kind: mock}\n";

#[test]
fn every_strategy_and_option_is_read() {
    let p = load(&format!(
        "{PROVIDERS}prices:\n  m: {{input: 1, output: 2}}\nkeys:\n  k:\n    secret_hash: \"sha256:{}\"\n    overrides: [strategy, targets]\n\
routes:
  fast:
    strategy: least_latency
    latency: {{decay: 3s}}
    hedge: {{delay: p95, max_per_second: 4}}
    affinity: {{by: header, header: X-Session}}
    targets: [{{provider: a, model: m, context_window: 8000}}, {{provider: b, model: m}}]
    fallbacks:
      context_window: {{route: long}}
      quota: {{targets: [{{provider: b, model: m}}]}}
  long:
    strategy: cost
    hedge: {{delay: 150ms}}
    affinity: {{by: prefix, messages: 3, ttl: 5m, max_entries: 10}}
    targets: [{{provider: b, model: m, context_window: 200000}}]
  busy:
    strategy: least_busy
    targets: [{{provider: a}}]
",
        "0".repeat(64)
    ));
    let fast = &p.routes["fast"];
    assert_eq!(fast.strategy, Strategy::LeastLatency);
    assert_eq!(fast.latency_decay, Duration::from_secs(3));
    assert_eq!(
        fast.hedge,
        Some(HedgeSpec {
            delay: HedgeDelay::Percentile(95.0),
            max_per_second: 4.0
        })
    );
    let a = fast.affinity.as_ref().unwrap();
    assert_eq!(a.by, AffinityBy::Header("x-session".into()));
    assert_eq!((a.ttl, a.max_entries), (Duration::from_secs(1800), 100_000));
    assert_eq!(fast.targets[0].context_window, Some(8000));
    let window = fast.fallbacks.context_window.as_ref().unwrap();
    assert_eq!(window.route.as_deref(), Some("long"));
    assert_eq!(
        window.targets, p.routes["long"].targets,
        "the route's targets, copied"
    );
    assert_eq!(
        fast.fallbacks.quota.as_ref().unwrap().targets[0].provider,
        "b"
    );
    assert!(fast.fallbacks.content_policy.is_none());
    let long = &p.routes["long"];
    assert_eq!(long.strategy, Strategy::Cost);
    assert_eq!(
        long.hedge.as_ref().unwrap().delay,
        HedgeDelay::Fixed(Duration::from_millis(150))
    );
    assert_eq!(long.affinity.as_ref().unwrap().by, AffinityBy::Prefix(3));
    assert_eq!(long.latency_decay, Duration::from_secs(10), "default decay");
    assert_eq!(p.routes["busy"].strategy, Strategy::LeastBusy);
    assert_eq!(
        p.keys[0].overrides,
        Overrides {
            strategy: true,
            targets: true
        }
    );
}

#[test]
fn bad_routing_options_are_reported_at_their_lines() {
    let text = format!(
        "{PROVIDERS}keys:\n  k:\n    secret_hash: \"sha256:{}\"\n    overrides: [strategy, model]\n\
routes:
  r:
    strategy: fastest
    targets: [{{provider: a, context_window: 0}}]
    hedge: {{delay: p100, max_per_second: 0}}
    affinity: {{by: header}}
    fallbacks:
      content_policy: {{route: r}}
      quota: {{}}
  s:
    targets: [{{provider: b}}]
    hedge: {{}}
    affinity: {{by: cookie, messages: 2}}
  t:
    targets: [{{provider: b}}]
    fallbacks: {{context_window: {{route: nowhere}}}}
",
        "0".repeat(64)
    );
    let errs = errors(&[("p.yaml", &text)]);
    assert_exactly(
        &errs,
        &[
            "p.yaml:7: keys.k.overrides[1]: unknown override \"model\"",
            "p.yaml:10: routes.r.strategy: unknown strategy \"fastest\" (expected failover, weighted, least_latency, least_busy or cost)",
            "p.yaml:11: routes.r.targets[0].context_window: must be at least 1 token",
            "p.yaml:12: routes.r.hedge.delay: \"p100\" is not a percentile",
            "p.yaml:12: routes.r.hedge.max_per_second: must be a number greater than zero",
            "p.yaml:13: routes.r.affinity.header: is required with by: header",
            "p.yaml:15: routes.r.fallbacks.content_policy.route: must name another route",
            "p.yaml:16: routes.r.fallbacks.quota: needs route (another route's targets) or targets",
            "p.yaml:19: routes.s.hedge.delay: is required",
            "p.yaml:20: routes.s.affinity.by: unknown source \"cookie\"",
            "p.yaml:20: routes.s.affinity.messages: is only for by: prefix",
            "p.yaml:23: routes.t.fallbacks.context_window.route: unknown route \"nowhere\"",
        ],
    );
}

#[test]
fn a_cost_route_needs_a_price_for_every_target() {
    let text = format!(
        "{PROVIDERS}prices:\n  priced: {{input: 1, output: 1}}\n  b/other: {{input: 1}}\n\
routes:
  r:
    strategy: cost
    targets:
      - {{provider: a, model: priced}}
      - {{provider: a, model: unpriced}}
      - {{provider: b, model: other}}
    fallbacks:
      quota: {{targets: [{{provider: b, model: spare}}]}}
"
    );
    let errs = errors(&[("p.yaml", &text)]);
    assert_exactly(
        &errs,
        &[
            "p.yaml:12: routes.r.targets[1]: route r uses strategy cost, but model \"unpriced\" of provider a has no entry in prices",
            "p.yaml:15: routes.r.fallbacks.quota.targets[0]: route r uses strategy cost, but model \"spare\"",
        ],
    );
}
