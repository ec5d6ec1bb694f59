//! CORS for browser clients, as the live policy's `server.cors` says.
//!
//! Place in the pipeline: an edge step (after the trace span and
//! catch-panic, before compression, the health bypass and the concurrency
//! limit). [`layer`] turns the settings into a `tower_http` `CorsLayer` when
//! a policy is built (off the request path); [`live`] applies the one the
//! edge gives it for each request (the live runtime's), so a reload changes CORS for requests on
//! connections that are already open. With CORS configured, an `OPTIONS`
//! preflight is answered here (204 with the allow headers) and never reaches
//! the router or the concurrency limit; other responses get
//! `access-control-allow-origin` for allowed origins only. Must not refuse
//! requests: browsers enforce CORS, the gateway only advertises it.

use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, Either};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::config::{AllowedOrigins, CorsSettings};

/// Response headers a browser script may read.
const EXPOSED: [&str; 5] = [
    "x-request-id",
    "x-switchyard-cache",
    "x-switchyard-provider",
    "x-switchyard-attempts",
    "retry-after",
];

/// The `tower_http` layer for validated settings (validation has checked
/// every origin and header name, so nothing is dropped here in practice).
pub(crate) fn layer(s: &CorsSettings) -> CorsLayer {
    let origins = match &s.allowed_origins {
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    let headers = match &s.allowed_headers {
        None => AllowHeaders::mirror_request(),
        Some(list) if list.iter().any(|h| h == "*") => AllowHeaders::any(),
        Some(list) => AllowHeaders::list(
            list.iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        ),
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(headers)
        .expose_headers(ExposeHeaders::list(EXPOSED.map(HeaderName::from_static)))
        .max_age(s.max_age)
}

/// The CORS step: the `CorsLayer` that `current` gives for a request
/// around `inner`, or `inner` alone when it gives none (no `server.cors`).
/// `on_preflight` is told of each preflight before it is answered.
pub(super) fn live<S, C, B>(current: C, on_preflight: fn(&Request<B>), inner: S) -> Live<S, C, B> {
    Live {
        current,
        on_preflight,
        inner,
    }
}

/// The step (see [`live`]). Without CORS a request goes straight to
/// `inner` and its future is `inner`'s; with it, the request's work is
/// boxed.
pub(super) struct Live<S, C, B> {
    current: C,
    on_preflight: fn(&Request<B>),
    inner: S,
}

impl<S: Clone, C: Clone, B> Clone for Live<S, C, B> {
    fn clone(&self) -> Self {
        Live {
            current: self.current.clone(),
            on_preflight: self.on_preflight,
            inner: self.inner.clone(),
        }
    }
}

impl<S, C, B, RB> Service<Request<B>> for Live<S, C, B>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    C: Fn() -> Option<CorsLayer>,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(layer) = (self.current)() else {
            return Either::Left(self.inner.call(req));
        };
        // The inner service was made ready for this call: take it, leave
        // a fresh clone. Layering clones the settings' few header values:
        // cheap, and only when CORS is on.
        let clone = self.inner.clone();
        let cors = layer.layer(std::mem::replace(&mut self.inner, clone));
        let on_preflight = self.on_preflight;
        Either::Right(Box::pin(async move {
            // `tower_http` answers every OPTIONS as a preflight.
            let preflight = req.method() == Method::OPTIONS;
            if preflight {
                on_preflight(&req);
            }
            let mut response = cors.oneshot(req).await?;
            if preflight {
                *response.status_mut() = StatusCode::NO_CONTENT;
            }
            Ok(response)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn header<'a>(r: &'a Response<String>, name: &str) -> Option<&'a str> {
        r.headers().get(name).and_then(|v| v.to_str().ok())
    }

    async fn call(settings: &CorsSettings, req: Request<()>) -> Response<String> {
        let svc = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new("ok".to_string()))
        });
        layer(settings).layer(svc).oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn allowed_origins_only_and_exposed_headers() {
        let s = CorsSettings {
            allowed_origins: AllowedOrigins::List(vec!["https://app.example".into()]),
            allowed_headers: Some(vec!["content-type".into(), "authorization".into()]),
            max_age: Duration::from_secs(600),
        };
        let req = |origin: &str| {
            Request::post("/v1/chat/completions")
                .header("origin", origin)
                .body(())
                .unwrap()
        };
        let ok = call(&s, req("https://app.example")).await;
        assert_eq!(
            header(&ok, "access-control-allow-origin"),
            Some("https://app.example")
        );
        let exposed = header(&ok, "access-control-expose-headers").unwrap();
        for h in EXPOSED {
            assert!(exposed.contains(h), "{exposed}");
        }
        let other = call(&s, req("https://evil.example")).await;
        assert_eq!(header(&other, "access-control-allow-origin"), None);
        let preflight = Request::options("/v1/chat/completions")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .body(())
            .unwrap();
        let pre = call(&s, preflight).await;
        assert_eq!(pre.body(), "", "answered without calling the service");
        assert_eq!(header(&pre, "access-control-max-age"), Some("600"));
        assert_eq!(
            header(&pre, "access-control-allow-headers"),
            Some("content-type,authorization")
        );
    }
}
