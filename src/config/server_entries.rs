//! The `server:` section checked: listen address, limits, timeouts, CORS,
//! connections, compression and the live page, each with its default.
//!
//! Place in the pipeline: called by `validate` for the merged `server:`
//! block (or its defaults when no file has one). Errors are collected with
//! their location, never stopping at the first. Must not build runtime
//! objects.

use std::time::Duration;

use super::access_entries;
use super::compression::compression_settings;
use super::dashboard::dashboard_settings;
use super::fields::FieldReader;
use super::policy::*;
use super::raw::*;
use super::report::Loc;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// One provider may hold half the gateway's request slots: whatever one
/// provider does, the other half stays for every other provider, cache
/// hits and health checks (see docs/failure-behaviour.md).
const DEFAULT_PROVIDER_SHARE: f64 = 0.5;

/// The `server:` block with its defaults, every fault reported.
pub(super) fn server_settings(cx: &mut FieldReader, loc: &Loc, s: &RawServer) -> ServerSettings {
    let listen = s
        .listen
        .clone()
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        cx.errors.at(
            &loc.field("listen"),
            format!("{listen:?} is not an address like 127.0.0.1:8080"),
        );
    }
    let max_body_bytes = match s.max_body_bytes {
        Some(0) => {
            cx.errors
                .at(&loc.field("max_body_bytes"), "must be at least 1");
            0
        }
        Some(v) => v,
        None => 16 * 1024 * 1024,
    };
    ServerSettings {
        auth: access_entries::auth_mode(cx, &loc.field("auth"), s.auth.as_deref()),
        listen,
        max_body_bytes,
        max_concurrent_requests: cx.positive(
            &loc.field("max_concurrent_requests"),
            s.max_concurrent_requests,
            1024,
        ),
        provider_share: match s.provider_share {
            None => DEFAULT_PROVIDER_SHARE,
            Some(f) if f > 0.0 && f <= 1.0 => f,
            Some(_) => {
                cx.errors.at(
                    &loc.field("provider_share"),
                    "must be a fraction above 0 and at most 1 (like 0.5)",
                );
                DEFAULT_PROVIDER_SHARE
            }
        },
        shutdown_grace: cx.duration(
            &loc.field("shutdown_grace"),
            &s.shutdown_grace,
            Duration::from_secs(30),
        ),
        reload_interval: cx.duration(
            &loc.field("reload_interval"),
            &s.reload_interval,
            Duration::from_secs(2),
        ),
        admin_token: cx.secret(&loc.field("admin_token_env"), &s.admin_token_env),
        drain_delay: cx.duration_or_zero(
            &loc.field("drain_delay"),
            &s.drain_delay,
            Duration::from_secs(5),
        ),
        connections: connection_settings(cx, &loc.field("connections"), &s.connections),
        cors: s
            .cors
            .as_ref()
            .map(|c| cors_settings(cx, &loc.field("cors"), c)),
        compression: compression_settings(cx, &loc.field("compression"), &s.compression),
        dashboard: dashboard_settings(cx, &loc.field("dashboard"), &s.dashboard),
    }
}

/// `server.cors`: origins (exact, or `"*"` alone), optional header names
/// (or `"*"` alone), and how long a preflight answer may be cached.
fn cors_settings(cx: &mut FieldReader, loc: &Loc, c: &RawCors) -> CorsSettings {
    let origins_loc = loc.field("allowed_origins");
    let origins = c.allowed_origins.as_deref().unwrap_or_default();
    if origins.is_empty() {
        cx.errors.at(
            &origins_loc,
            "must list at least one origin (like https://app.example.com) or \"*\"",
        );
    }
    let allowed_origins = if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            cx.errors
                .at(&origins_loc, "\"*\" allows every origin; list it alone");
        }
        AllowedOrigins::Any
    } else {
        let mut list: Vec<String> = Vec::with_capacity(origins.len());
        for (i, o) in origins.iter().enumerate() {
            let o = o.to_ascii_lowercase();
            if let Err(why) = check_origin(&o) {
                cx.errors
                    .at(&origins_loc.index(i), format!("{o:?} {}", why.message()));
            } else if list.contains(&o) {
                cx.errors
                    .at(&origins_loc.index(i), format!("{o:?} is listed twice"));
            } else {
                list.push(o);
            }
        }
        AllowedOrigins::List(list)
    };
    let headers_loc = loc.field("allowed_headers");
    let allowed_headers = c.allowed_headers.as_ref().map(|headers| {
        if headers.is_empty() {
            cx.errors.at(
                &headers_loc,
                "must list at least one header; leave it out to allow what browsers ask for",
            );
        }
        if headers.iter().any(|h| h == "*") && headers.len() > 1 {
            cx.errors
                .at(&headers_loc, "\"*\" allows every header; list it alone");
        }
        for (i, h) in headers.iter().enumerate() {
            if h != "*" && http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                cx.errors
                    .at(&headers_loc.index(i), format!("{h:?} is not a header name"));
            }
        }
        headers.iter().map(|h| h.to_ascii_lowercase()).collect()
    });
    CorsSettings {
        allowed_origins,
        allowed_headers,
        max_age: cx.duration_or_zero(&loc.field("max_age"), &c.max_age, Duration::from_secs(600)),
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn check_origin(o: &str) -> Result<(), BadOrigin> {
    use BadOrigin::*;
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or(Scheme)?;
    let (host_ok, port) = match rest.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or(Shape)?;
            let ok = !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
            match after {
                "" => (ok, None),
                _ => (ok, Some(after.strip_prefix(':').ok_or(Shape)?)),
            }
        }
        None => {
            let (host, port) = match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            let ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            (ok, port)
        }
    };
    if !host_ok {
        return Err(Shape);
    }
    if port.is_some_and(|p| {
        p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err()
    }) {
        return Err(Port);
    }
    Ok(())
}

/// Why a configured CORS origin is refused.
#[derive(Debug, Clone, Copy)]
enum BadOrigin {
    Scheme,
    Shape,
    Port,
}

impl BadOrigin {
    fn message(self) -> &'static str {
        match self {
            BadOrigin::Scheme => "is not an origin: it must start with https:// or http://",
            BadOrigin::Shape => {
                "is not an origin: only scheme://host[:port], no path or trailing slash"
            }
            BadOrigin::Port => "has an invalid port",
        }
    }
}

fn connection_settings(
    cx: &mut FieldReader,
    loc: &Loc,
    c: &Option<RawConnections>,
) -> ConnectionSettings {
    let d = RawConnections::default();
    let c = c.as_ref().unwrap_or(&d);
    let streams = c.http2_max_concurrent_streams.unwrap_or(256);
    if streams == 0 {
        cx.errors.at(
            &loc.field("http2_max_concurrent_streams"),
            "must be at least 1",
        );
    }
    let max = cx.positive(&loc.field("max"), c.max, 10_000);
    ConnectionSettings {
        max,
        // One peer gets a tenth of the connections unless told otherwise.
        max_per_peer: cx.positive(
            &loc.field("max_per_peer"),
            c.max_per_peer,
            (max / 10).max(1),
        ),
        loopback_exempt: c.loopback_exempt.unwrap_or(true),
        first_request_timeout: cx.duration(
            &loc.field("first_request_timeout"),
            &c.first_request_timeout,
            Duration::from_secs(5),
        ),
        header_read_timeout: cx.duration(
            &loc.field("header_read_timeout"),
            &c.header_read_timeout,
            Duration::from_secs(30),
        ),
        idle_timeout: cx.duration(
            &loc.field("idle_timeout"),
            &c.idle_timeout,
            Duration::from_secs(60),
        ),
        http2_keep_alive_interval: cx.duration(
            &loc.field("http2_keep_alive_interval"),
            &c.http2_keep_alive_interval,
            Duration::from_secs(30),
        ),
        http2_keep_alive_timeout: cx.duration(
            &loc.field("http2_keep_alive_timeout"),
            &c.http2_keep_alive_timeout,
            Duration::from_secs(10),
        ),
        http2_max_concurrent_streams: streams.max(1),
    }
}
