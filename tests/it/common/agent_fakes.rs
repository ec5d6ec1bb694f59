//! Scripted upstreams for the coding-agent CLI tests (`agents_cli.rs`),
//! following the public API references (Anthropic Messages; OpenAI chat
//! completions and Responses, JSON and SSE). A request that offers tools
//! and has no tool result yet calls one tool (`Read` with the file the
//! prompt names, or `exec` / the first tool with its first required string
//! argument, or custom input, set to the prompt's backquoted text); after a
//! tool result they answer `Done: <the tool's output>`.

use std::time::Duration;

use serde_json::{Value, json};

use super::{FakeUpstream, Reply, Seen};

/// The text of a prompt's first `backquoted` part.
fn backquoted(text: &str) -> Option<String> {
    let (_, rest) = text.split_once('`')?;
    rest.split_once('`').map(|(t, _)| t.to_string())
}

/// Arguments for a tool with `schema`: `Read` gets the file; otherwise the
/// first required string property gets `quoted`.
fn arguments(name: &str, schema: &Value, file: &str, quoted: &str) -> Value {
    if name == "Read" {
        return json!({"file_path": file});
    }
    let key = schema["required"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .find(|k| schema["properties"][*k]["type"] == "string")
        })
        .unwrap_or("input");
    json!({ key: quoted })
}

/// The tool an agent's request offers that the fakes call: `Read`, else
/// `exec` (also under a namespace prefix, as a translation may name it:
/// `functions.exec`, `functions__exec`), else the first. (name, schema,
/// custom?)
fn pick(tools: &[(String, Value, bool)]) -> Option<(String, Value, bool)> {
    ["Read", "exec"]
        .iter()
        .find_map(|want| {
            tools.iter().find(|(n, _, _)| {
                n == want
                    || n.strip_suffix(want)
                        .is_some_and(|p| p.ends_with(['.', '_', '/', ':']))
            })
        })
        .or(tools.first())
        .cloned()
}

/// Text of every string in `v` (prompts and tool results, wherever they sit).
fn all_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(all_text).collect::<Vec<_>>().join(" "),
        Value::Object(o) => o.values().map(all_text).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

fn sse(events: Vec<(&str, Value)>) -> Reply {
    let frames = events
        .into_iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Reply::Sse(frames, Duration::ZERO)
}

/// An Anthropic-kind upstream for the agents (Messages, JSON or SSE).
pub async fn anthropic_upstream(file: String) -> FakeUpstream {
    FakeUpstream::start(move |s: Seen, _| {
        let file = file.clone();
        async move { anthropic_answer(&s, &file) }
    })
    .await
}

fn anthropic_answer(s: &Seen, file: &str) -> Reply {
    if !s.path.ends_with("/messages") {
        return Reply::Json(
            404,
            json!({"type": "error", "error": {"type": "not_found_error", "message": "no"}}),
        );
    }
    let b = &s.body;
    let messages = b["messages"].as_array().cloned().unwrap_or_default();
    let result = messages.last().and_then(|m| {
        m["content"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "tool_result")
            .map(|c| all_text(&c["content"]))
    });
    let tools: Vec<(String, Value, bool)> = b["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["name"].as_str()?.to_string(),
                t["input_schema"].clone(),
                false,
            ))
        })
        .collect();
    let prompt = all_text(&Value::Array(messages.clone()));
    let quoted = backquoted(&prompt).unwrap_or_default();
    let content = match (result, pick(&tools)) {
        (Some(r), _) => json!([{"type": "text", "text": format!("Done: {r}")}]),
        (None, Some((name, schema, _))) if prompt.contains("tool") => json!([{"type": "tool_use",
            "id": "toolu_fake_1", "name": name, "input": arguments(&name, &schema, file, &quoted)}]),
        _ => json!([{"type": "text", "text": "{\"title\": \"Hello\"}"}]),
    };
    let stop = if content[0]["type"] == "tool_use" {
        "tool_use"
    } else {
        "end_turn"
    };
    let msg = json!({"id": "msg_fake_1", "type": "message", "role": "assistant", "model": b["model"],
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 20, "output_tokens": 6}});
    if b["stream"] != true {
        return Reply::Json(200, msg);
    }
    let mut start = msg.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    let mut events = vec![(
        "message_start",
        json!({"type": "message_start", "message": start}),
    )];
    let block = &content[0];
    if block["type"] == "tool_use" {
        let mut empty = block.clone();
        empty["input"] = json!({});
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": empty}),
        ));
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": block["input"].to_string()}}),
        ));
    } else {
        events.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ));
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": block["text"]}}),
        ));
    }
    events.push((
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push((
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 6}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    sse(events)
}

/// An OpenAI-kind upstream for the agents: chat completions (JSON or SSE)
/// and the Responses API (JSON or SSE).
pub async fn openai_upstream(file: String) -> FakeUpstream {
    FakeUpstream::start(move |s: Seen, _| {
        let file = file.clone();
        async move {
            if s.path.ends_with("/chat/completions") {
                chat_answer(&s.body, &file)
            } else if s.path.ends_with("/responses") {
                responses_answer(&s.body, &file)
            } else {
                Reply::Json(
                    404,
                    json!({"error": {"message": "no", "type": "invalid_request_error"}}),
                )
            }
        }
    })
    .await
}

fn chat_answer(b: &Value, file: &str) -> Reply {
    let messages = b["messages"].as_array().cloned().unwrap_or_default();
    let result = messages
        .last()
        .filter(|m| m["role"] == "tool")
        .map(|m| all_text(&m["content"]));
    let tools: Vec<(String, Value, bool)> = b["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| match t["type"].as_str() {
            Some("custom") => Some((t["custom"]["name"].as_str()?.to_string(), Value::Null, true)),
            _ => Some((
                t["function"]["name"].as_str()?.to_string(),
                t["function"]["parameters"].clone(),
                false,
            )),
        })
        .collect();
    let prompt = all_text(&Value::Array(messages));
    let quoted = backquoted(&prompt).unwrap_or_default();
    let (text, call) = match (result, pick(&tools)) {
        (Some(r), _) => (Some(format!("Done: {r}")), None),
        (None, Some((name, _, true))) if prompt.contains("tool") => (
            None,
            Some(json!({"id": "call_fake_1",
            "type": "custom", "custom": {"name": name, "input": quoted}})),
        ),
        (None, Some((name, schema, false))) if prompt.contains("tool") => (
            None,
            Some(json!({"id": "call_fake_1",
            "type": "function", "function": {"name": name,
            "arguments": arguments(&name, &schema, file, &quoted).to_string()}})),
        ),
        _ => (Some("{\"title\": \"Hello\"}".to_string()), None),
    };
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    let usage = json!({"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26});
    let mut message = json!({"role": "assistant", "content": text});
    if let Some(c) = &call {
        message["tool_calls"] = json!([c]);
    }
    if b["stream"] != true {
        return Reply::Json(
            200,
            json!({"id": "chatcmpl-fake", "object": "chat.completion", "created": 1,
            "model": b["model"], "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage}),
        );
    }
    let chunk = |delta: Value, finish: Value, usage: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
            "created": 1, "model": b["model"], "choices": if usage.is_null() {
                json!([{"index": 0, "delta": delta, "finish_reason": finish}]) } else { json!([]) },
            "usage": usage})
        )
    };
    let mut frames = vec![];
    match &call {
        Some(c) => {
            let mut c = c.clone();
            c["index"] = json!(0);
            frames.push(chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [c]}),
                Value::Null,
                Value::Null,
            ));
        }
        None => frames.push(chunk(
            json!({"role": "assistant", "content": text}),
            Value::Null,
            Value::Null,
        )),
    }
    frames.push(chunk(json!({}), json!(finish), Value::Null));
    frames.push(chunk(Value::Null, Value::Null, usage));
    frames.push("data: [DONE]\n\n".to_string());
    Reply::Sse(frames, Duration::ZERO)
}

/// Every tool of a Responses request: top-level `tools` and those of
/// `additional_tools` input items, namespaces flattened.
fn responses_tools(b: &Value) -> Vec<(String, Value, bool)> {
    fn flatten(list: &Value, out: &mut Vec<(String, Value, bool)>) {
        for t in list.as_array().into_iter().flatten() {
            match t["type"].as_str() {
                Some("namespace") => flatten(&t["tools"], out),
                Some("function") => out.push((
                    t["name"].as_str().unwrap_or("").to_string(),
                    t["parameters"].clone(),
                    false,
                )),
                Some("custom") => out.push((
                    t["name"].as_str().unwrap_or("").to_string(),
                    Value::Null,
                    true,
                )),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    flatten(&b["tools"], &mut out);
    for item in b["input"].as_array().into_iter().flatten() {
        if item["type"] == "additional_tools" {
            flatten(&item["tools"], &mut out);
        }
    }
    out
}

fn responses_answer(b: &Value, file: &str) -> Reply {
    let items = b["input"].as_array().cloned().unwrap_or_default();
    let result = items
        .iter()
        .rev()
        .find(|i| {
            matches!(
                i["type"].as_str(),
                Some("function_call_output" | "custom_tool_call_output")
            )
        })
        .map(|i| all_text(&i["output"]));
    let prompt = all_text(&Value::Array(
        items
            .iter()
            .filter(|i| i["role"] == "user")
            .cloned()
            .collect(),
    ));
    let quoted = backquoted(&prompt).unwrap_or_default();
    let item = match (result, pick(&responses_tools(b))) {
        (Some(r), _) => {
            json!({"type": "message", "id": "msg_fake_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": format!("Done: {r}"), "annotations": []}]})
        }
        (None, Some((name, _, true))) if prompt.contains("tool") => {
            json!({"type": "custom_tool_call",
            "id": "ctc_fake_1", "call_id": "call_fake_1", "name": name, "input": quoted, "status": "completed"})
        }
        (None, Some((name, schema, false))) if prompt.contains("tool") => {
            json!({"type": "function_call",
            "id": "fc_fake_1", "call_id": "call_fake_1", "name": name,
            "arguments": arguments(&name, &schema, file, &quoted).to_string(), "status": "completed"})
        }
        _ => {
            json!({"type": "message", "id": "msg_fake_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}]})
        }
    };
    let response = json!({"id": "resp_fake_1", "object": "response", "created_at": 1, "status": "completed",
        "model": b["model"], "output": [item],
        "usage": {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 6,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 26}});
    if b["stream"] != true {
        return Reply::Json(200, response);
    }
    let mut started = response.clone();
    started["status"] = json!("in_progress");
    started["output"] = json!([]);
    sse(vec![
        (
            "response.created",
            json!({"type": "response.created", "sequence_number": 0, "response": started}),
        ),
        (
            "response.output_item.added",
            json!({"type": "response.output_item.added", "sequence_number": 1,
            "output_index": 0, "item": item}),
        ),
        (
            "response.output_item.done",
            json!({"type": "response.output_item.done", "sequence_number": 2,
            "output_index": 0, "item": item}),
        ),
        (
            "response.completed",
            json!({"type": "response.completed", "sequence_number": 3, "response": response}),
        ),
    ])
}

/// Whether a request the upstream saw carries a tool's result (the
/// agent's second turn).
pub fn carries_tool_result(s: &Seen) -> bool {
    let b = &s.body;
    let in_messages = b["messages"].as_array().into_iter().flatten().any(|m| {
        m["role"] == "tool"
            || m["content"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "tool_result")
    });
    let in_input = b["input"].as_array().into_iter().flatten().any(|i| {
        matches!(
            i["type"].as_str(),
            Some("function_call_output" | "custom_tool_call_output")
        )
    });
    in_messages || in_input
}
