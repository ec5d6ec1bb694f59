//! Request-shape checks of the fake Gemini upstream: what the real API
//! refuses with `400 INVALID_ARGUMENT` (unknown fields, empty parts, JSON
//! Schema keys outside its OpenAPI subset, function responses that do not
//! answer the previous turn's calls, a `thinkingConfig` the model does not
//! take, bad batch embeddings). Each check
//! returns the message the fake puts in its error body.

use serde_json::{Map, Value};

type Check = Result<(), String>;

fn unknown_name(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Check {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."
        )),
        None => Ok(()),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("Invalid value at '{at}': expected an object"))
}

pub fn generate(body: &Value, model: &str) -> Check {
    let body = object(body, "request")?;
    unknown_name(
        body,
        &[
            "contents",
            "systemInstruction",
            "tools",
            "toolConfig",
            "generationConfig",
            "safetySettings",
            "cachedContent",
        ],
        "request",
    )?;
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("* GenerateContentRequest.contents: contents is not specified")?;
    let mut previous_calls: Vec<&str> = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        let content = object(content, &at)?;
        unknown_name(content, &["role", "parts"], &at)?;
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        if role != "user" && role != "model" {
            return Err(format!("Please use a valid role: user, model. ({at})"));
        }
        let parts = content
            .get("parts")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or(format!(
                "* GenerateContentRequest.{at}.parts: contents.parts must not be empty."
            ))?;
        let mut calls = Vec::new();
        let mut responses = Vec::new();
        for (j, part) in parts.iter().enumerate() {
            let at = format!("{at}.parts[{j}]");
            match check_part(part, &at)? {
                PartKind::Call(name) => calls.push(name),
                PartKind::Response(name) => responses.push(name),
                PartKind::Other => {}
            }
        }
        if !responses.is_empty() && (role != "user" || responses != previous_calls) {
            return Err(format!(
                "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn. ({at})"
            ));
        }
        previous_calls = calls;
    }
    if let Some(system) = body.get("systemInstruction") {
        let parts = system
            .get("parts")
            .and_then(Value::as_array)
            .ok_or("systemInstruction.parts is required")?;
        if parts
            .iter()
            .any(|p| p.get("text").and_then(Value::as_str).is_none())
        {
            return Err("systemInstruction parts must be text".into());
        }
    }
    let names = match body.get("tools") {
        Some(tools) => check_tools(tools)?,
        None => Vec::new(),
    };
    if let Some(config) = body.get("toolConfig") {
        check_tool_config(config, &names)?;
    }
    if let Some(config) = body.get("generationConfig") {
        let config = object(config, "generation_config")?;
        unknown_name(
            config,
            &[
                "maxOutputTokens",
                "temperature",
                "topP",
                "topK",
                "stopSequences",
                "candidateCount",
                "presencePenalty",
                "frequencyPenalty",
                "seed",
                "responseMimeType",
                "responseSchema",
                "responseJsonSchema",
                "thinkingConfig",
            ],
            "generation_config",
        )?;
        if config.contains_key("responseSchema") && config.contains_key("responseJsonSchema") {
            return Err("responseSchema and responseJsonSchema cannot both be set".into());
        }
        if let Some(schema) = config.get("responseSchema") {
            check_schema(schema, "generation_config.response_schema")?;
        }
        if let Some(thinking) = config.get("thinkingConfig") {
            check_thinking(thinking, model)?;
        }
    }
    Ok(())
}

/// `thinkingConfig` as the reference states it per model: a budget (2.5
/// Pro: 128 to 32768, others 0 to 24576, or -1 for dynamic) or, on Gemini
/// 3, a level; never both; no thinking at all before 2.5.
fn check_thinking(thinking: &Value, model: &str) -> Check {
    let t = object(thinking, "generation_config.thinking_config")?;
    unknown_name(
        t,
        &["thinkingBudget", "thinkingLevel", "includeThoughts"],
        "generation_config.thinking_config",
    )?;
    if !model.starts_with("gemini-2.5") && !model.starts_with("gemini-3") {
        return Err(format!("Thinking is not supported for model {model}."));
    }
    if t.contains_key("thinkingBudget") && t.contains_key("thinkingLevel") {
        return Err("thinking_budget and thinking_level are not supported together.".into());
    }
    if let Some(budget) = t.get("thinkingBudget") {
        let b = budget
            .as_i64()
            .ok_or("thinking_budget must be an integer")?;
        let (min, max) = if model.contains("pro") {
            (128, 32768)
        } else {
            (0, 24576)
        };
        if b != -1 && !(min..=max).contains(&b) {
            return Err(format!(
                "The thinking budget {b} is invalid. Please choose a value between {min} and {max}."
            ));
        }
    }
    if let Some(level) = t.get("thinkingLevel") {
        if !model.starts_with("gemini-3") {
            return Err("thinking_level is not supported for this model.".into());
        }
        if !matches!(level.as_str(), Some("minimal" | "low" | "medium" | "high")) {
            return Err(
                "Invalid value at 'generation_config.thinking_config.thinking_level'".into(),
            );
        }
    }
    Ok(())
}

enum PartKind<'a> {
    Call(&'a str),
    Response(&'a str),
    Other,
}

fn check_part<'a>(part: &'a Value, at: &str) -> Result<PartKind<'a>, String> {
    let part = object(part, at)?;
    unknown_name(
        part,
        &[
            "text",
            "inlineData",
            "fileData",
            "functionCall",
            "functionResponse",
            "thought",
            "thoughtSignature",
        ],
        at,
    )?;
    let data: Vec<&String> = part.keys().filter(|k| !k.starts_with("thought")).collect();
    if data.len() != 1 {
        return Err(format!("{at}: a part must hold exactly one kind of data"));
    }
    let field = |v: &'a Value, k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    Ok(match data[0].as_str() {
        "text" if part["text"].is_string() => PartKind::Other,
        "inlineData"
            if field(&part["inlineData"], "mimeType").is_some()
                && field(&part["inlineData"], "data").is_some() =>
        {
            PartKind::Other
        }
        "fileData"
            if field(&part["fileData"], "mimeType").is_some()
                && field(&part["fileData"], "fileUri").is_some() =>
        {
            PartKind::Other
        }
        "functionCall"
            if part["functionCall"]["args"].is_object()
                || part["functionCall"].get("args").is_none() =>
        {
            PartKind::Call(
                field(&part["functionCall"], "name")
                    .ok_or(format!("{at}.function_call.name is required"))?,
            )
        }
        "functionResponse" if part["functionResponse"]["response"].is_object() => {
            PartKind::Response(
                field(&part["functionResponse"], "name")
                    .ok_or(format!("{at}.function_response.name is required"))?,
            )
        }
        other => return Err(format!("Invalid value at '{at}.{other}'")),
    })
}

fn check_tools(tools: &Value) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for (i, tool) in tools
        .as_array()
        .ok_or("tools must be a list")?
        .iter()
        .enumerate()
    {
        let at = format!("tools[{i}]");
        let tool = object(tool, &at)?;
        unknown_name(tool, &["functionDeclarations"], &at)?;
        for (j, decl) in tool["functionDeclarations"]
            .as_array()
            .ok_or("functionDeclarations must be a list")?
            .iter()
            .enumerate()
        {
            let at = format!("{at}.function_declarations[{j}]");
            let decl = object(decl, &at)?;
            unknown_name(
                decl,
                &["name", "description", "parameters", "parametersJsonSchema"],
                &at,
            )?;
            let name = decl
                .get("name")
                .and_then(Value::as_str)
                .ok_or(format!("* {at}.name: Name is required"))?;
            if let Some(parameters) = decl.get("parameters") {
                check_schema(parameters, &format!("{at}.parameters"))?;
            }
            names.push(name.to_string());
        }
    }
    Ok(names)
}

fn check_tool_config(config: &Value, names: &[String]) -> Check {
    let calling = config
        .get("functionCallingConfig")
        .ok_or("toolConfig needs functionCallingConfig")?;
    let mode = calling
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("AUTO");
    if !["AUTO", "ANY", "NONE", "VALIDATED"].contains(&mode) {
        return Err(format!(
            "Invalid value at 'tool_config.function_calling_config.mode' ({mode})"
        ));
    }
    if let Some(allowed) = calling
        .get("allowedFunctionNames")
        .and_then(Value::as_array)
    {
        if mode != "ANY" && mode != "VALIDATED" {
            return Err("allowed_function_names should only be set when the Mode is ANY".into());
        }
        if allowed
            .iter()
            .any(|n| !names.iter().any(|d| Some(d.as_str()) == n.as_str()))
        {
            return Err("allowed_function_names must name declared functions".into());
        }
    }
    Ok(())
}

/// Gemini's `Schema`: an OpenAPI 3.0 subset; `additionalProperties` and
/// other JSON Schema keywords are refused by the Developer API.
fn check_schema(schema: &Value, at: &str) -> Check {
    let schema = object(schema, at)?;
    unknown_name(
        schema,
        &[
            "type",
            "format",
            "title",
            "description",
            "nullable",
            "enum",
            "maxItems",
            "minItems",
            "properties",
            "required",
            "minProperties",
            "maxProperties",
            "minLength",
            "maxLength",
            "pattern",
            "example",
            "anyOf",
            "propertyOrdering",
            "default",
            "items",
            "minimum",
            "maximum",
        ],
        at,
    )?;
    if let Some(t) = schema.get("type") {
        let t = t.as_str().unwrap_or_default();
        if ![
            "TYPE_UNSPECIFIED",
            "STRING",
            "NUMBER",
            "INTEGER",
            "BOOLEAN",
            "ARRAY",
            "OBJECT",
            "NULL",
        ]
        .contains(&t)
        {
            return Err(format!("Invalid value at '{at}.type' ({t})"));
        }
        if t == "OBJECT"
            && schema
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
        {
            return Err(format!(
                "* {at}.properties: should be non-empty for OBJECT type"
            ));
        }
    }
    for (name, sub) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        check_schema(sub, &format!("{at}.properties[{name}]"))?;
    }
    if let Some(items) = schema.get("items") {
        check_schema(items, &format!("{at}.items"))?;
    }
    for (i, sub) in schema
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        check_schema(sub, &format!("{at}.any_of[{i}]"))?;
    }
    Ok(())
}

pub const TASK_TYPES: &[&str] = &[
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
];

/// `batchEmbedContents` for `models/{model}`: the texts and dimensions asked for.
pub fn batch_embed(body: &Value, model: &str) -> Result<Vec<(String, Option<u64>)>, String> {
    let body = object(body, "request")?;
    unknown_name(body, &["requests"], "request")?;
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or("* BatchEmbedContentsRequest.requests: requests is not specified")?;
    if requests.len() > 100 {
        return Err(
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch".into(),
        );
    }
    let mut out = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        let at = format!("requests[{i}]");
        let request = object(request, &at)?;
        unknown_name(
            request,
            &[
                "model",
                "content",
                "taskType",
                "title",
                "outputDimensionality",
            ],
            &at,
        )?;
        let expected = format!("models/{model}");
        if request.get("model").and_then(Value::as_str) != Some(expected.as_str()) {
            return Err(format!(
                "* BatchEmbedContentsRequest.{at}.model: Model must be {expected}"
            ));
        }
        if let Some(task) = request
            .get("taskType")
            .and_then(Value::as_str)
            .filter(|t| !TASK_TYPES.contains(t))
        {
            return Err(format!("Invalid value at '{at}.task_type' ({task})"));
        }
        let text = request
            .get("content")
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .and_then(|p| p.get("text"))
            .and_then(Value::as_str)
            .ok_or(format!(
                "* BatchEmbedContentsRequest.{at}.content: text is required"
            ))?;
        out.push((
            text.to_string(),
            request.get("outputDimensionality").and_then(Value::as_u64),
        ));
    }
    Ok(out)
}
