//! What the fake Gemini upstream answers to a valid `generateContent`:
//! a function call, a report of function responses or an echo, per
//! candidate, as one `GenerateContentResponse` or as stream events (text in
//! two-word slices, calls whole, the last event with every finishReason and
//! the full usage; usage counts words).

use serde_json::{Value, json};

/// One candidate's answer: text, or a function call.
#[derive(Debug, Clone)]
pub enum Answer {
    Text(String, &'static str),
    Call(String, Value),
}

/// A value of a Gemini `Schema`'s shape (every property, by type; strings
/// are `text`), as structured output promises.
fn example_of(schema: &Value, text: &str) -> Value {
    match schema["type"].as_str() {
        Some("OBJECT") => Value::Object(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), example_of(v, text)))
                .collect(),
        ),
        Some("ARRAY") => json!([example_of(&schema["items"], text)]),
        Some("INTEGER") => json!(1),
        Some("NUMBER") => json!(1.5),
        Some("BOOLEAN") => json!(true),
        _ => json!(text),
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn texts(content: &Value) -> impl Iterator<Item = &str> {
    content["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
}

pub fn answer(body: &Value) -> Vec<Answer> {
    let contents = body["contents"].as_array().cloned().unwrap_or_default();
    let last = contents.last().cloned().unwrap_or(Value::Null);
    let parts = last["parts"].as_array().cloned().unwrap_or_default();
    let config = &body["generationConfig"];
    let n = config["candidateCount"].as_u64().unwrap_or(1);
    let calling = &body["toolConfig"]["functionCallingConfig"];
    let mode = calling["mode"].as_str().unwrap_or("AUTO");
    let declarations: Vec<Value> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| {
            t["functionDeclarations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let user_text: String = texts(&last).collect::<Vec<_>>().join(" ");
    let responses: Vec<String> = parts
        .iter()
        .filter_map(|p| p.get("functionResponse"))
        .map(|r| format!("{}={}", r["name"].as_str().unwrap_or(""), r["response"]))
        .collect();
    let wants_call = !declarations.is_empty()
        && mode != "NONE"
        && (mode == "ANY"
            || (responses.is_empty() && user_text.to_lowercase().contains("weather")));
    (0..n)
        .map(|i| {
            if wants_call {
                let allowed = calling["allowedFunctionNames"][0].as_str();
                let decl = declarations
                    .iter()
                    .find(|d| allowed.is_none_or(|a| d["name"] == a))
                    .unwrap();
                let props = decl["parameters"]["properties"]
                    .as_object()
                    .or(decl["parametersJsonSchema"]["properties"].as_object());
                let args = props
                    .and_then(|p| p.keys().next())
                    .map(|k| json!({ k: "Paris" }))
                    .unwrap_or(json!({}));
                return Answer::Call(decl["name"].as_str().unwrap().to_string(), args);
            }
            let media = parts
                .iter()
                .filter(|p| p.get("inlineData").is_some() || p.get("fileData").is_some())
                .count();
            let mut text = if responses.is_empty() {
                format!("Echo: {user_text}")
            } else {
                format!("Tool results: {}", responses.join(", "))
            };
            if media > 0 {
                text.push_str(&format!(" (+{media} media)"));
            }
            if i > 0 {
                text.push_str(&format!(" #{i}"));
            }
            if config["responseSchema"].is_object() {
                text = example_of(&config["responseSchema"], &text).to_string();
            } else if config["responseMimeType"] == "application/json" {
                text = json!({ "echo": text }).to_string();
            }
            let max = config["maxOutputTokens"].as_u64().unwrap_or(u64::MAX);
            if words(&text) > max {
                let cut: Vec<&str> = text.split_whitespace().take(max as usize).collect();
                return Answer::Text(cut.join(" "), "MAX_TOKENS");
            }
            Answer::Text(text, "STOP")
        })
        .collect()
}

fn usage(body: &Value, answers: &[Answer], done: bool) -> Value {
    let prompt: u64 = body["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(Some(&body["systemInstruction"]))
        .flat_map(texts)
        .map(words)
        .sum();
    if !done {
        return json!({"promptTokenCount": prompt, "totalTokenCount": prompt});
    }
    let out: u64 = answers
        .iter()
        .map(|a| match a {
            Answer::Text(t, _) => words(t),
            Answer::Call(..) => 5,
        })
        .sum();
    json!({"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out})
}

/// The thought part the fake sends first when thoughts were asked for.
fn thought(body: &Value) -> Option<Value> {
    if body["generationConfig"]["thinkingConfig"]["includeThoughts"] != true {
        return None;
    }
    let last = body["contents"].as_array().and_then(|c| c.last())?;
    let text: Vec<&str> = texts(last).collect();
    Some(json!({"text": format!("Thinking about: {}", text.join(" ")), "thought": true}))
}

fn candidate(i: usize, parts: Vec<Value>, finish: Option<&str>) -> Value {
    let mut c = json!({"content": {"parts": parts, "role": "model"}});
    if i > 0 {
        c["index"] = json!(i);
    }
    if let Some(f) = finish {
        c["finishReason"] = json!(f);
    }
    c
}

fn response(candidates: Vec<Value>, usage: Value, model: &str, id: &str) -> Value {
    json!({"candidates": candidates, "usageMetadata": usage, "modelVersion": model, "responseId": id})
}

pub fn whole(answers: &[Answer], body: &Value, model: &str, id: &str) -> Value {
    let thought = thought(body);
    let candidates = answers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (part, finish) = match a {
                Answer::Text(t, finish) => (json!({ "text": t }), *finish),
                Answer::Call(name, args) => (
                    json!({"functionCall": {"name": name, "args": args}}),
                    "STOP",
                ),
            };
            let parts = thought.iter().cloned().chain([part]).collect();
            candidate(i, parts, Some(finish))
        })
        .collect();
    let mut r = response(candidates, usage(body, answers, true), model, id);
    if let Some(t) = &thought {
        r["usageMetadata"]["thoughtsTokenCount"] = json!(words(t["text"].as_str().unwrap()));
    }
    r
}

/// Stream events: text in two-word slices, calls whole, the last event with
/// every finishReason and the full usage.
pub fn chunks(answers: &[Answer], body: &Value, model: &str, id: &str) -> Vec<Value> {
    let thought = thought(body);
    let slices: Vec<Vec<Value>> = answers
        .iter()
        .map(|a| match a {
            Answer::Text(t, _) => {
                let pieces: Vec<&str> = t.split_inclusive(' ').collect();
                pieces
                    .chunks(2)
                    .map(|c| json!({ "text": c.concat() }))
                    .collect()
            }
            Answer::Call(name, args) => vec![json!({"functionCall": {"name": name, "args": args}})],
        })
        .map(|parts: Vec<Value>| thought.iter().cloned().chain(parts).collect())
        .collect();
    let steps = slices.iter().map(Vec::len).max().unwrap_or(0).max(1);
    (0..steps)
        .map(|step| {
            let last = step + 1 == steps;
            let candidates = answers
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let parts = slices[i].get(step).cloned().into_iter().collect();
                    let finish = match a {
                        Answer::Text(_, f) => *f,
                        Answer::Call(..) => "STOP",
                    };
                    candidate(i, parts, last.then_some(finish))
                })
                .collect();
            response(candidates, usage(body, answers, last), model, id)
        })
        .collect()
}
