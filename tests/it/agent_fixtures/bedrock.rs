//! Claude Code and Codex on a Bedrock route serving a Claude model: the
//! reasoning control as `additionalModelRequestFields`.

use super::{answer, fixture, ignored};
use crate::common;
use serde_json::json;

#[tokio::test]
async fn claude_code_and_codex_on_a_bedrock_claude_model() {
    use common::bedrock::{FakeBedrock, credentials};
    let fake = FakeBedrock::start().await;
    let yaml = format!(
        "providers:
  br:
    kind: bedrock
    region: us-east-1
    base_url: {}
    access_key_id_env: BR_KEY_ID
    secret_access_key_env: BR_SECRET
    session_token_env: BR_TOKEN
routes:
  br:
    unsupported: drop
    retry: {{max_attempts: 1}}
    targets: [{{provider: br, model: \"us.anthropic.claude-sonnet-4-5-20250929-v1:0\"}}]
",
        fake.base_url()
    );
    let c = credentials();
    let token = c.session_token.clone().unwrap();
    let env = [
        ("BR_KEY_ID", c.access_key_id.as_str()),
        ("BR_SECRET", c.secret_access_key.as_str()),
        ("BR_TOKEN", token.as_str()),
    ];
    let gw = common::gateway_env(&yaml, &env).await;
    let (got, m) = answer(&gw, &fixture("claude-main", "br"), true).await;
    assert_eq!(ignored(&got), "cache_control, context_management");
    assert_eq!(m["type"], "message");
    let sent = &fake.requests()[0].body;
    assert_eq!(
        sent["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 16384}}),
        "adaptive at effort high, as Claude 4.5 takes it"
    );
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 64000);
    let (got, r) = answer(&gw, &fixture("codex-main", "br"), true).await;
    assert_eq!(
        ignored(&got),
        "client_metadata, prompt_cache_key, include:reasoning.encrypted_content, \
         reasoning.context, text.verbosity, parallel_tool_calls"
    );
    assert_eq!(r["status"], "completed");
    let sent = &fake.requests()[1].body;
    assert_eq!(
        sent["additionalModelRequestFields"]["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(
        sent["inferenceConfig"]["maxTokens"], 32768,
        "room for the budget"
    );
    gw.stop().await;
}
