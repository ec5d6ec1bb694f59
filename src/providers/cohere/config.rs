//! `kind: cohere` settings.
//!
//! Place in the pipeline: read when a policy is loaded or checked, every
//! error at `file:line` through [`SettingsReport`]. Keys: `base_url`
//! (default [`DEFAULT_BASE_URL`]), `api_key_env` (required; sent as
//! `Authorization: Bearer`), `input_type` (embeddings, default
//! `search_document`; a client may override it per request), `truncate`
//! (`NONE`|`START`|`END`; default: Cohere's, `END`). Must not read the key
//! anywhere but from the environment variable named.

use serde::Deserialize;

use super::embed::{CohereEmbedSettings, DEFAULT_INPUT_TYPE, INPUT_TYPES, TRUNCATE};
use super::request::CohereChatSettings;
use crate::config::{ConfigError, Env, KindSettings, Secret};
use crate::providers::Capabilities;

pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";

/// Chat (JSON and SSE, tools, images on vision models) and embeddings.
pub const CAPABILITIES: Capabilities = Capabilities {
    chat: true,
    chat_stream: true,
    embeddings: true,
    tools: true,
    images: true,
    rerank: true,
    native: &[],
    prefill: false,
};

/// `kind: cohere` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Without the `/v2` path and without a trailing slash.
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub embed: CohereEmbedSettings,
    pub chat: CohereChatSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    base_url: Option<String>,
    api_key_env: Option<String>,
    input_type: Option<String>,
    truncate: Option<String>,
}

impl Config {
    /// Reads and validates the kind's keys (every error, each at its line).
    pub(super) fn read(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        let (raw, mut report) = settings.read::<Raw>(super::KIND);
        let base_url = match &raw.base_url {
            Some(url) => report.url("base_url", url.trim()),
            None => DEFAULT_BASE_URL.to_string(),
        };
        report.required("api_key_env", &raw.api_key_env, super::KIND);
        let api_key = report.secret("api_key_env", &raw.api_key_env, env);
        let input_type = raw
            .input_type
            .unwrap_or_else(|| DEFAULT_INPUT_TYPE.to_string());
        if !INPUT_TYPES.contains(&input_type.as_str()) {
            report.at(
                "input_type",
                format!("{input_type:?} must be one of {}", INPUT_TYPES.join(", ")),
            );
        }
        if let Some(t) = &raw.truncate
            && !TRUNCATE.contains(&t.as_str())
        {
            report.at(
                "truncate",
                format!("{t:?} must be one of {}", TRUNCATE.join(", ")),
            );
        }
        report.finish(Config {
            base_url,
            api_key,
            embed: CohereEmbedSettings {
                input_type,
                truncate: raw.truncate,
            },
            chat: CohereChatSettings::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{Source, load_sources};

    fn errors(provider: &str) -> Vec<String> {
        let text = format!(
            "providers:\n  co:\n    kind: cohere\n{provider}routes:\n  embed-v4.0:\n    targets: [{{provider: co}}]\n"
        );
        let env: Env = Arc::new(|k| (k == "CO_API_KEY").then(|| "co-key".to_string()));
        let sources = [Source {
            name: "c.yaml".into(),
            text,
        }];
        match load_sources(&sources, &env, crate::providers::check_kind) {
            Ok(policy) => {
                let c = Config::read(&policy.providers["co"].settings, &env).unwrap();
                assert_eq!(c.api_key.as_ref().map(Secret::expose), Some("co-key"));
                vec![format!("{c:?}")]
            }
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults() {
        let ok = errors("    api_key_env: CO_API_KEY\n");
        assert_eq!(ok.len(), 1);
        assert!(
            ok[0].contains("base_url: \"https://api.cohere.com\""),
            "{ok:?}"
        );
        assert!(ok[0].contains("input_type: \"search_document\""), "{ok:?}");
        assert!(ok[0].contains("truncate: None"), "{ok:?}");
        let set = errors(
            "    api_key_env: CO_API_KEY\n    base_url: http://127.0.0.1:9/\n    input_type: search_query\n    truncate: START\n",
        );
        assert!(
            set[0].contains("base_url: \"http://127.0.0.1:9\""),
            "{set:?}"
        );
        assert!(set[0].contains("input_type: \"search_query\""), "{set:?}");
        assert!(set[0].contains("truncate: Some(\"START\")"), "{set:?}");
    }

    #[test]
    fn every_error_at_its_line() {
        let e = errors(
            "    base_url: api.cohere.com\n    input_type: query\n    truncate: middle\n    api_key: x\n",
        );
        let has = |needle: &str| e.iter().any(|x| x.starts_with(needle));
        assert!(
            has("c.yaml:3: providers.co.api_key_env: is required for kind cohere"),
            "{e:?}"
        );
        assert!(
            has("c.yaml:4: providers.co.base_url: \"api.cohere.com\" must start with http"),
            "{e:?}"
        );
        assert!(
            has("c.yaml:5: providers.co.input_type: \"query\" must be one of search_document"),
            "{e:?}"
        );
        assert!(
            has("c.yaml:6: providers.co.truncate: \"middle\" must be one of NONE, START, END"),
            "{e:?}"
        );
        assert!(
            has("c.yaml:7: providers.co.api_key: unknown field `api_key` for kind cohere"),
            "{e:?}"
        );
        let unset = errors("    api_key_env: NOT_SET\n");
        assert!(
            unset[0].starts_with(
                "c.yaml:4: providers.co.api_key_env: environment variable NOT_SET is not set"
            ),
            "{unset:?}"
        );
    }
}
