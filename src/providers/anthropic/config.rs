//! `kind: anthropic` settings: what a policy may write under a provider entry
//! of this kind, read and checked with every error at its `file:line`.
//!
//! Place in the pipeline: when a policy is loaded, reloaded or checked,
//! `registry` hands this kind its own keys (`Config::read`, through the
//! kind's `KindConfig` in `mod.rs`, which also builds the provider off the
//! request path; this file does not know the provider). Keys (all optional
//! but `api_key_env`): `base_url` (default `https://api.anthropic.com`, the
//! Messages path is appended), `api_key_env` (the environment variable
//! holding the key, sent as `x-api-key`), `version` (`anthropic-version`,
//! default [`DEFAULT_VERSION`]), `beta` (`anthropic-beta` values, joined with
//! commas), `default_max_tokens` (default 4096; Anthropic requires
//! `max_tokens`), `structured_outputs` (default false). Must not do I/O,
//! and must never put the key itself into an error message.

use serde::Deserialize;

use super::{AnthropicChatSettings, DEFAULT_VERSION, KIND};
use crate::config::{ConfigError, Env, KindSettings, Secret};
use crate::providers::Capabilities;

/// The public API; the Messages path ([`super::MESSAGES_PATH`]) goes after it.
pub(super) const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// Chat with tools and images, streamed or not; Anthropic has no embeddings.
pub(super) const CAPABILITIES: Capabilities = Capabilities {
    chat: true,
    chat_stream: true,
    embeddings: false,
    tools: true,
    images: true,
    rerank: false,
    native: NATIVE_PATHS,
    prefill: true,
};

/// The paths (below `/v1`) this kind serves natively.
pub(super) const NATIVE_PATHS: &[&str] = &["/messages", "/messages/count_tokens"];

/// `kind: anthropic` settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Scheme and host (and any proxy prefix), no trailing slash.
    pub base_url: String,
    pub api_key: Secret,
    /// The `anthropic-version` header.
    pub version: String,
    /// The `anthropic-beta` header values, in order.
    pub beta: Vec<String>,
    pub chat: AnthropicChatSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    base_url: Option<String>,
    api_key_env: Option<String>,
    version: Option<String>,
    beta: Option<Vec<String>>,
    default_max_tokens: Option<u32>,
    structured_outputs: Option<bool>,
}

impl Config {
    /// Reads and validates the kind's keys (every error, each at its line).
    pub(super) fn read(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        let (raw, mut report) = settings.read::<Raw>(KIND);
        let base_url = match raw.base_url.as_deref().map(str::trim) {
            None => DEFAULT_BASE_URL.to_string(),
            Some("") => {
                report.at(
                    "base_url",
                    "must not be empty (leave it out for the default)",
                );
                String::new()
            }
            Some(url) => report.url("base_url", url),
        };
        if base_url.ends_with("/v1") {
            report.at(
                "base_url",
                format!(
                    "{base_url:?} ends in /v1, but the gateway appends /v1/messages itself: \
                     write the host only (like {DEFAULT_BASE_URL})"
                ),
            );
        }
        let var = report.required("api_key_env", &raw.api_key_env, KIND);
        let api_key = if var.is_empty() {
            None
        } else {
            report.secret("api_key_env", &raw.api_key_env, env)
        };
        if let Some(key) = &api_key
            && http::HeaderValue::from_str(key.expose()).is_err()
        {
            report.at(
                "api_key_env",
                format!("environment variable {var} does not hold a valid header value"),
            );
        }
        let version = raw.version.as_deref().map_or(DEFAULT_VERSION, str::trim);
        if !is_version(version) {
            report.at(
                "version",
                format!(
                    "{version:?} is not an Anthropic API version (a date like {DEFAULT_VERSION})"
                ),
            );
        }
        let beta = raw.beta.unwrap_or_default();
        for (i, b) in beta.iter().enumerate() {
            let ok = !b.is_empty()
                && b.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
            if !ok {
                report.at(
                    &format!("beta[{i}]"),
                    format!("{b:?} is not a beta name (letters, digits, '-', '_', '.')"),
                );
            }
        }
        let default_max_tokens = raw.default_max_tokens.unwrap_or(4096);
        if default_max_tokens == 0 {
            report.at("default_max_tokens", "must be at least 1");
        }
        let chat = AnthropicChatSettings {
            default_max_tokens,
            structured_outputs: raw.structured_outputs.unwrap_or(false),
        };
        match api_key {
            Some(api_key) => report.finish(Config {
                base_url,
                api_key,
                version: version.to_string(),
                beta,
                chat,
            }),
            // The missing key was reported above, so this is an error list.
            None => report.finish(()).and(Err(Vec::new())),
        }
    }
}

/// `YYYY-MM-DD`, as every Anthropic API version is named.
fn is_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{Source, load_sources};
    use crate::providers::ProviderConfig;

    fn env() -> Env {
        Arc::new(|k| match k {
            "ANTHROPIC_KEY" => Some("sk-ant-test-key".to_string()),
            "BAD_KEY" => Some("line\nbreak".to_string()),
            _ => None,
        })
    }

    /// `providers.a` as written below `kind: anthropic` (indented 4).
    fn load(keys: &str) -> Result<Config, Vec<String>> {
        let text = format!("providers:\n  a:\n    kind: anthropic\n{keys}");
        let sources = [
            Source {
                name: "p.yaml".into(),
                text,
            },
            Source {
                name: "r.yaml".into(),
                text: "routes:\n  claude:\n    targets: [{provider: a}]\n".into(),
            },
        ];
        let policy = load_sources(&sources, &env(), crate::providers::check_kind)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        match ProviderConfig::parse(&policy.providers["a"], &env()) {
            Ok(ProviderConfig::Anthropic(c)) => Ok(c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = load("    api_key_env: ANTHROPIC_KEY\n").unwrap();
        assert_eq!(c.base_url, "https://api.anthropic.com");
        assert_eq!(c.api_key.expose(), "sk-ant-test-key");
        assert_eq!(c.version, "2023-06-01");
        assert!(c.beta.is_empty());
        assert_eq!(c.chat, AnthropicChatSettings::default());
        assert!(!format!("{c:?}").contains("sk-ant-test-key"));
    }

    #[test]
    fn every_key() {
        let c = load(
            "    base_url: http://127.0.0.1:9/proxy/\n    api_key_env: ANTHROPIC_KEY\n    \
             version: 2023-01-01\n    beta: [prompt-caching-2024-07-31, output-128k-2025-02-19]\n    \
             default_max_tokens: 1024\n    structured_outputs: true\n",
        )
        .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9/proxy");
        assert_eq!(c.version, "2023-01-01");
        assert_eq!(
            c.beta,
            ["prompt-caching-2024-07-31", "output-128k-2025-02-19"]
        );
        assert_eq!(c.chat.default_max_tokens, 1024);
        assert!(c.chat.structured_outputs);
    }

    #[test]
    fn every_error_at_its_line() {
        let errors = load(
            "    base_url: api.anthropic.com\n    version: latest\n    beta:\n      - ok-1\n      - 'bad beta'\n    \
             default_max_tokens: 0\n    max_tokens: 5\n",
        )
        .unwrap_err();
        let expected = [
            "p.yaml:3: providers.a.api_key_env: is required for kind anthropic",
            "p.yaml:4: providers.a.base_url: \"api.anthropic.com\" must start with http:// or https://",
            "p.yaml:5: providers.a.version: \"latest\" is not an Anthropic API version",
            "p.yaml:8: providers.a.beta[1]: \"bad beta\" is not a beta name",
            "p.yaml:9: providers.a.default_max_tokens: must be at least 1",
            "p.yaml:10: providers.a.max_tokens: unknown field `max_tokens` for kind anthropic, expected one of base_url, api_key_env, version, beta, default_max_tokens, structured_outputs",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (e, want) in errors.iter().zip(expected) {
            assert!(e.starts_with(want), "{e:?} should start with {want:?}");
        }
    }

    #[test]
    fn key_problems() {
        let e = load("    api_key_env: NOT_SET\n").unwrap_err();
        assert_eq!(
            e,
            ["p.yaml:4: providers.a.api_key_env: environment variable NOT_SET is not set"]
        );
        let e = load("    api_key_env: BAD_KEY\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "p.yaml:4: providers.a.api_key_env: environment variable BAD_KEY does not hold"
            ),
            "{e:?}"
        );
        assert!(!e[0].contains("line"), "the key is never echoed: {e:?}");
        let e =
            load("    api_key_env: ANTHROPIC_KEY\n    base_url: https://api.anthropic.com/v1/\n")
                .unwrap_err();
        assert!(
            e[0].starts_with(
                "p.yaml:5: providers.a.base_url: \"https://api.anthropic.com/v1\" ends in /v1"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn versions() {
        assert!(is_version("2023-06-01"));
        for bad in ["", "2023-6-01", "2023/06/01", "2023-06-011", "v1"] {
            assert!(!is_version(bad), "{bad}");
        }
    }
}
