//! `kind: azure` settings and the URLs they lead to.
//!
//! Place in the pipeline: read when a policy is loaded or checked (every
//! error at `file:line` through [`SettingsReport`]); [`Config::url`] is
//! called per attempt. Keys: `endpoint` (required, the resource URL),
//! `api_key_env` (required, sent as the `api-key` header), `api_version`
//! (default [`DEFAULT_API_VERSION`], the latest GA version of the inference
//! API), `deployments` (route model name -> deployment name; a model not
//! listed is its own deployment name). Must not read the key anywhere but
//! from the environment variable named.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::config::{ConfigError, Env, KindSettings, Secret};
use crate::providers::Capabilities;

/// The latest GA version of the Azure OpenAI data-plane inference API.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// `/embeddings` takes at most this many inputs per call.
pub const MAX_BATCH_INPUTS: usize = 2048;

/// Everything but unreserved URL characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Azure OpenAI serves what OpenAI does.
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

/// `kind: azure` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `https://<resource>.openai.azure.com`, no trailing slash.
    pub endpoint: String,
    pub api_key: Option<Secret>,
    pub api_version: String,
    /// Route model name -> deployment name.
    pub deployments: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    endpoint: Option<String>,
    api_key_env: Option<String>,
    api_version: Option<String>,
    deployments: Option<BTreeMap<String, String>>,
}

/// The name written in `kind:`.
pub(super) const KIND: &str = "azure";

impl Config {
    /// Reads and validates the kind's keys (every error, each at its line).
    pub(super) fn read(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        let (raw, mut report) = settings.read::<Raw>(KIND);
        let endpoint = report.required("endpoint", &raw.endpoint, KIND);
        let endpoint = report.url("endpoint", endpoint);
        if endpoint.contains('?') || endpoint.contains('#') {
            report.at(
                "endpoint",
                "must be the resource URL, without query or fragment",
            );
        }
        report.required("api_key_env", &raw.api_key_env, KIND);
        let api_key = report.secret("api_key_env", &raw.api_key_env, env);
        let api_version = raw
            .api_version
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        let version_ok = !api_version.is_empty()
            && api_version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !version_ok {
            report.at(
                "api_version",
                format!("{api_version:?} is not an API version such as {DEFAULT_API_VERSION}"),
            );
        }
        let deployments = raw.deployments.unwrap_or_default();
        for (model, deployment) in &deployments {
            if deployment.trim().is_empty() {
                report.at(
                    &format!("deployments.{model}"),
                    "must name a deployment of the resource",
                );
            }
        }
        report.finish(Config {
            endpoint,
            api_key,
            api_version,
            deployments,
        })
    }

    /// The deployment serving `model`.
    pub fn deployment<'a>(&'a self, model: &'a str) -> &'a str {
        self.deployments.get(model).map_or(model, String::as_str)
    }

    /// `{endpoint}/openai/deployments/{deployment}/{operation}?api-version=...`
    /// for `operation` `chat/completions` or `embeddings`.
    pub fn url(&self, model: &str, operation: &str) -> String {
        format!(
            "{}/openai/deployments/{}/{operation}?api-version={}",
            self.endpoint,
            utf8_percent_encode(self.deployment(model), SEGMENT),
            self.api_version
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{Source, load_sources};

    fn load(provider: &str, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let text = format!(
            "providers:\n  az:\n    kind: azure\n{provider}routes:\n  gpt-4o:\n    targets: [{{provider: az}}]\n"
        );
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env: Env = Arc::new(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
        let sources = [Source {
            name: "p.yaml".into(),
            text,
        }];
        let policy = load_sources(&sources, &env, crate::providers::check_kind)
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        let spec = &policy.providers["az"];
        Config::read(&spec.settings, &env).map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_and_urls() {
        let c = load(
            "    endpoint: https://res.openai.azure.com/\n    api_key_env: AZ_KEY\n    deployments:\n      gpt-4o: prod-4o\n",
            &[("AZ_KEY", "k")],
        )
        .unwrap();
        assert_eq!(c.endpoint, "https://res.openai.azure.com");
        assert_eq!(c.api_version, DEFAULT_API_VERSION);
        assert_eq!(c.api_key.as_ref().map(Secret::expose), Some("k"));
        assert_eq!(
            c.url("gpt-4o", "chat/completions"),
            "https://res.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
        );
        // A model without a mapping is its own deployment, escaped as a path segment.
        assert_eq!(
            c.url("text embedding/3", "embeddings"),
            "https://res.openai.azure.com/openai/deployments/text%20embedding%2F3/embeddings?api-version=2024-10-21"
        );
    }

    #[test]
    fn every_error_at_its_line() {
        let errors = load(
            "    api_key_env: AZ_KEY\n    api_version: '2024 10'\n    deploymnets: {}\n    deployments:\n      a: ''\n",
            &[],
        )
        .unwrap_err();
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(
            has("p.yaml:3: providers.az.endpoint: is required for kind azure"),
            "{errors:?}"
        );
        assert!(
            has("p.yaml:4: providers.az.api_key_env: environment variable AZ_KEY is not set"),
            "{errors:?}"
        );
        assert!(has("p.yaml:5: providers.az.api_version"), "{errors:?}");
        assert!(
            has("p.yaml:6: providers.az.deploymnets: unknown field"),
            "{errors:?}"
        );
        assert!(
            has("p.yaml:8: providers.az.deployments.a: must name a deployment"),
            "{errors:?}"
        );
        let missing_key = load("    endpoint: https://r.openai.azure.com\n", &[]).unwrap_err();
        assert!(
            missing_key
                .iter()
                .any(|e| e.contains("api_key_env: is required for kind azure")),
            "{missing_key:?}"
        );
        let bad_url = load(
            "    endpoint: r.openai.azure.com\n    api_key_env: K\n",
            &[("K", "k")],
        )
        .unwrap_err();
        assert!(bad_url[0].contains("must start with http"), "{bad_url:?}");
    }
}
