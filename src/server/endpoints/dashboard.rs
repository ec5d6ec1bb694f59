//! `GET /` (`server.dashboard.path`): the built-in live page, and
//! `GET /stats.json` beside it: the numbers it polls.
//!
//! Place in the pipeline: called by the router, outside the concurrency
//! limit like `/metrics` (the edge's health bypass asks the policy which
//! paths are the page's), so a saturated gateway can still be watched. The
//! page is one self-contained HTML file compiled into the binary (its CSS
//! and script under `dashboard/`, no CDN: it works offline) that fetches
//! the stats JSON every two seconds. The stats are a fresh metrics sample
//! against the sampler's ring (`metrics::window`), plus what only the live
//! runtime knows: each provider's kind, breaker state and concurrency
//! limit. With `server.admin_token_env` set, both need the admin token
//! (`access::admin`). Must not show a secret: everything here is a metric
//! label (route, provider, key alias, outcome) or a number.

use http::{HeaderValue, Request, Response, StatusCode, header};
use serde::Serialize;

use crate::api::GatewayError;
use crate::config::DashboardPart;
use crate::metrics::sample::{Sample, Usage, usage};
use crate::metrics::window::{ProviderStats, Stats, compute};
use crate::routing::ProviderHandle;
use crate::server::access::admin;
use crate::server::edge::context::RequestCtx;
use crate::server::http::{Body, ReqBody, full, json_response};

const STYLE: &str = include_str!("dashboard/page.css");
const SCRIPT: &str = include_str!("dashboard/page.js");
const HEAD: &str = include_str!("dashboard/head.html");
const BODY: &str = include_str!("dashboard/body.html");

/// Rows of the tokens-and-spend table at most (the costliest first).
const USAGE_ROWS: usize = 50;

pub(crate) async fn handle(
    rc: &RequestCtx,
    req: &Request<ReqBody>,
    part: DashboardPart,
) -> Result<Response<Body>, GatewayError> {
    if !admin::authorized(rc.rt.policy.server.admin_token.as_ref(), req.headers()) {
        return Err(admin::refused());
    }
    Ok(match part {
        DashboardPart::Page => page(),
        DashboardPart::Stats => stats(rc),
    })
}

/// The page: head, style, body, script, with a content security policy
/// that allows exactly its own inline style and script and fetches to its
/// own origin.
fn page() -> Response<Body> {
    let html = [
        HEAD,
        "<style>",
        STYLE,
        "</style>\n</head>\n",
        BODY,
        "<script>",
        SCRIPT,
        "</script>\n",
        "</body>\n</html>\n",
    ]
    .concat();
    let csp = format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        digest(STYLE),
        digest(SCRIPT)
    );
    let mut r = Response::new(full(html));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    no_store(h);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A CSP source for an inline block: `sha256-<base64>`.
fn digest(text: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash = sha2::Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

fn no_store(h: &mut http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// What `/stats.json` answers (fields in docs/operations.md).
#[derive(Serialize)]
struct StatsBody {
    version: &'static str,
    policy_generation: u64,
    draining: bool,
    /// Client requests being served now (the gateway's own paths excluded).
    in_flight: i64,
    /// `server.max_concurrent_requests`.
    max_concurrent_requests: usize,
    #[serde(flatten)]
    stats: Stats,
    /// Tokens and spend per key alias and route since start.
    usage: Vec<Usage>,
}

fn stats(rc: &RequestCtx) -> Response<Body> {
    let state = &rc.state;
    let now = Sample::take(&state.metrics);
    let mut stats = compute(&state.stats.snapshot(), &now, state.started.elapsed());
    stats.providers = providers(rc, std::mem::take(&mut stats.providers));
    let body = StatsBody {
        version: env!("CARGO_PKG_VERSION"),
        policy_generation: rc.rt.generation,
        draining: state.is_draining(),
        in_flight: state.metrics.in_flight.get(),
        max_concurrent_requests: rc.rt.policy.server.max_concurrent_requests,
        stats,
        usage: usage(&state.metrics, USAGE_ROWS),
    };
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = json_response(StatusCode::OK, json);
    no_store(r.headers_mut());
    r
}

/// The live policy's providers (every one, with or without traffic), each
/// with its metrics and what only the runtime knows.
fn providers(rc: &RequestCtx, mut measured: Vec<ProviderStats>) -> Vec<ProviderStats> {
    let mut names: Vec<&String> = rc.rt.table.providers.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let handle = &rc.rt.table.providers[name];
            let mut p = match measured.iter().position(|p| &p.provider == name) {
                Some(i) => measured.swap_remove(i),
                None => ProviderStats {
                    provider: name.clone(),
                    ..ProviderStats::default()
                },
            };
            p.kind = Some(handle.spec.kind.clone());
            p.breaker = Some(handle.breaker.state().label().to_string());
            p.concurrency_limit = concurrency_limit(handle);
            p
        })
        .collect()
}

/// The provider's current concurrency limit (its bulkhead: a fixed
/// `max_in_flight`, the adaptive limiter's current value, or its share of
/// the gateway's request slots).
fn concurrency_limit(handle: &ProviderHandle) -> Option<u64> {
    Some(handle.concurrency.limit() as u64)
}
