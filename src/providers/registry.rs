//! The provider kinds: one list, one tagged enum over their configs.
//!
//! Place in the pipeline: when a policy is (re)loaded or checked, `routing`
//! asks [`ProviderConfig::parse`] to read each provider entry's kind
//! settings (every error at `file:line`), then builds the provider with
//! [`ProviderConfig::build`], off the request path. Adding a kind is one line
//! in [`kinds!`] plus its file. Must not do I/O beyond building clients.

use std::sync::Arc;

use super::Provider;
use crate::config::{ConfigError, Env, KindSettings, ProviderSpec};

/// A provider kind's validated configuration.
pub trait KindConfig: Sized + std::fmt::Debug + Clone + PartialEq {
    /// The name written in `kind:`.
    const KIND: &'static str;
    type Provider: Provider;

    /// Reads and validates the kind's own keys (every error, each at its line).
    fn parse(settings: &KindSettings, env: &Env) -> Result<Self, Vec<ConfigError>>;

    /// Builds the provider; `spec` holds the keys every kind shares
    /// (timeouts, response size cap, ...).
    fn build(&self, spec: &ProviderSpec) -> Result<Self::Provider, BuildError>;
}

/// Building a provider failed (a bad header value, a TLS setup error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("providers.{provider}: {message}")]
pub struct BuildError {
    pub provider: String,
    pub message: String,
}

impl BuildError {
    pub fn new(spec: &ProviderSpec, message: impl Into<String>) -> Self {
        BuildError {
            provider: spec.name.clone(),
            message: message.into(),
        }
    }
}

macro_rules! kinds {
    ($($variant:ident($config:ty)),* $(,)?) => {
        /// Every kind's configuration, tagged by `kind:`.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ProviderConfig {
            $($variant($config),)*
        }

        /// The kinds a policy may name.
        pub const KINDS: &[&str] = &[$(<$config as KindConfig>::KIND,)*];

        impl ProviderConfig {
            /// Reads `spec`'s kind settings for the kind it names.
            pub fn parse(spec: &ProviderSpec, env: &Env) -> Result<Self, Vec<ConfigError>> {
                match spec.kind.as_str() {
                    $(<$config as KindConfig>::KIND => {
                        <$config as KindConfig>::parse(&spec.settings, env).map(Self::$variant)
                    })*
                    other => Err(vec![unknown_kind(spec, other)]),
                }
            }

            /// Builds the provider, its streams held until their first
            /// real content (`hold`).
            pub fn build(&self, spec: &ProviderSpec) -> Result<Arc<dyn Provider>, BuildError> {
                let built: Arc<dyn Provider> = match self {
                    $(Self::$variant(c) => Arc::new(c.build(spec)?),)*
                };
                Ok(super::hold::Held::wrap(built, spec.timeouts.first_byte))
            }
        }
    };
}

kinds! {
    OpenAi(super::openai::Config),
    Azure(super::azure::Config),
    Cohere(super::cohere::Config),
    Mock(super::mock::Config),
    Anthropic(super::anthropic::Config),
    Gemini(super::gemini::Config),
    Bedrock(super::bedrock::Config),
}

/// What `config` runs for each provider entry (see `config::KindCheck`).
pub fn check_kind(spec: &ProviderSpec, env: &Env) -> Vec<ConfigError> {
    ProviderConfig::parse(spec, env).err().unwrap_or_default()
}

fn unknown_kind(spec: &ProviderSpec, kind: &str) -> ConfigError {
    spec.settings.error(
        "kind",
        format!(
            "unknown provider kind {kind:?} (expected one of {})",
            KINDS.join(", ")
        ),
    )
}
