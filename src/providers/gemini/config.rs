//! `kind: gemini` settings: the keys of a provider entry that talk to the
//! Gemini API (Generative Language API, v1beta, native).
//!
//! Place in the pipeline: when a policy is loaded or checked,
//! `providers::registry` calls the kind's `KindConfig` (in `mod.rs`), which
//! calls `Config::read` with the entry's own keys (the shared ones —
//! `timeouts`, `breaker`, ... — are `config`'s); every problem is reported
//! through `SettingsReport`, so `switchyard check` prints it at
//! `file:line`. Then `mod.rs` builds the provider, off the request path
//! (this file does not know it).
//!
//! Keys (all optional unless said):
//! - `base_url`: up to the version, default
//!   `https://generativelanguage.googleapis.com/v1beta`;
//! - `api_key_env` (required): the environment variable holding the key,
//!   sent as `x-goog-api-key`;
//! - `default_max_tokens`: `maxOutputTokens` when the client sets none;
//! - `native_json_schema` (default false): send tool parameters and
//!   structured-output schemas as JSON Schema (`parametersJsonSchema`,
//!   `responseJsonSchema`) instead of converting them to Gemini's `Schema`;
//! - `embed_task_type`: the embeddings `taskType`, one of Gemini's
//!   documented [`TASK_TYPES`].
//!
//! Must not read secrets other than through `*_env` names, nor put a secret
//! in an error message.

use serde::Deserialize;

use super::embed::GeminiEmbedSettings;
use super::request::GeminiChatSettings;
use crate::config::{ConfigError, Env, KindSettings, Secret};
use crate::providers::Capabilities;

/// The Gemini Developer API, v1beta (where `systemInstruction`, tools and
/// JSON mode all exist).
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// Gemini's `TaskType` values (ai.google.dev/api/embeddings#tasktype).
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

/// What every `gemini` provider can do.
pub const CAPABILITIES: Capabilities = Capabilities {
    chat: true,
    chat_stream: true,
    embeddings: true,
    tools: true,
    images: true,
    rerank: false,
    native: &[],
    prefill: false,
};

/// `kind: gemini` settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// No trailing slash.
    pub base_url: String,
    pub api_key: Secret,
    pub chat: GeminiChatSettings,
    pub embed: GeminiEmbedSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    base_url: Option<String>,
    api_key_env: Option<String>,
    default_max_tokens: Option<u64>,
    native_json_schema: Option<bool>,
    embed_task_type: Option<String>,
}

impl Config {
    /// Reads and validates the kind's keys (every error, each at its line).
    pub(super) fn read(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        let (raw, mut report) = settings.read::<Raw>(super::KIND);
        let base_url = report.url(
            "base_url",
            raw.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim(),
        );
        report.required("api_key_env", &raw.api_key_env, super::KIND);
        let api_key = report.secret("api_key_env", &raw.api_key_env, env);
        if api_key
            .as_ref()
            .is_some_and(|k| http::HeaderValue::from_str(k.expose()).is_err())
        {
            report.at(
                "api_key_env",
                "the variable's value is not a valid HTTP header value",
            );
        }
        if raw.default_max_tokens == Some(0) {
            report.at("default_max_tokens", "must be at least 1");
        }
        if let Some(task) = &raw.embed_task_type
            && !TASK_TYPES.contains(&task.as_str())
        {
            report.at(
                "embed_task_type",
                format!(
                    "unknown Gemini task type {task:?} (expected one of {})",
                    TASK_TYPES.join(", ")
                ),
            );
        }
        report.finish(Config {
            base_url,
            api_key: api_key.unwrap_or_else(|| Secret::new(String::new())),
            chat: GeminiChatSettings {
                default_max_tokens: raw.default_max_tokens,
                native_json_schema: raw.native_json_schema.unwrap_or(false),
                ..GeminiChatSettings::default()
            },
            embed: GeminiEmbedSettings {
                task_type: raw.embed_task_type,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::config::{Source, load_sources};

    fn errors(yaml: &str) -> Vec<String> {
        let env: crate::config::Env =
            Arc::new(|k| (k == "GEMINI_KEY").then(|| "AIza-test".to_string()));
        let sources = [Source {
            name: "p.yaml".into(),
            text: yaml.into(),
        }];
        match load_sources(&sources, &env, crate::providers::check_kind) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const ROUTE: &str = "routes:\n  r:\n    targets: [{provider: g, model: gemini-2.5-flash}]\n";

    #[test]
    fn a_minimal_entry_loads_with_defaults() {
        let yaml =
            format!("providers:\n  g:\n    kind: gemini\n    api_key_env: GEMINI_KEY\n{ROUTE}");
        assert_eq!(errors(&yaml), Vec::<String>::new());
        let full = format!(
            "providers:\n  g:\n    kind: gemini\n    base_url: http://127.0.0.1:9/v1beta/\n    \
             api_key_env: GEMINI_KEY\n    default_max_tokens: 512\n    native_json_schema: true\n    \
             embed_task_type: RETRIEVAL_DOCUMENT\n    max_batch_inputs: 50\n{ROUTE}"
        );
        assert_eq!(errors(&full), Vec::<String>::new());
    }

    #[test]
    fn every_bad_key_is_reported_at_its_line() {
        let yaml = format!(
            "providers:\n  g:\n    kind: gemini\n    base_url: ftp://x\n    default_max_tokens: 0\n    \
             embed_task_type: RETRIEVAL\n    project: my-project\n{ROUTE}"
        );
        let errs = errors(&yaml);
        let expect = [
            "p.yaml:3: providers.g.api_key_env: is required for kind gemini",
            "p.yaml:4: providers.g.base_url: \"ftp://x\" must start with http:// or https://",
            "p.yaml:5: providers.g.default_max_tokens: must be at least 1",
            "p.yaml:6: providers.g.embed_task_type: unknown Gemini task type \"RETRIEVAL\"",
            "p.yaml:7: providers.g.project: unknown field `project` for kind gemini",
        ];
        for e in expect {
            assert!(
                errs.iter().any(|x| x.starts_with(e)),
                "{e:?} missing in:\n{}",
                errs.join("\n")
            );
        }
        assert_eq!(errs.len(), expect.len(), "{}", errs.join("\n"));
    }

    #[test]
    fn an_unset_key_variable_and_a_wrong_type_are_errors() {
        let yaml = format!(
            "providers:\n  g:\n    kind: gemini\n    api_key_env: NOT_SET\n    native_json_schema: maybe\n{ROUTE}"
        );
        let errs = errors(&yaml);
        assert!(
            errs.iter().any(|e| e.starts_with(
                "p.yaml:4: providers.g.api_key_env: environment variable NOT_SET is not set"
            )),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("p.yaml:5: providers.g.native_json_schema")),
            "{errs:?}"
        );
    }
}
