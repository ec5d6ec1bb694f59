//! Unit tests for `state:`: Redis over TLS (a CA file, mutual TLS), Sentinel
//! and Cluster addresses become settings, and every mistake is reported at
//! its own line without quoting the URL.

use std::sync::Arc;

use super::*;

const BASE: &str = "providers:\n  m:\n    kind: mock\nroutes:\n  chat:\n    targets: [{provider: m, model: small}]\n";
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

fn load(dir: &std::path::Path, state: &str, url: &str) -> Result<Policy, Vec<String>> {
    let url = url.to_string();
    let env: Env = Arc::new(move |k| match k {
        "REDIS_URL" => Some(url.clone()),
        "SENTINEL_PASSWORD" => Some("sentinel-pw".into()),
        _ => None,
    });
    let sources = [Source {
        name: dir.join("p.yaml").display().to_string(),
        text: format!("{BASE}state:\n{state}"),
    }];
    load_sources(&sources, &env, crate::providers::check_kind)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn tls_sentinel_and_cluster_become_settings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), CA).unwrap();
    std::fs::write(dir.path().join("client.pem"), CA).unwrap();
    std::fs::write(dir.path().join("client.key"), KEY).unwrap();

    // A relative path is read from the policy file's folder.
    let p = load(
        dir.path(),
        "  backend: redis\n  url_env: REDIS_URL\n  tls:\n    ca_file: ca.pem\n    client_cert_file: client.pem\n    client_key_file: client.key\n",
        "rediss://:pw@redis.example:6380/2",
    )
    .unwrap();
    let StateBackend::Redis { url, tls, topology } = &p.state.backend else {
        panic!("{:?}", p.state.backend)
    };
    assert_eq!(url.expose(), "rediss://:pw@redis.example:6380/2");
    assert_eq!(tls.ca_pem.as_deref(), Some(CA));
    let (cert, key) = tls.client.as_ref().unwrap();
    assert_eq!((cert.as_str(), key.expose()), (CA, KEY));
    assert_eq!(topology, &RedisTopology::Single);

    // TLS with the system's roots: no tls section needed.
    let p = load(
        dir.path(),
        "  backend: redis\n  url_env: REDIS_URL\n",
        "rediss://h:6380",
    )
    .unwrap();
    assert!(
        matches!(&p.state.backend, StateBackend::Redis { tls, .. } if *tls == RedisTls::default())
    );

    let p = load(
        dir.path(),
        "  backend: redis\n  url_env: REDIS_URL\n  sentinel:\n    master: mymaster\n    nodes: [s2:26379, \"[::1]:26380\"]\n    password_env: SENTINEL_PASSWORD\n",
        "redis://:pw@s1:26379/1",
    )
    .unwrap();
    let StateBackend::Redis { topology, .. } = &p.state.backend else {
        panic!()
    };
    let RedisTopology::Sentinel {
        master,
        nodes,
        password,
    } = topology
    else {
        panic!("{topology:?}")
    };
    assert_eq!(master, "mymaster");
    assert_eq!(nodes, &["s2:26379", "[::1]:26380"]);
    assert_eq!(password.as_ref().map(Secret::expose), Some("sentinel-pw"));

    let p = load(
        dir.path(),
        "  backend: redis\n  url_env: REDIS_URL\n  cluster:\n    nodes: [n2:6379, n3:6379]\n",
        "rediss://:pw@n1:6379",
    )
    .unwrap();
    assert!(matches!(
        &p.state.backend,
        StateBackend::Redis { topology: RedisTopology::Cluster { nodes }, .. } if nodes == &["n2:6379", "n3:6379"]
    ));
}

#[test]
fn every_state_error_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "not a certificate").unwrap();
    let name = dir.path().join("p.yaml").display().to_string();
    let at = |line: u32, rest: &str| format!("{name}:{line}: {rest}");

    // BASE has 6 lines; `state:` is line 7.
    let e = load(
        dir.path(),
        "  backend: redis\n  url_env: REDIS_URL\n  tls:\n    ca_file: missing.pem\n    client_cert_file: empty.pem\n  sentinel:\n    nodes: [s1, \"h:0\"]\n    password_env: NOPE\n  cluster:\n    nodes: []\n",
        "redis://:secret-pw@h:6379/3",
    )
    .unwrap_err();
    let expected = [
        at(
            10,
            "state.tls: is only for rediss:// URLs (the variable holds a redis:// URL",
        ),
        at(11, "state.tls.ca_file: cannot read "),
        at(12, "state.tls.client_cert_file: "),
        at(
            10,
            "state.tls.client_key_file: is required with client_cert_file",
        ),
        at(16, "state.cluster: cannot be used with sentinel"),
    ];
    check(&e, &expected);

    let e = load(
        dir.path(),
        "  backend: redis\n  url_env: REDIS_URL\n  sentinel:\n    master: \"\"\n    nodes: [s1, \"h:0\"]\n    password_env: NOPE\n",
        "redis://h",
    )
    .unwrap_err();
    check(
        &e,
        &[
            at(11, "state.sentinel.master: must be non-empty"),
            at(12, "state.sentinel.nodes[0]: \"s1\" is not host:port"),
            at(12, "state.sentinel.nodes[1]: \"h:0\" is not host:port"),
            at(
                13,
                "state.sentinel.password_env: environment variable NOPE is not set",
            ),
        ],
    );

    let e = load(
        dir.path(),
        "  backend: redis\n  url_env: REDIS_URL\n  cluster:\n    nodes: [\"redis://n2:6379\"]\n",
        "rediss://:secret-pw@n1:6379/3",
    )
    .unwrap_err();
    check(
        &e,
        &[
            at(9, "state.url_env: a Redis Cluster has only database 0"),
            at(
                11,
                "state.cluster.nodes[0]: \"redis://n2:6379\" is not host:port",
            ),
        ],
    );

    let e = load(
        dir.path(),
        "  backend: redis\n  url_env: REDIS_URL\n",
        "http://:secret-pw@h",
    )
    .unwrap_err();
    check(
        &e,
        &[at(
            9,
            "state.url_env: the variable does not hold a redis:// or rediss:// URL",
        )],
    );

    let e = load(
        dir.path(),
        "  url_env: REDIS_URL\n  sentinel: {master: m}\n  tls: {}\n",
        "redis://h",
    )
    .unwrap_err();
    check(
        &e,
        &[
            at(8, "state.url_env: is only for backend: redis"),
            at(10, "state.tls: is only for backend: redis"),
            at(9, "state.sentinel: is only for backend: redis"),
        ],
    );
}

/// Each expected message starts exactly one error, there are no others,
/// and none quotes the URL's password.
fn check(errors: &[String], expected: &[String]) {
    for n in expected {
        let hits = errors.iter().filter(|e| e.starts_with(n.as_str())).count();
        assert_eq!(hits, 1, "{n:?} in:\n{}", errors.join("\n"));
    }
    assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));
    assert!(
        errors.iter().all(|e| !e.contains("secret-pw")),
        "{errors:?}"
    );
}
