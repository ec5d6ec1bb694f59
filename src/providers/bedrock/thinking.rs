//! A request's reasoning control and `top_k` as Converse's
//! `additionalModelRequestFields`, per model family.
//!
//! Place in the pipeline: called by [`super::request::chat_request_ext`]
//! (what to send) and by the provider's `ext_support` (whether it is sent),
//! so the two agree. The reasoning comes from a translated request
//! ([`ChatExt`]) or a chat client's `reasoning_effort`. Anthropic Claude
//! models get `thinking` (and `output_config.effort`) as the `anthropic`
//! kind sends them (see [`crate::providers::anthropic::thinking`]; a
//! request without a token limit then gets `maxTokens` 32768, as budgeted
//! thinking needs one above its budget) and `top_k` (not with thinking);
//! Amazon Nova models `reasoningConfig` (`maxReasoningEffort`) and
//! `inferenceConfig.topK`; OpenAI models (`openai.gpt-oss-*`)
//! `reasoning_effort`. Other families take neither: nothing is sent, and
//! the endpoint names what was left out. Must not do I/O.

use serde_json::{Map, Value, json};

use crate::api::chat::{ChatExt, reasoning_of, top_k_of};
use crate::providers::anthropic::thinking::plan;

/// The token limit given to a budgeted-thinking request that set none.
pub const THINKING_MAX_TOKENS: u64 = 32768;

/// What to add to a Converse request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// `additionalModelRequestFields` (empty: none).
    pub fields: Map<String, Value>,
    /// The reasoning control is sent.
    pub reasoning: bool,
    /// `top_k` is sent.
    pub top_k: bool,
    /// `inferenceConfig.maxTokens` to set (the request had none).
    pub max_tokens: Option<u64>,
}

/// The model family of a Bedrock model id (`anthropic.claude-...`,
/// `us.amazon.nova-pro-v1:0`, `openai.gpt-oss-120b-1:0`).
fn family(model: &str) -> &'static str {
    if model.contains("anthropic.claude") {
        "claude"
    } else if model.contains("amazon.nova") {
        "nova"
    } else if model.contains("openai.") {
        "openai"
    } else {
        "other"
    }
}

/// What to send `model` for the reasoning and `top_k` asked by `body` and
/// `ext`, with `max_tokens` as the request set it.
pub fn extra(
    body: &Map<String, Value>,
    ext: &ChatExt,
    model: &str,
    max_tokens: Option<u64>,
) -> Extra {
    let mut out = Extra::default();
    let reasoning = reasoning_of(body, ext);
    let top_k = top_k_of(body, ext);
    match family(model) {
        "claude" => {
            let max = max_tokens.unwrap_or(THINKING_MAX_TOKENS);
            if let Some(t) = plan(body, ext, model, max) {
                out.fields.insert("thinking".into(), t.thinking);
                if let Some(effort) = t.effort {
                    out.fields
                        .insert("output_config".into(), json!({"effort": effort}));
                }
                out.reasoning = true;
                if max_tokens.is_none() {
                    out.max_tokens = Some(max);
                }
            } else if let Some(k) = top_k {
                out.fields.insert("top_k".into(), k.into());
                out.top_k = true;
            }
        }
        "nova" => {
            if let Some(level) = reasoning.and_then(|r| r.effort_level()) {
                let level = match level.as_str() {
                    "minimal" | "low" => "low",
                    "medium" => "medium",
                    _ => "high",
                };
                out.fields.insert(
                    "reasoningConfig".into(),
                    json!({"type": "enabled", "maxReasoningEffort": level}),
                );
                out.reasoning = true;
            }
            if let Some(k) = top_k {
                out.fields
                    .insert("inferenceConfig".into(), json!({"topK": k}));
                out.top_k = true;
            }
        }
        "openai" => {
            if let Some(level) = reasoning.and_then(|r| r.effort_level()) {
                let level = match level.as_str() {
                    "minimal" | "low" => "low",
                    "medium" => "medium",
                    _ => "high",
                };
                out.fields.insert("reasoning_effort".into(), level.into());
                out.reasoning = true;
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::chat::Reasoning;

    fn ext(effort: &str, top_k: Option<u64>) -> ChatExt {
        ChatExt {
            reasoning: Some(Reasoning {
                effort: Some(effort.into()),
                ..Reasoning::default()
            }),
            top_k,
            serial_tool_calls: false,
        }
    }

    #[test]
    fn each_family_gets_its_own_fields() {
        let body = Map::new();
        let e = extra(
            &body,
            &ext("low", Some(5)),
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Some(8000),
        );
        assert_eq!(
            Value::Object(e.fields),
            json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})
        );
        assert!(e.reasoning && !e.top_k);
        assert_eq!(e.max_tokens, None);
        let e = extra(
            &body,
            &ext("high", None),
            "anthropic.claude-3-7-sonnet",
            None,
        );
        assert_eq!(e.max_tokens, Some(THINKING_MAX_TOKENS));
        let e = extra(&body, &ext("medium", Some(9)), "amazon.nova-pro-v1:0", None);
        assert_eq!(
            Value::Object(e.fields),
            json!({"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"},
                   "inferenceConfig": {"topK": 9}})
        );
        let e = extra(&body, &ext("xhigh", None), "openai.gpt-oss-120b-1:0", None);
        assert_eq!(Value::Object(e.fields), json!({"reasoning_effort": "high"}));
        let e = extra(
            &body,
            &ext("high", Some(3)),
            "meta.llama3-70b-instruct-v1:0",
            None,
        );
        assert!(e.fields.is_empty() && !e.reasoning && !e.top_k);
        let e = extra(&body, &ChatExt::default(), "anthropic.claude-3-haiku", None);
        assert_eq!(e, Extra::default());
    }
}
