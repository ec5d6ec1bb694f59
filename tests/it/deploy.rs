//! The deployables, checked without a cluster or a container engine: the
//! Kubernetes manifests and the Helm chart (rendered and linted by Helm's own
//! engine through helm-python-sdk) parse as YAML with the expected kinds,
//! probes, drain and non-root settings, and serve the shipped policies; the
//! Dockerfile's build and run steps are the ones docs/deploy.md gives, and
//! its command and healthcheck work on the real binary. A ConfigMap update
//! (kubelet's symlink swap) is seen by the policy folder watch.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchyard::config::{self, Policy, Source};

mod docker;
mod kubelet;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every YAML document of every `*.yaml` directly in `dir`.
fn manifests(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| parse(&std::fs::read_to_string(f).unwrap(), f))
        .collect()
}

fn parse(text: &str, what: &Path) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", what.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn kinds(docs: &[Value]) -> Vec<&str> {
    let mut k: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    k.sort();
    k
}

fn find<'a>(docs: &'a [Value], kind: &str, component: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d["kind"] == kind && d["metadata"]["labels"]["app.kubernetes.io/component"] == component
        })
        .unwrap_or_else(|| panic!("no {kind} for {component}"))
}

/// The shipped policies, by file name.
fn shipped_policies() -> BTreeMap<String, String> {
    config::read_dir(&repo("policies"))
        .unwrap()
        .into_iter()
        .map(|s| {
            let name = Path::new(&s.name)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, s.text)
        })
        .collect()
}

/// Loads a ConfigMap's files as the gateway would (`REDIS_URL` set).
fn load(data: &Value) -> Policy {
    let sources: Vec<Source> = data
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, text)| Source {
            name: name.clone(),
            text: text.as_str().unwrap().to_string(),
        })
        .collect();
    let env: config::Env = Arc::new(|k| (k == "REDIS_URL").then(|| "redis://redis:6379/0".into()));
    config::load_sources(&sources, &env, switchyard::providers::check_kind)
        .unwrap_or_else(|e| panic!("the ConfigMap's policies do not load: {e}"))
}

fn seconds(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(s) => s.trim_end_matches('s').parse().unwrap(),
        other => panic!("not a number of seconds: {other}"),
    }
}

/// The checks every gateway Deployment passes, manifests or chart; returns
/// the names of the ConfigMaps mounted as the policy folder.
fn check_gateway(docs: &[Value], policy: &Policy) -> Vec<String> {
    let deploy = find(docs, "Deployment", "gateway");
    let pod = &deploy["spec"]["template"];
    let spec = &pod["spec"];
    let c = &spec["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let arg = |flag: &str| {
        let i = args
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("{flag} in {args:?}"));
        args[i + 1]
    };
    assert_eq!(args[0], "serve");
    // The policy folder is the ConfigMap volume, mounted whole (no subPath:
    // subPath files never update).
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == arg("--policies"))
        .expect("a volume mounted at the --policies folder");
    assert!(mount.get("subPath").is_none(), "{mount}");
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let configmaps: Vec<String> = match volume.get("projected") {
        Some(p) => p["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["configMap"]["name"])
            .collect(),
        None => vec![&volume["configMap"]["name"]],
    }
    .into_iter()
    .map(|n| n.as_str().expect("a ConfigMap source").to_string())
    .collect();

    // Probes on the port the gateway listens on.
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(arg("--listen"), format!("0.0.0.0:{port}"));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "http");
    }

    // Drain: preStop sleeps at least the drain delay; the grace period
    // covers preStop, the drain delay and the policy's shutdown grace.
    let command = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .unwrap();
    assert_eq!(command[0], "sleep");
    let pre_stop = seconds(&command[1]);
    let drain = config::parse_duration(arg("--drain-delay"))
        .unwrap()
        .as_secs();
    assert!(pre_stop >= drain && drain >= policy.server.drain_delay.as_secs().min(1));
    assert!(
        pre_stop >= policy.server.drain_delay.as_secs(),
        "preStop {pre_stop}s"
    );
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace >= pre_stop + drain + policy.server.shutdown_grace.as_secs(),
        "terminationGracePeriodSeconds {grace}"
    );

    // Not root, no privilege escalation, read-only root filesystem.
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert!(spec["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));

    // Service and PodDisruptionBudget select these pods.
    let labels = pod["metadata"]["labels"].as_object().unwrap();
    let selects = |sel: &Value| {
        sel.as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    let svc = find(docs, "Service", "gateway");
    assert!(selects(&svc["spec"]["selector"]), "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    let pdb = find(docs, "PodDisruptionBudget", "gateway");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"]));
    assert!(seconds(&pdb["spec"]["minAvailable"]) >= 1);
    assert!(deploy["spec"]["replicas"].as_u64().unwrap() > seconds(&pdb["spec"]["minAvailable"]));
    configmaps
}

fn check_service_monitor(docs: &[Value]) {
    let sm = find(docs, "ServiceMonitor", "gateway");
    let svc = find(docs, "Service", "gateway");
    let labels = svc["metadata"]["labels"].as_object().unwrap();
    let sel = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    assert!(sel.iter().all(|(k, v)| labels.get(k) == Some(v)), "{sm}");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
}

#[test]
fn the_kubernetes_manifests_deploy_the_shipped_policies_with_probes_and_drain() {
    let base = manifests(&repo("deploy/kubernetes"));
    let redis = manifests(&repo("deploy/kubernetes/redis"));
    let monitoring = manifests(&repo("deploy/kubernetes/monitoring"));
    assert_eq!(
        kinds(&base),
        ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    );
    assert_eq!(
        kinds(&redis),
        [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "Secret",
            "Service"
        ]
    );
    assert_eq!(kinds(&monitoring), ["ServiceMonitor"]);

    // The ConfigMap is the shipped policies, byte for byte.
    let cm = find(&base, "ConfigMap", "gateway");
    let data: BTreeMap<String, String> = serde_json::from_value(cm["data"].clone()).unwrap();
    assert_eq!(data, shipped_policies());
    let policy = load(&cm["data"]);
    let mounted = check_gateway(&base, &policy);
    assert_eq!(mounted[0], cm["metadata"]["name"]);

    // The optional Redis part: its policy file lands in the same folder
    // (the projected volume's optional source) and, with the policies,
    // loads as shared state on the URL its Secret gives the gateway.
    let state = find(&redis, "ConfigMap", "redis");
    assert_eq!(mounted[1..], [state["metadata"]["name"].as_str().unwrap()]);
    let mut both = cm["data"].clone();
    both.as_object_mut()
        .unwrap()
        .extend(state["data"].as_object().unwrap().clone());
    assert!(load(&both).state.backend != config::StateBackend::Memory);
    let secret = find(&redis, "Secret", "redis");
    let url = secret["stringData"]["url"].as_str().unwrap();
    let redis_svc = find(&redis, "Service", "redis");
    let host = format!(
        "redis://{}:",
        redis_svc["metadata"]["name"].as_str().unwrap()
    );
    assert!(url.starts_with(&host), "{url}");
    let deploy = find(&base, "Deployment", "gateway");
    let env = &deploy["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(env["name"], "REDIS_URL");
    assert_eq!(
        env["valueFrom"]["secretKeyRef"]["name"],
        secret["metadata"]["name"]
    );

    let mut all = base.clone();
    all.extend(monitoring);
    check_service_monitor(&all);
}

/// `{template: text}` per values object, rendered by Helm's engine; `None`
/// (after SKIPPED) without helm-python-sdk, a failure under `CI=true`.
fn helm_render(cases: &[Value]) -> Option<Vec<BTreeMap<String, String>>> {
    let out = std::process::Command::new("python3")
        .arg(repo("tests/it/helm_render.py"))
        .arg(repo("deploy/helm/switchyard"))
        .arg(Value::from(cases.to_vec()).to_string())
        .output();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let missing = match &out {
        Err(e) => Some(format!("python3: {e}")),
        Ok(o) if o.status.code() == Some(3) => {
            Some(String::from_utf8_lossy(&o.stderr).into_owned())
        }
        Ok(_) => None,
    };
    if let Some(why) = missing {
        assert!(!ci, "CI=true: {why}");
        skipped(why.trim());
        return None;
    }
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // helm lint --strict: no warnings or errors (info, e.g. "icon is recommended", is fine).
    let lint = &v["lint"];
    assert_eq!(lint["errors"], json!([]), "{lint}");
    let serious: Vec<&Value> = lint["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["severity"].as_u64() > Some(1))
        .collect();
    assert!(serious.is_empty(), "{serious:?}");
    Some(serde_json::from_value(v["renders"].clone()).unwrap())
}

fn rendered_docs(render: &BTreeMap<String, String>) -> Vec<Value> {
    render
        .iter()
        .filter(|(name, _)| name.ends_with(".yaml"))
        .flat_map(|(name, text)| parse(text, Path::new(name)))
        .collect()
}

#[test]
fn the_helm_chart_renders_the_same_deployment_with_helms_engine() {
    // The chart ships the same policies.
    let chart_files = config::read_dir(&repo("deploy/helm/switchyard/files/policies")).unwrap();
    let texts: Vec<&str> = chart_files.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        shipped_policies()
            .values()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );

    let cases = [
        json!({}),
        json!({"sharedState": {"mode": "bundled"}, "serviceMonitor": {"enabled": true}, "drainDelaySeconds": 8}),
        json!({"sharedState": {"mode": "external", "external": {"urlSecret": "managed-redis", "caSecret": "redis-ca"},
               "settings": {"on_error": "fail_closed", "cluster": {"nodes": ["n2:6379"]}}}}),
        json!({"sharedState": {"mode": "external"}}),
        json!({"sharedState": {"mode": "sometimes"}}),
    ];
    let Some(renders) = helm_render(&cases) else {
        return;
    };

    // Defaults: the shipped policies, memory state, no ServiceMonitor.
    let docs = rendered_docs(&renders[0]);
    assert_eq!(
        kinds(&docs),
        ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    );
    let cm = find(&docs, "ConfigMap", "gateway");
    let data: BTreeMap<String, String> = serde_json::from_value(cm["data"].clone()).unwrap();
    assert_eq!(data, shipped_policies());
    let policy = load(&cm["data"]);
    assert_eq!(policy.state.backend, config::StateBackend::Memory);
    assert_eq!(
        check_gateway(&docs, &policy),
        [cm["metadata"]["name"].as_str().unwrap()]
    );

    // A bundled Redis: its objects, the state policy file, the URL.
    let docs = rendered_docs(&renders[1]);
    assert_eq!(
        kinds(&docs),
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "Service",
            "ServiceMonitor"
        ]
    );
    let policy = load(&find(&docs, "ConfigMap", "gateway")["data"]);
    assert!(matches!(
        policy.state.backend,
        config::StateBackend::Redis { .. }
    ));
    check_gateway(&docs, &policy);
    check_service_monitor(&docs);
    let c = &find(&docs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["lifecycle"]["preStop"]["exec"]["command"],
        json!(["sleep", "8"])
    );
    let redis_svc = find(&docs, "Service", "redis")["metadata"]["name"]
        .as_str()
        .unwrap();
    assert_eq!(c["env"][0]["value"], format!("redis://{redis_svc}:6379/0"));

    // A managed Redis: URL from its Secret, CA mounted where the policy reads it.
    let docs = rendered_docs(&renders[2]);
    let gw = find(&docs, "Deployment", "gateway");
    let c = &gw["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        "managed-redis"
    );
    let state = &find(&docs, "ConfigMap", "gateway")["data"]["30-state.yaml"];
    let state: Value = serde_saphyr::from_str(state.as_str().unwrap()).unwrap();
    let ca_file = state["state"]["tls"]["ca_file"].as_str().unwrap();
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| ca_file.starts_with(m["mountPath"].as_str().unwrap()))
        .unwrap();
    let volume = gw["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], "redis-ca");
    assert_eq!(state["state"]["on_error"], "fail_closed");
    assert_eq!(state["state"]["cluster"]["nodes"], json!(["n2:6379"]));

    // Mistakes fail the render with a message.
    assert!(
        renders[3]["error"].contains("sharedState.external.urlSecret"),
        "{:?}",
        renders[3]
    );
    assert!(
        renders[4]["error"].contains("\"sometimes\" is not none, bundled or external"),
        "{:?}",
        renders[4]
    );
}

/// Polls `url` until it answers 200 (at most 10 s).
async fn answers(http: &reqwest::Client, url: &str) -> bool {
    for _ in 0..400 {
        if let Ok(r) = http.get(url).timeout(Duration::from_secs(1)).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}
