//! Names from the OpenTelemetry semantic conventions for GenAI spans
//! (`gen_ai.*`), and the gateway's own span attributes (`switchyard.*`).
//!
//! Place in the pipeline: read by whoever records a span attribute (the
//! edge for the request span, routing for attempt spans), so the names are
//! spelled in one place. Must not record anything itself.

/// `gen_ai.operation.name`.
pub const OPERATION: &str = "gen_ai.operation.name";
/// `gen_ai.provider.name` (a well-known value, see [`provider_name`]).
pub const PROVIDER: &str = "gen_ai.provider.name";
/// `gen_ai.request.model`: the model asked for (the route at the gateway,
/// the target's model on an attempt).
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.response.model`: the model that answered.
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// `error.type`: the gateway's error code or the attempt's outcome.
pub const ERROR_TYPE: &str = "error.type";
pub const HTTP_STATUS: &str = "http.response.status_code";
pub const HTTP_ROUTE: &str = "http.route";

/// The gateway's cache answer for the request (`hit`, `miss`, `partial`).
pub const CACHE: &str = "switchyard.cache";
/// Attempts the request made upstream (0 for a cache hit).
pub const ATTEMPTS: &str = "switchyard.attempts";
/// The route (policy name) that served the request.
pub const ROUTE: &str = "switchyard.route";
/// The caller's virtual-key alias (never the key).
pub const KEY: &str = "switchyard.key";
/// The provider's name in the policy (an attempt's target).
pub const PROVIDER_ENTRY: &str = "switchyard.provider";
/// Which try of its target an attempt is: 0 first, then 1, 2, ... retries.
pub const RETRY: &str = "switchyard.retry";
/// The target's breaker when the attempt was made (closed, open, half_open).
pub const BREAKER: &str = "switchyard.breaker.state";
/// The fan-out sub-batch (0-based) an attempt carries.
pub const SUB_BATCH: &str = "switchyard.fanout.sub_batch";
/// Items in that sub-batch.
pub const SUB_BATCH_SIZE: &str = "switchyard.fanout.sub_batch_size";

/// `gen_ai.provider.name` for a provider kind: the conventions' well-known
/// values where there is one.
pub fn provider_name(kind: &str) -> &'static str {
    match kind {
        "openai" => "openai",
        "azure" => "azure.ai.openai",
        "anthropic" => "anthropic",
        "gemini" => "gcp.gemini",
        "bedrock" => "aws.bedrock",
        "cohere" => "cohere",
        "mock" => "switchyard.mock",
        _ => "_OTHER",
    }
}

/// `gen_ai.operation.name` for an endpoint (the router's label): the
/// conventions' values (`chat`, `text_completion`, `embeddings`); rerank
/// has none and is named `rerank`.
pub fn operation(endpoint: &str) -> Option<&'static str> {
    match endpoint {
        "chat" | "responses" | "messages" => Some("chat"),
        "completions" => Some("text_completion"),
        "embeddings" => Some("embeddings"),
        "rerank" => Some("rerank"),
        _ => None,
    }
}
