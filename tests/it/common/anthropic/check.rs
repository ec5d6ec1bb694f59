//! Request checks of the fake Anthropic upstream: what the real Messages
//! API rejects with 400 `invalid_request_error` (or 401 / 404), so tests
//! prove the translator never sends it. See the parent module for the list;
//! the reasoning controls are checked in `thinking.rs`.

use serde_json::{Map, Value};

use super::{FAKE_KEY, Seen};

pub(super) type Rejection = (u16, &'static str, String);

fn bad(msg: impl Into<String>) -> Rejection {
    (400, "invalid_request_error", msg.into())
}

const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "stream",
    "metadata",
    "tools",
    "tool_choice",
    "output_config",
    "thinking",
    "service_tier",
    "context_management",
];

pub(super) fn check(s: &Seen) -> Result<(), Rejection> {
    if s.path != "/v1/messages" {
        return Err((404, "not_found_error", "Not Found".into()));
    }
    let header = |name: &str| s.headers.get(name).and_then(|v| v.to_str().ok());
    match header("x-api-key") {
        None => {
            return Err((
                401,
                "authentication_error",
                "x-api-key header is required".into(),
            ));
        }
        Some(k) if k != FAKE_KEY => {
            return Err((401, "authentication_error", "invalid x-api-key".into()));
        }
        Some(_) => {}
    }
    match header("anthropic-version") {
        None => return Err(bad("anthropic-version: header is required")),
        // Dated versions (newer SDKs send newer dates than 2023-06-01).
        Some(v) if is_dated_version(v) => {}
        Some(_) => return Err(bad("anthropic-version: invalid version")),
    }
    if !header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Err(bad("content-type must be application/json"));
    }
    let Value::Object(body) = &s.body else {
        return Err(bad("The request body is not valid JSON."));
    };
    if let Some(extra) = body.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        return Err(bad(format!("{extra}: Extra inputs are not permitted")));
    }
    if !body.get("model").is_some_and(Value::is_string) {
        return Err(bad("model: Field required"));
    }
    if body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none_or(|n| n == 0)
    {
        return Err(bad("max_tokens: Field required (a positive integer)"));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = body.get(key)
            && !v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x))
        {
            return Err(bad(format!("{key}: Input should be between 0 and 1")));
        }
    }
    if let Some(stops) = body.get("stop_sequences")
        && !stops
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
    {
        return Err(bad("stop_sequences: Input should be a list of strings"));
    }
    if let Some(system) = body.get("system") {
        check_blocks(system, &["text"]).map_err(|e| bad(format!("system: {e}")))?;
    }
    super::thinking::check(body, header("anthropic-beta").unwrap_or(""))?;
    let tool_names = check_tools(body)?;
    check_messages(body, tool_names.is_some())
}

fn check_tools(body: &Map<String, Value>) -> Result<Option<Vec<&str>>, Rejection> {
    let Some(tools) = body.get("tools") else {
        return match body.get("tool_choice") {
            Some(c) if c["type"] != "none" => Err(bad(
                "tool_choice may only be specified while providing tools",
            )),
            _ => Ok(None),
        };
    };
    let mut names = Vec::new();
    for t in tools
        .as_array()
        .ok_or_else(|| bad("tools: Input should be a valid list"))?
    {
        let name = t["name"].as_str().filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        let name = name.ok_or_else(|| bad("tools: name must match '^[a-zA-Z0-9_-]{1,64}$'"))?;
        if t["input_schema"]["type"] != "object" {
            return Err(bad("tools: input_schema.type: Input should be 'object'"));
        }
        names.push(name);
    }
    if let Some(c) = body.get("tool_choice") {
        match c["type"].as_str() {
            Some("auto" | "any" | "none") => {}
            Some("tool") if c["name"].as_str().is_some_and(|n| names.contains(&n)) => {}
            _ => return Err(bad("tool_choice: invalid or unknown tool")),
        }
    }
    Ok(Some(names))
}

fn check_blocks(content: &Value, allowed: &[&str]) -> Result<(), String> {
    let blocks = match content {
        Value::String(s) if !s.is_empty() => return Ok(()),
        Value::Array(b) if !b.is_empty() => b,
        _ => return Err("content must be a non-empty string or a non-empty list of blocks".into()),
    };
    let mut seen_other = false;
    for b in blocks {
        let ty = b["type"].as_str().unwrap_or_default();
        if !allowed.contains(&ty) {
            return Err(format!("block type '{ty}' is not allowed here"));
        }
        let ok = match ty {
            "text" => b["text"].as_str().is_some_and(|t| !t.is_empty()),
            "image" => match b["source"]["type"].as_str() {
                Some("base64") => {
                    ["image/jpeg", "image/png", "image/gif", "image/webp"]
                        .contains(&b["source"]["media_type"].as_str().unwrap_or_default())
                        && b["source"]["data"].is_string()
                }
                Some("url") => b["source"]["url"].is_string(),
                _ => false,
            },
            "tool_use" => b["id"].is_string() && b["name"].is_string() && b["input"].is_object(),
            "thinking" => b["thinking"].is_string() && b["signature"].is_string(),
            "redacted_thinking" => b["data"].is_string(),
            "tool_result" => b["tool_use_id"].is_string() && !seen_other,
            _ => false,
        };
        if !ok {
            return Err(format!("malformed or misplaced '{ty}' block"));
        }
        seen_other |= ty != "tool_result";
    }
    Ok(())
}

fn ids<'a>(content: &'a Value, ty: &str, key: &str) -> Vec<&'a str> {
    content
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == ty)
        .filter_map(|b| b[key].as_str())
        .collect()
}

fn check_messages(body: &Map<String, Value>, has_tools: bool) -> Result<(), Rejection> {
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty());
    let msgs = msgs.ok_or_else(|| bad("messages: at least one message is required"))?;
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        let allowed: &[&str] = match role {
            "user" => &["text", "image", "tool_result"],
            "assistant" => &["text", "tool_use", "thinking", "redacted_thinking"],
            // Mid-conversation system messages: after a user turn, last or
            // followed by the assistant.
            "system" => {
                let after_user = i > 0 && msgs[i - 1]["role"] == "user";
                let next = msgs.get(i + 1).map(|n| &n["role"]);
                if !after_user || next.is_some_and(|r| r != "assistant") {
                    return Err(bad(format!(
                        "messages.{i}: a system message must follow a user turn and be last or followed by an assistant turn"
                    )));
                }
                &["text"]
            }
            _ => {
                return Err(bad(format!(
                    "messages.{i}.role: Input should be 'user', 'assistant' or 'system'"
                )));
            }
        };
        if i > 0 && msgs[i - 1]["role"] == role {
            return Err(bad(
                "messages: roles must alternate between \"user\" and \"assistant\"",
            ));
        }
        check_blocks(&m["content"], allowed)
            .map_err(|e| bad(format!("messages.{i}.content: {e}")))?;
        let uses = ids(&m["content"], "tool_use", "id");
        let results = ids(&m["content"], "tool_result", "tool_use_id");
        let has_tool_blocks = !uses.is_empty() || !results.is_empty();
        if has_tool_blocks && !has_tools {
            return Err(bad(
                "Requests which include `tool_use` or `tool_result` blocks must define tools.",
            ));
        }
        let asked = if i > 0 {
            ids(&msgs[i - 1]["content"], "tool_use", "id")
        } else {
            vec![]
        };
        if role == "system" {
            continue;
        }
        if results.iter().any(|r| !asked.contains(r)) {
            return Err(bad(format!(
                "messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks"
            )));
        }
        if let Some(next) = msgs.get(i + 1) {
            let answered = ids(&next["content"], "tool_result", "tool_use_id");
            if uses.iter().any(|u| !answered.contains(u)) {
                return Err(bad(
                    "`tool_use` ids were found without `tool_result` blocks immediately after",
                ));
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DD`, no earlier than the first Messages API version.
fn is_dated_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && v >= "2023-01-01"
}
