//! What a translated route does with what chat cannot express, and the
//! spec parity of translated answers, over HTTP: `unsupported: reject`
//! (the default: a 400 naming the feature and the route, worded and coded
//! alike for Messages and Responses) against `unsupported: drop` (served,
//! the dropped parts named in `x-switchyard-ignored` and counted in
//! `switchyard_ignored_fields_total`); Responses usage with cache writes,
//! echoed function tools with `strict`, `user` omitted unless sent;
//! Messages without `max_tokens` refused as Anthropic does or given the
//! route's default; a legacy completion with `prompt: null`.

use crate::common;

use common::{FakeUpstream, Reply};
use serde_json::{Value, json};

/// Routes `keep` (reject, the default) and `lenient` (drop) on the mock.
fn policy() -> &'static str {
    "providers:
  m:
    kind: mock
routes:
  keep:
    targets: [{provider: m}]
  lenient:
    unsupported: drop
    targets: [{provider: m}]
"
}

const WEB_SEARCH: &str = "web_search";

/// Built-in tools, and with `unknown` an unknown field too.
fn responses_body(route: &str, unknown: bool) -> Value {
    let mut b = json!({"model": route, "input": "hello there",
           "tools": [{"type": WEB_SEARCH}, {"type": "code_interpreter", "container": {"type": "auto"}},
                     {"type": "function", "name": "f", "parameters": {"type": "object"}}]});
    if unknown {
        b["max_tool_calls"] = json!(2);
    }
    b
}

/// A server tool, and with `unknown` an unknown field too.
fn messages_body(route: &str, unknown: bool) -> Value {
    let mut b = json!({"model": route, "max_tokens": 50,
           "tools": [{"type": "web_search_20250305", "name": WEB_SEARCH},
                     {"name": "f", "input_schema": {"type": "object"}}],
           "messages": [{"role": "user", "content": "hello there"}]});
    if unknown {
        b["container"] = json!("c");
    }
    b
}

#[tokio::test]
async fn reject_refuses_by_name_and_drop_serves_and_names() {
    let gw = common::gateway(policy()).await;
    // Reject: Responses and Messages refuse alike, naming feature and route.
    let r = gw
        .post("/v1/responses", responses_body("keep", false))
        .await;
    assert_eq!(r.status(), 400);
    let e = common::error_of(r).await;
    assert_eq!(e["code"], "unsupported_feature");
    let responses_message = e["message"].as_str().unwrap().to_string();
    assert!(
        responses_message.starts_with("The model `keep` cannot serve "),
        "{e}"
    );
    assert!(responses_message.contains(WEB_SEARCH), "{e}");
    let tail = |api: &str| {
        format!(": its targets answer the {api} API through stateless chat completions.")
    };
    assert!(responses_message.ends_with(&tail("Responses")), "{e}");
    let r = gw.post("/v1/messages", messages_body("keep", false)).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "unsupported_feature");
    let messages_message = v["error"]["message"].as_str().unwrap();
    assert!(
        messages_message.starts_with("The model `keep` cannot serve "),
        "{v}"
    );
    assert!(messages_message.contains(WEB_SEARCH), "{v}");
    assert!(messages_message.ends_with(&tail("Messages")), "{v}");
    assert!(!messages_message.contains("provider kind"), "{v}");
    // An unknown field is refused by name too.
    let e = common::error_of(gw.post("/v1/responses", responses_body("keep", true)).await).await;
    assert!(
        e["message"].as_str().unwrap().contains("`max_tool_calls`"),
        "{e}"
    );
    assert_eq!(
        gw.metric("switchyard_ignored_fields_total{field=\"tools\",route=\"keep\"}")
            .await,
        0.0
    );

    // Drop: served; what was dropped is named and counted.
    let r = gw
        .post("/v1/responses", responses_body("lenient", true))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-switchyard-ignored"],
        "max_tool_calls, tools:web_search, tools:code_interpreter"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "completed");
    let r = gw
        .post("/v1/messages", messages_body("lenient", true))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-switchyard-ignored"],
        "container, tools:web_search_20250305"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    let count = |field: &'static str| {
        let gw = &gw;
        async move {
            gw.metric(&format!(
                "switchyard_ignored_fields_total{{field=\"{field}\",route=\"lenient\"}}"
            ))
            .await
        }
    };
    assert_eq!(count("tools").await, 3.0);
    assert_eq!(
        count("unknown_field").await,
        2.0,
        "max_tool_calls, container"
    );
    // Metadata is accepted whatever the route's choice.
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "keep", "input": "x", "client_metadata": {"a": "b"},
                   "include": ["reasoning.encrypted_content"], "service_tier": "auto"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-switchyard-ignored"],
        "client_metadata, service_tier, include:reasoning.encrypted_content"
    );
    gw.stop().await;
}

/// A chat upstream (openai kind) and an Anthropic-shaped one that report
/// cache reads and writes.
async fn caching_upstreams() -> (FakeUpstream, FakeUpstream) {
    let chat = FakeUpstream::start(|s, _| async move {
        Reply::Json(
            200,
            json!({"id": "chatcmpl-c", "object": "chat.completion", "created": 1,
                   "model": s.body["model"],
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "cached"}}],
                   "usage": {"prompt_tokens": 30, "completion_tokens": 1, "total_tokens": 31,
                             "prompt_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 7}}}),
        )
    })
    .await;
    let claude = FakeUpstream::start(|s, _| async move {
        Reply::Json(
            200,
            json!({"id": "msg_c", "type": "message", "role": "assistant", "model": s.body["model"],
                   "content": [{"type": "text", "text": "cached"}], "stop_reason": "end_turn",
                   "stop_sequence": null,
                   "usage": {"input_tokens": 3, "output_tokens": 1,
                             "cache_read_input_tokens": 20, "cache_creation_input_tokens": 7}}),
        )
    })
    .await;
    (chat, claude)
}

#[tokio::test]
async fn translated_answers_match_the_specs() {
    let (chat, claude) = caching_upstreams().await;
    let yaml = format!(
        "providers:
  oai:
    kind: openai
    base_url: {}
    api_key_env: TEST_UPSTREAM_KEY
  claude:
    kind: anthropic
    base_url: http://{}
    api_key_env: TEST_UPSTREAM_KEY
routes:
  chat-route:
    targets: [{{provider: oai, model: up}}]
  claude-route:
    targets: [{{provider: claude, model: claude-x}}]
  defaulted:
    messages: {{default_max_tokens: 777}}
    targets: [{{provider: oai, model: up}}]
  native-defaulted:
    messages: {{default_max_tokens: 555}}
    targets: [{{provider: claude, model: claude-x}}]
",
        chat.base_url(),
        claude.addr
    );
    let gw = common::gateway(&yaml).await;
    // Responses through a translated target: cache writes, strict, no user.
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "claude-route", "input": "hi",
                   "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["usage"]["input_tokens_details"],
        json!({"cached_tokens": 20, "cache_write_tokens": 7})
    );
    assert_eq!(v["usage"]["input_tokens"], 30);
    assert_eq!(v["tools"][0]["strict"], false);
    assert!(v.get("user").is_none(), "user omitted: {v}");
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "claude-route", "input": "hi", "user": "u-1"}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["user"], "u-1");

    // Messages through a chat target: cache reads and writes apart.
    let msg = json!([{"role": "user", "content": "hi"}]);
    let r = gw
        .post(
            "/v1/messages",
            json!({"model": "chat-route", "max_tokens": 9, "messages": msg}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 20,
               "cache_creation_input_tokens": 7})
    );

    // Without max_tokens: Anthropic's 400, or the route's default.
    let r = gw
        .post(
            "/v1/messages",
            json!({"model": "chat-route", "messages": msg}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["type"].as_str(),
            v["error"]["type"].as_str(),
            v["error"]["message"].as_str()
        ),
        (
            Some("error"),
            Some("invalid_request_error"),
            Some("max_tokens: Field required")
        )
    );
    let before = chat.calls();
    let r = gw
        .post(
            "/v1/messages",
            json!({"model": "defaulted", "messages": msg}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(chat.calls(), before + 1);
    assert_eq!(
        chat.requests().last().unwrap().body["max_completion_tokens"],
        777
    );
    let r = gw
        .post(
            "/v1/messages",
            json!({"model": "native-defaulted", "messages": msg}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(claude.requests().last().unwrap().body["max_tokens"], 555);
    gw.stop().await;
}

#[tokio::test]
async fn a_completion_with_a_null_prompt_is_accepted() {
    let up = FakeUpstream::openai().await;
    let yaml = format!(
        "{}routes:\n  mocked:\n    targets: [{{provider: m}}]\n  passed:\n    targets: [{{provider: p0, model: up}}]\n",
        common::providers_yaml(&[&up], "")
            .replace("providers:\n", "providers:\n  m:\n    kind: mock\n")
    );
    let gw = common::gateway(&yaml).await;
    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "mocked", "prompt": null, "max_tokens": 5}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert!(v["choices"][0]["text"].is_string());
    let r = gw
        .post(
            "/v1/completions",
            json!({"model": "passed", "prompt": null}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let sent = &up.requests()[0];
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(
        sent.body["prompt"],
        Value::Null,
        "forwarded as the client sent it"
    );
    assert!(sent.body.as_object().unwrap().contains_key("prompt"));
    gw.stop().await;
}
