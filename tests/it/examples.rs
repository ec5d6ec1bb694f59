//! Every example policy in examples/policies passes `switchyard check` (the
//! same load, validation and build it runs), alone and as one folder, once
//! the environment variables it names are set, so the examples cannot rot.

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
