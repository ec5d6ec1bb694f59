//! Telemetry of the real binary: OTLP trace export to an in-process
//! collector (request and attempt spans with the GenAI attributes, under
//! the client's trace, `traceparent` forwarded upstream), JSON and text log
//! lines with stdout redirected to a file, environment variables for every
//! flag, `--help` and shell completions.

use crate::common;

use common::otlp::{OtlpReceiver, attr, hex_id, in_trace, one_request_span};
use common::served::{BIN, Served};
use common::*;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn write_policy(dir: &Path, yaml: &str) {
    std::fs::write(dir.join("p.yaml"), yaml).unwrap();
}

const TRACE_RETRY: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACE_MISS: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
const TRACE_HIT: &str = "6bf92f3577b34da6a3ce929d0e0e4738";
const TRACE_FANOUT: &str = "7bf92f3577b34da6a3ce929d0e0e4739";
pub(crate) const CLIENT_SPAN: &str = "00f067aa0ba902b7";

pub(crate) fn traceparent(trace: &str) -> String {
    format!("00-{trace}-{CLIENT_SPAN}-01")
}

pub(crate) async fn send(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
    trace: &str,
) -> reqwest::Response {
    http.post(format!("{base}{path}"))
        .header("traceparent", traceparent(trace))
        .header("tracestate", "vendor=opaque")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The traced run: a request retried and failed over, a cache miss and a
/// hit, an embeddings fan-out; spans at an in-process collector and JSON
/// log lines in a file.
#[tokio::test]
async fn spans_reach_an_otlp_collector_under_the_clients_trace_and_json_logs_carry_the_ids() {
    let collector = OtlpReceiver::start().await;
    let failing = FakeUpstream::down(500).await;
    let healthy = FakeUpstream::openai().await;
    let policies = tempfile::tempdir().unwrap();
    write_policy(
        policies.path(),
        &format!(
            "{}\n    max_batch_inputs: 2\nroutes:\n{}{}{}",
            providers_yaml(&[&failing, &healthy], "").trim_end(),
            "  flaky:\n    targets: [{provider: p0}, {provider: p1}]\n    retry: { max_attempts: 2, initial_backoff: 1ms, max_backoff: 2ms }\n",
            "  cached:\n    targets: [{provider: p1}]\n    cache: { enabled: true }\n",
            "  emb:\n    targets: [{provider: p1}]\n",
        ),
    );
    let served = Served::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--drain-delay",
            "0s",
            "--policies",
            policies.path().to_str().unwrap(),
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=abc%20123"),
            ("OTEL_SERVICE_NAME", "switchyard-it"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let base = served.base.clone();
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});

    let r = send(
        &http,
        &base,
        "/v1/chat/completions",
        chat("flaky"),
        TRACE_RETRY,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-attempts"], "3");
    let retried_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let r = send(
        &http,
        &base,
        "/v1/chat/completions",
        chat("cached"),
        TRACE_MISS,
    )
    .await;
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    let r = send(
        &http,
        &base,
        "/v1/chat/completions",
        chat("cached"),
        TRACE_HIT,
    )
    .await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit");
    let hit_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let inputs = json!(["a", "b", "c", "d", "e"]);
    let r = send(
        &http,
        &base,
        "/v1/embeddings",
        json!({"model": "emb", "input": inputs}),
        TRACE_FANOUT,
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&chat("no-such-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let missing_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let (log, _dir) = served.stop().await;
    let spans = collector.spans();

    // The retried and failed-over request: a server span under the client's.
    let request = one_request_span(&spans, TRACE_RETRY);
    assert_eq!(request.service, "switchyard-it");
    let rs = &request.span;
    assert_eq!(hex_id(&rs.parent_span_id), CLIENT_SPAN);
    assert_eq!(rs.name, "chat flaky");
    for (key, value) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.request.model", "flaky"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.response.model", "flaky"),
        ("gen_ai.usage.input_tokens", "3"),
        ("gen_ai.usage.output_tokens", "2"),
        ("switchyard.attempts", "3"),
        ("switchyard.provider", "p1"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(attr(rs, key).as_deref(), Some(value), "{key} of {rs:#?}");
    }
    let mut attempts = in_trace(&spans, TRACE_RETRY, SpanKind::Client);
    attempts.sort_by_key(|r| r.span.start_time_unix_nano);
    let answered = attempts.last().unwrap();
    assert_eq!(
        attr(&answered.span, "gen_ai.response.model").as_deref(),
        Some("flaky")
    );
    assert_eq!(
        attr(&answered.span, "gen_ai.usage.input_tokens").as_deref(),
        Some("3")
    );
    assert_eq!(
        attr(&answered.span, "gen_ai.usage.output_tokens").as_deref(),
        Some("2")
    );
    assert_eq!(attr(&attempts[0].span, "gen_ai.response.model"), None);
    let seen: Vec<(String, String, Option<String>)> = attempts
        .iter()
        .map(|a| {
            assert_eq!(
                a.span.parent_span_id, rs.span_id,
                "attempts are the request's children"
            );
            assert_eq!(a.span.name, "chat flaky");
            assert_eq!(
                attr(&a.span, "gen_ai.operation.name").as_deref(),
                Some("chat")
            );
            assert_eq!(
                attr(&a.span, "gen_ai.provider.name").as_deref(),
                Some("openai")
            );
            assert_eq!(
                attr(&a.span, "gen_ai.request.model").as_deref(),
                Some("flaky")
            );
            assert_eq!(
                attr(&a.span, "switchyard.breaker.state").as_deref(),
                Some("closed")
            );
            (
                attr(&a.span, "switchyard.provider").unwrap(),
                attr(&a.span, "switchyard.retry").unwrap(),
                attr(&a.span, "error.type"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("p0".into(), "0".into(), Some("status_5xx".into())),
            ("p0".into(), "1".into(), Some("status_5xx".into())),
            ("p1".into(), "0".into(), None),
        ]
    );
    // Each upstream request carried its attempt's span id, in the client's trace.
    let sent: Vec<String> = failing
        .requests()
        .iter()
        .chain(healthy.requests().iter().take(1))
        .map(|s| s.headers["traceparent"].to_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = attempts
        .iter()
        .map(|a| format!("00-{TRACE_RETRY}-{}-01", hex_id(&a.span.span_id)))
        .collect();
    assert_eq!(sent, expected);
    assert_eq!(healthy.requests()[0].headers["tracestate"], "vendor=opaque");

    // The cache miss went upstream once; the hit did not go upstream at all.
    let miss = one_request_span(&spans, TRACE_MISS);
    assert_eq!(
        attr(&miss.span, "switchyard.cache").as_deref(),
        Some("miss")
    );
    assert_eq!(in_trace(&spans, TRACE_MISS, SpanKind::Client).len(), 1);
    let hit = one_request_span(&spans, TRACE_HIT);
    assert_eq!(attr(&hit.span, "switchyard.cache").as_deref(), Some("hit"));
    assert_eq!(attr(&hit.span, "switchyard.attempts").as_deref(), Some("0"));
    assert_eq!(
        attr(&hit.span, "gen_ai.usage.input_tokens"),
        None,
        "nothing spent"
    );
    assert!(in_trace(&spans, TRACE_HIT, SpanKind::Client).is_empty());

    // Fan-out: one attempt per sub-batch, each with its index and size.
    let fanned = one_request_span(&spans, TRACE_FANOUT);
    assert_eq!(fanned.span.name, "embeddings emb");
    assert_eq!(
        attr(&fanned.span, "gen_ai.usage.input_tokens").as_deref(),
        Some("10")
    );
    let mut parts: Vec<(String, String)> = in_trace(&spans, TRACE_FANOUT, SpanKind::Client)
        .iter()
        .map(|a| {
            assert_eq!(
                attr(&a.span, "gen_ai.operation.name").as_deref(),
                Some("embeddings")
            );
            let size: u64 = attr(&a.span, "switchyard.fanout.sub_batch_size")
                .unwrap()
                .parse()
                .unwrap();
            let tokens = attr(&a.span, "gen_ai.usage.input_tokens").unwrap();
            assert_eq!(
                tokens,
                (2 * size).to_string(),
                "the fake counts 2 per input"
            );
            (
                attr(&a.span, "switchyard.fanout.sub_batch").unwrap(),
                attr(&a.span, "switchyard.fanout.sub_batch_size").unwrap(),
            )
        })
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        [
            ("0".into(), "2".into()),
            ("1".into(), "2".into()),
            ("2".into(), "1".into())
        ]
    );

    // The standard header variable reached the collector with every export.
    let exports = collector.export_headers();
    assert!(!exports.is_empty());
    assert!(exports.iter().all(|h| h["x-collector-key"] == "abc 123"));

    // JSON logs: every stdout line is an object; the access lines carry the
    // response's request id, the client's trace id and the outcome.
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let access = |id: &str| {
        lines
            .iter()
            .find(|v| v["target"] == "switchyard::access" && v["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id} in\n{log}"))
            .clone()
    };
    let line = access(&retried_id);
    assert_eq!(line["level"], "INFO");
    assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
    assert_eq!(line["trace_id"], TRACE_RETRY);
    assert_eq!(
        line["span"]["trace_id"], TRACE_RETRY,
        "the request span's fields"
    );
    assert_eq!(line["route"], "flaky");
    assert_eq!(line["provider"], "p1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["attempts"], 3);
    assert_eq!(line["key"], "_unknown");
    assert!(line["ms"].is_u64(), "{line}");
    assert_eq!(
        (&line["error_code"], &line["error"]),
        (&json!("-"), &json!("-")),
        "{line}"
    );
    assert_eq!(access(&hit_id)["cache"], "hit");
    let line = access(&missing_id);
    assert_eq!(line["status"], 404);
    assert_eq!(line["error_code"], "model_not_found");
    assert_eq!(
        line["trace_id"].as_str().unwrap().len(),
        32,
        "a trace of its own"
    );
    // Warnings inside a request carry its span too (the failed target).
    assert!(
        lines.iter().any(|v| v["level"] == "WARN"
            && v["span"]["id"] == retried_id.as_str()
            && v["provider"] == "p0"),
        "{log}"
    );
}

/// gRPC export configured in the policy (endpoint, protocol, a header from
/// a variable), to an in-process gRPC collector.
#[tokio::test]
async fn the_policy_can_send_spans_over_grpc_with_headers_from_the_environment() {
    let collector = OtlpReceiver::start().await;
    let up = FakeUpstream::openai().await;
    let policies = tempfile::tempdir().unwrap();
    write_policy(
        policies.path(),
        &format!(
            "{}routes:\n  m:\n    targets: [{{provider: p0, model: up-model}}]\n\
             tracing:\n  endpoint: {}\n  protocol: grpc\n  service_name: gw-grpc\n\
             \x20 headers_env: {{x-team-key: TEAM_KEY}}\n",
            providers_yaml(&[&up], ""),
            collector.endpoint()
        ),
    );
    let served = Served::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--drain-delay",
            "0s",
            "--policies",
            policies.path().to_str().unwrap(),
        ],
        &[
            ("TEAM_KEY", "team-secret-1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    let r = send(
        &reqwest::Client::new(),
        &served.base,
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        TRACE_RETRY,
    )
    .await;
    assert_eq!(r.status(), 200);
    served.stop().await;
    let spans = collector.spans();
    let request = one_request_span(&spans, TRACE_RETRY);
    assert_eq!(request.service, "gw-grpc");
    assert_eq!(
        attr(&request.span, "gen_ai.request.model").as_deref(),
        Some("m")
    );
    assert_eq!(
        attr(&request.span, "gen_ai.response.model").as_deref(),
        Some("up-model")
    );
    let attempts = in_trace(&spans, TRACE_RETRY, SpanKind::Client);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].span.name, "chat up-model");
    let sent = up.requests()[0].headers["traceparent"].clone();
    assert_eq!(
        sent,
        format!("00-{TRACE_RETRY}-{}-01", hex_id(&attempts[0].span.span_id)).as_str()
    );
    let exports = collector.export_headers();
    assert!(exports.iter().all(|h| {
        h["x-team-key"] == "team-secret-1"
            && h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/grpc")
    }));
}

/// Text logs with stdout redirected to a file: no escape codes. Every flag
/// from the environment: the policy folder, the address and the level.
#[tokio::test]
async fn text_logs_in_a_file_have_no_colour_and_flags_come_from_the_environment() {
    let up = FakeUpstream::openai().await;
    let policies = tempfile::tempdir().unwrap();
    // The policy's own address cannot be bound: only the variable's works.
    write_policy(
        policies.path(),
        &format!(
            "server:\n  listen: 192.0.2.1:9\n{}routes:\n  m:\n    targets: [{{provider: p0}}]\n",
            providers_yaml(&[&up], "")
        ),
    );
    let served = Served::start(
        &[],
        &[
            ("SWITCHYARD_POLICIES", policies.path().to_str().unwrap()),
            ("SWITCHYARD_LISTEN", "127.0.0.1:0"),
            ("SWITCHYARD_LOG_LEVEL", "info"),
            ("SWITCHYARD_DRAIN_DELAY", "0s"),
        ],
    )
    .await;
    let r = served.chat("m", "hi").await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let (log, _dir) = served.stop().await;
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a redirected log:\n{log}"
    );
    let access = log
        .lines()
        .find(|l| l.contains("switchyard::access") && l.contains(&id))
        .unwrap_or_else(|| panic!("no access line for {id} in\n{log}"));
    assert!(access.contains(" INFO "), "{access}");
    assert!(
        access.contains("status=200") && access.contains("route=\"m\""),
        "{access}"
    );
    assert!(!access.contains("trace_id"), "tracing is off: {access}");
    // The whole line, as the text layer writes it (the binary writes the
    // access line itself, straight into the log's buffer): the timestamp,
    // the level, the request span with its fields, the target, the fields.
    let (time, rest) = access.split_at(27);
    assert!(
        time.starts_with("20") && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{access}"
    );
    let want_start = format!(
        "  INFO request{{id={id} method=POST path=/v1/chat/completions route=m provider=p0}}: \
         switchyard::access: method=POST path=\"/v1/chat/completions\" status=200 endpoint=\"chat\" \
         route=\"m\" requested=\"m\" key=\"_unknown\" provider=\"p0\" model=\"m\" attempts=1 cache=\"-\" \
         outcome=\"complete\" ms="
    );
    assert!(rest.starts_with(&want_start), "{rest}\n{want_start}");
    let want_end = format!(" request_id=\"{id}\" error_code=\"-\" error=\"-\"");
    assert!(rest.ends_with(&want_end), "{rest}");

    // `check` reads the folder from the same variable.
    let out = Command::new(BIN)
        .arg("check")
        .env("SWITCHYARD_POLICIES", policies.path())
        .env("TEST_UPSTREAM_KEY", TEST_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK ("));
}

/// `--help` of every command, generated by clap.
#[test]
fn every_command_has_help_naming_its_options_and_variables() {
    let help = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&["--help"]);
    for command in ["serve", "check", "keys", "version", "completions"] {
        assert!(
            top.contains(&format!("\n  {command} ")),
            "{command} in\n{top}"
        );
    }
    let serve = help(&["serve", "--help"]);
    for (flag, var) in [
        ("--policies <DIR>", "SWITCHYARD_POLICIES"),
        ("--listen <ADDR>", "SWITCHYARD_LISTEN"),
        ("--drain-delay <DURATION>", "SWITCHYARD_DRAIN_DELAY"),
        ("--log-format <FORMAT>", "SWITCHYARD_LOG_FORMAT"),
        ("--log-level <FILTER>", "SWITCHYARD_LOG_LEVEL"),
    ] {
        assert!(serve.contains(flag), "{flag} in\n{serve}");
        assert!(
            serve.contains(&format!("[env: {var}=")),
            "{var} in\n{serve}"
        );
    }
    assert!(help(&["check", "--help"]).contains("Usage: switchyard check [OPTIONS] [DIR]"));
    assert!(help(&["keys", "--help"]).contains("Usage: switchyard keys <COMMAND>"));
    assert!(help(&["keys", "hash", "--help"]).contains("stdin"));
    assert!(help(&["keys", "new", "--help"]).contains("Usage: switchyard keys new"));
    assert!(help(&["version", "--help"]).contains("Usage: switchyard version"));
    assert!(help(&["completions", "--help"]).contains("bash"));
    assert_eq!(
        help(&["version"]).trim(),
        format!("switchyard {}", env!("CARGO_PKG_VERSION"))
    );
    // Mistakes exit 2 with clap's message.
    let out = Command::new(BIN)
        .args(["serve", "--log-format", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: text, json"));
}

/// The bash completion script, loaded into a real bash, completes commands
/// and options.
#[test]
fn bash_completion_completes_commands_and_options() {
    let script = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchyard.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let complete = |words: &str, cword: usize| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}'; COMP_WORDS=({words}); COMP_CWORD={cword}; \
                 COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
                 _switchyard switchyard \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                file.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let commands = complete("switchyard ''", 1);
    for c in ["serve", "check", "keys", "version", "completions"] {
        assert!(commands.lines().any(|l| l == c), "{c} in {commands:?}");
    }
    let options = complete("switchyard serve --log", 2);
    assert_eq!(
        options.lines().collect::<Vec<_>>(),
        ["--log-format", "--log-level"],
        "{options:?}"
    );
}
