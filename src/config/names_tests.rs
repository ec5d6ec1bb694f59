//! Unit tests for route `match` patterns and `aliases`: resolution order,
//! the model each target is asked for, and every error at its line.

use std::sync::Arc;

use super::error_tests::{assert_exactly, errors};
use super::*;

fn load(text: &str) -> Policy {
    let env: Env = Arc::new(|_| None);
    let sources = [Source {
        name: "p.yaml".into(),
        text: text.into(),
    }];
    load_sources(&sources, &env, crate::providers::check_kind).unwrap()
}

const POLICY: &str = "\
providers:
  m: {kind: mock}
routes:
  claude-sonnet-4-5:
    aliases: [sonnet]
    targets: [{provider: m}]
  agents:
    match: [\"claude-*\", \"gpt-5*\"]
    targets:
      - provider: m
      - provider: m
        model: fixed-name
  prefixed:
    match: [\"anthropic/*\"]
    targets: [{provider: m, model: \"{*}\"}]
  claude-opus:
    match: [\"claude-opus-*\"]
    targets: [{provider: m}]
";

#[test]
fn exact_names_then_aliases_then_the_most_specific_pattern() {
    let p = load(POLICY);
    let is_route = |n: &str| p.routes.contains_key(n);
    let r = |n: &str| {
        p.names
            .resolve(n, is_route)
            .map(|r| (r.route.to_string(), r.via))
    };
    assert_eq!(
        r("claude-sonnet-4-5"),
        Some(("claude-sonnet-4-5".into(), Via::Exact))
    );
    assert_eq!(r("sonnet"), Some(("claude-sonnet-4-5".into(), Via::Alias)));
    // claude-opus-* has more literal characters than claude-*.
    assert_eq!(
        r("claude-opus-4-8"),
        Some(("claude-opus".into(), Via::Pattern { star: (12, 15) }))
    );
    assert_eq!(
        r("claude-haiku-4-5"),
        Some(("agents".into(), Via::Pattern { star: (7, 16) }))
    );
    assert_eq!(
        r("gpt-5"),
        Some(("agents".into(), Via::Pattern { star: (5, 5) }))
    );
    assert_eq!(r("gpt-4o"), None);
    assert_eq!(
        r(&format!("claude-{}", "x".repeat(300))),
        None,
        "too long to match"
    );
    assert_eq!(p.names.aliases(), vec![("sonnet", "claude-sonnet-4-5")]);
}

#[test]
fn targets_forward_or_map_the_requested_name() {
    let p = load(POLICY);
    let agents = &p.routes["agents"];
    // Without `model`, a pattern route's target forwards the name asked for.
    assert_eq!(agents.targets[0].model, "{model}");
    let via = Via::Pattern { star: (7, 15) };
    assert_eq!(
        agents.targets[0].model_for("agents", "claude-opus-4-8", via),
        "claude-opus-4-8"
    );
    assert_eq!(
        agents.targets[1].model_for("agents", "claude-opus-4-8", via),
        "fixed-name"
    );
    let prefixed = &p.routes["prefixed"].targets[0];
    let via = Via::Pattern { star: (10, 25) };
    assert_eq!(
        prefixed.model_for("prefixed", "anthropic/claude-sonnet-4", via),
        "claude-sonnet-4"
    );
    // An exact route keeps its name as the default model.
    assert_eq!(
        p.routes["claude-sonnet-4-5"].targets[0].model,
        "claude-sonnet-4-5"
    );
}

#[test]
fn bad_patterns_aliases_and_placeholders_are_reported_at_their_lines() {
    let errs = errors(&[(
        "p.yaml",
        "\
providers:
  m: {kind: mock}
routes:
  a:
    match:
      - claude-exact
      - \"*\"
      - \"bad name*\"
      - \"gpt-5*\"
    aliases: [b, \"x*\"]
    targets: [{provider: m, model: \"{name}\"}]
  b:
    match: [\"gpt-5*\"]
    aliases: [shared]
    targets: [{provider: m}]
  c:
    aliases: [shared]
    targets: [{provider: m}]
",
    )]);
    assert_exactly(
        &errs,
        &[
            "p.yaml:6: routes.a.match[0]: \"claude-exact\" has no wildcard",
            "p.yaml:7: routes.a.match[1]: \"*\" matches every name",
            "p.yaml:8: routes.a.match[2]: \"bad name*\" is not a model name pattern",
            "p.yaml:10: routes.a.aliases[0]: \"b\" is the name of route b",
            "p.yaml:10: routes.a.aliases[1]: \"x*\" is not a model name",
            "p.yaml:11: routes.a.targets[0].model: \"{name}\" has an unknown placeholder",
            "p.yaml:13: routes.b.match[0]: \"gpt-5*\" is already matched by route a",
            "p.yaml:17: routes.c.aliases[0]: \"shared\" is already an alias of route b",
        ],
    );
}
