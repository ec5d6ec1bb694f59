//! Checks of the fake Anthropic upstream for the reasoning controls and
//! context management, as the Messages API reference states them:
//! `thinking` is `enabled` (with `budget_tokens` of at least 1024 and below
//! `max_tokens`), `adaptive` or `disabled`; with thinking on, `temperature`
//! may only be 1, `top_k` is refused and so is a forced tool choice;
//! `output_config` holds only `effort` (low, medium, high, max, xhigh) and
//! `format` (json_schema with a schema); `context_management` needs its
//! beta header and holds known edits.

use serde_json::{Map, Value};

use super::check::Rejection;

fn bad(msg: impl Into<String>) -> Rejection {
    (400, "invalid_request_error", msg.into())
}

/// Thinking is on (the fake then answers with a thinking block).
pub fn thinking_on(body: &Value) -> bool {
    matches!(
        body["thinking"]["type"].as_str(),
        Some("enabled" | "adaptive")
    )
}

pub(super) fn check(body: &Map<String, Value>, beta: &str) -> Result<(), Rejection> {
    if let Some(t) = body.get("thinking") {
        match t["type"].as_str() {
            Some("enabled") => {
                let budget = t["budget_tokens"].as_u64().unwrap_or(0);
                let max = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
                if budget < 1024 {
                    return Err(bad("thinking.budget_tokens: must be at least 1024"));
                }
                if budget >= max {
                    return Err(bad(
                        "`max_tokens` must be greater than `thinking.budget_tokens`",
                    ));
                }
            }
            Some("adaptive" | "disabled") => {}
            _ => {
                return Err(bad(
                    "thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'",
                ));
            }
        }
        if let Some(extra) = t.as_object().and_then(|o| {
            o.keys()
                .find(|k| !["type", "budget_tokens", "display"].contains(&k.as_str()))
        }) {
            return Err(bad(format!(
                "thinking.{extra}: Extra inputs are not permitted"
            )));
        }
        if thinking_on(&Value::Object(body.clone())) {
            if body
                .get("temperature")
                .is_some_and(|t| t.as_f64() != Some(1.0))
            {
                return Err(bad(
                    "`temperature` may only be set to 1 when thinking is enabled",
                ));
            }
            if body.contains_key("top_k") {
                return Err(bad("`top_k` is not supported when thinking is enabled"));
            }
            if matches!(
                body.get("tool_choice").and_then(|c| c["type"].as_str()),
                Some("any" | "tool")
            ) {
                return Err(bad(
                    "Thinking may not be enabled when tool_choice forces tool use.",
                ));
            }
        }
    }
    if let Some(c) = body.get("output_config") {
        let c = c
            .as_object()
            .ok_or_else(|| bad("output_config: Input should be an object"))?;
        for (k, v) in c {
            match k.as_str() {
                "effort"
                    if matches!(
                        v.as_str(),
                        Some("low" | "medium" | "high" | "max" | "xhigh")
                    ) => {}
                "format" if v["type"] == "json_schema" && v["schema"]["type"] == "object" => {}
                _ => return Err(bad(format!("output_config.{k}: invalid or extra input"))),
            }
        }
    }
    if let Some(cm) = body.get("context_management") {
        if !beta
            .split(',')
            .any(|b| b.trim() == "context-management-2025-06-27")
        {
            return Err(bad(
                "context_management: requires the anthropic-beta header context-management-2025-06-27",
            ));
        }
        for e in cm["edits"].as_array().into_iter().flatten() {
            match e["type"].as_str() {
                Some("clear_thinking_20251015" | "clear_tool_uses_20250919") => {}
                _ => return Err(bad("context_management.edits: unknown edit type")),
            }
        }
    }
    Ok(())
}
