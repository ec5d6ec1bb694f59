//! Unit tests for error collection: every error in every file is listed,
//! each at the line of the key (or list item) it is about.

use std::sync::Arc;

use super::*;

fn env() -> Env {
    Arc::new(|k| (k == "KEY").then(|| "sk-secret".to_string()))
}

pub(super) fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let sources: Vec<Source> = files
        .iter()
        .map(|(n, t)| Source {
            name: n.to_string(),
            text: t.to_string(),
        })
        .collect();
    match load_sources(&sources, &env(), crate::providers::check_kind) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts each needle starts exactly one error line, and nothing else is reported.
pub(super) fn assert_exactly(errors: &[String], needles: &[&str]) {
    for n in needles {
        let hits = errors.iter().filter(|e| e.starts_with(n)).count();
        assert_eq!(
            hits,
            1,
            "{n:?} should start one error in:\n{}",
            errors.join("\n")
        );
    }
    assert_eq!(errors.len(), needles.len(), "{}", errors.join("\n"));
}

#[test]
fn shape_reads_exactly_what_serde_saphyr_reads() {
    for text in [
        "server: {listen: 8080, max_body_bytes: 0x10, shutdown_grace: 1.50}\n",
        "cache: {max_bytes: 1_000, default_ttl: \"5s\"}\nlimits: {per_client: {requests_per_second: 1, burst: \"3\"}}\n",
        "providers:\n  p:\n    kind: mock\n    failure_rate: .5\n    headers: {a: 1, b: true}\n    breaker:\n      count_rate_limits: yes\n",
        "routes:\n  r:\n    strategy: ~\n    targets:\n      - {provider: p, model: 1.50, weight: 2}\n      - provider: 'q'\n    retry:\n",
        "providers:\n  p: &b {kind: mock}\n  q: *b\n",
        "providers:\n  base: &b {kind: mock, latency: 1s}\n  p:\n    <<: *b\n    latency: 2s\n",
    ] {
        let direct = serde_saphyr::from_str::<raw::RawFile>(text);
        let root = node::parse(text).unwrap();
        let (shaped, findings) = shape::read::<raw::RawFile>(&root);
        match direct {
            Ok(direct) => {
                assert!(findings.errors.is_empty(), "{text}: {findings:?}");
                assert_eq!(format!("{direct:?}"), format!("{shaped:?}"), "{text}");
            }
            Err(e) => assert!(!findings.errors.is_empty(), "{text}: serde-saphyr says {e}"),
        }
    }
}

#[test]
fn shape_reports_what_serde_saphyr_reports_for_one_error() {
    for text in [
        "server: {listn: x}\n",
        "routes:\n  r:\n    retry: {max_attempts: abc}\n",
        "routes:\n  r:\n    retry:\n      max_attempts: 1.5\n",
        "routes:\n  r:\n    targets: 5\n",
        "providers:\n  p:\n    kind: [mock]\n",
        "providers:\n  p: 5\n",
        "providers:\n",
        "cache: {max_bytes: -1}\n",
        "providers:\n  p:\n    failure_status: 70000\n",
        "limits:\n  per_client:\n    requests_per_second: fast\n",
        "routes:\n  r:\n    cache: {enabled: 1}\n",
        "- 1\n",
    ] {
        let direct = serde_saphyr::from_str::<raw::RawFile>(text).unwrap_err();
        let root = node::parse(text).unwrap();
        let (_, findings) = shape::read::<raw::RawFile>(&root);
        assert_eq!(findings.errors.len(), 1, "{text}: {findings:?}");
        let found = &findings.errors[0];
        assert_eq!(found.message, node::message_of(&direct), "{text}");
        assert_eq!(
            Some(found.line),
            direct.location().map(|l| l.line()),
            "{text}"
        );
    }
}

const UNKNOWN_PROVIDER_FIELD: &str = "expected one of latency, failure_rate, failure_status, embedding_dims, or one every kind has: kind, timeouts, breaker, rate_limit, max_batch_inputs, max_response_bytes, tpm, concurrency";

#[test]
fn two_typos_in_one_file_are_both_listed_at_their_lines() {
    let e = errors(&[(
        "a.yaml",
        "server:\n  listn: 127.0.0.1:1\nproviders:\n  a:\n    kind: mock\n    latncy: 5ms\n  b:\n    kind: mock\n    failure_rat: 0.5\nroutes:\n  r:\n    targets: [{provider: a}]\n    retry:\n      max_atempts: 2\n",
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:2: server.listn: unknown field `listn`, expected one of listen, ",
            "a.yaml:6: providers.a.latncy: unknown field `latncy` for kind mock",
            "a.yaml:9: providers.b.failure_rat: unknown field `failure_rat` for kind mock",
            "a.yaml:14: routes.r.retry.max_atempts: unknown field `max_atempts`",
        ],
    );
    assert!(e[1].ends_with(UNKNOWN_PROVIDER_FIELD), "{}", e[1]);
}

#[test]
fn unknown_key_and_bad_duration_in_one_file_each_at_its_line() {
    let e = errors(&[(
        "a.yaml",
        "providers:\n  m:\n    kind: mock\n    timeout: {total: 5s}\nroutes:\n  r:\n    targets: [{provider: m}]\n    cache:\n      enabled: true\n      ttl: soon\n",
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:4: providers.m.timeout: unknown field `timeout`",
            "a.yaml:10: routes.r.cache.ttl: duration \"soon\" does not start with a number",
        ],
    );
}

#[test]
fn wrong_type_and_semantic_errors_are_listed_together_once_each() {
    let e = errors(&[(
        "a.yaml",
        "server:\n  max_body_bytes: lots\nproviders:\n  m:\n    kind: mock\n    failure_rate: 2\nroutes:\n  r:\n    strategy: fastest\n    targets: {provider: m}\n",
    )]);
    // `targets` has the wrong type: reported once, not again as "needs at least one target".
    assert_exactly(
        &e,
        &[
            "a.yaml:2: server.max_body_bytes: invalid u64",
            "a.yaml:6: providers.m.failure_rate: must be between 0 and 1",
            "a.yaml:9: routes.r.strategy: unknown strategy \"fastest\"",
            "a.yaml:10: routes.r.targets: expected sequence start",
        ],
    );
}

#[test]
fn a_bad_value_inside_retry_is_at_that_fields_line() {
    let e = errors(&[(
        "a.yaml",
        "providers:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n    retry:\n      jitter: true\n      max_attempts: 11\n      on_rate_limit: sleep\n      budget: {ratio: 20}\n",
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:9: routes.r.retry.max_attempts: must be between 1 and 10",
            "a.yaml:10: routes.r.retry.on_rate_limit: unknown value \"sleep\"",
            "a.yaml:11: routes.r.retry.budget.ratio: must be between 0 and 10",
        ],
    );
}

#[test]
fn a_bad_target_is_at_its_list_items_line() {
    let e = errors(&[(
        "a.yaml",
        "providers:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets:\n      - provider: m\n      - provider: nope\n        weight: 2\n      - model: x\n        weight: 0\n        provider: m\n",
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:8: routes.r.targets[1].provider: unknown provider \"nope\" (defined: m)",
            "a.yaml:11: routes.r.targets[2].weight: must be at least 1",
        ],
    );
}

#[test]
fn missing_fields_and_secrets_point_at_the_nearest_key() {
    let e = errors(&[(
        "a.yaml",
        "providers:\n  o:\n    kind: openai\n    base_url: https://x\n    api_key_env: NOPE\n  x:\n    latency: 1s\nroutes:\n  r:\n    targets:\n      - weight: 1\n",
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:5: providers.o.api_key_env: environment variable NOPE is not set",
            "a.yaml:6: providers.x.kind: is required",
            "a.yaml:11: routes.r.targets[0].provider: is required",
        ],
    );
}

#[test]
fn errors_across_files_are_all_listed() {
    let e = errors(&[
        (
            "a.yaml",
            "providers:\n  m:\n    kind: mock\n    latency: fast\n    breakr: {}\n",
        ),
        ("b.yaml", "routes:\n  r: [broken\n"),
        (
            "c.yaml",
            "routes:\n  s:\n    targets: [{provider: m}]\n    deadline: 0s\n    fanout: {max_concurency: 2}\n",
        ),
        ("d.yaml", "providers:\n  m:\n    kind: mock\n"),
    ]);
    assert_exactly(
        &e,
        &[
            "a.yaml:5: providers.m.breakr: unknown field `breakr`",
            "b.yaml:2:6: unclosed bracket '['",
            "c.yaml:5: routes.s.fanout.max_concurency: unknown field `max_concurency`",
            "d.yaml:2: providers.m: duplicate name; first defined in a.yaml:2",
            "a.yaml:4: providers.m.latency: duration \"fast\" does not start with a number",
            "c.yaml:4: routes.s.deadline: must be greater than zero",
        ],
    );
}

#[test]
fn cors_settings_are_checked_each_at_its_line() {
    let e = errors(&[(
        "a.yaml",
        "server:\n  cors:\n    allowed_origins:\n      - https://ok.example\n      - https://bad.example/\n      - ftp://x\n      - http://x:99999\n    allowed_headers: [content-type, \"bad header\"]\n    max_age: soon\nproviders:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n",
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:5: server.cors.allowed_origins[1]: \"https://bad.example/\" is not an origin",
            "a.yaml:6: server.cors.allowed_origins[2]: \"ftp://x\" is not an origin",
            "a.yaml:7: server.cors.allowed_origins[3]: \"http://x:99999\" has an invalid port",
            "a.yaml:8: server.cors.allowed_headers[1]: \"bad header\" is not a header name",
            "a.yaml:9: server.cors.max_age: duration \"soon\"",
        ],
    );
    let e = errors(&[(
        "a.yaml",
        "server:\n  cors:\n    allowed_origins: [\"*\", https://a.example]\n    allowed_hedaers: [x]\nproviders:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n",
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:3: server.cors.allowed_origins: \"*\" allows every origin; list it alone",
            "a.yaml:4: server.cors.allowed_hedaers: unknown field `allowed_hedaers`",
        ],
    );
    let e = errors(&[(
        "a.yaml",
        "server:\n  cors: {max_age: 1m}\nproviders:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n",
    )]);
    assert_exactly(
        &e,
        &["a.yaml:2: server.cors.allowed_origins: must list at least one origin"],
    );
}

#[test]
fn dashboard_settings_are_checked_each_at_its_line() {
    let routes = "providers:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n";
    let e = errors(&[(
        "a.yaml",
        &format!("server:\n  dashboard:\n    enabled: yes please\n    path: /metrics\n{routes}"),
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:3: server.dashboard.enabled:",
            "a.yaml:4: server.dashboard.path: \"/metrics\" would hide the gateway's own /metrics",
        ],
    );
    let e = errors(&[(
        "a.yaml",
        &format!("server:\n  dashboard:\n    path: live\n    colour: blue\n{routes}"),
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:3: server.dashboard.path: \"live\" must start with /",
            "a.yaml:4: server.dashboard.colour: unknown field `colour`",
        ],
    );
    let e = errors(&[(
        "a.yaml",
        &format!("server:\n  dashboard: {{path: /v1/}}\n{routes}"),
    )]);
    assert_exactly(
        &e,
        &["a.yaml:2: server.dashboard.path: \"/v1/\" would hide the gateway's own /v1"],
    );
}

#[test]
fn concurrency_and_connection_keys_are_checked_each_at_its_line() {
    let e = errors(&[(
        "a.yaml",
        "server:\n  provider_share: 1.5\n  connections:\n    max_per_peer: 0\n    first_request_timeout: 0s\n\
         providers:\n  a:\n    kind: mock\n    concurrency:\n      max_in_flight: 4\n      adaptive: {min: 1, max: 2}\n\
         \x20 b:\n    kind: mock\n    concurrency:\n      adaptive:\n        min: 8\n        max: 2\n      max_wait: soon\n\
         \x20 c:\n    kind: mock\n    concurrency: {max_in_flight: 0, burst: 3}\n\
         routes:\n  r:\n    targets: [{provider: a}]\n    fanout: {max_concurrency: 0}\n",
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:2: server.provider_share: must be a fraction above 0 and at most 1",
            "a.yaml:4: server.connections.max_per_peer: must be at least 1",
            "a.yaml:5: server.connections.first_request_timeout: must be greater than zero",
            "a.yaml:11: providers.a.concurrency.adaptive: set either max_in_flight",
            "a.yaml:16: providers.b.concurrency.adaptive.min: must not exceed adaptive.max",
            "a.yaml:18: providers.b.concurrency.max_wait: duration \"soon\"",
            "a.yaml:21: providers.c.concurrency.burst: unknown field `burst`",
            "a.yaml:21: providers.c.concurrency.max_in_flight: must be at least 1",
            "a.yaml:25: routes.r.fanout.max_concurrency: must be at least 1",
        ],
    );
}

#[test]
fn compression_keys_are_checked_each_at_its_line() {
    let e = errors(&[(
        "a.yaml",
        "server:\n  compression:\n    level: 11\n    encodings:\n      - gzip\n      - deflate\n      - gzip\n\
         \x20   min_bytes: -1\nproviders:\n  a: {kind: mock}\nroutes:\n  r: {targets: [{provider: a}]}\n",
    )]);
    assert_exactly(
        &e,
        &[
            "a.yaml:3: server.compression.level: \"11\" is not a level: use fastest, default or best",
            "a.yaml:6: server.compression.encodings[1]: \"deflate\" is not an encoding the gateway compresses with",
            "a.yaml:7: server.compression.encodings[2]: \"gzip\" is listed twice",
            "a.yaml:8: server.compression.min_bytes:",
        ],
    );
    let e = errors(&[(
        "a.yaml",
        "server:\n  compression: {encodings: []}\nproviders:\n  a: {kind: mock}\nroutes:\n  r: {targets: [{provider: a}]}\n",
    )]);
    assert_exactly(
        &e,
        &["a.yaml:2: server.compression.encodings: must list at least one of gzip, br, zstd"],
    );
}

#[test]
fn translation_keys_of_a_route_are_checked_at_their_lines() {
    let errs = errors(&[(
        "a.yaml",
        "providers:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n    unsupported: ignore\n    messages:\n      default_max_tokens: 0\n",
    )]);
    assert_exactly(
        &errs,
        &[
            "a.yaml:7: routes.r.unsupported: unknown value \"ignore\" (expected reject or drop)",
            "a.yaml:9: routes.r.messages.default_max_tokens: must be at least 1",
        ],
    );
}
