//! Policy loading: YAML files in a folder -> validated immutable [`Policy`].
//!
//! Place in the pipeline: a leaf. Startup, every reload trigger and
//! `switchyard check` call [`load_dir`]; nothing else reads policy files.
//! Loading is pure (files + environment in, policy or errors out): it must not
//! build runtime objects, open sockets or depend on any other module.
//!
//! Steps per load: `node` (YAML syntax, one file at a time) -> `shape` (keys
//! and types into `raw`, every wrong one reported at its line) -> `validate`
//! (merge the files, then meaning: `entries` and `fields`), with `report`
//! collecting every error and knowing each key's line.

mod access;
mod access_entries;
mod compression;
mod dashboard;
mod degrade;
mod entries;
mod fields;
mod kind;
mod merge;
mod names;
mod node;
mod policy;
mod raw;
mod report;
mod route_entries;
mod route_spec;
mod server_entries;
mod shape;
mod state_entries;
mod telemetry;
mod validate;
mod values;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use access::*;
pub use access_entries::{key_hash, parse_key_hash};
pub use compression::{CompressionLevel, CompressionSettings, DEFAULT_MIN_COMPRESSED_BYTES};
pub use dashboard::{DEFAULT_DASHBOARD_PATH, DashboardPart, DashboardSettings};
pub use degrade::{DEFAULT_ITEMS_STALENESS, DEFAULT_RATE_WINDOW};
pub use fields::{DurationError, parse_duration};
pub use kind::{KindSettings, SettingsReport};
pub use names::{MAX_MATCHED_NAME, ModelNames, Resolved, Via, first_star, glob_match};
pub use policy::*;
pub use route_spec::*;
pub use state_entries::host_port;
pub use telemetry::{OtlpProtocol, TracingSettings};
pub use values::{RateSpec, Secret};

/// Environment lookup, injectable so tests need not mutate the process env.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Reads a provider entry's kind settings for its kind, returning every
/// problem. Given by the caller (the provider kinds live in `providers`), so
/// `config` stays a leaf while `check` still reports kind errors with the rest.
pub type KindCheck = fn(&ProviderSpec, &Env) -> Vec<ConfigError>;

/// The process environment.
pub fn process_env() -> Env {
    Arc::new(|name| std::env::var(name).ok())
}

/// One problem, with where it is: `file:line: dotted.path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub location: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A policy file's name (for messages) and text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Reads every `*.yaml` / `*.yml` file directly in `dir`, sorted by name.
///
/// A Kubernetes ConfigMap volume is read as one snapshot: there the files
/// are symlinks through `..data`, itself a symlink to a timestamped folder
/// that kubelet never changes once published; an update is a new folder
/// and an atomic rename of `..data`. Reading the files from the folder
/// `..data` points at (once resolved) never mixes two versions; the files
/// keep their names in `dir` for messages and the fingerprint.
pub fn read_dir(dir: &Path) -> Result<Vec<Source>, ConfigErrors> {
    let fail = |message: String| {
        ConfigErrors(vec![ConfigError {
            location: dir.display().to_string(),
            message,
        }])
    };
    let snapshot = std::fs::canonicalize(dir.join("..data")).ok();
    let read_from = snapshot.as_deref().filter(|p| p.is_dir()).unwrap_or(dir);
    let entries =
        std::fs::read_dir(read_from).map_err(|e| fail(format!("cannot read folder: {e}")))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(fail("no *.yaml policy files found".into()));
    }
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        // Named as in `dir`, wherever it was read from.
        let name = match path.file_name() {
            Some(file) if read_from != dir => dir.join(file).display().to_string(),
            _ => path.display().to_string(),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push(Source { name, text }),
            Err(e) => errors.push(ConfigError {
                location: name,
                message: format!("cannot read file: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parses and validates a set of sources into one policy.
///
/// Every problem in every file is collected: a YAML syntax error stops only
/// its own file; wrong keys and types are reported by `shape` (each at its
/// key's line) and the rest of the file is still read and validated.
pub fn load_sources(
    sources: &[Source],
    env: &Env,
    kinds: KindCheck,
) -> Result<Policy, ConfigErrors> {
    let mut errors = report::Errors::default();
    let mut files = Vec::new();
    for src in sources {
        if is_blank(&src.text) {
            continue;
        }
        match node::parse(&src.text) {
            Ok(mut root) => {
                let kinds = kind::split_providers(&mut root, &src.name);
                let (mut raw, findings) = shape::read::<raw::RawFile>(&root);
                errors.add_findings(&src.name, findings);
                for (name, settings) in kinds {
                    if let Some(p) = raw.providers.get_mut(&name) {
                        p.settings = settings;
                    }
                }
                files.push((src.name.clone(), raw));
            }
            Err(e) => {
                let location = match e.position {
                    Some((line, column)) => format!("{}:{line}:{column}", src.name),
                    None => src.name.clone(),
                };
                errors.push(location, e.message);
            }
        }
    }
    let merged = merge::merge(files, &mut errors);
    let policy = validate::validate(merged, env, kinds, &mut errors);
    match policy {
        Some(p) if errors.is_empty() => Ok(p),
        _ => {
            let mut list = errors.into_vec();
            // In file order, line by line (stable: same-line errors keep
            // the order they were found in).
            list.sort_by_key(|e| place_of(&e.location));
            Err(ConfigErrors(list))
        }
    }
}

/// `read_dir` then `load_sources`: what startup, reload and `check` run.
pub fn load_dir(dir: &Path, env: &Env, kinds: KindCheck) -> Result<Policy, ConfigErrors> {
    load_sources(&read_dir(dir)?, env, kinds)
}

/// `(file, line)` of a location `file:line[:col]: path`; files without a
/// line first within their file, locations without a file last.
fn place_of(location: &str) -> (bool, String, u64) {
    let mut parts = location.splitn(3, ':');
    let file = parts.next().unwrap_or_default();
    match parts.next().map(|l| l.trim().parse::<u64>()) {
        Some(Ok(line)) => (false, file.to_string(), line),
        _ if file.ends_with(".yaml") || file.ends_with(".yml") => (false, file.to_string(), 0),
        _ => (true, String::new(), 0),
    }
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    })
}

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod names_tests;
#[cfg(test)]
mod route_tests;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod tests;
