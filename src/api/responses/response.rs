//! Chat completion answer -> Responses API response object.
//!
//! Place in the pipeline: `routing` calls [`from_chat`] on the JSON answer of
//! a target that was sent the translated chat request; the stream
//! translator builds its final object with the same helpers. Writes the
//! object the official SDKs read: `id` (`resp_...`), `object`, `created_at`,
//! `status`, `model`, `output` (a `reasoning` item with the target's
//! reasoning text when the client asked for reasoning and the answer has
//! some, a message item with `output_text`, then `function_call` items, or
//! `custom_tool_call` items for free-form tools, under the client's tool
//! names),
//! `usage` (cache reads and writes in `input_tokens_details`) and the
//! echoed request fields. Must not invent content: a chat answer it cannot
//! read is a [`ResponsesError::BadAnswer`].

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::tools::custom_input;
use super::{Echo, ResponsesError, new_id};
use crate::api::messages::response::reasoning_text;

/// One function call of the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    pub id: String,
    pub call_id: String,
    /// The tool's name to the client.
    pub name: String,
    pub arguments: String,
    /// The namespace the tool sits in, if any.
    pub namespace: Option<String>,
    /// A call of a free-form `custom` tool: a `custom_tool_call` item whose
    /// `input` is the chat call's `input` argument.
    pub custom: bool,
}

impl Call {
    /// The call of chat tool `chat_name` with `arguments`, as the client
    /// named the tool (see [`crate::api::responses::tools::ToolMap`]).
    pub fn of(echo: &Echo, call_id: &str, chat_name: &str, arguments: String) -> Call {
        let mapped = echo.tools.by_chat(chat_name);
        let custom = mapped.is_some_and(|m| m.custom);
        Call {
            id: new_id(if custom { "ctc" } else { "fc" }),
            call_id: call_id.to_string(),
            name: mapped.map_or(chat_name, |m| m.name.as_str()).to_string(),
            arguments,
            namespace: mapped.and_then(|m| m.namespace.clone()),
            custom,
        }
    }
}

/// A message item with one `output_text` part.
pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [output_text(text)]})
}

pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A reasoning item holding the target's reasoning `text` (also as its
/// summary when the client asked for one).
pub fn reasoning_item(id: &str, text: &str, summary: bool, status: &str) -> Value {
    let summary = if summary {
        json!([{"type": "summary_text", "text": text}])
    } else {
        json!([])
    };
    json!({"type": "reasoning", "id": id, "status": status, "summary": summary,
           "content": [{"type": "reasoning_text", "text": text}]})
}

pub fn call_item(c: &Call, status: &str) -> Value {
    let mut item = if c.custom {
        json!({"type": "custom_tool_call", "id": c.id, "call_id": c.call_id, "name": c.name,
               "input": custom_input(&c.arguments), "status": status})
    } else {
        json!({"type": "function_call", "id": c.id, "call_id": c.call_id, "name": c.name,
               "arguments": c.arguments, "status": status})
    };
    if let Some(ns) = &c.namespace {
        item["namespace"] = json!(ns);
    }
    item
}

/// Chat `usage` as Responses `usage` (`None` when the answer had none).
pub fn usage(chat_usage: Option<&Value>) -> Value {
    let Some(u) = chat_usage.filter(|u| u.is_object()) else {
        return Value::Null;
    };
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let input = n(u.get("prompt_tokens"));
    let output = n(u.get("completion_tokens"));
    let cached = n(u.pointer("/prompt_tokens_details/cached_tokens"));
    let written = n(u.pointer("/prompt_tokens_details/cache_write_tokens"));
    let reasoning = n(u.pointer("/completion_tokens_details/reasoning_tokens"));
    let total = u
        .get("total_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(input + output);
    json!({"input_tokens": input,
           "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
           "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
           "total_tokens": total})
}

/// The response object around `output`. `finish` is the chat
/// `finish_reason`: `length` makes it `incomplete`.
pub fn response_object(
    head: &Head,
    echo: &Echo,
    status: &str,
    output: Vec<Value>,
    usage: Value,
    finish: Option<&str>,
) -> Value {
    let (status, incomplete) = match (status, finish) {
        ("completed", Some("length")) => ("incomplete", json!({"reason": "max_output_tokens"})),
        ("completed", Some("content_filter")) => {
            ("incomplete", json!({"reason": "content_filter"}))
        }
        _ => (status, Value::Null),
    };
    let mut obj = Map::with_capacity(echo.fields.len() + 10);
    obj.insert("id".into(), Value::String(head.id.clone()));
    obj.insert("object".into(), Value::String("response".into()));
    obj.insert("created_at".into(), json!(head.created_at));
    obj.insert("status".into(), Value::String(status.into()));
    obj.insert("error".into(), Value::Null);
    obj.insert("incomplete_details".into(), incomplete);
    obj.insert("model".into(), Value::String(head.model.clone()));
    obj.insert("output".into(), Value::Array(output));
    obj.insert("usage".into(), usage);
    for (k, v) in &echo.fields {
        obj.insert(k.clone(), v.clone());
    }
    Value::Object(obj)
}

/// Identity of one response: its id, creation time and model.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub id: String,
    pub created_at: u64,
    pub model: String,
}

impl Head {
    /// A new response id for an answer of `model` created at `created_at`.
    pub fn new(model: &str, created_at: u64) -> Head {
        Head {
            id: new_id("resp"),
            created_at,
            model: model.to_string(),
        }
    }
}

/// The Responses object for a chat completion `body`.
pub fn from_chat(body: &[u8], echo: &Echo) -> Result<Bytes, ResponsesError> {
    let chat: Value = serde_json::from_slice(body)
        .map_err(|_| ResponsesError::BadAnswer("the chat answer is not JSON".into()))?;
    let choice = chat
        .pointer("/choices/0")
        .ok_or_else(|| ResponsesError::BadAnswer("the chat answer has no choices".into()))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut output = Vec::new();
    if echo.wants_reasoning()
        && let Some(thought) = reasoning_text(message)
    {
        let item = reasoning_item(&new_id("rs"), thought, echo.wants_summary(), "completed");
        output.push(item);
    }
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    let text = match message.get("refusal").and_then(Value::as_str) {
        Some(r) if text.is_empty() => r.to_string(),
        _ => text,
    };
    let calls = message.get("tool_calls").and_then(Value::as_array);
    if !text.is_empty() || calls.is_none_or(|c| c.is_empty()) {
        output.push(message_item(&new_id("msg"), &text, "completed"));
    }
    for c in calls.into_iter().flatten() {
        let s = |p: &str| c.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let arguments = s("/function/arguments").to_string();
        let call = Call::of(echo, s("/id"), s("/function/name"), arguments);
        output.push(call_item(&call, "completed"));
    }
    let head = Head {
        id: new_id("resp"),
        created_at: chat.get("created").and_then(Value::as_u64).unwrap_or(0),
        model: chat
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let obj = response_object(
        &head,
        echo,
        "completed",
        output,
        usage(chat.get("usage")),
        finish,
    );
    Ok(Bytes::from(obj.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Echo {
        Echo::of(
            json!({"instructions": "Be brief.", "tools": [], "temperature": 0.5})
                .as_object()
                .unwrap(),
        )
    }

    #[test]
    fn text_answer_becomes_a_message_item_with_usage_and_echo() {
        let chat = json!({"id": "x", "created": 7, "model": "m",
            "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                      "prompt_tokens_details": {"cached_tokens": 1}}});
        let out: Value =
            serde_json::from_slice(&from_chat(chat.to_string().as_bytes(), &echo()).unwrap())
                .unwrap();
        assert!(out["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(out["object"], "response");
        assert_eq!(out["status"], "completed");
        assert_eq!(out["created_at"], 7);
        assert_eq!(out["model"], "m");
        assert_eq!(out["output"][0]["type"], "message");
        assert_eq!(out["output"][0]["content"][0]["text"], "hi");
        assert_eq!(out["output"][0]["content"][0]["type"], "output_text");
        assert_eq!(out["usage"]["input_tokens"], 3);
        assert_eq!(out["usage"]["output_tokens"], 2);
        assert_eq!(out["usage"]["total_tokens"], 5);
        assert_eq!(out["usage"]["input_tokens_details"]["cached_tokens"], 1);
        assert_eq!(
            out["usage"]["input_tokens_details"]["cache_write_tokens"],
            0
        );
        assert!(out.get("user").is_none(), "user is omitted: {out}");
        assert_eq!(out["instructions"], "Be brief.");
        assert_eq!(out["temperature"], 0.5);
        assert_eq!(out["tool_choice"], "auto");
        assert_eq!(out["text"]["format"]["type"], "text");
    }

    #[test]
    fn tool_calls_become_function_call_items_and_length_is_incomplete() {
        let chat = json!({"created": 1, "model": "m", "choices": [{"message": {
            "role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            "finish_reason": "tool_calls"}]});
        let out: Value =
            serde_json::from_slice(&from_chat(chat.to_string().as_bytes(), &echo()).unwrap())
                .unwrap();
        assert_eq!(out["output"].as_array().unwrap().len(), 1);
        let call = &out["output"][0];
        assert_eq!(call["type"], "function_call");
        assert_eq!(call["call_id"], "call_1");
        assert_eq!(call["name"], "f");
        assert_eq!(call["arguments"], "{\"a\":1}");
        assert!(call["id"].as_str().unwrap().starts_with("fc_"));
        assert!(out["usage"].is_null());

        let cut = json!({"model": "m", "choices": [{"message": {"content": "abc"},
                         "finish_reason": "length"}]});
        let out: Value =
            serde_json::from_slice(&from_chat(cut.to_string().as_bytes(), &echo()).unwrap())
                .unwrap();
        assert_eq!(out["status"], "incomplete");
        assert_eq!(out["incomplete_details"]["reason"], "max_output_tokens");
    }

    #[test]
    fn reasoning_comes_back_as_a_reasoning_item_when_asked() {
        let chat = json!({"created": 1, "model": "m", "choices": [{"message": {
            "role": "assistant", "content": "42", "reasoning_content": "6 times 7"},
            "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                      "prompt_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 5}}});
        let asked = Echo::of(
            json!({"reasoning": {"effort": "low", "summary": "auto"}, "user": "u",
                   "tools": [{"type": "function", "name": "f", "parameters": {}}]})
            .as_object()
            .unwrap(),
        );
        let out: Value =
            serde_json::from_slice(&from_chat(chat.to_string().as_bytes(), &asked).unwrap())
                .unwrap();
        let item = &out["output"][0];
        assert_eq!(item["type"], "reasoning");
        assert!(item["id"].as_str().unwrap().starts_with("rs_"));
        assert_eq!(
            item["summary"],
            json!([{"type": "summary_text", "text": "6 times 7"}])
        );
        assert_eq!(
            item["content"],
            json!([{"type": "reasoning_text", "text": "6 times 7"}])
        );
        assert_eq!(out["output"][1]["content"][0]["text"], "42");
        assert_eq!(
            out["usage"]["input_tokens_details"]["cache_write_tokens"],
            5
        );
        assert_eq!(out["user"], "u");
        assert_eq!(out["tools"][0]["strict"], false);
        let out: Value =
            serde_json::from_slice(&from_chat(chat.to_string().as_bytes(), &echo()).unwrap())
                .unwrap();
        assert_eq!(out["output"].as_array().unwrap().len(), 1);
        assert_eq!(out["output"][0]["type"], "message");
    }

    #[test]
    fn calls_of_custom_and_namespaced_tools_come_back_as_the_client_named_them() {
        let echo = Echo::of(
            json!({"input": [{"type": "additional_tools", "tools": [
                {"type": "namespace", "name": "functions", "tools": [
                    {"type": "custom", "name": "exec"},
                    {"type": "function", "name": "wait", "parameters": {"type": "object"}}]}]}]})
            .as_object()
            .unwrap(),
        );
        let chat = json!({"model": "m", "choices": [{"finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "exec", "arguments": "{\"input\":\"ls\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "wait", "arguments": "{}"}}]}}]});
        let out: Value =
            serde_json::from_slice(&from_chat(chat.to_string().as_bytes(), &echo).unwrap())
                .unwrap();
        let custom = &out["output"][0];
        assert_eq!(custom["type"], "custom_tool_call");
        assert_eq!(custom["input"], "ls");
        assert_eq!(custom["call_id"], "c1");
        assert_eq!(custom["namespace"], "functions");
        assert!(custom["id"].as_str().unwrap().starts_with("ctc_"));
        assert_eq!(out["output"][1]["type"], "function_call");
        assert_eq!(out["output"][1]["name"], "wait");
    }

    #[test]
    fn garbage_is_a_bad_answer() {
        assert!(matches!(
            from_chat(b"<html>", &echo()),
            Err(ResponsesError::BadAnswer(_))
        ));
        assert!(matches!(
            from_chat(b"{\"choices\": []}", &echo()),
            Err(ResponsesError::BadAnswer(_))
        ));
    }
}
