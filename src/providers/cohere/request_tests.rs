//! Unit tests of [`super::chat_request`], from the Cohere reference's own
//! request examples.

use super::*;

fn translate(body: Value) -> Result<Value, TranslateError> {
    chat_request(
        body.as_object().unwrap(),
        "command-a-03-2025",
        &CohereChatSettings::default(),
    )
}

fn sales_tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "query_daily_sales_report",
            "description": "Connects to a database to retrieve overall sales volumes and sales information for a given day.",
            "parameters": {"type": "object", "properties": {"day": {
                "description": "Retrieves sales data for this day, formatted as YYYY-MM-DD.", "type": "string"}},
                "required": ["day"]}}},
        {"type": "function", "function": {
            "name": "query_product_catalog",
            "description": "Connects to a a product catalog with information about all the products being sold, including categories, prices, and stock levels.",
            "parameters": {"type": "object", "properties": {"category": {
                "description": "Retrieves product information data for all products in this category.", "type": "string"}},
                "required": ["category"]}}}
    ])
}

#[test]
fn plain_chat_with_system_prompt_and_sampling() {
    let out = translate(json!({
        "model": "route-name",
        "messages": [
            {"role": "developer", "content": "You are a concise assistant."},
            {"role": "user", "content": "Tell me about LLMs", "name": "ann"}
        ],
        "temperature": 0.3, "top_p": 1, "max_tokens": 100, "max_completion_tokens": 200,
        "stop": "END", "seed": 7, "user": "u-1", "n": 1, "stream": false,
        "frequency_penalty": 0.1, "presence_penalty": 0.2, "metadata": {"a": "b"}
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "model": "command-a-03-2025",
            "messages": [
                {"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": "Tell me about LLMs"}
            ],
            "temperature": 0.3, "p": 0.99, "max_tokens": 200, "stop_sequences": ["END"],
            "seed": 7, "stream": false, "frequency_penalty": 0.1, "presence_penalty": 0.2
        })
    );
    let settings = CohereChatSettings {
        max_tokens: Some(512),
    };
    let body =
        json!({"messages": [{"role": "user", "content": "hi"}], "stream": true, "top_p": 0.5});
    let out = chat_request(body.as_object().unwrap(), "m", &settings).unwrap();
    assert_eq!(out["max_tokens"], 512);
    assert_eq!(out["stream"], true);
    assert_eq!(out["p"], 0.5);
}

#[test]
fn multi_part_user_message_with_images() {
    let out = translate(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe this image"},
        {"type": "image_url", "image_url": {"url": "https://cohere.com/favicon-32x32.png", "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ]}]}))
    .unwrap();
    assert_eq!(
        out["messages"][0],
        json!({"role": "user", "content": [
            {"type": "text", "text": "Describe this image"},
            {"type": "image_url", "image_url": {"url": "https://cohere.com/favicon-32x32.png", "detail": "auto"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]})
    );
    let audio = translate(json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "...", "format": "wav"}}]}]}));
    assert!(
        matches!(audio, Err(TranslateError::Unsupported { feature, .. }) if feature.contains("input_audio"))
    );
    let ftp = translate(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}));
    assert!(matches!(ftp, Err(TranslateError::InvalidRequest(_))));
}

#[test]
fn tools_and_tool_choice() {
    let question = "Can you provide a sales summary for 29th September 2023, and also give me some details about the products in the 'Electronics' category, for example their prices and stock levels?";
    let body = json!({"messages": [{"role": "user", "content": question}], "tools": sales_tools()});
    let out = translate(body.clone()).unwrap();
    assert_eq!(out["tools"], sales_tools());
    assert!(out.get("tool_choice").is_none());
    for (choice, want) in [(json!("required"), "REQUIRED"), (json!("none"), "NONE")] {
        let mut b = body.clone();
        b["tool_choice"] = choice;
        assert_eq!(translate(b).unwrap()["tool_choice"], want);
    }
    let mut named = body.clone();
    named["tool_choice"] =
        json!({"type": "function", "function": {"name": "query_product_catalog"}});
    let out = translate(named).unwrap();
    assert_eq!(out["tool_choice"], "REQUIRED");
    assert_eq!(out["tools"].as_array().unwrap().len(), 1);
    assert_eq!(out["tools"][0]["function"]["name"], "query_product_catalog");
    let mut unknown = body.clone();
    unknown["tool_choice"] = json!({"type": "function", "function": {"name": "nope"}});
    assert!(matches!(
        translate(unknown),
        Err(TranslateError::InvalidRequest(_))
    ));
    let strict = json!({"messages": [{"role": "user", "content": "x"}], "tools": [
        {"type": "function", "function": {"name": "f", "strict": true}}]});
    let out = translate(strict).unwrap();
    assert_eq!(out["strict_tools"], true);
    assert_eq!(
        out["tools"][0],
        json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}})
    );
}

#[test]
fn tool_result_round_trip() {
    let out = translate(json!({"messages": [
        {"role": "user", "content": "Sales on 2023-09-29?"},
        {"role": "assistant", "content": "I will look up the sales report.", "tool_calls": [
            {"id": "query_daily_sales_report_hgxxmkby3wta", "type": "function",
             "function": {"name": "query_daily_sales_report", "arguments": "{\"day\":\"2023-09-29\"}"}}]},
        {"role": "tool", "tool_call_id": "query_daily_sales_report_hgxxmkby3wta",
         "content": [{"type": "text", "text": "{\"total_sales_amount\": 10000, \"total_units_sold\": 250}"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Sales were 10000."}]}
    ], "tools": sales_tools()}))
    .unwrap();
    assert_eq!(
        out["messages"][1],
        json!({"role": "assistant", "tool_plan": "I will look up the sales report.", "tool_calls": [
            {"id": "query_daily_sales_report_hgxxmkby3wta", "type": "function",
             "function": {"name": "query_daily_sales_report", "arguments": "{\"day\":\"2023-09-29\"}"}}]})
    );
    assert_eq!(
        out["messages"][2],
        json!({"role": "tool", "tool_call_id": "query_daily_sales_report_hgxxmkby3wta",
               "content": "{\"total_sales_amount\": 10000, \"total_units_sold\": 250}"})
    );
    assert_eq!(
        out["messages"][3],
        json!({"role": "assistant", "content": "Sales were 10000."})
    );
    let no_id = translate(json!({"messages": [{"role": "tool", "content": "x"}]}));
    assert!(matches!(no_id, Err(TranslateError::InvalidRequest(_))));
}

#[test]
fn response_formats() {
    let base = |rf: Value| json!({"messages": [{"role": "user", "content": "Generate a JSON"}], "response_format": rf});
    assert!(
        translate(base(json!({"type": "text"})))
            .unwrap()
            .get("response_format")
            .is_none()
    );
    assert_eq!(
        translate(base(json!({"type": "json_object"}))).unwrap()["response_format"],
        json!({"type": "json_object"})
    );
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]});
    assert_eq!(
        translate(base(json!({"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}})))
            .unwrap()["response_format"],
        json!({"type": "json_object", "json_schema": schema})
    );
}

#[test]
fn refuses_what_cohere_cannot_express() {
    let msgs = json!([{"role": "user", "content": "hi"}]);
    for (field, value) in [
        ("n", json!(2)),
        ("parallel_tool_calls", json!(false)),
        ("logprobs", json!(true)),
        ("logit_bias", json!({"50256": -100})),
        ("functions", json!([])),
        ("reasoning_effort", json!("high")),
        ("some_vendor_field", json!(1)),
    ] {
        let mut body = json!({"messages": msgs});
        body[field] = value;
        match translate(body) {
            Err(TranslateError::Unsupported { kind, feature }) => {
                assert_eq!(kind, "cohere");
                assert!(feature.contains(field), "{feature} should name {field}");
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    let function_role =
        translate(json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}));
    assert!(matches!(
        function_role,
        Err(TranslateError::Unsupported { .. })
    ));
    let no_messages = translate(json!({"model": "m"}));
    assert!(matches!(
        no_messages,
        Err(TranslateError::InvalidRequest(_))
    ));
    // Nulls are absent fields.
    assert!(translate(json!({"messages": msgs, "logprobs": null, "n": null})).is_ok());
}
