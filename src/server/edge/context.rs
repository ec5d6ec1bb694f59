//! The request context: everything known about one request, created at the
//! edge, carried `&mut` through every phase, read once at the end.
//!
//! Place in the pipeline: `account` (an edge step just inside the request
//! id and trace span, outside catch-panic) makes the [`RequestCtx`] with
//! what the edge knows (request id, method, path, the runtime snapshot the
//! request runs on to its end, the caller), and lends it through a
//! [`CtxSlot`] in the request's extensions to `stack::dispatch`, which
//! passes it `&mut` to the router, the endpoint and its flow; they fill it
//! in (endpoint, route, provider, attempts, cache state, what the answer
//! spent, the error it was answered with). The lease returns it when dispatch ends, even by a panic, and
//! `account` keeps it with the response body until the body ends: then it
//! is read once (access log, request metrics, usage, settlement, the
//! trace span's attributes). It is the
//! only per-request context (pingora's CTX is the model). Must not decide
//! anything about the request: it only carries and records.

use std::borrow::Cow;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use http::{Method, Request};
use tokio::time::Instant;

use super::conn::ConnInfo;
use super::permit::RequestPermit;
use crate::api::usage::{AnswerUsage, Dialect, Usage};
use crate::config::CacheScope;
use crate::routing::RouteHandle;
use crate::server::access::keys::{Caller, ClientId, client_key, presented_key};
use crate::server::access::settlement::Settlement;
use crate::server::access::usage::{Spend, StreamTap, UsageCell};
use crate::server::state::{AppState, Runtime};
use crate::telemetry::SpanText;

/// Everything known about one request.
pub(crate) struct RequestCtx {
    // Set at the edge.
    pub request_id: String,
    pub method: Method,
    pub path: String,
    pub started: Instant,
    pub state: Arc<AppState>,
    /// The runtime (policy, routes, cache) this request runs on to its end.
    pub rt: Arc<Runtime>,
    /// Who is calling (a configured key, anonymous, or refused).
    pub caller: Caller,
    /// The client's identity for per-client limits and per-key cache
    /// scopes: a hash of the key it sent, or its address; never the key.
    pub client_key: ClientId,
    /// The concurrency-limit permit, shared with work done for the request.
    pub permit: Option<Arc<RequestPermit>>,
    // Filled in on the way.
    pub endpoint: &'static str,
    /// The route the request named, once found and allowed.
    pub route: Option<Arc<RouteHandle>>,
    /// The route label for logs and metrics: a configured route, or `_unknown`.
    pub route_label: Arc<str>,
    pub provider: Option<Arc<str>>,
    /// The request's conversation key, on a route with `affinity`.
    pub conversation: Option<u64>,
    pub attempts: u32,
    pub cache: Option<&'static str>,
    /// The code of the error the request was answered with (`error.code`
    /// of the envelope, else its type), for the access log and the trace.
    pub error: Option<&'static str>,
    /// The request's span: its access line is written in it, and with
    /// tracing on its attributes are recorded on it at the end. None where
    /// its fields are kept as text (`span_text`, which stands for it then).
    pub span: tracing::Span,
    /// The request span's fields, where they are kept beside it (the span
    /// step's `SpanText`): `route` and `provider` are recorded here then.
    pub span_text: Option<SpanText>,
    /// Set by a stream that failed after its response started.
    pub interrupted: Arc<AtomicBool>,
    /// The caller's virtual-key alias for logs and metrics (`_unknown` when
    /// it sent no configured key); never the key itself.
    pub key_alias: Arc<str>,
    /// What admission reserved, settled with the answer's usage at the end.
    pub settlement: Option<Settlement>,
    /// What the answer spent upstream (tokens per served model).
    pub spend: Spend,
    /// The model name the client asked for, sanitised and length-capped
    /// ([`log_safe`]), for the access log: also for unknown routes.
    pub requested: Option<Box<str>>,
}

/// Longest model name the access log carries.
const MAX_LOGGED_NAME: usize = 128;
/// Longest error message the access log carries.
pub(crate) const MAX_LOGGED_MESSAGE: usize = 400;

/// `text` safe for a log line: at most `max` characters, each printable
/// ASCII other than `"` and `\` (anything else becomes `?`), `...` when
/// cut. A client's text cannot forge a line or a field.
pub(crate) fn log_safe(text: &str, max: usize) -> Box<str> {
    let safe = |c: char| (c == ' ' || c.is_ascii_graphic()) && c != '"' && c != '\\';
    // Mostly a model name that is already safe: copied once, to size.
    if text.len() <= max && text.bytes().all(|b| safe(char::from(b))) {
        return Box::from(text);
    }
    let mut out = String::with_capacity(text.len().min(max) + 3);
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        out.push(if safe(c) { c } else { '?' });
    }
    out.into_boxed_str()
}

impl std::fmt::Debug for RequestCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCtx")
            .field("request_id", &self.request_id)
            .field("path", &self.path)
            .field("endpoint", &self.endpoint)
            .field("route", &self.route_label)
            .finish_non_exhaustive()
    }
}

impl RequestCtx {
    /// The context of `req` (whose `x-request-id` the edge has already
    /// set), on the runtime that is live now.
    pub(crate) fn for_request<B>(req: &Request<B>, state: &Arc<AppState>) -> Self {
        let request_id = req
            .headers()
            .get(&super::request_id::X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        let rt = state.runtime.load_full();
        let (route_label, key_alias) = (Arc::clone(&rt.unknown.route), Arc::clone(&rt.unknown.key));
        let presented = presented_key(req.headers());
        let peer = req.extensions().get::<ConnInfo>().map(|c| c.peer);
        RequestCtx {
            request_id,
            method: req.method().clone(),
            path: req.uri().path().trim_end_matches('/').to_string(),
            started: Instant::now(),
            caller: rt.keys.identify(presented),
            client_key: client_key(presented, peer),
            state: Arc::clone(state),
            rt,
            permit: None,
            endpoint: "other",
            route: None,
            route_label,
            provider: None,
            conversation: None,
            attempts: 0,
            cache: None,
            error: None,
            span: if crate::telemetry::span_text_on() {
                tracing::Span::none()
            } else {
                tracing::Span::current()
            },
            span_text: req.extensions().get::<SpanText>().cloned(),
            interrupted: Arc::default(),
            key_alias,
            settlement: None,
            spend: Spend::default(),
            requested: None,
        }
    }

    /// The client asked for the model `name` (kept for the access log).
    pub(crate) fn asked_for(&mut self, name: &str) {
        self.requested = Some(log_safe(name, MAX_LOGGED_NAME));
    }

    /// The request is routed by `route` (also recorded in its span).
    pub(crate) fn routed(&mut self, route: &Arc<RouteHandle>) {
        self.route_label = Arc::clone(&route.label);
        self.route = Some(Arc::clone(route));
        match &self.span_text {
            Some(text) => text.record("route", &route.spec.name),
            None => {
                tracing::Span::current().record("route", tracing::field::display(&route.spec.name));
            }
        }
    }

    /// `provider` answered after `attempts` (also recorded in its span).
    pub(crate) fn served_by(&mut self, provider: &Arc<str>, attempts: u32) {
        self.provider = Some(Arc::clone(provider));
        self.attempts = attempts;
        match &self.span_text {
            Some(text) => text.record("provider", provider),
            None => {
                tracing::Span::current().record("provider", tracing::field::display(provider));
            }
        }
    }

    /// The request is answered with `e` (its code is logged and traced).
    pub(crate) fn failed(&mut self, e: &crate::api::GatewayError) {
        self.error = Some(e.code.unwrap_or_else(|| e.error_type()));
    }

    /// `base` (a route name or an item's parameters, part of every cache
    /// key of the request) scoped per the route's `cache.scope`: as is when
    /// shared, with the caller's key alias (or the hash of the key it sent,
    /// or its address, on an open gateway) when per key.
    pub(crate) fn cache_namespace<'a>(&self, route: &RouteHandle, base: &'a str) -> Cow<'a, str> {
        match route.spec.cache.scope {
            CacheScope::Shared => Cow::Borrowed(base),
            CacheScope::PerKey => Cow::Owned(match self.caller.key() {
                Some(k) => format!("{base}\0{}", k.alias),
                None => format!("{base}\0{}", self.client_key),
            }),
        }
    }

    /// Charges the usage of a JSON answer from the provider recorded by
    /// [`RequestCtx::served_by`], read from `body` in `dialect`.
    pub(crate) fn charge_body(
        &mut self,
        model: &Arc<str>,
        dialect: Dialect,
        body: &[u8],
        found: AnswerUsage,
    ) {
        if let (Some(provider), Some(usage)) = (&self.provider, found.of(dialect, body)) {
            let provider = Arc::clone(provider);
            let prices = &self.rt.policy.prices;
            self.spend
                .charge(prices, provider, Arc::clone(model), usage);
        }
    }

    /// Charges `usage` spent by `model` at `provider`.
    pub(crate) fn charge(&mut self, provider: &Arc<str>, model: &Arc<str>, usage: Usage) {
        let prices = &self.rt.policy.prices;
        self.spend
            .charge(prices, Arc::clone(provider), Arc::clone(model), usage);
    }

    /// Charges a stream whose usage `cell` is filled as its events pass.
    pub(crate) fn charge_stream(&mut self, provider: &Arc<str>, model: &Arc<str>, cell: UsageCell) {
        let prices = &self.rt.policy.prices;
        self.spend
            .streamed(prices, Arc::clone(provider), Arc::clone(model), cell);
    }

    /// A tap for the stream of the provider recorded by
    /// [`RequestCtx::served_by`]; `strip` takes out the usage the client
    /// did not ask for.
    pub(crate) fn tap_stream(
        &mut self,
        model: &Arc<str>,
        dialect: Dialect,
        strip: bool,
    ) -> StreamTap {
        let cell = UsageCell::default();
        if let Some(provider) = self.provider.clone() {
            self.charge_stream(&provider, model, cell.clone());
        }
        StreamTap::new(dialect, cell, strip)
    }
}

/// Lends the request's context from `account` to dispatch; a request
/// extension (extensions must be `Clone`, hence the shared cell).
#[derive(Clone)]
pub(crate) struct CtxSlot(Arc<Mutex<Option<Box<RequestCtx>>>>);

impl CtxSlot {
    /// Boxed once: lent, given back and kept with the body by pointer,
    /// not by copies of the whole context.
    pub(super) fn new(ctx: RequestCtx) -> Self {
        CtxSlot(Arc::new(Mutex::new(Some(Box::new(ctx)))))
    }

    pub(super) fn take(&self) -> Option<Box<RequestCtx>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Changes the context in place (if it is not lent out).
    pub(crate) fn update(&self, f: impl FnOnce(&mut RequestCtx)) {
        if let Some(rc) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            f(rc);
        }
    }

    /// Borrows the context until the lease is dropped.
    pub(super) fn lease(&self) -> Lease {
        Lease {
            slot: self.clone(),
            rc: self.take(),
        }
    }
}

/// A borrowed [`RequestCtx`]; put back into its slot on drop, including when
/// a panic unwinds the handler, so the access log still gets it.
pub(super) struct Lease {
    slot: CtxSlot,
    pub rc: Option<Box<RequestCtx>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(rc) = self.rc.take() {
            *self.slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(rc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::log_safe;

    #[test]
    fn a_safe_name_is_kept_as_it_is() {
        assert_eq!(&*log_safe("gpt-4o-mini", 128), "gpt-4o-mini");
        assert_eq!(&*log_safe("a b", 3), "a b");
    }

    #[test]
    fn unsafe_characters_become_question_marks() {
        assert_eq!(&*log_safe("a\"b\\c\nd", 128), "a?b?c?d");
        assert_eq!(&*log_safe("modèle", 128), "mod?le");
    }

    #[test]
    fn a_long_text_is_cut_with_an_ellipsis() {
        assert_eq!(&*log_safe("abcdef", 4), "abcd...");
        assert_eq!(&*log_safe("ééééé", 2), "??...");
    }
}
