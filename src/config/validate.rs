//! Validation: raw policy files -> one immutable [`Policy`], or every error.
//!
//! Place in the pipeline: second step of loading, after parsing and before
//! anything is built. It merges the files, applies defaults, parses durations,
//! resolves secrets from the environment and checks cross references. It never
//! stops at the first problem: every error is collected with its location
//! (`file:line: path`) so `switchyard check` can print them all at once.
//! Must not build runtime objects or touch the network.

use std::collections::BTreeMap;
use std::time::Duration;

use super::entries::{provider, route};
use super::fields::Ctx;
use super::policy::*;
use super::raw::*;
use super::{ConfigError, Env};
use serde_saphyr::Spanned;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_MAX_ENTRY_BYTES: u64 = 1024 * 1024;

/// Collects errors; `at` builds a location prefix for one place in one file.
#[derive(Default)]
pub(super) struct Errors(pub Vec<ConfigError>);

impl Errors {
    pub(super) fn push(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            location: location.into(),
            message: message.into(),
        });
    }
}

fn at<T>(file: &str, spanned: &Spanned<T>, path: &str) -> String {
    format!("{file}:{}: {path}", spanned.referenced.line())
}

/// Merged view of all files, remembering which file each entry came from.
pub(super) struct Merged {
    pub server: Option<(String, Spanned<RawServer>)>,
    pub cache: Option<(String, Spanned<RawCache>)>,
    pub limits: Option<(String, Spanned<RawLimits>)>,
    pub providers: BTreeMap<String, (String, Spanned<RawProvider>)>,
    pub routes: BTreeMap<String, (String, Spanned<RawRoute>)>,
}

fn merge_section<T>(
    slot: &mut Option<(String, Spanned<T>)>,
    file: &str,
    value: Option<Spanned<T>>,
    name: &str,
    errors: &mut Errors,
) {
    let Some(value) = value else { return };
    if let Some((first, prev)) = slot {
        errors.push(
            at(file, &value, name),
            format!(
                "section is already set in {first}:{}; set it in one file only",
                prev.referenced.line()
            ),
        );
    } else {
        *slot = Some((file.to_string(), value));
    }
}

fn merge_map<T>(
    into: &mut BTreeMap<String, (String, Spanned<T>)>,
    file: &str,
    entries: BTreeMap<String, Spanned<T>>,
    section: &str,
    errors: &mut Errors,
) {
    for (name, value) in entries {
        if let Some((first, prev)) = into.get(&name) {
            errors.push(
                at(file, &value, &format!("{section}.{name}")),
                format!(
                    "duplicate name; first defined in {first}:{}",
                    prev.referenced.line()
                ),
            );
        } else {
            into.insert(name, (file.to_string(), value));
        }
    }
}

pub(super) fn merge(files: Vec<(String, RawFile)>, errors: &mut Errors) -> Merged {
    let mut m = Merged {
        server: None,
        cache: None,
        limits: None,
        providers: BTreeMap::new(),
        routes: BTreeMap::new(),
    };
    for (file, raw) in files {
        merge_section(&mut m.server, &file, raw.server, "server", errors);
        merge_section(&mut m.cache, &file, raw.cache, "cache", errors);
        merge_section(&mut m.limits, &file, raw.limits, "limits", errors);
        merge_map(&mut m.providers, &file, raw.providers, "providers", errors);
        merge_map(&mut m.routes, &file, raw.routes, "routes", errors);
    }
    m
}

pub(super) fn validate(m: Merged, env: &Env, errors: &mut Errors) -> Option<Policy> {
    let before = errors.0.len();
    let mut cx = Ctx { errors, env };

    let server = match &m.server {
        Some((file, s)) => server_settings(&mut cx, &at(file, s, "server"), &s.value),
        None => server_settings(&mut cx, "server", &RawServer::default()),
    };
    let cache = match &m.cache {
        Some((file, c)) => {
            let loc = at(file, c, "cache");
            let max_bytes = match c.value.max_bytes {
                Some(0) => {
                    cx.errors
                        .push(format!("{loc}.max_bytes"), "must be at least 1");
                    0
                }
                Some(v) => v,
                None => 64 * 1024 * 1024,
            };
            let max_entry_bytes = match c.value.max_entry_bytes {
                Some(0) => {
                    cx.errors
                        .push(format!("{loc}.max_entry_bytes"), "must be at least 1");
                    0
                }
                Some(v) if v > max_bytes => {
                    cx.errors.push(
                        format!("{loc}.max_entry_bytes"),
                        "must not exceed cache.max_bytes",
                    );
                    v
                }
                Some(v) => v,
                None => DEFAULT_MAX_ENTRY_BYTES.min(max_bytes),
            };
            CacheSettings {
                max_bytes,
                max_entry_bytes,
                default_ttl: cx.duration(
                    &format!("{loc}.default_ttl"),
                    &c.value.default_ttl,
                    Duration::from_secs(300),
                ),
            }
        }
        None => CacheSettings {
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            default_ttl: Duration::from_secs(300),
        },
    };
    let client_limit = m.limits.as_ref().and_then(|(file, l)| {
        cx.rate(
            &format!("{}.per_client", at(file, l, "limits")),
            &l.value.per_client,
        )
    });

    let mut providers = BTreeMap::new();
    for (name, (file, p)) in &m.providers {
        let loc = at(file, p, &format!("providers.{name}"));
        if let Some(spec) = provider(&mut cx, &loc, name, &p.value) {
            providers.insert(name.clone(), spec);
        }
    }
    let mut routes = BTreeMap::new();
    for (name, (file, r)) in &m.routes {
        let loc = at(file, r, &format!("routes.{name}"));
        if let Some(spec) = route(&mut cx, &loc, name, &r.value, &m, &providers, &cache) {
            routes.insert(name.clone(), spec);
        }
    }
    if m.routes.is_empty() && cx.errors.0.is_empty() {
        cx.errors.push("routes", "no routes are defined");
    }
    (errors.0.len() == before).then_some(Policy {
        server,
        cache,
        client_limit,
        providers,
        routes,
    })
}

fn server_settings(cx: &mut Ctx, loc: &str, s: &RawServer) -> ServerSettings {
    let listen = s
        .listen
        .clone()
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        cx.errors.push(
            format!("{loc}.listen"),
            format!("{listen:?} is not an address like 127.0.0.1:8080"),
        );
    }
    let max_body_bytes = match s.max_body_bytes {
        Some(0) => {
            cx.errors
                .push(format!("{loc}.max_body_bytes"), "must be at least 1");
            0
        }
        Some(v) => v,
        None => 16 * 1024 * 1024,
    };
    ServerSettings {
        listen,
        max_body_bytes,
        max_concurrent_requests: cx.positive(
            &format!("{loc}.max_concurrent_requests"),
            s.max_concurrent_requests,
            1024,
        ),
        shutdown_grace: cx.duration(
            &format!("{loc}.shutdown_grace"),
            &s.shutdown_grace,
            Duration::from_secs(30),
        ),
        reload_interval: cx.duration(
            &format!("{loc}.reload_interval"),
            &s.reload_interval,
            Duration::from_secs(2),
        ),
        admin_token: cx.secret(&format!("{loc}.admin_token_env"), &s.admin_token_env),
        drain_delay: cx.duration_or_zero(
            &format!("{loc}.drain_delay"),
            &s.drain_delay,
            Duration::from_secs(5),
        ),
        connections: connection_settings(cx, &format!("{loc}.connections"), &s.connections),
    }
}

fn connection_settings(cx: &mut Ctx, loc: &str, c: &Option<RawConnections>) -> ConnectionSettings {
    let d = RawConnections::default();
    let c = c.as_ref().unwrap_or(&d);
    let streams = c.http2_max_concurrent_streams.unwrap_or(256);
    if streams == 0 {
        cx.errors.push(
            format!("{loc}.http2_max_concurrent_streams"),
            "must be at least 1",
        );
    }
    ConnectionSettings {
        max: cx.positive(&format!("{loc}.max"), c.max, 10_000),
        header_read_timeout: cx.duration(
            &format!("{loc}.header_read_timeout"),
            &c.header_read_timeout,
            Duration::from_secs(30),
        ),
        idle_timeout: cx.duration(
            &format!("{loc}.idle_timeout"),
            &c.idle_timeout,
            Duration::from_secs(60),
        ),
        http2_keep_alive_interval: cx.duration(
            &format!("{loc}.http2_keep_alive_interval"),
            &c.http2_keep_alive_interval,
            Duration::from_secs(30),
        ),
        http2_keep_alive_timeout: cx.duration(
            &format!("{loc}.http2_keep_alive_timeout"),
            &c.http2_keep_alive_timeout,
            Duration::from_secs(10),
        ),
        http2_max_concurrent_streams: streams.max(1),
    }
}
