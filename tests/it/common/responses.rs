//! A fake OpenAI Responses API (`POST /v1/responses`) on 127.0.0.1:0, built
//! on [`FakeUpstream`], following the public API reference: a response
//! object (`id`, `object: "response"`, `status`, `output` of `message` and
//! `function_call` items, `usage`, the echoed request fields) as JSON, or
//! the documented event stream with `sequence_number` (no `[DONE]`).
//!
//! Answers: `Tool said: <output>` after a `function_call_output` item; a
//! call of the first function tool with `{"location": "Paris"}` when tools
//! are given and the last user text mentions "weather"; a JSON object with
//! every required key of a `json_schema` text format set to `"Paris"`;
//! otherwise `Fake OpenAI heard: <last user text>`.

use serde_json::{Value, json};

use super::{FakeUpstream, Reply};

pub async fn start() -> FakeUpstream {
    FakeUpstream::start(|s, _| async move {
        if s.path != "/v1/responses" {
            return Reply::Json(
                404,
                json!({"error": {"message": "unknown path", "type": "invalid_request_error"}}),
            );
        }
        let resp = answer(&s.body);
        if s.body["stream"] == true {
            Reply::Sse(events(&resp), std::time::Duration::ZERO)
        } else {
            Reply::Json(200, resp)
        }
    })
    .await
}

fn last_user_text(body: &Value) -> String {
    match &body["input"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .rev()
            .find(|i| i["role"] == "user")
            .map(|i| match &i["content"] {
                Value::String(s) => s.clone(),
                Value::Array(p) => p.iter().filter_map(|p| p["text"].as_str()).collect(),
                _ => String::new(),
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The response object for a request `body`.
pub fn answer(body: &Value) -> Value {
    let text = last_user_text(body);
    let items = body["input"].as_array().cloned().unwrap_or_default();
    let tool_output = items
        .iter()
        .rev()
        .find(|i| i["type"] == "function_call_output");
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    let message = |t: String| {
        json!({"type": "message", "id": "msg_fake_1", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": t, "annotations": []}]})
    };
    let output = if let Some(o) = tool_output {
        message(format!(
            "Tool said: {}",
            o["output"].as_str().unwrap_or_default()
        ))
    } else if !tools.is_empty() && text.contains("weather") {
        json!({"type": "function_call", "id": "fc_fake_1", "call_id": "call_fake_1",
               "name": tools[0]["name"], "arguments": "{\"location\":\"Paris\"}", "status": "completed"})
    } else if body["text"]["format"]["type"] == "json_schema" {
        let mut obj = serde_json::Map::new();
        for k in body["text"]["format"]["schema"]["required"]
            .as_array()
            .into_iter()
            .flatten()
        {
            obj.insert(k.as_str().unwrap_or_default().to_string(), json!("Paris"));
        }
        message(Value::Object(obj).to_string())
    } else {
        message(format!("Fake OpenAI heard: {text}"))
    };
    let words = text.split_whitespace().count() as u64;
    json!({"id": "resp_fake_1", "object": "response", "created_at": 1_700_000_000,
           "status": "completed", "error": null, "incomplete_details": null,
           "instructions": body["instructions"], "model": body["model"], "output": [output],
           "parallel_tool_calls": true, "temperature": null, "top_p": null,
           "tool_choice": body.get("tool_choice").cloned().unwrap_or(json!("auto")),
           "tools": tools, "text": body.get("text").cloned().unwrap_or(json!({"format": {"type": "text"}})),
           "usage": {"input_tokens": words, "input_tokens_details": {"cached_tokens": 0},
                     "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0},
                     "total_tokens": words + 4}})
}

/// The documented event stream for `resp`.
pub fn events(resp: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut emit = |kind: &str, mut v: Value| {
        v["type"] = json!(kind);
        v["sequence_number"] = json!(seq);
        seq += 1;
        out.push(format!("event: {kind}\ndata: {v}\n\n"));
    };
    let mut start = resp.clone();
    start["status"] = json!("in_progress");
    start["output"] = json!([]);
    start["usage"] = Value::Null;
    emit("response.created", json!({"response": start}));
    emit("response.in_progress", json!({"response": start}));
    for (i, item) in resp["output"].as_array().unwrap().iter().enumerate() {
        let id = &item["id"];
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        if item["type"] == "message" {
            added["content"] = json!([]);
            emit(
                "response.output_item.added",
                json!({"output_index": i, "item": added}),
            );
            let part = json!({"type": "output_text", "text": "", "annotations": []});
            emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": i, "content_index": 0, "part": part}),
            );
            let text = item["content"][0]["text"].as_str().unwrap();
            let mid = text
                .char_indices()
                .nth(text.chars().count() / 2)
                .map_or(0, |(b, _)| b);
            for d in [&text[..mid], &text[mid..]] {
                emit(
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": i, "content_index": 0, "delta": d, "logprobs": []}),
                );
            }
            emit(
                "response.output_text.done",
                json!({"item_id": id, "output_index": i, "content_index": 0, "text": text, "logprobs": []}),
            );
            emit(
                "response.content_part.done",
                json!({"item_id": id, "output_index": i, "content_index": 0, "part": item["content"][0]}),
            );
        } else {
            added["arguments"] = json!("");
            emit(
                "response.output_item.added",
                json!({"output_index": i, "item": added}),
            );
            emit(
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": i, "delta": item["arguments"]}),
            );
            emit(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": i, "arguments": item["arguments"]}),
            );
        }
        emit(
            "response.output_item.done",
            json!({"output_index": i, "item": item}),
        );
    }
    emit("response.completed", json!({"response": resp}));
    out
}
