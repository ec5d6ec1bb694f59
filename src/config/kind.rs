//! Kind settings: the keys of a provider entry that belong to its kind.
//!
//! Place in the pipeline: while a file is loaded, every provider entry is
//! split in two. The keys every kind shares (`kind`, `timeouts`, `breaker`,
//! `rate_limit`, `max_batch_inputs`, `max_response_bytes`, `tpm`,
//! `concurrency`) are validated
//! here in `config`; the rest travels, still as a YAML tree with its lines,
//! in [`KindSettings`] to the provider kind named by `kind`, which reads it
//! into its own raw struct ([`KindSettings::read`]) and validates it with
//! [`SettingsReport`], so its errors carry `file:line: providers.x.field` like
//! every other policy error. This keeps `config` a leaf: it knows no kind.
//! Must not interpret kind keys.

use serde::de::DeserializeOwned;

use super::fields::parse_duration;
use super::node::join;
use super::node::{Kind, Node};
use super::shape;
use super::{ConfigError, Env, Secret};

/// Keys of a provider entry that `config` validates for every kind.
pub(super) const COMMON_KEYS: &[&str] = &[
    "kind",
    "timeouts",
    "breaker",
    "rate_limit",
    "max_batch_inputs",
    "max_response_bytes",
    "tpm",
    "concurrency",
];

/// The kind-specific keys of one provider entry, with where they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KindSettings {
    file: String,
    /// `providers.<name>`
    path: String,
    line: u64,
    entries: Vec<(Node, Node)>,
}

impl KindSettings {
    /// Whether the entry has any kind-specific key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// An error about the entry as a whole (say, an unknown `kind`), at
    /// `providers.<name>.<field>` on the entry's line.
    pub fn error(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: format!("{}:{}: {}", self.file, self.line, join(&self.path, field)),
            message: message.into(),
        }
    }

    /// Reads the settings into a kind's raw struct (`deny_unknown_fields`,
    /// all fields optional). Unknown keys and wrong types are reported,
    /// each at its own line; reading never stops early.
    pub fn read<T: DeserializeOwned + Default>(&self, kind: &str) -> (T, SettingsReport) {
        let node = Node {
            line: self.line,
            raw: String::new(),
            kind: Kind::Map(self.entries.clone()),
        };
        let (value, findings) = shape::read::<T>(&node);
        let mut report = SettingsReport {
            file: self.file.clone(),
            path: self.path.clone(),
            line: self.line,
            lines: findings.lines,
            errors: Vec::new(),
        };
        for f in findings.errors {
            let mut message = f.message;
            if message.starts_with("unknown field") && !f.path.contains(['.', '[']) {
                // `unknown field `x`, expected ...` -> `... `x` for kind k, expected ...`
                if let Some(i) = message.find(", expected") {
                    message.insert_str(i, &format!(" for kind {kind}"));
                }
                message.push_str(", or one every kind has: ");
                message.push_str(&COMMON_KEYS.join(", "));
            }
            report.errors.push(ConfigError {
                location: format!("{}:{}: {}", self.file, f.line, join(&self.path, &f.path)),
                message,
            });
        }
        (value, report)
    }
}

/// Errors found in one provider's kind settings, each at its line.
#[derive(Debug)]
pub struct SettingsReport {
    file: String,
    path: String,
    line: u64,
    lines: Vec<(String, u64)>,
    errors: Vec<ConfigError>,
}

impl SettingsReport {
    /// Records `message` at `field` (dotted below the provider entry).
    pub fn at(&mut self, field: &str, message: impl Into<String>) {
        let line = self.line_of(field);
        self.errors.push(ConfigError {
            location: format!("{}:{line}: {}", self.file, join(&self.path, field)),
            message: message.into(),
        });
    }

    fn line_of(&self, field: &str) -> u64 {
        let mut path = field;
        loop {
            if let Some((_, l)) = self.lines.iter().find(|(p, _)| p == path) {
                return *l;
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => return self.line,
            }
        }
    }

    /// A required string field.
    pub fn required<'a>(&mut self, field: &str, value: &'a Option<String>, kind: &str) -> &'a str {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => v,
            _ => {
                self.at(field, format!("is required for kind {kind}"));
                ""
            }
        }
    }

    /// A base URL: `http(s)://`, trailing slash trimmed.
    pub fn url(&mut self, field: &str, value: &str) -> String {
        if value.is_empty() {
            return String::new();
        }
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            self.at(
                field,
                format!("{value:?} must start with http:// or https://"),
            );
            return String::new();
        }
        value.trim_end_matches('/').to_string()
    }

    /// The value of the environment variable named at `field`, if named.
    pub fn secret(&mut self, field: &str, var: &Option<String>, env: &Env) -> Option<Secret> {
        let var = var.as_ref()?;
        match env(var) {
            Some(v) if !v.is_empty() => Some(Secret::new(v)),
            _ => {
                self.at(field, format!("environment variable {var} is not set"));
                None
            }
        }
    }

    /// A duration (`250ms`, `2s`), or `default` when absent.
    pub fn duration(
        &mut self,
        field: &str,
        value: &Option<String>,
        default: std::time::Duration,
    ) -> std::time::Duration {
        match value.as_deref().map(parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.at(field, e.to_string());
                default
            }
        }
    }

    /// `value` when nothing was reported, else every error.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<ConfigError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}

/// Moves the kind-specific keys of every provider entry of `root` out of the
/// tree, returning them per provider name.
pub(super) fn split_providers(root: &mut Node, file: &str) -> Vec<(String, KindSettings)> {
    let mut out = Vec::new();
    let Kind::Map(sections) = &mut root.kind else {
        return out;
    };
    for (key, section) in sections.iter_mut() {
        if !matches!(&key.kind, Kind::Str(s) if s == "providers") {
            continue;
        }
        let Kind::Map(entries) = &mut section.kind else {
            continue;
        };
        for (name, entry) in entries.iter_mut() {
            let Kind::Str(name) = &name.kind else {
                continue;
            };
            let line = entry.line;
            let Kind::Map(fields) = &mut entry.kind else {
                continue;
            };
            let (common, kind): (Vec<_>, Vec<_>) = std::mem::take(fields).into_iter().partition(
                |(k, _)| matches!(&k.kind, Kind::Str(s) if COMMON_KEYS.contains(&s.as_str())),
            );
            *fields = common;
            out.push((
                name.clone(),
                KindSettings {
                    file: file.to_string(),
                    path: format!("providers.{name}"),
                    line,
                    entries: kind,
                },
            ));
        }
    }
    out
}
