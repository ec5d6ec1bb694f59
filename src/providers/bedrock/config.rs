//! `kind: bedrock` settings: the region, the endpoint, where the AWS
//! credentials come from, and the chat and embeddings knobs.
//!
//! Place in the pipeline: read when a policy is loaded, reloaded or checked
//! (`ProviderConfig::parse` -> the kind's `KindConfig` in `mod.rs` ->
//! `Config::read`); `mod.rs` then builds the provider off the request
//! path (this file does not know it). Credentials are read
//! from the environment variables the policy names, once, at load time
//! (a missing required one is a `file:line` error). Must not do I/O, print
//! the secret access key or session token (`Secret` redacts them in `Debug`),
//! or accept a key it does not know (`deny_unknown_fields`).

use serde::Deserialize;

use super::{BedrockChatSettings, BedrockEmbedSettings};
use crate::config::{ConfigError, Env, KindSettings, Secret};
use crate::providers::Capabilities;

const DEFAULT_ACCESS_KEY_ID_ENV: &str = "AWS_ACCESS_KEY_ID";
const DEFAULT_SECRET_ACCESS_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";
const DEFAULT_SESSION_TOKEN_ENV: &str = "AWS_SESSION_TOKEN";
const COHERE_INPUT_TYPES: &[&str] = &[
    "search_document",
    "search_query",
    "classification",
    "clustering",
];
const COHERE_TRUNCATE: &[&str] = &["NONE", "START", "END"];

/// What Bedrock does for the gateway (every model family Converse serves:
/// text, tools, images; embeddings through Titan and Cohere).
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

/// `kind: bedrock` settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The AWS region requests are signed for (`us-east-1`).
    pub region: String,
    /// No trailing slash; `https://bedrock-runtime.{region}.amazonaws.com`
    /// unless the policy says otherwise.
    pub base_url: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// Present for temporary (STS) credentials.
    pub session_token: Option<Secret>,
    pub chat: BedrockChatSettings,
    pub embed: BedrockEmbedSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    region: Option<String>,
    base_url: Option<String>,
    access_key_id_env: Option<String>,
    secret_access_key_env: Option<String>,
    session_token_env: Option<String>,
    default_max_tokens: Option<u64>,
    cohere_input_type: Option<String>,
    cohere_truncate: Option<String>,
}

/// A region as SigV4 signs it: lowercase letters, digits and dashes.
fn valid_region(region: &str) -> bool {
    region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn or_default(name: &Option<String>, default: &str) -> Option<String> {
    Some(name.clone().unwrap_or_else(|| default.to_string()))
}

impl Config {
    /// Reads and validates the kind's keys (every error, each at its line).
    pub(super) fn read(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>> {
        let (raw, mut report) = settings.read::<Raw>(super::KIND);
        let region = report
            .required("region", &raw.region, super::KIND)
            .to_string();
        if !region.is_empty() && !valid_region(&region) {
            report.at(
                "region",
                format!("{region:?} is not an AWS region (lowercase letters, digits and dashes, e.g. us-east-1)"),
            );
        }
        let base_url = match &raw.base_url {
            Some(url) => report.url("base_url", url.trim()),
            None if region.is_empty() => String::new(),
            None => super::base_url(&region),
        };
        let access_key_id = report.secret(
            "access_key_id_env",
            &or_default(&raw.access_key_id_env, DEFAULT_ACCESS_KEY_ID_ENV),
            env,
        );
        let secret_access_key = report.secret(
            "secret_access_key_env",
            &or_default(&raw.secret_access_key_env, DEFAULT_SECRET_ACCESS_KEY_ENV),
            env,
        );
        // Named explicitly, the variable must be set; by default it is
        // optional (unset or empty: long-term credentials, no token).
        let session_token = match &raw.session_token_env {
            Some(_) => report.secret("session_token_env", &raw.session_token_env, env),
            None => env(DEFAULT_SESSION_TOKEN_ENV)
                .filter(|t| !t.is_empty())
                .map(Secret::new),
        };
        if let Some(key) = &access_key_id
            && !key.expose().bytes().all(|b| b.is_ascii_graphic())
        {
            report.at(
                "access_key_id_env",
                "the access key id holds characters an AWS key never has",
            );
        }
        if let Some(token) = &session_token
            && http::HeaderValue::from_str(token.expose()).is_err()
        {
            report.at(
                "session_token_env",
                "the session token holds characters not allowed in an HTTP header",
            );
        }
        if raw.default_max_tokens == Some(0) {
            report.at("default_max_tokens", "must be at least 1");
        }
        let cohere_input_type = raw
            .cohere_input_type
            .unwrap_or_else(|| BedrockEmbedSettings::default().cohere_input_type);
        if !COHERE_INPUT_TYPES.contains(&cohere_input_type.as_str()) {
            report.at(
                "cohere_input_type",
                format!(
                    "{cohere_input_type:?} is not a Cohere input type (expected one of {})",
                    COHERE_INPUT_TYPES.join(", ")
                ),
            );
        }
        if let Some(t) = &raw.cohere_truncate
            && !COHERE_TRUNCATE.contains(&t.as_str())
        {
            report.at(
                "cohere_truncate",
                format!("{t:?} is not one of {}", COHERE_TRUNCATE.join(", ")),
            );
        }
        let empty = || Secret::new(String::new());
        report.finish(Config {
            region,
            base_url,
            access_key_id: access_key_id.unwrap_or_else(empty),
            secret_access_key: secret_access_key.unwrap_or_else(empty),
            session_token,
            chat: BedrockChatSettings {
                default_max_tokens: raw.default_max_tokens,
            },
            embed: BedrockEmbedSettings {
                cohere_input_type,
                cohere_truncate: raw.cohere_truncate,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{ConfigErrors, Source, load_sources};
    use crate::providers::ProviderConfig;

    fn env_with(vars: &[(&str, &str)]) -> Env {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    fn aws_env() -> Env {
        env_with(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"),
        ])
    }

    fn load(yaml: &str, env: &Env) -> Result<crate::config::Policy, ConfigErrors> {
        let sources = [Source {
            name: "p.yaml".into(),
            text: yaml.into(),
        }];
        load_sources(&sources, env, crate::providers::check_kind)
    }

    fn bedrock(yaml: &str, env: &Env) -> Config {
        let policy = load(yaml, env).unwrap();
        match ProviderConfig::parse(&policy.providers["b"], env).unwrap() {
            ProviderConfig::Bedrock(c) => c,
            other => panic!("not bedrock: {other:?}"),
        }
    }

    const ROUTE: &str =
        "routes:\n  r:\n    targets: [{provider: b, model: amazon.nova-lite-v1:0}]\n";

    #[test]
    fn defaults_and_environment() {
        let c = bedrock(
            &format!("providers:\n  b:\n    kind: bedrock\n    region: eu-west-3\n{ROUTE}"),
            &aws_env(),
        );
        assert_eq!(c.region, "eu-west-3");
        assert_eq!(
            c.base_url,
            "https://bedrock-runtime.eu-west-3.amazonaws.com"
        );
        assert_eq!(c.access_key_id.expose(), "AKIDEXAMPLE");
        assert_eq!(c.secret_access_key.expose(), "wJalrXUtnFEMI/K7MDENG");
        assert_eq!(c.session_token, None);
        assert_eq!(c.chat, BedrockChatSettings::default());
        assert_eq!(c.embed, BedrockEmbedSettings::default());
        let debug = format!("{c:?}");
        assert!(!debug.contains("wJalrXUtnFEMI"), "{debug}");
    }

    #[test]
    fn every_key_set() {
        let env = env_with(&[("K", "AKID2"), ("S", "secret2"), ("T", "token2")]);
        let c = bedrock(
            &format!(
                "providers:\n  b:\n    kind: bedrock\n    region: us-west-2\n    base_url: http://127.0.0.1:9/\n    access_key_id_env: K\n    secret_access_key_env: S\n    session_token_env: T\n    default_max_tokens: 512\n    cohere_input_type: search_query\n    cohere_truncate: END\n{ROUTE}"
            ),
            &env,
        );
        assert_eq!(c.base_url, "http://127.0.0.1:9");
        assert_eq!(c.access_key_id.expose(), "AKID2");
        assert_eq!(c.session_token.as_ref().map(Secret::expose), Some("token2"));
        assert_eq!(c.chat.default_max_tokens, Some(512));
        assert_eq!(c.embed.cohere_input_type, "search_query");
        assert_eq!(c.embed.cohere_truncate.as_deref(), Some("END"));
        // The default token variable is read when none is named.
        let env = env_with(&[
            ("AWS_ACCESS_KEY_ID", "A"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
            ("AWS_SESSION_TOKEN", "tok"),
        ]);
        let c = bedrock(
            &format!("providers:\n  b:\n    kind: bedrock\n    region: us-east-1\n{ROUTE}"),
            &env,
        );
        assert_eq!(c.session_token.as_ref().map(Secret::expose), Some("tok"));
    }

    #[test]
    fn errors_each_at_their_line() {
        let yaml = format!(
            "providers:\n  b:\n    kind: bedrock\n    regoin: us-east-1\n    secret_access_key_env: NOPE\n    default_max_tokens: 0\n    cohere_input_type: query\n    cohere_truncate: middle\n  c:\n    kind: bedrock\n    region: US_EAST\n    base_url: ftp://x\n{ROUTE}"
        );
        let text = load(&yaml, &aws_env()).unwrap_err().to_string();
        for expected in [
            "p.yaml:3: providers.b.region: is required for kind bedrock",
            "p.yaml:4: providers.b.regoin: unknown field `regoin` for kind bedrock, expected one of",
            "p.yaml:5: providers.b.secret_access_key_env: environment variable NOPE is not set",
            "p.yaml:6: providers.b.default_max_tokens: must be at least 1",
            "p.yaml:7: providers.b.cohere_input_type: \"query\" is not a Cohere input type",
            "p.yaml:8: providers.b.cohere_truncate: \"middle\" is not one of NONE, START, END",
            "p.yaml:11: providers.c.region: \"US_EAST\" is not an AWS region",
            "p.yaml:12: providers.c.base_url: \"ftp://x\" must start with http:// or https://",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn the_example_policy_loads() {
        let env = env_with(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("BEDROCK_EU_ACCESS_KEY_ID", "AKIDEU"),
            ("BEDROCK_EU_SECRET_ACCESS_KEY", "secret-eu"),
            ("BEDROCK_EU_SESSION_TOKEN", "token-eu"),
        ]);
        let policy = load(
            include_str!("../../../examples/policies/bedrock.yaml"),
            &env,
        )
        .unwrap();
        for name in ["bedrock", "bedrock-eu"] {
            let spec = &policy.providers[name];
            assert!(
                matches!(
                    ProviderConfig::parse(spec, &env),
                    Ok(ProviderConfig::Bedrock(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn unset_default_credentials_are_reported_at_the_entry() {
        let text = load(
            &format!("providers:\n  b:\n    kind: bedrock\n    region: us-east-1\n{ROUTE}"),
            &env_with(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.contains(
                "p.yaml:3: providers.b.access_key_id_env: environment variable AWS_ACCESS_KEY_ID is not set"
            ),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:3: providers.b.secret_access_key_env: environment variable AWS_SECRET_ACCESS_KEY is not set"),
            "{text}"
        );
    }
}
