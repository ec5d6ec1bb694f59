//! A request's reasoning control as Gemini's own: `thinkingConfig`.
//!
//! Place in the pipeline: called by [`super::request::chat_request_ext`]
//! (what to send) and by the provider's `ext_support` (whether it is sent),
//! so the two agree. The reasoning comes from a translated request
//! ([`ChatExt`]) or a chat client's `reasoning_effort`. Gemini 3 models get
//! `thinkingLevel` (`low` for minimal and low efforts, else `high`;
//! adaptive without a level: the model's dynamic default); Gemini 2.5
//! models get `thinkingBudget` (the client's budget, else its effort's,
//! within the model's range: 128 to 32768 for Pro, 0 to 24576 otherwise;
//! `-1`, dynamic, for adaptive thinking). `includeThoughts` when the client
//! wants the reasoning back. Older models (1.x, 2.0, Gemma) have no
//! thinking: nothing is sent, and the endpoint names what was left out.
//! Must not do I/O.

use serde_json::{Map, Value, json};

use crate::api::chat::{ChatExt, budget_effort, reasoning_of};

/// The `thinkingConfig` for `model` (`None`: nothing to send).
pub fn thinking_config(body: &Map<String, Value>, ext: &ChatExt, model: &str) -> Option<Value> {
    let reasoning = reasoning_of(body, ext)?;
    let name = model.rsplit('/').next().unwrap_or(model);
    let mut config = Map::new();
    if name.starts_with("gemini-3") {
        let effort = reasoning.effort.clone().or_else(|| {
            reasoning
                .budget_tokens
                .map(|b| budget_effort(b).to_string())
        });
        if let Some(e) = effort {
            let level = if matches!(e.as_str(), "none" | "minimal" | "low") {
                "low"
            } else {
                "high"
            };
            config.insert("thinkingLevel".into(), level.into());
        }
    } else if name.starts_with("gemini-2.5") {
        let (min, max) = if name.contains("pro") {
            (128, 32768)
        } else {
            (0, 24576)
        };
        let budget = match reasoning.budget() {
            Some(b) => json!(b.clamp(min, max)),
            None => json!(-1),
        };
        config.insert("thinkingBudget".into(), budget);
    } else {
        return None;
    }
    if reasoning.show {
        config.insert("includeThoughts".into(), Value::Bool(true));
    }
    Some(Value::Object(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::chat::Reasoning;

    fn ext(r: Reasoning) -> ChatExt {
        ChatExt {
            reasoning: Some(r),
            top_k: None,
            serial_tool_calls: false,
        }
    }

    #[test]
    fn budgets_levels_and_dynamic_thinking_by_model() {
        let body = Map::new();
        let budget = ext(Reasoning {
            budget_tokens: Some(31999),
            show: true,
            ..Reasoning::default()
        });
        assert_eq!(
            thinking_config(&body, &budget, "gemini-2.5-flash"),
            Some(json!({"thinkingBudget": 24576, "includeThoughts": true}))
        );
        assert_eq!(
            thinking_config(&body, &budget, "models/gemini-2.5-pro"),
            Some(json!({"thinkingBudget": 31999, "includeThoughts": true}))
        );
        assert_eq!(
            thinking_config(&body, &budget, "gemini-3-pro-preview"),
            Some(json!({"thinkingLevel": "high", "includeThoughts": true}))
        );
        let adaptive = ext(Reasoning {
            adaptive: true,
            ..Reasoning::default()
        });
        assert_eq!(
            thinking_config(&body, &adaptive, "gemini-2.5-flash"),
            Some(json!({"thinkingBudget": -1}))
        );
        assert_eq!(
            thinking_config(&body, &adaptive, "gemini-3-flash"),
            Some(json!({}))
        );
        assert_eq!(thinking_config(&body, &budget, "gemini-2.0-flash"), None);
        let mut own = Map::new();
        own.insert("reasoning_effort".into(), json!("low"));
        assert_eq!(
            thinking_config(&own, &ChatExt::default(), "gemini-2.5-flash"),
            Some(json!({"thinkingBudget": 2048}))
        );
        assert_eq!(
            thinking_config(&body, &ChatExt::default(), "gemini-2.5-flash"),
            None
        );
    }
}
