//! The real coding agents, unmodified, with their default settings and
//! default model names, through the gateway: `claude -p` (Claude Code) and
//! `codex exec` (Codex) each complete a prompt that takes one tool turn,
//! against the shipped policies (the `coding-agents` pattern route, mock
//! targets), against an anthropic-kind upstream and against an openai-kind
//! upstream (scripted fakes on 127.0.0.1:0, `common::agents`). Each test
//! checks that the CLI finished, printed the answer built from the tool's
//! output, and that the gateway carried the tool turn (the upstream saw the
//! tool's result, or the mock answered from it).
//!
//! The CLIs come from npm (`.ci/run` installs them); missing, a test fails
//! under `CI=true` and says SKIPPED elsewhere.

use crate::common;

use common::agents::{self, Run, Workdir};
use common::*;

const CLAUDE: (&str, &str) = ("claude", "@anthropic-ai/claude-code");
const CODEX: (&str, &str) = ("codex", "@openai/codex");

/// The Claude Code prompt: one `Read` of the work folder's file.
fn claude_prompt(dir: &Workdir) -> String {
    format!(
        "Use the Read tool to read `{}` and tell me what it says.",
        dir.file()
    )
}

/// The Codex prompt: its default tool `exec` runs a line of JavaScript.
const CODEX_PROMPT: &str =
    "Use the exec tool to run `text(\"the tool ran\")` and tell me what it printed.";

/// A route for both agents' default model names on `provider`.
fn agents_route(provider_yaml: &str) -> String {
    format!(
        "{provider_yaml}routes:\n  agents:\n    match: [\"claude-*\", \"gpt-5*\", \"gpt-6*\"]\n    targets: [{{provider: up}}]\n    retry: {{max_attempts: 1}}\n"
    )
}

fn explain(run: &Run) -> String {
    format!(
        "exit ok: {}\n--- stdout\n{}\n--- stderr\n{}",
        run.ok, run.stdout, run.stderr
    )
}

/// The upstream saw the agent's first turn and then its tool result.
fn assert_tool_turn(up: &FakeUpstream, run: &Run) {
    let seen = up.requests();
    assert!(
        seen.iter().any(agents::carries_tool_result),
        "no request carried the tool's result ({} requests)\n{}",
        seen.len(),
        explain(run)
    );
}

#[tokio::test]
async fn claude_code_runs_a_tool_turn_on_the_shipped_policies() {
    let Some(cli) = agents::find_cli(CLAUDE.0, CLAUDE.1) else {
        return;
    };
    let gw = shipped_gateway().await;
    let dir = Workdir::new();
    let run = agents::claude(&cli, &dir, &gw.base, &claude_prompt(&dir)).await;
    assert!(run.ok, "{}", explain(&run));
    // The mock answers from the tool's result: the file's text.
    assert!(
        run.stdout.contains("The tool said") && run.stdout.contains("hello from the file"),
        "{}",
        explain(&run)
    );
    let served = gw
        .metric(
            r#"switchyard_requests_total{endpoint="messages",route="coding-agents",status="200"}"#,
        )
        .await;
    assert!(
        served >= 2.0,
        "{served} Messages calls served\n{}",
        explain(&run)
    );
    gw.stop().await;
}

#[tokio::test]
async fn claude_code_runs_a_tool_turn_on_an_anthropic_kind_route() {
    let Some(cli) = agents::find_cli(CLAUDE.0, CLAUDE.1) else {
        return;
    };
    let dir = Workdir::new();
    let up = agents::anthropic_upstream(dir.file()).await;
    let yaml = agents_route(&format!(
        "providers:\n  up:\n    kind: anthropic\n    base_url: http://{}\n    api_key_env: TEST_UPSTREAM_KEY\n",
        up.addr
    ));
    let gw = gateway(&yaml).await;
    let run = agents::claude(&cli, &dir, &gw.base, &claude_prompt(&dir)).await;
    assert!(run.ok, "{}", explain(&run));
    assert!(
        run.stdout.contains("hello from the file"),
        "{}",
        explain(&run)
    );
    assert_tool_turn(&up, &run);
    // Its default model name, forwarded by the pattern route.
    let model = up.requests()[0].body["model"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(model.starts_with("claude-"), "{model}");
    gw.stop().await;
}

#[tokio::test]
async fn claude_code_runs_a_tool_turn_on_an_openai_kind_route() {
    let Some(cli) = agents::find_cli(CLAUDE.0, CLAUDE.1) else {
        return;
    };
    let dir = Workdir::new();
    let up = agents::openai_upstream(dir.file()).await;
    let gw = gateway(&agents_route(
        &providers_yaml(&[&up], "").replace("p0:", "up:"),
    ))
    .await;
    let run = agents::claude(&cli, &dir, &gw.base, &claude_prompt(&dir)).await;
    assert!(run.ok, "{}", explain(&run));
    assert!(
        run.stdout.contains("hello from the file"),
        "{}",
        explain(&run)
    );
    assert_tool_turn(&up, &run);
    gw.stop().await;
}

#[tokio::test]
async fn codex_runs_a_tool_turn_on_the_shipped_policies() {
    let Some(cli) = agents::find_cli(CODEX.0, CODEX.1) else {
        return;
    };
    let gw = shipped_gateway().await;
    let dir = Workdir::new();
    let run = agents::codex(&cli, &dir, &gw.base, CODEX_PROMPT).await;
    assert!(run.ok, "{}", explain(&run));
    assert!(
        run.stdout.contains("The tool said") && run.stdout.contains("the tool ran"),
        "{}",
        explain(&run)
    );
    let served = gw
        .metric(
            r#"switchyard_requests_total{endpoint="responses",route="coding-agents",status="200"}"#,
        )
        .await;
    assert!(
        served >= 2.0,
        "{served} Responses calls served\n{}",
        explain(&run)
    );
    gw.stop().await;
}

#[tokio::test]
async fn codex_runs_a_tool_turn_on_an_anthropic_kind_route() {
    let Some(cli) = agents::find_cli(CODEX.0, CODEX.1) else {
        return;
    };
    let dir = Workdir::new();
    let up = agents::anthropic_upstream(dir.file()).await;
    let yaml = agents_route(&format!(
        "providers:\n  up:\n    kind: anthropic\n    base_url: http://{}\n    api_key_env: TEST_UPSTREAM_KEY\n",
        up.addr
    ));
    let gw = gateway(&yaml).await;
    let run = agents::codex(&cli, &dir, &gw.base, CODEX_PROMPT).await;
    assert!(run.ok, "{}", explain(&run));
    assert!(run.stdout.contains("the tool ran"), "{}", explain(&run));
    assert_tool_turn(&up, &run);
    gw.stop().await;
}

#[tokio::test]
async fn codex_runs_a_tool_turn_on_an_openai_kind_route() {
    let Some(cli) = agents::find_cli(CODEX.0, CODEX.1) else {
        return;
    };
    let dir = Workdir::new();
    let up = agents::openai_upstream(dir.file()).await;
    let gw = gateway(&agents_route(
        &providers_yaml(&[&up], "").replace("p0:", "up:"),
    ))
    .await;
    let run = agents::codex(&cli, &dir, &gw.base, CODEX_PROMPT).await;
    assert!(run.ok, "{}", explain(&run));
    assert!(run.stdout.contains("the tool ran"), "{}", explain(&run));
    assert_tool_turn(&up, &run);
    // Its default model name, forwarded by the pattern route.
    let model = up.requests()[0].body["model"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(model.starts_with("gpt-"), "{model}");
    gw.stop().await;
}
