//! Validation of `state:`: where limits, budgets and the shared cache live
//! (memory, or Redis: one server, Sentinel or Cluster, over TLS or not),
//! every error at its line.
//!
//! Place in the pipeline: called by `validate`; its [`StateSettings`] go to
//! `state::Store`. Reads the Redis URL from the environment and the TLS
//! certificates from their files (paths relative to the policy file's
//! folder), so a reload sees a rotated certificate. Must not connect to
//! Redis, and must never quote the URL (it holds the password).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::access::*;
use super::fields::FieldReader;
use super::raw::{RawRedisTls, RawResponsesStore, RawSentinel, RawState};
use super::report::Loc;
use super::values::Secret;

pub(super) fn state(cx: &mut FieldReader, loc: &Loc, s: &RawState) -> StateSettings {
    let backend = match s.backend.as_deref() {
        None | Some("memory") => {
            let redis_only = [
                ("url_env", s.url_env.is_some()),
                ("tls", s.tls.is_some()),
                ("sentinel", s.sentinel.is_some()),
                ("cluster", s.cluster.is_some()),
            ];
            for (field, given) in redis_only {
                if given {
                    cx.errors
                        .at(&loc.field(field), "is only for backend: redis");
                }
            }
            StateBackend::Memory
        }
        Some("redis") => redis(cx, loc, s).unwrap_or_default(),
        Some(other) => {
            cx.errors.at(
                &loc.field("backend"),
                format!("unknown backend {other:?} (expected memory or redis)"),
            );
            StateBackend::Memory
        }
    };
    let on_error = match s.on_error.as_deref() {
        None | Some("fail_open") => OnStateError::FailOpen,
        Some("fail_closed") => OnStateError::FailClosed,
        Some(other) => {
            cx.errors.at(
                &loc.field("on_error"),
                format!("unknown policy {other:?} (expected fail_open or fail_closed)"),
            );
            OnStateError::FailOpen
        }
    };
    let prefix = s.prefix.clone().unwrap_or_else(|| "switchyard".to_string());
    if prefix.is_empty() || prefix.bytes().any(|b| b.is_ascii_whitespace()) {
        cx.errors
            .at(&loc.field("prefix"), "must be non-empty, without spaces");
    }
    StateSettings {
        backend,
        on_error,
        timeout: cx.duration(
            &loc.field("timeout"),
            &s.timeout,
            Duration::from_millis(250),
        ),
        prefix,
        responses: responses_store(cx, &loc.field("responses"), s.responses.as_ref()),
    }
}

/// `state.responses`: TTL and byte bounds of stored conversations.
fn responses_store(
    cx: &mut FieldReader,
    loc: &Loc,
    r: Option<&RawResponsesStore>,
) -> ResponsesStoreSettings {
    let d = ResponsesStoreSettings::default();
    let Some(r) = r else { return d };
    let max_bytes = cx.positive(
        &loc.field("max_bytes"),
        r.max_bytes.map(|v| v as usize),
        d.max_bytes as usize,
    ) as u64;
    let max_entry_bytes = cx.positive(
        &loc.field("max_entry_bytes"),
        r.max_entry_bytes.map(|v| v as usize),
        d.max_entry_bytes.min(max_bytes) as usize,
    ) as u64;
    if max_entry_bytes > max_bytes {
        cx.errors.at(
            &loc.field("max_entry_bytes"),
            "must not exceed state.responses.max_bytes",
        );
    }
    ResponsesStoreSettings {
        ttl: cx.duration(&loc.field("ttl"), &r.ttl, d.ttl),
        max_bytes,
        max_entry_bytes,
    }
}

/// `backend: redis`: the URL, its TLS settings and topology; `None` after
/// an error (already reported).
fn redis(cx: &mut FieldReader, loc: &Loc, s: &RawState) -> Option<StateBackend> {
    let url_loc = loc.field("url_env");
    if s.url_env.is_none() {
        cx.errors.at(
            &url_loc,
            "is required with backend: redis (the variable holding redis:// or rediss://host:port)",
        );
    }
    let url = s
        .url_env
        .as_ref()
        .and_then(|_| cx.secret(&url_loc, &s.url_env));
    let tls_on = match url.as_ref().map(Secret::expose) {
        Some(u) if u.starts_with("rediss://") => Some(true),
        Some(u) if u.starts_with("redis://") => Some(false),
        Some(_) => {
            cx.errors.at(
                &url_loc,
                "the variable does not hold a redis:// or rediss:// URL",
            );
            None
        }
        None => None,
    };
    let tls = match &s.tls {
        None => RedisTls::default(),
        Some(raw) => {
            if tls_on == Some(false) {
                cx.errors.at(
                    &loc.field("tls"),
                    "is only for rediss:// URLs (the variable holds a redis:// URL: no TLS)",
                );
            }
            tls_files(cx, &loc.field("tls"), raw)
        }
    };
    let topology = match (&s.sentinel, &s.cluster) {
        (Some(_), Some(_)) => {
            cx.errors
                .at(&loc.field("cluster"), "cannot be used with sentinel");
            RedisTopology::Single
        }
        (Some(raw), None) => sentinel(cx, &loc.field("sentinel"), raw),
        (None, Some(raw)) => {
            if let Some(u) = &url
                && !matches!(url_db(u.expose()), "" | "0")
            {
                cx.errors.at(
                    &url_loc,
                    "a Redis Cluster has only database 0: drop the /db from the URL",
                );
            }
            RedisTopology::Cluster {
                nodes: nodes(cx, &loc.field("cluster.nodes"), &raw.nodes),
            }
        }
        (None, None) => RedisTopology::Single,
    };
    Some(StateBackend::Redis {
        url: url?,
        tls,
        topology,
    })
}

fn sentinel(cx: &mut FieldReader, loc: &Loc, raw: &RawSentinel) -> RedisTopology {
    let master = raw.master.clone().unwrap_or_default();
    if raw.master.is_none() {
        cx.errors.at(
            &loc.field("master"),
            "is required: the name the sentinels monitor",
        );
    } else if master.is_empty() || master.bytes().any(|b| b.is_ascii_whitespace()) {
        cx.errors
            .at(&loc.field("master"), "must be non-empty, without spaces");
    }
    RedisTopology::Sentinel {
        master,
        nodes: nodes(cx, &loc.field("nodes"), &raw.nodes),
        password: cx.secret(&loc.field("password_env"), &raw.password_env),
    }
}

/// More addresses besides the URL's: each `host:port` (`[v6]:port`).
fn nodes(cx: &mut FieldReader, loc: &Loc, raw: &Option<Vec<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, node) in raw.iter().flatten().enumerate() {
        if host_port(node).is_some() {
            out.push(node.clone());
        } else {
            cx.errors.at(
                &loc.index(i),
                format!("{node:?} is not host:port (e.g. redis-1.internal:6379)"),
            );
        }
    }
    out
}

/// `host:port` or `[v6]:port` split, if well formed.
pub fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    valid.then_some((host, port))
}

/// The database part of a Redis URL (`""` when there is none).
fn url_db(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    path.split(['?', '#']).next().unwrap_or("")
}

fn tls_files(cx: &mut FieldReader, loc: &Loc, raw: &RawRedisTls) -> RedisTls {
    let base = Path::new(loc.file()).parent().unwrap_or(Path::new(""));
    let mut read = |field: &str, path: &Option<String>, marker: &str, what: &str| {
        let path = path.as_ref()?;
        let full: PathBuf = base.join(path);
        match std::fs::read_to_string(&full) {
            Ok(text) if text.contains(marker) => Some(text),
            Ok(_) => {
                cx.errors.at(
                    &loc.field(field),
                    format!("{} holds no PEM {what}", full.display()),
                );
                None
            }
            Err(e) => {
                cx.errors.at(
                    &loc.field(field),
                    format!("cannot read {}: {e}", full.display()),
                );
                None
            }
        }
    };
    let ca_pem = read(
        "ca_file",
        &raw.ca_file,
        "-----BEGIN CERTIFICATE-----",
        "certificate",
    );
    let cert = read(
        "client_cert_file",
        &raw.client_cert_file,
        "-----BEGIN CERTIFICATE-----",
        "certificate",
    );
    let key = read(
        "client_key_file",
        &raw.client_key_file,
        "PRIVATE KEY-----",
        "private key",
    );
    let client = match (&raw.client_cert_file, &raw.client_key_file) {
        (Some(_), None) => {
            cx.errors.at(
                &loc.field("client_key_file"),
                "is required with client_cert_file",
            );
            None
        }
        (None, Some(_)) => {
            cx.errors.at(
                &loc.field("client_cert_file"),
                "is required with client_key_file",
            );
            None
        }
        _ => cert.zip(key.map(Secret::new)),
    };
    RedisTls { ca_pem, client }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_are_host_and_port() {
        assert_eq!(host_port("redis-1:6379"), Some(("redis-1", 6379)));
        assert_eq!(host_port("10.0.0.7:26379"), Some(("10.0.0.7", 26379)));
        assert_eq!(host_port("[::1]:6379"), Some(("::1", 6379)));
        assert_eq!(host_port("::1:6379"), None);
        assert_eq!(host_port("redis-1"), None);
        assert_eq!(host_port("redis-1:0"), None);
        assert_eq!(host_port(":6379"), None);
        assert_eq!(host_port("redis://h:6379"), None);
        assert_eq!(host_port("h:70000"), None);
    }

    #[test]
    fn the_database_of_a_url() {
        assert_eq!(url_db("rediss://:pw@h:6380/2"), "2");
        assert_eq!(url_db("redis://h:6379/"), "");
        assert_eq!(url_db("redis://h:6379"), "");
        assert_eq!(url_db("redis://h/0?protocol=resp3"), "0");
    }
}
