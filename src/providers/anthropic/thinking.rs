//! A request's reasoning control as Anthropic's own: `thinking` (and
//! `output_config.effort`).
//!
//! Place in the pipeline: called by [`super::request::chat_request`] (what
//! to send) and by the provider's `ext_support` (whether it is sent), so
//! the two agree. The reasoning comes from a translated request
//! ([`ChatExt`]) or a chat client's `reasoning_effort`. Claude 4.6 and
//! later get `thinking: {type: adaptive}` with the effort level in
//! `output_config.effort` (4.7 and later take nothing else); earlier
//! thinking models (3.7, 4.0 to 4.5) get `{type: enabled, budget_tokens}`
//! (the client's budget, else its effort's, at least 1024 and below
//! `max_tokens`). Nothing is sent, and the endpoint names what was left
//! out, when the model has no extended thinking, `max_tokens` leaves no room
//! for 1024 thinking tokens, or the request sets what Anthropic refuses
//! with thinking (a `temperature` other than 1, a forced tool choice).
//! Must not do I/O.

use serde_json::{Map, Value, json};

use crate::api::chat::{ChatExt, Reasoning, reasoning_of};

/// The least budget Anthropic takes.
const MIN_BUDGET: u64 = 1024;

/// What to send for a request's reasoning.
#[derive(Debug, Clone, PartialEq)]
pub struct Thinking {
    /// The `thinking` object.
    pub thinking: Value,
    /// `output_config.effort`, for adaptive thinking with a level.
    pub effort: Option<&'static str>,
}

/// `(major, minor)` of a Claude model id (`claude-opus-4-6`,
/// `claude-3-7-sonnet-20250219`, `us.anthropic.claude-sonnet-4-5-...-v1:0`,
/// `claude-sonnet-4-20250514`); `None` when it names no Claude model.
pub fn version(model: &str) -> Option<(u64, u64)> {
    let at = model.find("claude-")?;
    let numbers: Vec<u64> = model[at + "claude-".len()..]
        .split(['-', '.', '@', ':'])
        .filter_map(|p| p.parse().ok())
        .collect();
    let major = *numbers.first()?;
    // A date (`20250514`) is no minor version.
    let minor = numbers.get(1).copied().filter(|m| *m < 100).unwrap_or(0);
    Some((major, minor))
}

/// Anthropic's effort level for an OpenAI-style one.
fn effort_level(effort: &str) -> &'static str {
    match effort {
        "minimal" | "low" => "low",
        "medium" => "medium",
        "max" => "max",
        _ => "high",
    }
}

/// What to send `model` for the reasoning asked by `body` and `ext`, with
/// `max_tokens` as sent (`None`: nothing).
pub fn plan(
    body: &Map<String, Value>,
    ext: &ChatExt,
    model: &str,
    max_tokens: u64,
) -> Option<Thinking> {
    let reasoning = reasoning_of(body, ext)?;
    let temperature = body.get("temperature").filter(|t| !t.is_null());
    if temperature.is_some_and(|t| t.as_f64() != Some(1.0)) {
        return None;
    }
    let forced = match body.get("tool_choice") {
        Some(Value::String(c)) => c == "required",
        Some(Value::Object(_)) => true,
        _ => false,
    };
    if forced {
        return None;
    }
    let (major, minor) = version(model)?;
    if (major, minor) >= (4, 6) {
        return Some(adaptive(&reasoning));
    }
    if (major, minor) < (3, 7) {
        return None;
    }
    let budget = reasoning.budget().unwrap_or(16384).max(MIN_BUDGET);
    if max_tokens <= MIN_BUDGET {
        return None;
    }
    Some(Thinking {
        thinking: json!({"type": "enabled", "budget_tokens": budget.min(max_tokens - 1)}),
        effort: None,
    })
}

fn adaptive(r: &Reasoning) -> Thinking {
    let effort = r.effort.as_deref().map(effort_level).or_else(|| {
        r.budget_tokens
            .map(|b| effort_level(crate::api::chat::budget_effort(b)))
    });
    Thinking {
        thinking: json!({"type": "adaptive"}),
        effort,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(r: Reasoning) -> ChatExt {
        ChatExt {
            reasoning: Some(r),
            top_k: None,
            serial_tool_calls: false,
        }
    }

    #[test]
    fn versions_are_read_from_model_ids() {
        assert_eq!(version("claude-opus-4-6"), Some((4, 6)));
        assert_eq!(version("claude-3-7-sonnet-20250219"), Some((3, 7)));
        assert_eq!(version("claude-sonnet-4-20250514"), Some((4, 0)));
        assert_eq!(
            version("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            Some((4, 5))
        );
        assert_eq!(version("claude-opus-4-1@20250805"), Some((4, 1)));
        assert_eq!(version("gpt-4o"), None);
    }

    #[test]
    fn new_models_think_adaptively_older_ones_with_a_budget() {
        let body = Map::new();
        let budget = ext(Reasoning {
            budget_tokens: Some(31999),
            show: true,
            ..Reasoning::default()
        });
        assert_eq!(
            plan(&body, &budget, "claude-sonnet-4-5", 32000),
            Some(Thinking {
                thinking: json!({"type": "enabled", "budget_tokens": 31999}),
                effort: None
            })
        );
        assert_eq!(
            plan(&body, &budget, "claude-sonnet-4-5", 8000)
                .unwrap()
                .thinking["budget_tokens"],
            7999
        );
        assert_eq!(plan(&body, &budget, "claude-3-5-haiku", 8000), None);
        assert_eq!(plan(&body, &budget, "claude-3-7-sonnet", 1024), None);
        assert_eq!(
            plan(&body, &budget, "claude-opus-4-7", 32000),
            Some(Thinking {
                thinking: json!({"type": "adaptive"}),
                effort: Some("high")
            })
        );
        let effort = ext(Reasoning {
            effort: Some("low".into()),
            ..Reasoning::default()
        });
        assert_eq!(
            plan(&body, &effort, "claude-sonnet-4-5", 4096)
                .unwrap()
                .thinking,
            json!({"type": "enabled", "budget_tokens": 2048})
        );
        assert_eq!(
            plan(&body, &effort, "claude-sonnet-4-6", 4096)
                .unwrap()
                .effort,
            Some("low")
        );
    }

    #[test]
    fn what_anthropic_refuses_with_thinking_sends_none() {
        let r = ext(Reasoning {
            effort: Some("high".into()),
            ..Reasoning::default()
        });
        let with = |k: &str, v: Value| {
            let mut b = Map::new();
            b.insert(k.into(), v);
            plan(&b, &r, "claude-sonnet-4-5", 32000)
        };
        assert!(with("temperature", json!(0.2)).is_none());
        assert!(with("temperature", json!(1)).is_some());
        assert!(with("tool_choice", json!("required")).is_none());
        assert!(with("tool_choice", json!("auto")).is_some());
        // A chat client's own reasoning_effort.
        let mut b = Map::new();
        b.insert("reasoning_effort".into(), json!("medium"));
        assert_eq!(
            plan(&b, &ChatExt::default(), "claude-opus-4-1", 32000)
                .unwrap()
                .thinking,
            json!({"type": "enabled", "budget_tokens": 8192})
        );
        assert!(plan(&Map::new(), &ChatExt::default(), "claude-opus-4-1", 32000).is_none());
    }
}
