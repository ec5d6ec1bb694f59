//! The shared state on the Redis deployments managed services offer, each
//! a real redis-server started by the test: TLS (`rediss://`) checked
//! against a CA file from the policy, Redis Sentinel, Redis Cluster. In
//! each, two gateways share one RPM limit: together they admit what one
//! would, and the state is found where it belongs. With Sentinel, the
//! state also follows a failover to the promoted replica.

use crate::common;

use std::time::Duration;

use common::redis_managed::{Cluster, SENTINEL_MASTER, Sentinel, TlsRedis, keys};
use common::*;
use serde_json::json;

const RPM_KEY: &str = "sk-rpm-1111111111111111111111111111";
const WARM_KEY: &str = "sk-warm-2222222222222222222222222222";
const RPM: usize = 10;

/// A policy with one key limited to `RPM` requests a minute; `state` is
/// the body of its `state:` section.
fn policy(state: &str) -> String {
    format!(
        "state:\n  backend: redis\n  url_env: REDIS_URL\n  timeout: 500ms\n{state}\
providers:\n  m:\n    kind: mock\n\
routes:\n  chat:\n    targets: [{{provider: m, model: small}}]\n\
keys:\n  rpm:\n    secret_env: RPM_KEY\n    rpm: {RPM}\n  warm:\n    secret_env: WARM_KEY\n    rpm: 100000\n"
    )
}

async fn pair(state: &str, url: &str) -> (TestGateway, TestGateway) {
    let env = [
        ("REDIS_URL", url),
        ("RPM_KEY", RPM_KEY),
        ("WARM_KEY", WARM_KEY),
    ];
    let a = gateway_env(&policy(state), &env).await;
    let b = gateway_env(&policy(state), &env).await;
    // Connected once a call has reached Redis (the gauge follows calls).
    for gw in [&a, &b] {
        eventually(async || {
            chat_as(gw, WARM_KEY, 0).await;
            gw.metric("switchyard_state_up").await == 1.0
        })
        .await;
    }
    (a, b)
}

async fn chat(gw: &TestGateway, i: usize) -> u16 {
    chat_as(gw, RPM_KEY, i).await
}

async fn chat_as(gw: &TestGateway, key: &str, i: usize) -> u16 {
    gw.http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(key)
        .timeout(Duration::from_secs(5))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": format!("q{i}")}]}))
        .send()
        .await
        .expect("no request may hang or fail at the transport")
        .status()
        .as_u16()
}

/// Twice the limit, alternating gateways: one limit's worth is admitted
/// (plus at most one token refilled while the test runs), the rest 429.
async fn one_limit_across_two(a: &TestGateway, b: &TestGateway) {
    let mut statuses = Vec::new();
    for i in 0..2 * RPM {
        let gw = if i % 2 == 0 { a } else { b };
        statuses.push(chat(gw, i).await);
    }
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(admitted + refused, statuses.len(), "{statuses:?}");
    assert!(
        (RPM..=RPM + 1).contains(&admitted),
        "two gateways admitted {admitted} on one limit of {RPM}: {statuses:?}"
    );
}

#[tokio::test]
async fn two_gateways_share_a_limit_over_tls_checked_against_the_policys_ca_file() {
    let Some(redis) = TlsRedis::start().await else {
        return;
    };
    let state = format!("  tls:\n    ca_file: {}\n", redis.ca_file.display());
    let (a, b) = pair(&state, &redis.url()).await;
    one_limit_across_two(&a, &b).await;
    // The buckets are on the TLS server.
    let stored = keys(&redis.client()).await;
    assert!(
        stored.iter().any(|k| k.starts_with("switchyard:b:")),
        "{stored:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let Some(redis) = TlsRedis::start().await else {
        return;
    };
    // No ca_file: the system's roots, which do not know the test CA. The
    // gateway starts (Redis is reached in the background), never connects,
    // and under fail_closed refuses what needs the limit.
    let state = "  on_error: fail_closed\n";
    let env = [
        ("REDIS_URL", redis.url()),
        ("RPM_KEY", RPM_KEY.into()),
        ("WARM_KEY", WARM_KEY.into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gw = gateway_env(&policy(state), &env).await;
    assert_eq!(chat(&gw, 0).await, 503);
    assert_eq!(gw.metric("switchyard_state_up").await, 0.0);
    assert!(keys(&redis.client()).await.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn two_gateways_share_a_limit_through_redis_sentinel() {
    let Some(sentinel) = Sentinel::start().await else {
        return;
    };
    // The URL names the sentinel; the state lives on the master it names.
    let state = format!("  sentinel:\n    master: {SENTINEL_MASTER}\n");
    let (a, b) = pair(&state, &sentinel.sentinel_url()).await;
    one_limit_across_two(&a, &b).await;
    let stored = keys(&sentinel.master()).await;
    assert!(
        stored.iter().any(|k| k.starts_with("switchyard:b:")),
        "{stored:?}"
    );
    a.stop().await;
    b.stop().await;
}

/// The master dies; the sentinel promotes its replica; both gateways find
/// the new master on their next connect, and the limit spent before the
/// failover (replicated) still holds after it.
#[tokio::test]
async fn the_state_follows_a_sentinel_failover_to_the_promoted_replica() {
    let Some(mut sentinel) = Sentinel::with_replica().await else {
        return;
    };
    let state = format!("  sentinel:\n    master: {SENTINEL_MASTER}\n");
    let (a, b) = pair(&state, &sentinel.sentinel_url()).await;
    one_limit_across_two(&a, &b).await;
    let spent = tokio::time::Instant::now();
    // Replication is asynchronous: the replica is read once it has
    // acknowledged what the master holds.
    sentinel.replicated().await;
    let before = keys(&sentinel.replica()).await;
    assert!(
        before.iter().any(|k| k.starts_with("switchyard:b:")),
        "replicated: {before:?}"
    );
    sentinel.fail_over().await;
    // Each gateway's next calls break on the dead master, then reconnect
    // through the sentinel to the promoted replica.
    for gw in [&a, &b] {
        eventually(async || {
            chat_as(gw, WARM_KEY, 0).await == 200 && gw.metric("switchyard_state_up").await == 1.0
        })
        .await;
    }
    // (The old master is dead: the Redis these calls reached is the
    // promoted replica.) The limit spent before the failover holds after
    // it: a burst gets what the bucket refilled since (RPM / 60 a second),
    // not the fresh bucket a lost state would give.
    let mut admitted = 0;
    for i in 0..RPM {
        let gw = if i % 2 == 0 { &a } else { &b };
        admitted += usize::from(chat(gw, 1000 + i).await == 200);
    }
    let refilled = (spent.elapsed().as_secs_f64() * RPM as f64 / 60.0).ceil() as usize + 1;
    assert!(
        admitted <= refilled && admitted < RPM,
        "{admitted} admitted after the failover; {refilled} refilled since the limit was spent"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn two_gateways_share_a_limit_on_a_three_master_redis_cluster() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}", cluster.ports[0]);
    let state = format!(
        "  cluster:\n    nodes: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n",
        cluster.ports[1], cluster.ports[2]
    );
    let (a, b) = pair(&state, &url).await;
    one_limit_across_two(&a, &b).await;
    // Every key carries the hash tag {switchyard}: one slot, one node, so
    // the admission script's keys are together.
    let mut stored = Vec::new();
    let mut nodes_with_keys = 0;
    for client in cluster.clients() {
        let k = keys(&client).await;
        nodes_with_keys += usize::from(!k.is_empty());
        stored.extend(k);
    }
    assert!(
        !stored.is_empty() && stored.iter().all(|k| k.starts_with("{switchyard}:")),
        "{stored:?}"
    );
    assert_eq!(nodes_with_keys, 1, "{stored:?}");
    a.stop().await;
    b.stop().await;
}
