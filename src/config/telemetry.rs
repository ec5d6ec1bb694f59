//! The `tracing:` section and the standard `OTEL_*` variables: where the
//! gateway's trace spans go, resolved into [`TracingSettings`].
//!
//! Place in the pipeline: called by `validate` for every load (startup,
//! reload, `switchyard check`), so a wrong endpoint in the policy or in the
//! environment is reported like any other policy error. Tracing is off
//! unless the policy or `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` names an
//! endpoint (or `enabled: true` asks for the local collector's default);
//! `enabled: false`, `OTEL_SDK_DISABLED=true` and `OTEL_TRACES_EXPORTER=none`
//! turn it off. A value in the policy wins over its variable. Must not build
//! an exporter: `telemetry` (outside config) does that from these settings.

use std::collections::BTreeMap;
use std::time::Duration;

use super::fields::FieldReader;
use super::raw::RawTracing;
use super::report::Loc;
use super::values::Secret;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (the default; port 4318).
    HttpProtobuf,
    /// OTLP/gRPC (port 4317).
    Grpc,
}

impl OtlpProtocol {
    pub fn label(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
        }
    }
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    pub protocol: OtlpProtocol,
    /// The full URL spans are sent to (for OTLP/HTTP, with `/v1/traces`).
    pub endpoint: String,
    /// Headers on every export (API keys of a hosted backend): values are secrets.
    pub headers: Vec<(String, Secret)>,
    /// The share of new traces kept (a client's sampled flag is followed).
    pub sample_ratio: f64,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// One export's timeout.
    pub timeout: Duration,
}

const DEFAULT_HTTP: &str = "http://localhost:4318";
const DEFAULT_GRPC: &str = "http://localhost:4317";

/// The tracing settings of a policy (`raw`: its `tracing:` section and the
/// file it is in) and the environment; `None` when tracing is off.
pub(super) fn settings(
    cx: &mut FieldReader,
    raw: Option<&(String, RawTracing)>,
) -> Option<TracingSettings> {
    let empty = (String::new(), RawTracing::default());
    let (file, t) = raw.unwrap_or(&empty);
    let loc = Loc::new(file, "tracing");
    let var = |name: &str| (cx.env)(name).filter(|v| !v.trim().is_empty());
    let env_off = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    if t.enabled == Some(false) || (env_off && t.enabled.is_none()) {
        return None;
    }
    let protocol = match t.protocol.as_deref() {
        Some(p) => protocol(p).or_else(|| {
            cx.errors.at(
                &loc.field("protocol"),
                format!("unknown protocol {p:?} (expected http/protobuf or grpc)"),
            );
            None
        })?,
        None => match [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|v| (name, v)))
        {
            Some((name, v)) => protocol(v.trim()).or_else(|| {
                cx.errors.push(
                    name,
                    format!("unknown OTLP protocol {v:?} (expected http/protobuf or grpc)"),
                );
                None
            })?,
            None => OtlpProtocol::HttpProtobuf,
        },
    };
    let (endpoint, from) = match (&t.endpoint, var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        (Some(e), _) => (
            signal_url(e, protocol),
            loc.field("endpoint").path().to_string(),
        ),
        // The per-signal variable is used as it is.
        (None, Some(e)) => (
            e.trim().to_string(),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(),
        ),
        (None, None) => match var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(e) => (
                signal_url(&e, protocol),
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            ),
            None if t.enabled == Some(true) => {
                let base = match protocol {
                    OtlpProtocol::HttpProtobuf => DEFAULT_HTTP,
                    OtlpProtocol::Grpc => DEFAULT_GRPC,
                };
                (signal_url(base, protocol), String::new())
            }
            None => return None,
        },
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        || endpoint.parse::<http::Uri>().is_err()
    {
        let message = format!("{endpoint:?} is not an http:// or https:// URL");
        match t.endpoint {
            Some(_) => cx.errors.at(&loc.field("endpoint"), message),
            None => cx.errors.push(from, message),
        }
        return None;
    }
    let mut headers: BTreeMap<String, Secret> = BTreeMap::new();
    for name in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        for (k, v) in var(name).iter().flat_map(|list| parse_headers(list)) {
            headers.insert(k, Secret::new(v));
        }
    }
    for (header, env_name) in &t.headers_env {
        let at = loc.field("headers_env").field(header);
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            cx.errors.at(&at, "is not a valid header name");
            continue;
        }
        if let Some(value) = cx.secret(&at, &Some(env_name.clone())) {
            if http::HeaderValue::from_str(value.expose()).is_err() {
                cx.errors.at(
                    &at,
                    format!("{env_name} does not hold a valid header value"),
                );
                continue;
            }
            headers.insert(header.to_ascii_lowercase(), value);
        }
    }
    let sample_ratio = match t.sample_ratio {
        Some(r) if (0.0..=1.0).contains(&r) => r,
        Some(_) => {
            cx.errors
                .at(&loc.field("sample_ratio"), "must be between 0 and 1");
            1.0
        }
        None => env_ratio(&var),
    };
    let service_name = t
        .service_name
        .clone()
        .or_else(|| var("OTEL_SERVICE_NAME"))
        .unwrap_or_else(|| "switchyard".to_string());
    let env_timeout = [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find_map(|name| var(name)?.trim().parse::<u64>().ok())
    .filter(|ms| *ms > 0)
    .map_or(Duration::from_secs(10), Duration::from_millis);
    let timeout = cx.duration(&loc.field("timeout"), &t.timeout, env_timeout);
    Some(TracingSettings {
        protocol,
        endpoint,
        headers: headers.into_iter().collect(),
        sample_ratio,
        service_name,
        timeout,
    })
}

fn protocol(text: &str) -> Option<OtlpProtocol> {
    match text {
        "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
        "grpc" => Some(OtlpProtocol::Grpc),
        _ => None,
    }
}

/// A base endpoint as the spans' URL: OTLP/HTTP appends `/v1/traces`
/// (unless it is there already), gRPC takes it as it is.
fn signal_url(base: &str, protocol: OtlpProtocol) -> String {
    let base = base.trim();
    match protocol {
        OtlpProtocol::Grpc => base.to_string(),
        OtlpProtocol::HttpProtobuf if base.ends_with("/v1/traces") => base.to_string(),
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas,
/// values percent-encoded.
fn parse_headers(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let v = percent_encoding::percent_decode_str(v.trim())
                .decode_utf8()
                .ok()?;
            let k = k.trim().to_ascii_lowercase();
            (!k.is_empty()).then(|| (k, v.into_owned()))
        })
        .collect()
}

/// `OTEL_TRACES_SAMPLER=traceidratio` or `parentbased_traceidratio` with
/// `OTEL_TRACES_SAMPLER_ARG`; `always_off` is 0; anything else keeps all.
fn env_ratio(var: &dyn Fn(&str) -> Option<String>) -> f64 {
    let arg = || {
        var("OTEL_TRACES_SAMPLER_ARG")
            .and_then(|a| a.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(1.0)
    };
    match var("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
        Some("traceidratio" | "parentbased_traceidratio") => arg(),
        Some("always_off" | "parentbased_always_off") => 0.0,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, Source, load_sources};
    use std::sync::Arc;

    fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<Option<TracingSettings>, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env: Env = Arc::new(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
        let base =
            "providers:\n  m:\n    kind: mock\nroutes:\n  r:\n    targets: [{provider: m}]\n";
        let sources = vec![Source {
            name: "p.yaml".into(),
            text: format!("{base}{yaml}"),
        }];
        load_sources(&sources, &env, |_, _| Vec::new())
            .map(|p| p.tracing)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn off_unless_an_endpoint_is_named() {
        assert_eq!(load("", &[]).unwrap(), None);
        assert_eq!(load("tracing:\n  sample_ratio: 0.5\n", &[]).unwrap(), None);
        let on = load("tracing:\n  enabled: true\n", &[]).unwrap().unwrap();
        assert_eq!(on.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(on.protocol, OtlpProtocol::HttpProtobuf);
    }

    #[test]
    fn the_standard_variables_configure_it_and_the_policy_wins() {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%20b, other=1"),
            ("OTEL_SERVICE_NAME", "gw-eu"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ];
        let s = load("", &env).unwrap().unwrap();
        assert_eq!(s.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(s.service_name, "gw-eu");
        assert_eq!(s.sample_ratio, 0.25);
        assert_eq!(s.headers[1].0, "x-api-key");
        assert_eq!(s.headers[1].1.expose(), "a b");
        let s = load(
            "tracing:\n  endpoint: http://other:4317\n  protocol: grpc\n  sample_ratio: 1\n",
            &env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "http://other:4317");
        assert_eq!(s.protocol, OtlpProtocol::Grpc);
        assert_eq!(s.sample_ratio, 1.0);
        let off = [("OTEL_SDK_DISABLED", "true"), env[0]];
        assert_eq!(load("", &off).unwrap(), None);
    }

    #[test]
    fn bad_values_are_policy_errors_with_their_place() {
        let e = load(
            "tracing:\n  endpoint: collector:4318\n  protocol: http/json\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.contains("p.yaml:9: tracing.protocol: unknown protocol"),
            "{e}"
        );
        let e = load("", &[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x")]).unwrap_err();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_ENDPOINT: \"ftp://x/v1/traces\" is not"),
            "{e}"
        );
        let e = load(
            "tracing:\n  endpoint: http://c:4318\n  headers_env: {authorization: NOPE_UNSET}\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.contains(
                "tracing.headers_env.authorization: environment variable NOPE_UNSET is not set"
            ),
            "{e}"
        );
    }
}
