//! Unit tests for `keys:`, `prices:`, `state:`, `server.auth`, TPM and cache
//! scope: what valid sections become, and every error at its own line.

use std::sync::Arc;

use super::error_tests::{assert_exactly, errors};
use super::*;

const BASE: &str = "providers:\n  m:\n    kind: mock\nroutes:\n  chat:\n    targets: [{provider: m, model: small}]\n  embed-small:\n    targets: [{provider: m, model: e}]\n";

fn load(text: &str, env: &[(&'static str, &'static str)]) -> Policy {
    let env: Vec<(&'static str, &'static str)> = env.to_vec();
    let env: Env = Arc::new(move |k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    });
    let sources = [Source {
        name: "p.yaml".into(),
        text: text.to_string(),
    }];
    load_sources(&sources, &env, crate::providers::check_kind).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn keys_prices_and_state_become_the_policy() {
    let hash = key_hash("sk-team");
    let text = format!(
        "{BASE}server:\n  auth: required\nkeys:\n  team:\n    secret_hash: \"{hash}\"\n    models: [\"embed-*\"]\n    rpm: 60\n    tpm: 1000\n    budget: {{period: month, tokens: 5000, usd: 2.5}}\n    labels: {{owner: search}}\n  ops:\n    secret_env: OPS_KEY\nprices:\n  e: {{input: 0.02}}\n  m/small: {{input: 1, output: 2, cached: 0.5}}\nstate:\n  backend: redis\n  url_env: REDIS_URL\n  on_error: fail_closed\n  timeout: 100ms\n  prefix: sy\n"
    );
    let text = text.replace(
        "  embed-small:\n    targets: [{provider: m, model: e}]\n",
        "  embed-small:\n    targets: [{provider: m, model: e}]\n    tpm: 500\n    cache: {enabled: true, scope: per_key}\n",
    );
    let p = load(
        &text,
        &[("OPS_KEY", "sk-ops"), ("REDIS_URL", "redis://127.0.0.1:1/")],
    );
    assert_eq!(p.server.auth, AuthMode::Required);
    assert_eq!(p.keys.len(), 2);
    let ops = p.keys.iter().find(|k| k.alias == "ops").unwrap();
    assert_eq!(Some(ops.secret_sha256), parse_key_hash(&key_hash("sk-ops")));
    assert_eq!(ops.models, vec!["*".to_string()]);
    let team = p.keys.iter().find(|k| k.alias == "team").unwrap();
    assert_eq!((team.rpm, team.tpm), (Some(60), Some(1000)));
    let budget = team.budget.as_ref().unwrap();
    assert_eq!(
        (budget.period, budget.tokens, budget.usd),
        (BudgetPeriod::Month, Some(5000), Some(2.5))
    );
    assert_eq!(team.labels.get("owner").map(String::as_str), Some("search"));
    assert_eq!(p.prices.lookup("m", "e").map(|x| x.cached), Some(0.02));
    assert_eq!(p.prices.lookup("m", "small").map(|x| x.cached), Some(0.5));
    assert_eq!(p.prices.lookup("other", "small"), None);
    assert_eq!(p.routes["embed-small"].tpm, Some(500));
    assert_eq!(p.routes["embed-small"].cache.scope, CacheScope::PerKey);
    assert_eq!(p.routes["chat"].cache.scope, CacheScope::Shared);
    assert_eq!(p.state.on_error, OnStateError::FailClosed);
    assert_eq!(p.state.timeout, std::time::Duration::from_millis(100));
    assert_eq!(p.state.prefix, "sy");
    assert!(
        matches!(&p.state.backend, StateBackend::Redis { url, .. } if url.expose() == "redis://127.0.0.1:1/")
    );
    // The default: open, no keys, memory.
    let p = load(BASE, &[]);
    assert_eq!(
        (p.server.auth, p.keys.len(), &p.state.backend),
        (AuthMode::Open, 0, &StateBackend::Memory)
    );
}

#[test]
fn every_access_error_is_reported_at_its_line() {
    let e = errors(&[(
        "a.yaml",
        &format!(
            "{BASE}server:\n  auth: sometimes\nkeys:\n  _bad:\n    secret_hash: \"md5:x\"\n  both:\n    secret_hash: \"{h}\"\n    secret_env: KEY\n  none:\n    rpm: 0\n  typo:\n    secret_hash: \"{h2}\"\n    models: [\"chat\", \"gpt-*\"]\n    tpm: 0\n    budget: {{period: week, usd: -1}}\n  dup:\n    secret_hash: \"{h2}\"\n    budget: {{period: day}}\n  spend:\n    secret_env: MISSING\n    budget: {{period: day, usd: 5}}\nprices:\n  e: {{output: 1}}\nstate:\n  backend: redis\n  on_error: maybe\n  prefix: \"\"\n",
            h = key_hash("a"),
            h2 = key_hash("b"),
        ),
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:10: server.auth: unknown auth mode \"sometimes\"",
            "a.yaml:12: keys._bad: a key alias is 1 to 64",
            "a.yaml:13: keys._bad.secret_hash: must be \"sha256:\"",
            "a.yaml:16: keys.both.secret_env: give secret_hash or secret_env, not both",
            "a.yaml:17: keys.none: needs secret_hash",
            "a.yaml:18: keys.none.rpm: must be at least 1",
            "a.yaml:21: keys.typo.models[1]: \"gpt-*\" matches no route",
            "a.yaml:22: keys.typo.tpm: must be at least 1",
            "a.yaml:23: keys.typo.budget.period: unknown period \"week\"",
            "a.yaml:23: keys.typo.budget.usd: must be a number of US dollars",
            "a.yaml:19: keys.typo: has the same secret as keys.dup",
            "a.yaml:26: keys.dup.budget: needs tokens, usd or both",
            "a.yaml:28: keys.spend.secret_env: environment variable MISSING is not set",
            "a.yaml:29: keys.spend.budget.usd: route chat sends model \"small\" to m, which has no entry in prices",
            "a.yaml:31: prices.e.input: is required",
            "a.yaml:32: state.url_env: is required with backend: redis",
            "a.yaml:34: state.on_error: unknown policy \"maybe\"",
            "a.yaml:35: state.prefix: must be non-empty",
        ],
    );
    // Required auth without a single key would refuse everything.
    let e = errors(&[("a.yaml", &format!("{BASE}server:\n  auth: required\n"))]);
    assert_exactly(
        &e,
        &["a.yaml:10: server.auth: is required, but no keys are defined"],
    );
}
