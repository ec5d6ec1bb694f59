//! The shared state store against a real `redis-server` on 127.0.0.1: the
//! same answers as the memory store, exact limits across two "replicas",
//! batch calls that are one command, and what happens when Redis dies and
//! comes back. (Skipped, saying so, when redis-server is not installed.)

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::eventually;
use common::redis::RedisServer;
use switchyard::config::{
    OnStateError, ResponsesStoreSettings, Secret, StateBackend, StateSettings,
};
use switchyard::metrics::Metrics;
use switchyard::state::{Add, Adjust, Admit, Cap, Store, StoreError, Take, Which};
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack on top of the store's timeout.
const SLACK: Duration = Duration::from_millis(150);
const MINUTE: Duration = Duration::from_secs(60);

fn settings(url: &str, on_error: OnStateError) -> StateSettings {
    StateSettings {
        backend: StateBackend::Redis {
            url: Secret::new(url.to_string()),
            tls: Default::default(),
            topology: Default::default(),
        },
        on_error,
        timeout: TIMEOUT,
        prefix: "t".into(),
        responses: ResponsesStoreSettings {
            ttl: Duration::from_secs(90),
            max_bytes: 1 << 20,
            max_entry_bytes: 1000,
        },
    }
}

fn store(redis: &RedisServer, on_error: OnStateError) -> (Store, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let s = Store::new(&settings(&redis.url(), on_error), metrics.clone()).unwrap();
    (s, metrics)
}

/// Ten tokens, one per second.
fn take(key: &str, amount: u64) -> Take<'_> {
    Take {
        key,
        capacity: 10,
        per_minute: 60,
        amount,
    }
}

fn adjust(key: &str, delta: i64) -> Adjust<'_> {
    Adjust {
        key,
        capacity: 10,
        per_minute: 60,
        delta,
    }
}

fn add(key: &str, amount: i64) -> Add<'_> {
    Add {
        key,
        amount,
        ttl: MINUTE,
    }
}

/// An answer with its wait in tenths of a second (real time passes between
/// calls; at one token per second that moves a wait by microseconds).
fn show(a: Admit) -> String {
    match a {
        Admit::Granted => "granted".into(),
        Admit::Refused { which, wait } => {
            let wait = wait.map(|w| (w.as_millis() + 50) / 100);
            format!("refused {which:?} wait {wait:?}")
        }
    }
}

async fn scenario(s: &Store) -> Vec<String> {
    let mut out = Vec::new();
    let cap = Cap {
        key: "n",
        limit: 3,
        amount: 0,
        ttl: MINUTE,
    };
    // A budget of 10 reserving 6 per admission until settled.
    let reserve = Cap {
        key: "r",
        limit: 10,
        amount: 6,
        ttl: MINUTE,
    };
    let mut admit = async |takes: &[Take<'_>], caps: &[Cap<'_>]| {
        out.push(show(s.admit(takes, caps).await.unwrap()));
    };
    admit(&[take("a", 4)], &[]).await;
    admit(&[take("a", 4)], &[]).await;
    admit(&[take("a", 4)], &[]).await;
    admit(&[take("a", 11)], &[]).await;
    admit(&[take("b", 3), take("a", 5)], &[]).await;
    admit(&[take("b", 10)], &[]).await;
    admit(&[take("a", 1), take("b", 2)], &[]).await;
    let totals = s.settle(&[adjust("a", 7)], &[add("n", 2)]).await.unwrap();
    admit(&[take("a", 0)], &[]).await;
    admit(&[], &[cap]).await;
    let more = s.settle(&[], &[add("n", 1)]).await.unwrap();
    admit(&[take("a", 0)], &[cap]).await;
    s.settle(&[adjust("a", -100)], &[]).await.unwrap();
    admit(&[take("a", 10)], &[]).await;
    admit(&[take("a", 5), take("a", 6)], &[]).await;
    let never = Take {
        key: "c",
        capacity: 2,
        per_minute: 0,
        amount: 2,
    };
    admit(&[never], &[]).await;
    admit(&[Take { amount: 1, ..never }], &[]).await;
    admit(&[], &[reserve]).await;
    admit(&[], &[reserve]).await;
    admit(&[], &[reserve]).await;
    let settled = s
        .settle(&[], &[add("r", -6), add("gone", -3)])
        .await
        .unwrap();
    let counters = s.counters(&["n", "absent", "r", "gone"]).await.unwrap();
    out.push(format!(
        "totals {totals:?} {more:?} {settled:?} counters {counters:?}"
    ));
    out
}

#[tokio::test]
async fn the_same_bucket_scenario_gives_the_same_answers_on_memory_and_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let memory = scenario(&Store::memory(Arc::new(Metrics::new()))).await;
    let expected = [
        "granted",
        "granted",
        "refused Take(0) wait Some(20)",
        "refused Take(0) wait None",
        "refused Take(1) wait Some(30)",
        "granted",
        "refused Take(1) wait Some(20)",
        "refused Take(0) wait Some(50)",
        "granted",
        "refused Cap(0) wait None",
        "granted",
        "refused Take(1) wait Some(110)",
        "granted",
        "refused Take(0) wait None",
        "granted",
        "granted",
        "refused Cap(0) wait None",
        "totals [2] [3] [6, 0] counters [3, 0, 6, 0]",
    ];
    assert_eq!(memory, expected);
    let (shared, _) = store(&redis, OnStateError::FailClosed);
    assert!(shared.is_shared());
    assert_eq!(scenario(&shared).await, memory);
}

#[tokio::test]
async fn two_replicas_taking_from_one_bucket_grant_exactly_its_capacity() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let replicas = [
        store(&redis, OnStateError::FailClosed).0,
        store(&redis, OnStateError::FailClosed).0,
    ];
    // One token a minute: no refill worth a token while the test runs.
    let one = Take {
        key: "shared",
        capacity: 100,
        per_minute: 1,
        amount: 1,
    };
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let s = replicas[i % 2].clone();
            tokio::spawn(async move { s.admit(&[one], &[]).await.unwrap() == Admit::Granted })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.unwrap());
    }
    assert_eq!(granted, 100);
    let mut c = redis.client().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("t:b:shared")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        pttl > 60 * 60_000,
        "idle buckets expire once full again: {pttl}"
    );
}

#[tokio::test]
async fn caps_and_counters_are_shared_and_each_call_is_one_round_trip() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, _) = store(&redis, OnStateError::FailClosed);
    let (b, _) = store(&redis, OnStateError::FailClosed);
    assert_eq!(a.settle(&[], &[add("spend", 3)]).await.unwrap(), vec![3]);
    // Both scripts loaded (the first call of each loads it), then counted.
    assert_eq!(a.admit(&[take("x", 1)], &[]).await.unwrap(), Admit::Granted);
    let evalsha = redis.command_calls("evalsha").await;
    assert_eq!(
        b.settle(&[adjust("x", 1)], &[add("spend", 2)])
            .await
            .unwrap(),
        vec![5]
    );
    assert_eq!(a.counters(&["spend"]).await.unwrap(), vec![5]);
    let cap = |limit| Cap {
        key: "spend",
        limit,
        amount: 0,
        ttl: MINUTE,
    };
    assert_eq!(
        b.admit(&[take("x", 1)], &[cap(5)]).await.unwrap(),
        Admit::Refused {
            which: Which::Cap(0),
            wait: None
        }
    );
    assert_eq!(
        a.admit(&[take("x", 1)], &[cap(6)]).await.unwrap(),
        Admit::Granted
    );
    assert_eq!(
        redis.command_calls("evalsha").await,
        evalsha + 3,
        "one script call per settle and admit"
    );
    let mget = redis.command_calls("mget").await;
    assert_eq!(a.admit(&[], &[]).await.unwrap(), Admit::Granted);
    assert_eq!(a.counters(&[]).await.unwrap(), Vec::<u64>::new());
    assert_eq!(
        redis.command_calls("evalsha").await,
        evalsha + 3,
        "empty: none"
    );
    assert_eq!(redis.command_calls("mget").await, mget, "empty: none");
    let mut c = redis.client().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("t:n:spend")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        pttl > 50_000 && pttl <= 60_000,
        "the first add's ttl: {pttl}"
    );
}

fn digest(i: u8) -> [u8; 32] {
    let mut d = [0u8; 32];
    d[0] = i;
    d[31] = 0xab;
    d
}

#[tokio::test]
async fn cache_batches_are_one_command_keep_ttls_and_refuse_oversize_values() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, _) = store(&redis, OnStateError::FailOpen);
    let (b, _) = store(&redis, OnStateError::FailOpen);
    let items: Vec<_> = (0..100u8)
        .map(|i| {
            (
                digest(i),
                Bytes::from(vec![i; 100]),
                Duration::from_secs(30),
            )
        })
        .collect();
    a.cache_set_many(&items).await;
    let keys: Vec<[u8; 32]> = items.iter().map(|(k, _, _)| *k).collect();
    let (mget, get) = (
        redis.command_calls("mget").await,
        redis.command_calls("get").await,
    );
    let got = b.cache_get_many(&keys).await;
    assert_eq!(redis.command_calls("mget").await, mget + 1);
    assert_eq!(redis.command_calls("get").await, get);
    for (value, (_, want, _)) in got.iter().zip(&items) {
        assert_eq!(value.as_ref(), Some(want));
    }
    let mut c = redis.client().await;
    let key = format!("t:c:07{}ab", "00".repeat(30));
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 25_000 && pttl <= 30_000, "{key}: {pttl}");

    a.set_max_value_bytes(10);
    let (big, small) = (digest(200), digest(201));
    a.cache_set_many(&[
        (big, Bytes::from(vec![1; 11]), MINUTE),
        (small, Bytes::from(vec![2; 10]), MINUTE),
    ])
    .await;
    let got = b.cache_get_many(&[big, small]).await;
    assert_eq!(got, vec![None, Some(Bytes::from(vec![2; 10]))]);

    let memory = Store::memory(Arc::new(Metrics::new()));
    memory.cache_set_many(&items).await;
    assert_eq!(memory.cache_get_many(&keys[..3]).await, vec![None; 3]);
}

#[tokio::test]
async fn stored_responses_are_batched_shared_bounded_and_expire_on_both_backends() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (a, metrics) = store(&redis, OnStateError::FailOpen);
    let (b, _) = store(&redis, OnStateError::FailOpen);
    let memory = Store::new(
        &StateSettings {
            backend: StateBackend::Memory,
            ..settings("", OnStateError::FailOpen)
        },
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let big = Bytes::from(vec![b'x'; 1001]);
    for (writer, reader) in [(&a, &b), (&memory, &memory)] {
        let items = [
            ("r1", Bytes::from("one")),
            ("r2", Bytes::from("two")),
            ("r3", big.clone()),
        ];
        assert_eq!(
            writer.responses_put_many(&items).await.unwrap(),
            2,
            "r3 is over max_entry_bytes"
        );
        let got = reader
            .responses_get_many(&["r1", "r2", "r3", "r4"])
            .await
            .unwrap();
        assert_eq!(
            got,
            vec![
                Some(Bytes::from("one")),
                Some(Bytes::from("two")),
                None,
                None
            ]
        );
        assert_eq!(
            reader.responses_delete_many(&["r1", "r4"]).await.unwrap(),
            1
        );
        assert_eq!(
            writer.responses_get_many(&["r1"]).await.unwrap(),
            vec![None]
        );
    }
    // One command per batch, under the prefix, with the TTL.
    let mget = redis.command_calls("mget").await;
    b.responses_get_many(&["r2", "r1"]).await.unwrap();
    assert_eq!(redis.command_calls("mget").await, mget + 1);
    let mut c = redis.client().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("t:r:r2")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 85_000 && pttl <= 90_000, "{pttl}");
    // Redis down: an error the caller reports, counted, not a stale answer.
    drop(c);
    let mut redis = redis;
    redis.kill().await;
    assert!(matches!(
        a.responses_get_many(&["r2"]).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        metrics
            .state_errors
            .with_label_values(&["responses_get"])
            .get()
            >= 1
    );
}

/// Admits once, reporting how long it took.
async fn timed_admit(s: &Store, takes: &[Take<'_>]) -> Result<Admit, StoreError> {
    let start = Instant::now();
    let r = s.admit(takes, &[]).await;
    assert!(start.elapsed() < TIMEOUT + SLACK, "{:?}", start.elapsed());
    r
}

async fn raw_counter(redis: &RedisServer, key: &str) -> Option<u64> {
    let mut c = redis.client().await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn fail_open_keeps_limits_locally_and_replays_spend_after_a_restart() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (s, metrics) = store(&redis, OnStateError::FailOpen);
    let local = Take {
        key: "k",
        capacity: 3,
        per_minute: 1,
        amount: 1,
    };
    assert_eq!(timed_admit(&s, &[local]).await.unwrap(), Admit::Granted);
    assert_eq!(metrics.state_up.get(), 1);

    redis.kill().await;
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(show(timed_admit(&s, &[local]).await.unwrap()));
    }
    // A fresh local bucket of 3 (the one in Redis is out of reach).
    assert_eq!(
        answers,
        [
            "granted",
            "granted",
            "granted",
            "refused Take(0) wait Some(600)",
            "refused Take(0) wait Some(600)"
        ]
    );
    let admit_errors = metrics.state_errors.with_label_values(&["admit"]).get();
    assert_eq!(admit_errors, 5);
    assert_eq!(metrics.state_up.get(), 0);
    assert_eq!(s.settle(&[], &[add("spend", 4)]).await.unwrap(), vec![4]);
    assert_eq!(s.settle(&[], &[add("spend", 3)]).await.unwrap(), vec![7]);
    assert_eq!(s.counters(&["spend"]).await.unwrap(), vec![7], "local");

    redis.restart().await;
    // The first round trip that reaches Redis replays the parked spend.
    eventually(async || {
        s.counters(&["nothing"]).await.unwrap();
        raw_counter(&redis, "t:n:spend").await == Some(7)
    })
    .await;
    assert_eq!(metrics.state_up.get(), 1);
    assert_eq!(s.settle(&[], &[add("spend", 1)]).await.unwrap(), vec![8]);
    // So are the three tokens taken from the local bucket: it refills one
    // a minute, so they still weigh on the shared one (the restarted Redis
    // had none; it would have granted a full bucket of 3 on top).
    let level = raw_level(&redis, "t:b:k").await;
    assert!(level.is_some_and(|l| (0.0..0.5).contains(&l)), "{level:?}");
    assert!(
        matches!(s.admit(&[local], &[]).await.unwrap(), Admit::Refused { .. }),
        "the shared bucket is spent"
    );
}

/// A bucket's level as the scripts wrote it (`None`: absent, that is, full).
async fn raw_level(redis: &RedisServer, key: &str) -> Option<f64> {
    let mut c = redis.client().await;
    let level: Option<String> = redis::cmd("HGET")
        .arg(key)
        .arg("l")
        .query_async(&mut c)
        .await
        .unwrap();
    level.map(|l| l.parse().unwrap())
}

#[tokio::test]
async fn fail_closed_refuses_within_the_timeout_and_recovers_without_a_restart() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (s, metrics) = store(&redis, OnStateError::FailClosed);
    assert_eq!(
        timed_admit(&s, &[take("a", 1)]).await.unwrap(),
        Admit::Granted
    );

    redis.kill().await;
    for _ in 0..3 {
        let e = timed_admit(&s, &[take("a", 1)]).await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    }
    assert!(matches!(
        s.counters(&["spend"]).await,
        Err(StoreError::Unavailable(_))
    ));
    // Settling never fails: kept locally and parked for Redis.
    assert_eq!(s.settle(&[], &[add("spend", 9)]).await.unwrap(), vec![9]);
    assert_eq!(s.cache_get_many(&[digest(1)]).await, vec![None]);
    assert_eq!(metrics.state_errors.with_label_values(&["admit"]).get(), 3);
    assert_eq!(
        metrics.state_errors.with_label_values(&["cache_get"]).get(),
        1
    );

    redis.restart().await;
    eventually(async || s.admit(&[take("a", 1)], &[]).await.is_ok()).await;
    eventually(async || raw_counter(&redis, "t:n:spend").await == Some(9)).await;
    assert_eq!(s.counters(&["spend"]).await.unwrap(), vec![9]);
}

#[tokio::test]
async fn a_store_starts_while_redis_is_down_and_connects_when_it_is_up() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    redis.kill().await;
    let start = Instant::now();
    let (s, metrics) = store(&redis, OnStateError::FailClosed);
    assert!(start.elapsed() < Duration::from_millis(50), "did not block");
    assert!(!s.is_connected());
    let e = timed_admit(&s, &[take("a", 1)]).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");

    redis.restart().await;
    eventually(async || s.admit(&[take("a", 1)], &[]).await.is_ok()).await;
    assert!(s.is_connected());
    assert_eq!(metrics.state_up.get(), 1);
}

#[tokio::test]
async fn a_bad_url_is_refused_without_showing_the_password() {
    let metrics = Arc::new(Metrics::new());
    for url in [
        "redis://:hunter2@[not-a-host",
        "rediss://:hunter2@example.com:notaport/",
    ] {
        let e = Store::new(&settings(url, OnStateError::FailOpen), metrics.clone()).unwrap_err();
        assert!(matches!(e, StoreError::BadUrl(_)), "{e}");
        assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
    }
    // TLS (rediss://) is a store like any other.
    for url in [
        "redis://:hunter2@127.0.0.1:1/",
        "rediss://:hunter2@127.0.0.1:1/",
    ] {
        let s = Store::new(&settings(url, OnStateError::FailOpen), metrics.clone()).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"), "{s:?}");
    }
}
