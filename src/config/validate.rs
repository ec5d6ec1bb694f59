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

use super::policy::*;
use super::raw::*;
use super::{ConfigError, Env};
use serde_saphyr::Spanned;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Collects errors; `at` builds a location prefix for one place in one file.
#[derive(Default)]
pub(super) struct Errors(pub Vec<ConfigError>);

impl Errors {
    fn push(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            location: location.into(),
            message: message.into(),
        });
    }
}

fn at<T>(file: &str, spanned: &Spanned<T>, path: &str) -> String {
    format!("{file}:{}: {path}", spanned.referenced.line())
}

/// Parses `250ms`, `2s`, `1.5s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {text:?} needs a unit (ms, s, m or h)"))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("duration {text:?} does not start with a number"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("duration {text:?} has unknown unit {other:?}")),
    };
    if !secs.is_finite() || secs > 365.0 * 24.0 * 3600.0 {
        return Err(format!("duration {text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

struct Ctx<'a> {
    errors: &'a mut Errors,
    env: &'a Env,
}

impl Ctx<'_> {
    fn duration(&mut self, loc: &str, value: &Option<String>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(text) => match parse_duration(text) {
                Ok(d) if d.is_zero() => {
                    self.errors.push(loc, "must be greater than zero");
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.errors.push(loc, e);
                    default
                }
            },
        }
    }

    fn rate(&mut self, loc: &str, raw: &Option<RawRate>) -> Option<RateSpec> {
        let raw = raw.as_ref()?;
        let Some(rps) = raw.requests_per_second else {
            self.errors
                .push(format!("{loc}.requests_per_second"), "is required");
            return None;
        };
        if !rps.is_finite() || rps <= 0.0 || rps > 1_000_000_000.0 {
            self.errors.push(
                format!("{loc}.requests_per_second"),
                "must be a number greater than zero",
            );
            return None;
        }
        let burst = raw.burst.unwrap_or_else(|| rps.ceil().max(1.0) as u32);
        if burst == 0 {
            self.errors
                .push(format!("{loc}.burst"), "must be at least 1");
            return None;
        }
        Some(RateSpec {
            per_second: rps,
            burst,
        })
    }

    fn secret(&mut self, loc: &str, var: &Option<String>) -> Option<Secret> {
        let var = var.as_ref()?;
        match (self.env)(var) {
            Some(v) if !v.is_empty() => Some(Secret::new(v)),
            _ => {
                self.errors
                    .push(loc, format!("environment variable {var} is not set"));
                None
            }
        }
    }

    fn positive(&mut self, loc: &str, value: Option<usize>, default: usize) -> usize {
        match value {
            Some(0) => {
                self.errors.push(loc, "must be at least 1");
                default
            }
            Some(v) => v,
            None => default,
        }
    }
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
            CacheSettings {
                max_bytes,
                default_ttl: cx.duration(
                    &format!("{loc}.default_ttl"),
                    &c.value.default_ttl,
                    Duration::from_secs(300),
                ),
            }
        }
        None => CacheSettings {
            max_bytes: 64 * 1024 * 1024,
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
    }
}

fn provider(cx: &mut Ctx, loc: &str, name: &str, p: &RawProvider) -> Option<ProviderSpec> {
    let errors_before = cx.errors.0.len();
    let mock_fields = [
        ("latency", p.latency.is_some()),
        ("failure_rate", p.failure_rate.is_some()),
        ("failure_status", p.failure_status.is_some()),
        ("embedding_dims", p.embedding_dims.is_some()),
    ];
    let openai_fields = [
        ("base_url", p.base_url.is_some()),
        ("api_key_env", p.api_key_env.is_some()),
        ("headers", p.headers.is_some()),
    ];
    let reject = |cx: &mut Ctx, fields: &[(&str, bool)], kind: &str| {
        for (field, set) in fields {
            if *set {
                cx.errors.push(
                    format!("{loc}.{field}"),
                    format!("does not apply to kind {kind}"),
                );
            }
        }
    };
    let kind = match p.kind.as_deref() {
        Some("openai") => {
            reject(cx, &mock_fields, "openai");
            let base_url = match p.base_url.as_deref().map(str::trim) {
                None | Some("") => {
                    cx.errors
                        .push(format!("{loc}.base_url"), "is required for kind openai");
                    String::new()
                }
                Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                    cx.errors.push(
                        format!("{loc}.base_url"),
                        format!("{u:?} must start with http:// or https://"),
                    );
                    String::new()
                }
                Some(u) => u.trim_end_matches('/').to_string(),
            };
            let api_key = cx.secret(&format!("{loc}.api_key_env"), &p.api_key_env);
            let headers = p.headers.clone().unwrap_or_default();
            for (k, v) in &headers {
                if http::HeaderName::try_from(k.as_str()).is_err()
                    || http::HeaderValue::try_from(v.as_str()).is_err()
                {
                    cx.errors.push(
                        format!("{loc}.headers.{k}"),
                        "is not a valid HTTP header name and value",
                    );
                }
            }
            ProviderKind::OpenAi(OpenAiSpec {
                base_url,
                api_key,
                headers,
            })
        }
        Some("mock") => {
            reject(cx, &openai_fields, "mock");
            let failure_rate = p.failure_rate.unwrap_or(0.0);
            if !(0.0..=1.0).contains(&failure_rate) {
                cx.errors
                    .push(format!("{loc}.failure_rate"), "must be between 0 and 1");
            }
            let failure_status = p.failure_status.unwrap_or(503);
            if !(400..=599).contains(&failure_status) {
                cx.errors.push(
                    format!("{loc}.failure_status"),
                    "must be an HTTP error status (400-599)",
                );
            }
            let latency = match &p.latency {
                None => Duration::ZERO,
                Some(t) => parse_duration(t).unwrap_or_else(|e| {
                    cx.errors.push(format!("{loc}.latency"), e);
                    Duration::ZERO
                }),
            };
            ProviderKind::Mock(MockSpec {
                latency,
                failure_rate,
                failure_status,
                embedding_dims: cx.positive(&format!("{loc}.embedding_dims"), p.embedding_dims, 16),
            })
        }
        Some(other) => {
            cx.errors.push(
                format!("{loc}.kind"),
                format!("unknown provider kind {other:?} (expected openai or mock)"),
            );
            return None;
        }
        None => {
            cx.errors
                .push(format!("{loc}.kind"), "is required (openai or mock)");
            return None;
        }
    };
    let t = p.timeouts.as_ref();
    let timeouts = Timeouts {
        connect: cx.duration(
            &format!("{loc}.timeouts.connect"),
            &t.and_then(|t| t.connect.clone()),
            Duration::from_secs(5),
        ),
        first_byte: cx.duration(
            &format!("{loc}.timeouts.first_byte"),
            &t.and_then(|t| t.first_byte.clone()),
            Duration::from_secs(60),
        ),
        total: cx.duration(
            &format!("{loc}.timeouts.total"),
            &t.and_then(|t| t.total.clone()),
            Duration::from_secs(300),
        ),
    };
    let b = p.breaker.as_ref();
    let breaker = BreakerSpec {
        failure_threshold: cx.positive(
            &format!("{loc}.breaker.failure_threshold"),
            b.and_then(|b| b.failure_threshold).map(|v| v as usize),
            5,
        ) as u32,
        open_for: cx.duration(
            &format!("{loc}.breaker.open_for"),
            &b.and_then(|b| b.open_for.clone()),
            Duration::from_secs(30),
        ),
        half_open_probes: cx.positive(
            &format!("{loc}.breaker.half_open_probes"),
            b.and_then(|b| b.half_open_probes).map(|v| v as usize),
            1,
        ) as u32,
    };
    let rate_limit = cx.rate(&format!("{loc}.rate_limit"), &p.rate_limit);
    let max_batch_inputs =
        cx.positive(&format!("{loc}.max_batch_inputs"), p.max_batch_inputs, 2048);
    (cx.errors.0.len() == errors_before).then(|| ProviderSpec {
        name: name.to_string(),
        kind,
        timeouts,
        breaker,
        rate_limit,
        max_batch_inputs,
    })
}

fn route(
    cx: &mut Ctx,
    loc: &str,
    name: &str,
    r: &RawRoute,
    m: &Merged,
    providers: &BTreeMap<String, ProviderSpec>,
    cache: &CacheSettings,
) -> Option<RouteSpec> {
    let errors_before = cx.errors.0.len();
    let strategy = match r.strategy.as_deref() {
        None | Some("failover") => Strategy::Failover,
        Some("weighted") => Strategy::Weighted,
        Some(other) => {
            cx.errors.push(
                format!("{loc}.strategy"),
                format!("unknown strategy {other:?} (expected failover or weighted)"),
            );
            Strategy::Failover
        }
    };
    if r.targets.is_empty() {
        cx.errors
            .push(format!("{loc}.targets"), "needs at least one target");
    }
    let mut targets = Vec::new();
    for (i, t) in r.targets.iter().enumerate() {
        let tloc = format!("{loc}.targets[{i}]");
        let Some(pname) = t.provider.as_deref() else {
            cx.errors.push(format!("{tloc}.provider"), "is required");
            continue;
        };
        let provider_max = match providers.get(pname) {
            Some(p) => p.max_batch_inputs,
            None if m.providers.contains_key(pname) => 1, // invalid provider, reported already
            None => {
                let known: Vec<&str> = m.providers.keys().map(String::as_str).collect();
                cx.errors.push(
                    format!("{tloc}.provider"),
                    format!(
                        "unknown provider {pname:?} (defined: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                1
            }
        };
        let weight = t.weight.unwrap_or(1);
        if weight == 0 {
            cx.errors
                .push(format!("{tloc}.weight"), "must be at least 1");
        }
        let max_batch_inputs = cx.positive(
            &format!("{tloc}.max_batch_inputs"),
            t.max_batch_inputs,
            provider_max,
        );
        targets.push(TargetSpec {
            provider: pname.to_string(),
            model: t.model.clone().unwrap_or_else(|| name.to_string()),
            weight,
            max_batch_inputs: max_batch_inputs.min(provider_max),
        });
    }
    let rr = r.retry.as_ref();
    let max_attempts = rr.and_then(|r| r.max_attempts).unwrap_or(3);
    if !(1..=10).contains(&max_attempts) {
        cx.errors.push(
            format!("{loc}.retry.max_attempts"),
            "must be between 1 and 10",
        );
    }
    let retry = RetrySpec {
        max_attempts,
        initial_backoff: cx.duration(
            &format!("{loc}.retry.initial_backoff"),
            &rr.and_then(|r| r.initial_backoff.clone()),
            Duration::from_millis(100),
        ),
        max_backoff: cx.duration(
            &format!("{loc}.retry.max_backoff"),
            &rr.and_then(|r| r.max_backoff.clone()),
            Duration::from_secs(5),
        ),
        jitter: rr.and_then(|r| r.jitter).unwrap_or(true),
        max_retry_after: cx.duration(
            &format!("{loc}.retry.max_retry_after"),
            &rr.and_then(|r| r.max_retry_after.clone()),
            Duration::from_secs(10),
        ),
    };
    if retry.initial_backoff > retry.max_backoff {
        cx.errors.push(
            format!("{loc}.retry.initial_backoff"),
            "must not exceed retry.max_backoff",
        );
    }
    let rc = r.cache.as_ref();
    let route_cache = RouteCache {
        enabled: rc.and_then(|c| c.enabled).unwrap_or(false),
        ttl: cx.duration(
            &format!("{loc}.cache.ttl"),
            &rc.and_then(|c| c.ttl.clone()),
            cache.default_ttl,
        ),
    };
    let rate_limit = cx.rate(&format!("{loc}.rate_limit"), &r.rate_limit);
    let max_concurrency = cx.positive(
        &format!("{loc}.fanout.max_concurrency"),
        r.fanout.as_ref().and_then(|f| f.max_concurrency),
        4,
    );
    (cx.errors.0.len() == errors_before).then(|| RouteSpec {
        name: name.to_string(),
        strategy,
        targets,
        retry,
        cache: route_cache,
        rate_limit,
        max_concurrency,
    })
}
