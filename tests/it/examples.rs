//! Every example policy in examples/policies passes `switchyard check` (the
//! same load, validation and build it runs), alone and as one folder, once
//! the environment variables it names are set, so the examples cannot rot;
//! and `examples/rag_ingest.py` runs on the shipped policies.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use switchyard::config::{self, ConfigError, Env, Source};
use switchyard::metrics::Metrics;
use switchyard::routing::RouteTable;

fn examples() -> Vec<Source> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    let sources = config::read_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(sources.len() >= 4, "examples missing in {}", dir.display());
    sources
}

/// The environment variables a policy names (`*_env: NAME`, outside comments).
fn named_vars(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let (key, value) = l.split_once(':')?;
            let key = key
                .trim()
                .trim_start_matches("- ")
                .trim_start_matches('{')
                .trim();
            key.ends_with("_env")
                .then(|| value.trim().trim_end_matches('}').trim().to_string())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

fn env_with(vars: BTreeSet<String>) -> Env {
    Arc::new(move |name| {
        vars.contains(name)
            .then(|| format!("example-value-of-{name}"))
    })
}

/// What `switchyard check` runs: load, validate, build.
fn check(sources: &[Source], env: &Env) -> Vec<ConfigError> {
    let loaded =
        config::load_sources(sources, env, switchyard::providers::check_kind).and_then(|policy| {
            let metrics = Arc::new(Metrics::new());
            RouteTable::build(
                &policy,
                None,
                &metrics,
                env,
                &switchyard::state::Store::memory(metrics.clone()),
            )
            .map(|_| ())
        });
    match loaded {
        Ok(()) => Vec::new(),
        Err(errors) => errors.0,
    }
}

#[test]
fn each_example_passes_check_alone() {
    for source in examples() {
        let vars = named_vars(&source.text);
        let errors: Vec<String> = check(std::slice::from_ref(&source), &env_with(vars.clone()))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{}:\n{}", source.name, errors.join("\n"));
        // And the variables matter: without them, check names each one.
        if !vars.is_empty() {
            let errors = check(std::slice::from_ref(&source), &env_with(BTreeSet::new()));
            for var in &vars {
                assert!(
                    errors.iter().any(|e| e.message.contains(var.as_str())),
                    "{}: {var} unset was not reported",
                    source.name
                );
            }
        }
    }
}

#[test]
fn all_examples_pass_check_as_one_folder() {
    let sources = examples();
    let vars = sources.iter().flat_map(|s| named_vars(&s.text)).collect();
    let errors: Vec<String> = check(&sources, &env_with(vars))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_examples_name_their_variables() {
    let by_name = |name: &str| -> BTreeSet<String> {
        let source = examples()
            .into_iter()
            .find(|s| s.name.ends_with(name))
            .unwrap();
        named_vars(&source.text)
    };
    let expect = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        by_name("azure.yaml"),
        expect(&["AZURE_OPENAI_API_KEY", "AZURE_OPENAI_EU_API_KEY"])
    );
    assert_eq!(by_name("cohere.yaml"), expect(&["COHERE_API_KEY"]));
    assert_eq!(
        by_name("failover.yaml"),
        expect(&[
            "OPENAI_API_KEY",
            "FAILOVER_ANTHROPIC_API_KEY",
            "FAILOVER_GEMINI_API_KEY"
        ])
    );
    assert_eq!(
        by_name("openai-compatible.yaml"),
        expect(&[
            "VLLM_API_KEY",
            "TEI_API_KEY",
            "MISTRAL_API_KEY",
            "GROQ_API_KEY",
            "TOGETHER_API_KEY"
        ])
    );
}

/// `examples/rag_ingest.py` (the official OpenAI SDK) on the shipped
/// policies: a cold pass sent upstream in the route's sub-batches, a warm
/// pass answered from the per-input cache, and the baseline straight to an
/// upstream with the mock route's latency, in the table it prints; the
/// numbers it reads from `/metrics` agree with the gateway's own.
#[tokio::test]
async fn the_retrieval_ingest_example_runs_on_the_shipped_policies() {
    if !crate::common::python_module("openai") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let opts = switchyard::server::GatewayOptions {
        policy_dir: root.join("policies"),
        env: Arc::new(|_| None),
        listen: Some("127.0.0.1:0".into()),
        watch: false,
        sighup: false,
        drain_delay: Some(std::time::Duration::ZERO),
        busy_poll: switchyard::server::DEFAULT_BUSY_POLL,
        dispatch_hook: None,
    };
    let gw = switchyard::server::Gateway::start(opts, shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", gw.local_addr());
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(root.join("examples/rag_ingest.py"))
        .arg(format!("{base}/v1"))
        .args(["--docs", "2000", "--batch", "400", "--baseline-docs", "100"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("the example finishes within 2 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The table's rows: name, then docs, seconds, docs/s, requests,
    // sub-batches, cache hit rate.
    let row = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name:?} row in:\n{stdout}"));
        line[name.len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let cold = row("gateway, cold (large batches)");
    let warm = row("gateway, warm (large batches)");
    let direct = row("upstream direct, 1 request/doc");
    for r in [&cold, &warm, &direct] {
        assert_eq!(r.len(), 6, "{r:?} in:\n{stdout}");
        let rate: f64 = r[2].parse().unwrap();
        assert!(rate > 0.0, "{r:?}");
    }
    // 2000 new documents in requests of 400, split by the route's
    // max_batch_inputs (8): 250 sub-batches, no hits; then all hits.
    assert_eq!(
        (cold[0].as_str(), cold[3].as_str(), cold[4].as_str()),
        ("2000", "5", "250")
    );
    assert_eq!(cold[5], "0.0%");
    assert_eq!((warm[4].as_str(), warm[5].as_str()), ("0", "100.0%"));
    assert_eq!((direct[0].as_str(), direct[3].as_str()), ("100", "100"));
    assert!(
        stdout.contains(
            "upstream per-call latency: 20 ms (mock-embedder in policies/10-providers.yaml)"
        ),
        "the baseline waits what the mock route waits:\n{stdout}"
    );
    assert!(stdout.contains("all 2000 would take ~"), "{stdout}");
    assert!(stdout.contains("1000 documents: "), "{stdout}");
    // What it read from /metrics is the gateway's own count.
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (sample, want) in [
        (
            r#"switchyard_cache_hits_total{kind="embeddings",route="text-embedding-3-small"} "#,
            "2000",
        ),
        (
            r#"switchyard_cache_misses_total{kind="embeddings",route="text-embedding-3-small"} "#,
            "2000",
        ),
        (
            r#"switchyard_fanout_sub_batches_total{route="text-embedding-3-small"} "#,
            "250",
        ),
    ] {
        assert!(
            metrics.contains(&format!("{sample}{want}")),
            "{sample}{want}"
        );
    }
    shutdown.cancel();
    gw.wait().await;
}
