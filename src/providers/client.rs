//! The HTTP client of one provider: hyper's pool over TLS, the request's
//! own task over plain HTTP/1, and the request and response types every
//! HTTP provider kind uses.
//!
//! Place in the pipeline: under [`super::upstream::Upstream`], which sends
//! every request and applies the timeouts after connect. An `https://`
//! request goes through hyper's own pooled client with nothing on top; an
//! `http://` one through [`super::client_h1`] (no task per connection).
//! Neither adds anything: no redirects (an upstream's
//! redirect is an answer like any other), no URL re-parsing (a
//! [`http::Uri`] parsed once can be sent again). Connections leave through
//! [`super::client_egress`] (TLS, HTTP/2 by ALPN, the environment's egress
//! proxy) and are counted and capped by [`super::client_conn`]: never more
//! than the requests in flight. Must not retry, time a body or read one: that is
//! `upstream` and `body`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::UpstreamError;
use super::client_conn::{ConnectTimeout, Counted, Gauge, InFlight, NoSlot};
use super::client_egress::Egress;
use super::client_h1::{Driven, H1Error, H1Pool};
use super::pieces::Pieces;

type Connector = Counted<Egress>;

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(#[from] rustls::Error);

/// A pooled HTTP/1 and HTTP/2 client (cheap to share by reference).
#[derive(Debug)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<Connector, Pieces>,
    /// `http://` upstreams, driven by the request's own task.
    h1: Arc<H1Pool>,
    gauge: Arc<Gauge>,
}

/// Header entries a request's map has room for (the usable part of a
/// 16-slot table).
const HEADER_ROOM: usize = 12;

/// How long an idle upstream connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

impl Client {
    pub fn new(connect_timeout: Duration) -> Result<Self, ClientError> {
        let gauge = Arc::new(Gauge::default());
        let egress = Egress::from_env()?;
        let h1 = H1Pool::new(
            egress.clone(),
            Arc::clone(&gauge),
            connect_timeout,
            IDLE_TIMEOUT,
        );
        let connector = Counted {
            inner: egress,
            gauge: Arc::clone(&gauge),
            timeout: connect_timeout,
        };
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http1_max_buf_size(super::client_h1_conn::READ_BUFFER_MAX)
            .build(connector);
        Ok(Client { inner, h1, gauge })
    }

    /// A `POST` to `uri`.
    pub fn post<U>(&self, uri: U) -> RequestBuilder
    where
        U: TryInto<http::Uri>,
        U::Error: Into<http::Error>,
    {
        self.request(http::Method::POST, uri)
    }

    /// A `method` request to `uri`.
    pub fn request<U>(&self, method: http::Method, uri: U) -> RequestBuilder
    where
        U: TryInto<http::Uri>,
        U::Error: Into<http::Error>,
    {
        RequestBuilder {
            method,
            uri: uri.try_into().map_err(Into::into),
            // Room for a provider's headers and the host, and for the
            // answer's: hyper parses the answer's headers into this map
            // once the request is written. Grown one insert at a time, it
            // was reallocated twice per request.
            headers: http::HeaderMap::with_capacity(HEADER_ROOM),
            body: Pieces::empty(),
        }
    }

    /// Connections open now (the `switchyard_provider_upstream_connections` gauge).
    pub fn open_connections(&self) -> usize {
        self.gauge.open()
    }

    /// Sends `request` and waits for the answer's headers.
    pub async fn execute(&self, request: RequestBuilder) -> Result<Response, UpstreamError> {
        let uri = request
            .uri
            .map_err(|e| UpstreamError::Protocol(root_cause(&e)))?;
        let mut req = http::Request::new(request.body);
        *req.method_mut() = request.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = request.headers;
        let in_flight = self.gauge.in_flight();
        if req.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
            let (head, body) = self.h1.send(req).await.map_err(classify_h1)?;
            return Ok(Response {
                head,
                body: Live::Driven(body, in_flight),
            });
        }
        let answer = self.inner.request(req).await.map_err(classify_send)?;
        let (head, body) = answer.into_parts();
        Ok(Response {
            head,
            body: Live::Hyper(body, in_flight),
        })
    }
}

/// A request being put together (see [`Client::post`]).
#[derive(Debug)]
pub struct RequestBuilder {
    method: http::Method,
    uri: Result<http::Uri, http::Error>,
    headers: http::HeaderMap,
    body: Pieces,
}

impl RequestBuilder {
    /// A request made elsewhere (a signed one).
    pub fn from_http(request: http::Request<Bytes>) -> Self {
        let (parts, body) = request.into_parts();
        RequestBuilder {
            method: parts.method,
            uri: Ok(parts.uri),
            headers: parts.headers,
            body: body.into(),
        }
    }

    /// Adds `headers`, each name's values replacing any of the same name.
    /// The values are shared, not copied. One pass over the map, which
    /// yields each name's values one after the other: no lookup of a name
    /// in it (two per header, when looked up by name).
    pub fn headers(mut self, headers: &http::HeaderMap) -> Self {
        let mut last: Option<&http::HeaderName> = None;
        for (name, value) in headers {
            if last == Some(name) {
                self.headers.append(name.clone(), value.clone());
            } else {
                self.headers.insert(name.clone(), value.clone());
                last = Some(name);
            }
        }
        self
    }

    pub fn header(mut self, name: http::HeaderName, value: http::HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub fn body(mut self, body: impl Into<Pieces>) -> Self {
        self.body = body.into();
        self
    }
}

/// Reading an answer's body failed (the connection broke, a malformed chunk).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BodyError(Box<dyn std::error::Error + Send + Sync>);

/// An upstream answer: its head, and a body that counts as in flight until
/// it is read or dropped.
#[derive(Debug)]
pub struct Response {
    head: http::response::Parts,
    body: Live,
}

#[derive(Debug)]
enum Live {
    Hyper(Incoming, InFlight),
    Driven(Driven, InFlight),
    #[cfg(test)]
    Chunks(Vec<Bytes>),
}

impl Response {
    pub fn status(&self) -> http::StatusCode {
        self.head.status
    }

    pub fn headers(&self) -> &http::HeaderMap {
        &self.head.headers
    }

    /// The body's length when the answer declares it.
    pub fn content_length(&self) -> Option<u64> {
        match &self.body {
            Live::Hyper(body, _) => body.size_hint().exact(),
            Live::Driven(body, _) => body.size_hint().exact(),
            #[cfg(test)]
            Live::Chunks(c) => Some(c.iter().map(|b| b.len() as u64).sum()),
        }
    }

    /// The body as a stream of its data.
    pub fn bytes_stream(self) -> BoxStream<'static, Result<Bytes, BodyError>> {
        match self.body {
            Live::Hyper(body, in_flight) => Data {
                body,
                _in_flight: in_flight,
            }
            .boxed(),
            Live::Driven(body, in_flight) => Data {
                body,
                _in_flight: in_flight,
            }
            .boxed(),
            #[cfg(test)]
            Live::Chunks(c) => futures_util::stream::iter(c.into_iter().map(Ok)).boxed(),
        }
    }

    /// Its headers, for unit tests of what reads them.
    #[cfg(test)]
    pub fn headers_mut(&mut self) -> &mut http::HeaderMap {
        &mut self.head.headers
    }

    /// A `200` whose body is `chunks` (for unit tests of body readers).
    #[cfg(test)]
    pub fn from_chunks(chunks: Vec<Bytes>) -> Self {
        let (head, ()) = http::Response::new(()).into_parts();
        Response {
            head,
            body: Live::Chunks(chunks),
        }
    }
}

/// The data frames of a body (trailers are skipped), in flight until dropped.
struct Data<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> futures_util::Stream for Data<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError(e.into())))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(data))),
                    Err(_trailers) => continue,
                },
            };
        }
    }
}

/// A failed send, classified (without the URL, which could carry a key).
fn classify_send(e: hyper_util::client::legacy::Error) -> UpstreamError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = cur {
        if err.is::<ConnectTimeout>() {
            return UpstreamError::Timeout("connect");
        }
        if err.is::<NoSlot>() {
            return UpstreamError::Connect(err.to_string());
        }
        cur = err.source();
    }
    if e.is_connect() {
        UpstreamError::Connect(root_cause(&e))
    } else {
        UpstreamError::Protocol(root_cause(&e))
    }
}

/// A failed send of an `http://` request, classified as [`classify_send`]
/// does.
fn classify_h1(e: H1Error) -> UpstreamError {
    match e {
        H1Error::Connect(e) if e.is::<ConnectTimeout>() => UpstreamError::Timeout("connect"),
        H1Error::Connect(e) => UpstreamError::Connect(root_cause(&*e)),
        H1Error::Send(e) => UpstreamError::Protocol(root_cause(&e)),
    }
}

/// A body read that failed.
pub fn classify_body(e: BodyError) -> UpstreamError {
    UpstreamError::Protocol(root_cause(&e))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};

    /// A name the builder had is replaced by the map's values, a name
    /// the map has twice keeps both in order, and the rest stays.
    #[test]
    fn added_headers_replace_their_names_and_keep_every_value() {
        let client = super::Client::new(std::time::Duration::from_secs(1)).unwrap();
        let mut extra = HeaderMap::new();
        extra.insert(AUTHORIZATION, HeaderValue::from_static("Bearer new"));
        extra.append("x-many", HeaderValue::from_static("1"));
        extra.append("x-many", HeaderValue::from_static("2"));
        extra.insert("x-one", HeaderValue::from_static("a"));
        let built = client
            .post("http://127.0.0.1:1/")
            .header(AUTHORIZATION, HeaderValue::from_static("Bearer old"))
            .header("x-many".parse().unwrap(), HeaderValue::from_static("0"))
            .header("x-kept".parse().unwrap(), HeaderValue::from_static("k"))
            .headers(&extra);
        let values = |name: &str| -> Vec<&str> {
            built
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(values("authorization"), ["Bearer new"]);
        assert_eq!(values("x-many"), ["1", "2"]);
        assert_eq!(values("x-one"), ["a"]);
        assert_eq!(values("x-kept"), ["k"]);
    }
}
