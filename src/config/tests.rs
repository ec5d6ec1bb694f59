//! Unit tests for policy loading: defaults, merging, and error collection.

use std::sync::Arc;
use std::time::Duration;

use super::*;

fn env() -> Env {
    Arc::new(|k| (k == "KEY").then(|| "sk-secret".to_string()))
}

fn load(files: &[(&str, &str)]) -> Result<Policy, ConfigErrors> {
    let sources: Vec<Source> = files
        .iter()
        .map(|(n, t)| Source {
            name: n.to_string(),
            text: t.to_string(),
        })
        .collect();
    load_sources(&sources, &env(), crate::providers::check_kind)
}

const MINIMAL: &str =
    "providers:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n";

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("ms").is_err());
    assert!(parse_duration("5 days").is_err());
}

#[test]
fn defaults_are_applied() {
    let p = load(&[("a.yaml", MINIMAL)]).unwrap();
    assert_eq!(p.server.listen, "127.0.0.1:8080");
    let r = &p.routes["r"];
    assert_eq!(r.strategy, Strategy::Failover);
    assert_eq!(
        r.targets[0].model, "r",
        "upstream model defaults to the route name"
    );
    assert_eq!(r.retry.max_attempts, 3);
    assert!(!r.cache.enabled);
    assert_eq!(r.cache.ttl, p.cache.default_ttl);
    let m = &p.providers["m"];
    assert_eq!(m.breaker.failure_threshold, 5);
    assert_eq!(m.timeouts.first_byte, Duration::from_secs(60));
    assert_eq!(r.sub_batch_size(), m.max_batch_inputs);
    assert_eq!(p.server.cors, None, "CORS is off unless configured");
    assert!(p.server.dashboard.enabled, "the live page is on by default");
    assert_eq!(p.server.dashboard.path, "/");
}

#[test]
fn dashboard_settings_are_read() {
    let off = "server:\n  dashboard: {enabled: false}\n";
    let p = load(&[("a.yaml", off), ("b.yaml", MINIMAL)]).unwrap();
    assert!(!p.server.dashboard.enabled);
    assert_eq!(p.server.dashboard.part(""), None);
    let moved = "server:\n  dashboard: {path: /ops/live/}\n";
    let p = load(&[("a.yaml", moved), ("b.yaml", MINIMAL)]).unwrap();
    assert_eq!(p.server.dashboard.path, "/ops/live");
    assert_eq!(p.server.dashboard.stats_path(), "/ops/live/stats.json");
    assert_eq!(
        p.server.dashboard.part("/ops/live"),
        Some(DashboardPart::Page)
    );
}

#[test]
fn shipped_saturation_defaults_and_concurrency_settings() {
    let p = load(&[("a.yaml", MINIMAL)]).unwrap();
    let m = &p.providers["m"];
    let t = &m.timeouts;
    let secs = Duration::from_secs;
    assert_eq!(
        (t.connect, t.first_byte, t.idle, t.body, t.total),
        (secs(3), secs(60), secs(15), secs(5), secs(300))
    );
    assert_eq!(m.concurrency, ConcurrencySpec::default());
    assert_eq!(m.concurrency.limit, LimitSpec::Fixed(None));
    assert_eq!(m.concurrency.max_wait, secs(5));
    assert_eq!(p.server.provider_share, 0.5);
    let c = &p.server.connections;
    assert_eq!(
        (c.max, c.max_per_peer, c.loopback_exempt),
        (10_000, 1_000, true)
    );
    assert_eq!(c.first_request_timeout, secs(5));
    assert_eq!(p.routes["r"].max_concurrency, None);

    let set = "server:\n  provider_share: 0.25\n  connections: {max: 50, first_request_timeout: 1s}\n\
               providers:\n  a:\n    kind: mock\n    concurrency: {adaptive: {min: 2, max: 40}, max_wait: 0s}\n\
               \x20 f:\n    kind: mock\n    concurrency: {max_in_flight: 7}\n\
               routes:\n  r:\n    targets: [{provider: a}, {provider: f}]\n    fanout: {max_concurrency: 9}\n";
    let p = load(&[("a.yaml", set)]).unwrap();
    assert_eq!(p.server.provider_share, 0.25);
    assert_eq!(p.server.connections.max_per_peer, 5, "a tenth of max");
    let a = &p.providers["a"].concurrency;
    assert_eq!(a.limit, LimitSpec::Adaptive { min: 2, max: 40 });
    assert_eq!(a.max_wait, Duration::ZERO);
    assert_eq!(
        p.providers["f"].concurrency.limit,
        LimitSpec::Fixed(Some(7))
    );
    assert_eq!(p.routes["r"].max_concurrency, Some(9));
}

#[test]
fn cors_settings_are_read() {
    let cors = "server:\n  cors:\n    allowed_origins: [HTTPS://App.Example, 'http://[::1]:3000']\n    allowed_headers: [Content-Type]\n";
    let p = load(&[("a.yaml", cors), ("b.yaml", MINIMAL)]).unwrap();
    let c = p.server.cors.unwrap();
    assert_eq!(
        c.allowed_origins,
        AllowedOrigins::List(vec![
            "https://app.example".into(),
            "http://[::1]:3000".into()
        ])
    );
    assert_eq!(c.allowed_headers, Some(vec!["content-type".to_string()]));
    assert_eq!(c.max_age, Duration::from_secs(600));
    let any = "server:\n  cors: {allowed_origins: ['*'], max_age: 0s}\n";
    let c = load(&[("a.yaml", any), ("b.yaml", MINIMAL)])
        .unwrap()
        .server
        .cors
        .unwrap();
    assert_eq!(
        (c.allowed_origins, c.allowed_headers),
        (AllowedOrigins::Any, None)
    );
    assert_eq!(c.max_age, Duration::ZERO);
}

#[test]
fn compression_is_off_unless_the_policy_has_it() {
    let p = load(&[("b.yaml", MINIMAL)]).unwrap();
    assert_eq!(p.server.compression, None);
    let on = "server:\n  compression: {}\n";
    let c = load(&[("a.yaml", on), ("b.yaml", MINIMAL)])
        .unwrap()
        .server
        .compression
        .unwrap();
    assert_eq!(
        c,
        CompressionSettings {
            min_bytes: DEFAULT_MIN_COMPRESSED_BYTES,
            level: CompressionLevel::Fastest,
            gzip: true,
            br: true,
            zstd: true,
        }
    );
    let set = "server:\n  compression: {min_bytes: 0, level: best, encodings: [GZIP, zstd]}\n";
    let c = load(&[("a.yaml", set), ("b.yaml", MINIMAL)])
        .unwrap()
        .server
        .compression
        .unwrap();
    assert_eq!(
        (c.min_bytes, c.level, c.gzip, c.br, c.zstd),
        (0, CompressionLevel::Best, true, false, true)
    );
}

#[test]
fn files_merge_and_duplicates_are_errors() {
    let p = load(&[
        ("a.yaml", "providers:\n  m:\n    kind: mock\n"),
        ("b.yaml", "routes:\n  r:\n    targets: [{provider: m}]\n"),
        ("c.yaml", "# only a comment\n"),
    ])
    .unwrap();
    assert_eq!(p.routes.len(), 1);
    let e = load(&[
        ("a.yaml", MINIMAL),
        (
            "b.yaml",
            "cache: {max_bytes: 10}\nproviders:\n  m:\n    kind: mock\n",
        ),
        ("c.yaml", "cache: {max_bytes: 20}\n"),
    ])
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("b.yaml:3: providers.m: duplicate name; first defined in a.yaml:2"),
        "{text}"
    );
    assert!(
        text.contains("c.yaml:1: cache: section is already set in b.yaml:1"),
        "{text}"
    );
}

#[test]
fn secrets_come_from_env_and_never_print() {
    let p = load(&[(
        "a.yaml",
        "providers:\n  o:\n    kind: openai\n    base_url: http://x/v1/\n    api_key_env: KEY\nroutes:\n  r:\n    targets: [{provider: o}]\n",
    )])
    .unwrap();
    let spec = &p.providers["o"];
    let crate::providers::ProviderConfig::OpenAi(o) =
        crate::providers::ProviderConfig::parse(spec, &env()).unwrap()
    else {
        panic!()
    };
    assert_eq!(o.base_url, "http://x/v1", "trailing slash trimmed");
    assert_eq!(o.api_key.as_ref().unwrap().expose(), "sk-secret");
    assert!(!format!("{p:?}").contains("sk-secret"));
    assert!(!format!("{o:?}").contains("sk-secret"));
}

#[test]
fn every_error_is_collected() {
    let e = load(&[(
        "a.yaml",
        "server:\n  listen: nowhere\nproviders:\n  m:\n    kind: mock\n    failure_rate: 2\n    timeouts: {total: 0s}\n  x:\n    kind: grpc\n\
routes:\n  r:\n    strategy: weighted\n    targets: []\n    cache: {ttl: soon}\n    rate_limit: {requests_per_second: -1}\n",
    )])
    .unwrap_err();
    let text = e.to_string();
    for needle in [
        "server.listen",
        "providers.m.failure_rate",
        "providers.m.timeouts.total: must be greater than zero",
        "providers.x.kind: unknown provider kind \"grpc\"",
        "routes.r.targets: needs at least one target",
        "routes.r.cache.ttl",
        "routes.r.rate_limit.requests_per_second",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    assert_eq!(e.0.len(), 7, "{text}");
}

#[test]
fn empty_policy_is_an_error() {
    let e = load(&[("a.yaml", "# nothing\n")]).unwrap_err();
    assert!(e.to_string().contains("no routes are defined"));
}

#[test]
fn target_batch_limit_is_capped_by_its_provider() {
    let p = load(&[(
        "a.yaml",
        "providers:\n  m:\n    kind: mock\n    max_batch_inputs: 10\nroutes:\n  r:\n    targets: [{provider: m, max_batch_inputs: 50}]\n",
    )])
    .unwrap();
    assert_eq!(p.routes["r"].sub_batch_size(), 10);
}
