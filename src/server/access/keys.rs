//! Virtual keys: who is calling, and which routes they may call.
//!
//! Place in the pipeline: [`KeyTable`] is built with each runtime from
//! `policy.keys`; the edge identifies the caller once per request
//! ([`KeyTable::identify`], when it makes the request context) and `allow`
//! refuses `/v1/*` calls per `server.auth` (401) and routes outside the
//! key's `models` (403). The
//! presented secret is never compared or kept: its SHA-256 is looked up and
//! the final digest comparison is constant-time. Must not log or label
//! anything but the alias; limits and budgets are `admission`'s.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use crate::api::{ErrorKind, GatewayError};
use crate::config::{AuthMode, KeySpec, glob_match};

/// One configured key, as requests see it.
#[derive(Debug)]
pub(crate) struct KeyEntry {
    pub alias: Arc<str>,
    pub spec: KeySpec,
}

impl KeyEntry {
    /// Whether this key may call `route` (its `models` globs).
    pub(crate) fn allows(&self, route: &str) -> bool {
        self.spec.models.iter().any(|p| glob_match(p, route))
    }
}

/// Who a request comes from.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Key(Arc<KeyEntry>),
    /// No configured key, on an open gateway.
    Anonymous,
    /// No configured key, on a gateway that requires one: `/v1/*` calls are
    /// refused with this (401).
    Refused(&'static str),
}

impl Caller {
    pub(crate) fn key(&self) -> Option<&Arc<KeyEntry>> {
        match self {
            Caller::Key(k) => Some(k),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    mode: AuthMode,
    by_digest: HashMap<[u8; 32], Arc<KeyEntry>>,
}

/// Anthropic's key header, named once.
static X_API_KEY: header::HeaderName = header::HeaderName::from_static("x-api-key");

/// The client's credential: `Authorization: Bearer ...` (OpenAI SDKs) or
/// `x-api-key` (Anthropic SDKs).
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get(&X_API_KEY).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The client's identity for per-client limits and per-key cache scopes:
/// a hash of the key it presented (never the key), else its address.
/// Written out (`key:<16 hex digits>`, `ip:<address>`) only where it is
/// used, which most requests never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientId {
    Key(u64),
    Ip(IpAddr),
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientId::Key(hash) => write!(f, "key:{hash:016x}"),
            ClientId::Ip(ip) => write!(f, "ip:{ip}"),
        }
    }
}

/// [`ClientId`] of a request that presented `presented` from `peer`.
pub(crate) fn client_key(presented: Option<&str>, peer: Option<SocketAddr>) -> ClientId {
    match presented {
        Some(key) => {
            let mut h = DefaultHasher::new();
            key.hash(&mut h);
            ClientId::Key(h.finish())
        }
        None => ClientId::Ip(peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip())),
    }
}

/// Byte strings equal, in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= (*x ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

impl KeyTable {
    pub(crate) fn build(mode: AuthMode, keys: &[KeySpec]) -> KeyTable {
        let by_digest = keys
            .iter()
            .map(|k| {
                let entry = KeyEntry {
                    alias: Arc::from(k.alias.as_str()),
                    spec: k.clone(),
                };
                (k.secret_sha256, Arc::new(entry))
            })
            .collect();
        KeyTable { mode, by_digest }
    }

    pub(crate) fn identify(&self, presented: Option<&str>) -> Caller {
        let found = presented
            .filter(|_| !self.by_digest.is_empty())
            .and_then(|secret| {
                let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                self.by_digest
                    .get(&digest)
                    .filter(|e| constant_time_eq(&e.spec.secret_sha256, &digest))
            });
        match (found, self.mode) {
            (Some(entry), _) => Caller::Key(Arc::clone(entry)),
            (None, AuthMode::Open) => Caller::Anonymous,
            (None, AuthMode::Required) if presented.is_none() => Caller::Refused(
                "Missing API key. Send `Authorization: Bearer <key>` with a key issued for this gateway.",
            ),
            (None, AuthMode::Required) => {
                Caller::Refused("Incorrect API key provided: it is not a key of this gateway.")
            }
        }
    }
}

pub(crate) fn unauthorized(message: &'static str) -> GatewayError {
    GatewayError::new(ErrorKind::Unauthorized, message).with_code("invalid_api_key")
}

pub(crate) fn model_not_allowed(alias: &str, route: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::Forbidden,
        format!("The key `{alias}` is not allowed to call the model `{route}`."),
    )
    .with_code("model_not_allowed")
    .with_param("model")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_the_hash_of_its_key_else_its_address_written_as_before() {
        let peer: SocketAddr = "10.1.2.3:4567".parse().unwrap();
        assert_eq!(client_key(None, Some(peer)).to_string(), "ip:10.1.2.3");
        assert_eq!(client_key(None, None).to_string(), "ip:0.0.0.0");
        let key = client_key(Some("sk-secret"), Some(peer)).to_string();
        assert!(key.starts_with("key:") && key.len() == 20, "{key}");
        assert!(!key.contains("secret"));
        assert_eq!(client_key(Some("sk-secret"), None).to_string(), key);
        assert_ne!(client_key(Some("sk-other"), None).to_string(), key);
        assert_eq!(ClientId::Key(0xab).to_string(), "key:00000000000000ab");
    }

    fn key(alias: &str, secret: &str, models: &[&str]) -> KeySpec {
        KeySpec {
            alias: alias.into(),
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
            models: models.iter().map(|m| m.to_string()).collect(),
            rpm: None,
            tpm: None,
            budget: None,
            labels: Default::default(),
            overrides: Default::default(),
        }
    }

    #[test]
    fn identifies_by_digest_and_refuses_per_mode() {
        let keys = [key("a", "sk-a", &["chat*"]), key("b", "sk-b", &["*"])];
        let t = KeyTable::build(AuthMode::Required, &keys);
        let a = t.identify(Some("sk-a"));
        assert_eq!(a.key().map(|k| &*k.alias), Some("a"));
        assert!(a.key().unwrap().allows("chat-fast"));
        assert!(!a.key().unwrap().allows("embed"));
        assert!(
            matches!(t.identify(Some("sk-c")), Caller::Refused(m) if m.starts_with("Incorrect"))
        );
        assert!(matches!(t.identify(None), Caller::Refused(m) if m.starts_with("Missing")));
        let open = KeyTable::build(AuthMode::Open, &keys);
        assert!(matches!(open.identify(Some("sk-c")), Caller::Anonymous));
        assert_eq!(
            open.identify(Some("sk-b")).key().map(|k| &*k.alias),
            Some("b")
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
