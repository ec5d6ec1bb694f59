//! Bedrock embeddings: batch limits per model family, Titan and Cohere
//! requests and answers, and the token count header.

use super::*;

const TITAN: &str = "amazon.titan-embed-text-v2:0";
const COHERE: &str = "cohere.embed-english-v3";

fn extra(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn request(inputs: Value, model: &str, ex: Value) -> Result<Value, TranslateError> {
    embed_request(
        inputs.as_array().unwrap(),
        model,
        &extra(ex),
        &BedrockEmbedSettings::default(),
    )
}

#[test]
fn batch_limits_by_family() {
    assert_eq!(max_batch_inputs(TITAN), 1);
    assert_eq!(max_batch_inputs("amazon.titan-embed-text-v1"), 1);
    assert_eq!(max_batch_inputs(COHERE), 96);
    assert_eq!(max_batch_inputs("us.cohere.embed-v4:0"), 96);
    assert_eq!(max_batch_inputs("something-else"), 1);
}

#[test]
fn titan_requests() {
    let out = request(
        json!(["hello"]),
        TITAN,
        json!({"dimensions": 512, "normalize": false, "user": "u"}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"inputText": "hello", "dimensions": 512, "normalize": false})
    );
    assert_eq!(
        request(json!(["hi"]), "amazon.titan-embed-text-v1", json!({})).unwrap(),
        json!({"inputText": "hi"})
    );
    let image = request(
        json!(["hi"]),
        "amazon.titan-embed-image-v1",
        json!({"dimensions": 384}),
    )
    .unwrap();
    assert_eq!(
        image,
        json!({"inputText": "hi", "embeddingConfig": {"outputEmbeddingLength": 384}})
    );

    assert!(matches!(
        request(json!(["a", "b"]), TITAN, json!({})),
        Err(TranslateError::InvalidRequest(_))
    ));
    for (model, ex) in [
        (TITAN, json!({"dimensions": 300})),
        ("amazon.titan-embed-text-v1", json!({"dimensions": 256})),
        (TITAN, json!({"input_type": "search_query"})),
    ] {
        assert!(matches!(
            request(json!(["a"]), model, ex),
            Err(TranslateError::Unsupported { .. })
        ));
    }
    let tokens = request(json!([[1, 2, 3]]), TITAN, json!({}));
    assert!(
        matches!(tokens, Err(TranslateError::Unsupported { feature, .. }) if feature.contains("token"))
    );
}

#[test]
fn cohere_requests() {
    let out = request(json!(["a", "b"]), COHERE, json!({})).unwrap();
    assert_eq!(
        out,
        json!({"texts": ["a", "b"], "input_type": "search_document"})
    );
    let out = request(
        json!(["q"]),
        COHERE,
        json!({"input_type": "search_query", "truncate": "END"}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"texts": ["q"], "input_type": "search_query", "truncate": "END"})
    );
    let v4 = request(
        json!(["a"]),
        "cohere.embed-v4:0",
        json!({"dimensions": 1024}),
    )
    .unwrap();
    assert_eq!(v4["output_dimension"], 1024);
    assert!(request(json!(["a"]), COHERE, json!({"dimensions": 1024})).is_err());
    let many: Vec<Value> = (0..97).map(|i| json!(format!("t{i}"))).collect();
    assert!(request(Value::Array(many), COHERE, json!({})).is_err());
    assert!(matches!(
        request(json!(["a"]), "meta.llama3", json!({})),
        Err(TranslateError::Unsupported { .. })
    ));
}

#[test]
fn titan_response() {
    let body = br#"{"embedding":[0.5,-0.25,1],"inputTextTokenCount":4,"embeddingsByType":{"float":[0.5,-0.25,1]}}"#;
    let reply = embed_response(TITAN, body, 1).unwrap();
    assert_eq!(
        reply,
        EmbedReply {
            vectors: vec![vec![0.5, -0.25, 1.0]],
            prompt_tokens: 4,
            total_tokens: 4
        }
    );
    assert!(embed_response(TITAN, body, 2).is_err());
    assert!(embed_response(TITAN, br#"{"embedding":["x"]}"#, 1).is_err());
}

#[test]
fn cohere_responses() {
    let floats = br#"{"embeddings":[[1,2],[3,4]],"id":"6f2c","response_type":"embeddings_floats","texts":["a","b"]}"#;
    let reply = embed_response(COHERE, floats, 2).unwrap();
    assert_eq!(reply.vectors, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
    assert_eq!(reply.prompt_tokens, 0);
    let by_type = br#"{"embeddings":{"float":[[5,6]]},"id":"x","response_type":"embeddings_by_type","texts":["c"]}"#;
    assert_eq!(
        embed_response("cohere.embed-v4:0", by_type, 1)
            .unwrap()
            .vectors,
        vec![vec![5.0, 6.0]]
    );
    let err = embed_response(COHERE, floats, 3).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected 3 embeddings, upstream returned 2")
    );
    assert!(embed_response(COHERE, b"[]", 1).is_err());
}

#[test]
fn reads_the_token_count_header() {
    let mut headers = http::HeaderMap::new();
    assert_eq!(input_token_count(&headers), None);
    headers.insert("X-Amzn-Bedrock-Input-Token-Count", "17".parse().unwrap());
    assert_eq!(input_token_count(&headers), Some(17));
}
