//! `kind: openai` settings: the policy's block, checked at load time.
//!
//! Place in the pipeline: read when a policy loads, before any request
//! (the kind's `KindConfig` in `mod.rs` calls `Config::read`). Must not
//! know the provider it is built into, nor send requests.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{ConfigError, Env, KindSettings, Secret};

/// `kind: openai` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Up to and including the version prefix, no trailing slash
    /// (`https://api.openai.com/v1`).
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub headers: BTreeMap<String, String>,
    /// Which rerank API the server speaks.
    pub rerank_api: RerankApi,
}

/// The rerank dialects of OpenAI-compatible servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RerankApi {
    /// Jina / Cohere style at `{base_url}/rerank` (vLLM): `documents` in,
    /// `results[{index, relevance_score}]` out.
    Jina,
    /// text-embeddings-inference at the server's root `/rerank` (`/v1`
    /// dropped from `base_url`): `texts` in, `[{index, score}]` out.
    Tei,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    base_url: Option<String>,
    api_key_env: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    rerank_api: Option<String>,
}

/// The name written in `kind:`.
pub(super) const KIND: &str = "openai";

impl Config {
    /// Reads and validates the kind's keys (every error, each at its line).
    pub(super) fn read(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        let (raw, mut report) = settings.read::<Raw>(KIND);
        let base_url = report.required("base_url", &raw.base_url, KIND);
        let base_url = report.url("base_url", base_url);
        let api_key = report.secret("api_key_env", &raw.api_key_env, env);
        let headers = raw.headers.unwrap_or_default();
        for (k, v) in &headers {
            if http::HeaderName::try_from(k.as_str()).is_err()
                || http::HeaderValue::try_from(v.as_str()).is_err()
            {
                report.at(
                    &format!("headers.{k}"),
                    "is not a valid HTTP header name and value",
                );
            }
        }
        let rerank_api = match raw.rerank_api.as_deref() {
            None | Some("jina") => RerankApi::Jina,
            Some("tei") => RerankApi::Tei,
            Some(other) => {
                report.at(
                    "rerank_api",
                    format!("unknown rerank API {other:?} (expected jina or tei)"),
                );
                RerankApi::Jina
            }
        };
        report.finish(Config {
            base_url,
            api_key,
            headers,
            rerank_api,
        })
    }
}
