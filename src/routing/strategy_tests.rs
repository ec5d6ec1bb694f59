//! Unit tests of target order and of a call's plan, on route tables built
//! from policies (mock providers, no network) with live measures set by
//! hand and paused time.

use std::sync::Arc;
use std::time::Duration;

use super::call::{Call, Pace};
use super::plan::Plan;
use super::strategy::{Ask, Candidate, order};
use super::table::RouteTable;
use crate::config::{FallbackClass, Source, Strategy};
use crate::metrics::Metrics;
use crate::providers::{Need, Provider, UpstreamError};
use crate::state::Store;

const DECAY: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn table(routes: &str) -> RouteTable {
    table_with(
        "  p0: {kind: mock}\n  p1: {kind: mock}\n  p2: {kind: mock}\n",
        routes,
    )
}

fn table_with(providers: &str, routes: &str) -> RouteTable {
    let yaml = format!(
        "providers:\n{providers}\
         prices:\n  cheap: {{input: 0.1, output: 0.4}}\n  mid: {{input: 1, output: 2}}\n  \
         dear: {{input: 5, output: 15}}\nroutes:\n{routes}"
    );
    let env: crate::config::Env = Arc::new(|_| None);
    let sources = [Source {
        name: "t.yaml".into(),
        text: yaml,
    }];
    let policy = crate::config::load_sources(&sources, &env, crate::providers::check_kind)
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = Arc::new(Metrics::new());
    let store = Store::memory(Arc::clone(&metrics));
    RouteTable::build(&policy, None, &metrics, &env, &store).unwrap()
}

fn ask(pace: Pace) -> Ask {
    Ask {
        pace,
        decay: DECAY,
        input_tokens: 1000,
        output_tokens: 0,
    }
}

fn cands<'a>(t: &'a RouteTable, route: &str) -> Vec<Candidate<'a>> {
    t.routes[route]
        .spec
        .targets
        .iter()
        .map(|target| Candidate {
            target,
            handle: &t.providers[&target.provider],
        })
        .collect()
}

fn names(c: &[Candidate], order: &[usize]) -> Vec<String> {
    order
        .iter()
        .map(|&i| c[i].target.provider.clone())
        .collect()
}

/// `n` slots of the provider's bulkhead, held while the result lives.
fn hold(t: &RouteTable, provider: &str, n: usize) -> Vec<crate::resilience::Slot> {
    (0..n)
        .map(|_| {
            t.providers[provider]
                .concurrency
                .try_acquire()
                .expect("a free slot")
        })
        .collect()
}

fn open_breaker(t: &RouteTable, provider: &str) {
    for _ in 0..5 {
        t.providers[provider].breaker.record_failure();
    }
}

const THREE: &str = "  r:\n    targets: [{provider: p0}, {provider: p1}, {provider: p2}]\n";

#[test]
fn least_busy_weighs_in_flight_against_each_provider_s_limit() {
    // p0 may have 10 in flight, p1 only 2: 2 of 10 is less busy than 1 of 2.
    let t = table_with(
        "  p0: {kind: mock, concurrency: {max_in_flight: 10}}\n  p1: {kind: mock, concurrency: {max_in_flight: 2}}\n",
        "  r:\n    targets: [{provider: p0}, {provider: p1}]\n",
    );
    let c = cands(&t, "r");
    let _held = [hold(&t, "p0", 2), hold(&t, "p1", 1)];
    for _ in 0..20 {
        assert_eq!(
            order(Strategy::LeastBusy, &c, &ask(Pace::PerToken), &t.prices),
            vec![0, 1]
        );
    }
}

#[test]
fn weighted_order_is_a_permutation_biased_by_weight() {
    let t = table(
        "  r:\n    strategy: weighted\n    targets: [{provider: p0, weight: 9}, {provider: p1}]\n",
    );
    let c = cands(&t, "r");
    let mut first = [0u32; 2];
    for _ in 0..2000 {
        let o = order(Strategy::Weighted, &c, &ask(Pace::PerToken), &t.prices);
        let mut sorted = o.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1]);
        first[o[0]] += 1;
    }
    // Expect ~1800 vs ~200; bounds far outside random noise.
    assert!(first[0] > 1500 && first[1] > 80, "{first:?}");
    let o = order(Strategy::Failover, &c, &ask(Pace::PerToken), &t.prices);
    assert_eq!(o, vec![0, 1], "failover: as listed");
}

#[tokio::test(start_paused = true)]
async fn least_latency_prefers_the_fast_target_weighs_what_is_in_flight_and_skips_open_breakers() {
    let t = table(THREE);
    let c = cands(&t, "r");
    let a = ask(Pace::PerToken);
    t.providers["p0"]
        .live
        .sample(Pace::PerToken, 100 * MS, DECAY);
    t.providers["p1"]
        .live
        .sample(Pace::PerToken, 10 * MS, DECAY);
    t.providers["p2"]
        .live
        .sample(Pace::PerToken, 50 * MS, DECAY);
    let mut first = [0u32; 3];
    for _ in 0..600 {
        let o = order(Strategy::LeastLatency, &c, &a, &t.prices);
        first[o[0]] += 1;
        assert_eq!(
            &o[1..],
            if o[0] == 1 { &[2, 0] } else { &[1, 0] },
            "the rest cheapest first"
        );
    }
    assert_eq!(first[0], 0, "the slowest is never drawn first: {first:?}");
    assert!(
        first[1] > 350,
        "two of three pairs hold the fastest: {first:?}"
    );
    // Another kind of call is measured apart: nothing known, all equal.
    let streams = order(Strategy::LeastLatency, &c, &ask(Pace::FirstByte), &t.prices);
    assert_eq!(streams.len(), 3);
    // Calls in flight multiply the cost: 10ms x 20 is dearer than 100ms.
    let _held = hold(&t, "p1", 19);
    let o = order(Strategy::LeastLatency, &c, &a, &t.prices);
    assert_eq!(names(&c, &o)[2], "p1", "{o:?}");
    open_breaker(&t, "p2");
    for _ in 0..50 {
        let o = order(Strategy::LeastLatency, &c, &a, &t.prices);
        assert_eq!(
            names(&c, &o),
            ["p0", "p1", "p2"],
            "an open breaker goes last"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn least_latency_tries_a_slow_target_again_once_its_peak_has_faded() {
    let t = table("  r:\n    targets: [{provider: p0}, {provider: p1}]\n");
    let c = cands(&t, "r");
    let a = ask(Pace::PerToken);
    t.providers["p0"]
        .live
        .sample(Pace::PerToken, 150 * MS, DECAY);
    t.providers["p1"]
        .live
        .sample(Pace::PerToken, 30 * MS, DECAY);
    assert_eq!(order(Strategy::LeastLatency, &c, &a, &t.prices)[0], 1);
    // p1 keeps being measured at 30ms; p0 is left alone and fades.
    for _ in 0..20 {
        tokio::time::advance(100 * MS).await;
        t.providers["p1"]
            .live
            .sample(Pace::PerToken, 30 * MS, DECAY);
    }
    assert_eq!(
        order(Strategy::LeastLatency, &c, &a, &t.prices)[0],
        0,
        "probed again"
    );
}

#[test]
fn least_busy_takes_the_least_loaded_and_shares_ties() {
    let t = table(THREE);
    let c = cands(&t, "r");
    let a = ask(Pace::PerToken);
    let _held = [hold(&t, "p0", 3), hold(&t, "p1", 1), hold(&t, "p2", 2)];
    assert_eq!(order(Strategy::LeastBusy, &c, &a, &t.prices), vec![1, 2, 0]);
    let _more = hold(&t, "p1", 1);
    let mut first = [0u32; 3];
    for _ in 0..400 {
        first[order(Strategy::LeastBusy, &c, &a, &t.prices)[0]] += 1;
    }
    assert!(
        first[0] == 0 && first[1] > 100 && first[2] > 100,
        "{first:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn cost_takes_the_cheapest_healthy_target_ties_by_latency() {
    let t = table(
        "  r:\n    strategy: cost\n    targets: [{provider: p0, model: dear}, \
         {provider: p1, model: cheap}, {provider: p2, model: mid}]\n\
         \x20 tie:\n    strategy: cost\n    targets: [{provider: p0, model: mid}, {provider: p2, model: mid}]\n",
    );
    let c = cands(&t, "r");
    let a = ask(Pace::PerToken);
    assert_eq!(
        names(&c, &order(Strategy::Cost, &c, &a, &t.prices)),
        ["p1", "p2", "p0"]
    );
    open_breaker(&t, "p1");
    assert_eq!(
        names(&c, &order(Strategy::Cost, &c, &a, &t.prices)),
        ["p2", "p0", "p1"]
    );
    let c = cands(&t, "tie");
    t.providers["p0"]
        .live
        .sample(Pace::PerToken, 80 * MS, DECAY);
    t.providers["p2"]
        .live
        .sample(Pace::PerToken, 20 * MS, DECAY);
    assert_eq!(
        names(&c, &order(Strategy::Cost, &c, &a, &t.prices)),
        ["p2", "p0"]
    );
}

/// A chat call of a given size.
struct Sized(u64);

impl Call for Sized {
    type Reply = ();
    fn need(&self) -> Need {
        Need::Chat { stream: false }
    }
    fn estimated_tokens(&self) -> u64 {
        self.0
    }
    fn affinity(&self) -> Option<u64> {
        Some(7)
    }
    async fn attempt(
        self: Arc<Self>,
        _: Arc<dyn Provider>,
        _: Arc<str>,
    ) -> Result<(), UpstreamError> {
        Ok(())
    }
}

fn steps(plan: &mut Plan) -> Vec<String> {
    std::iter::from_fn(|| plan.next())
        .map(|s| format!("{}/{}", s.handle.name, s.target.model))
        .collect()
}

#[test]
fn a_call_over_a_window_never_reaches_that_target_and_fallbacks_take_over() {
    let t = table(
        "  r:\n    targets: [{provider: p0, model: short, context_window: 1000}, {provider: p1, model: short}]\n\
         \x20   fallbacks:\n      context_window: {targets: [{provider: p2, model: long, context_window: 100000}]}\n\
         \x20     quota: {route: other}\n\
         \x20 other:\n    targets: [{provider: p2, model: spare}]\n",
    );
    let r = &t.routes["r"];
    assert_eq!(
        steps(&mut Plan::new(&t, r, &Sized(500))),
        ["p0/short", "p1/short"]
    );
    assert_eq!(
        steps(&mut Plan::new(&t, r, &Sized(5000))),
        ["p1/short"],
        "p0 skipped"
    );
    // A context-window error: the rest of the plan is replaced, once.
    let mut plan = Plan::new(&t, r, &Sized(500));
    plan.next();
    assert!(plan.fall_back(FallbackClass::ContextWindow));
    assert!(
        !plan.fall_back(FallbackClass::Quota),
        "one fallback per call"
    );
    assert_eq!(steps(&mut plan), ["p2/long"]);
    // A quota error: the fallback route's targets after the rest.
    let mut plan = Plan::new(&t, r, &Sized(500));
    plan.next();
    assert!(plan.fall_back(FallbackClass::Quota));
    assert_eq!(steps(&mut plan), ["p1/short", "p2/spare"]);
    assert!(
        !Plan::new(&t, r, &Sized(500)).fall_back(FallbackClass::ContentPolicy),
        "none set"
    );
    // Over every window of the route: its context-window fallback at once.
    let t = table(
        "  r:\n    targets: [{provider: p0, context_window: 1000}]\n\
         \x20   fallbacks:\n      context_window: {targets: [{provider: p2, model: long}]}\n\
         \x20 bare:\n    targets: [{provider: p0, context_window: 1000}]\n",
    );
    assert_eq!(
        steps(&mut Plan::new(&t, &t.routes["r"], &Sized(5000))),
        ["p2/long"]
    );
    let mut bare = Plan::new(&t, &t.routes["bare"], &Sized(5000));
    assert!(bare.too_long() && bare.next().is_none());
}

#[test]
fn affinity_puts_the_conversation_s_target_first_unless_it_is_open_or_full() {
    let t = table_with(
        "  p0: {kind: mock}\n  p1: {kind: mock, concurrency: {max_in_flight: 1}}\n  p2: {kind: mock}\n",
        "  r:\n    affinity: {by: user}\n    targets: [{provider: p0}, {provider: p1}]\n",
    );
    let r = &t.routes["r"];
    let first = |t: &RouteTable| {
        let mut plan = Plan::new(t, r, &Sized(10));
        steps(&mut plan)[0].clone()
    };
    assert_eq!(first(&t), "p0/r", "no conversation yet: as listed");
    let affinity = r.affinity.as_ref().unwrap();
    affinity.set(
        7,
        super::affinity::Pin {
            provider: Arc::from("p1"),
            model: Arc::from("r"),
        },
    );
    assert_eq!(first(&t), "p1/r", "its target first");
    // Full (its bulkhead at its limit): the strategy decides.
    let held = hold(&t, "p1", 1);
    assert_eq!(first(&t), "p0/r");
    drop(held);
    assert_eq!(first(&t), "p1/r");
    // Its breaker open: the strategy decides.
    open_breaker(&t, "p1");
    assert_eq!(first(&t), "p0/r");
}
