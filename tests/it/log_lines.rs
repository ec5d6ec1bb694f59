//! The real binary's text log lines inside a request: a warning while it
//! fails over and its access line both carry the request's span, with the
//! route and then the provider as the request learned them. (The binary
//! keeps that span's fields as text beside it and writes its access line
//! straight into the log's buffer; the unit tests hold both ways to the
//! layer's bytes, this holds the binary to the format.)

use crate::common;

use common::served::Served;
use common::*;

/// One chat request through the binary (started with `env`) on a route
/// whose first target, p1, answers 500 and whose second, p0, answers: it
/// fails over. Returns the request's id, the binary's log once stopped,
/// and the two upstreams (p0's, then p1's).
async fn failed_over(env: &[(&str, &str)]) -> (String, String, FakeUpstream, FakeUpstream) {
    let up = FakeUpstream::openai().await;
    let down = FakeUpstream::down(500).await;
    let yaml = format!(
        "{}routes:\n  m:\n    targets: [{{provider: p1}}, {{provider: p0}}]\n",
        providers_yaml(&[&up, &down], "")
    );
    let served = Served::with_policy(&yaml, env).await;
    let r = served.chat("m", "hi").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "p0");
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let (log, _dir) = served.stop().await;
    (id, log, up, down)
}

#[tokio::test]
async fn lines_inside_a_request_carry_its_span_with_what_it_learned() {
    let (id, log, up, down) = failed_over(&[]).await;
    let mine: Vec<&str> = log.lines().filter(|l| l.contains(&id)).collect();
    let span = format!("request{{id={id} method=POST path=/v1/chat/completions route=m");
    // The failed attempt's warning: routed, no provider yet.
    let warned = mine
        .iter()
        .find(|l| l.contains(" WARN ") && !l.contains("switchyard::access"))
        .unwrap_or_else(|| panic!("no warning for {id} in\n{log}"));
    assert!(warned.contains(&format!(" WARN {span}}}: ")), "{warned}");
    // The access line: the provider that answered too.
    let access = mine
        .iter()
        .find(|l| l.contains(": switchyard::access: "))
        .unwrap_or_else(|| panic!("no access line for {id} in\n{log}"));
    assert!(
        access.contains(&format!(
            "  INFO {span} provider=p0}}: switchyard::access: "
        )),
        "{access}"
    );
    assert!(!access.contains(" attempts=1 "), "{access}");
    assert!(down.calls() >= 1 && up.calls() == 1);
}

/// With the request span's level filtered out (`warn`, the access line
/// let through by its own target), a warning inside the request carries
/// no span, as a span the filter refused gives none; the access line is
/// still written in the request's span, as the layer wrote it before the
/// span became a scope of its own.
#[tokio::test]
async fn a_filtered_out_request_span_leaves_lines_inside_it_bare() {
    let (id, log, ..) =
        failed_over(&[("SWITCHYARD_LOG_LEVEL", "warn,switchyard::access=info")]).await;
    let warned = log
        .lines()
        .find(|l| l.contains(" WARN ") && l.contains("p1"))
        .unwrap_or_else(|| panic!("no warning about p1 in\n{log}"));
    assert!(!warned.contains("request{"), "{warned}");
    assert!(warned.contains(" WARN switchyard::"), "{warned}");
    let access = log
        .lines()
        .find(|l| l.contains(": switchyard::access: "))
        .unwrap_or_else(|| panic!("no access line in\n{log}"));
    assert!(
        access.contains(&format!("  INFO request{{id={id} method=POST ")),
        "{access}"
    );
}
