//! How a provider's connections leave the machine: straight to the
//! upstream, or through the egress proxy the environment names.
//!
//! Place in the pipeline: the innermost connector of [`super::client`],
//! under the connection count of [`super::client_conn`]. TLS is rustls
//! (ring) trusting the Mozilla roots and the system's store, offering
//! HTTP/2 and HTTP/1.1 by ALPN. The
//! proxy is read, as curl reads it, from `HTTPS_PROXY` / `HTTP_PROXY` /
//! `ALL_PROXY` (and their lower-case forms) with `NO_PROXY` exempting
//! hosts, once when the provider is built; a proxied connection is a
//! `CONNECT` tunnel (with the proxy URL's credentials as
//! `Proxy-Authorization`), TLS to the upstream running inside it. Must not
//! read or write a request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector: direct, or tunnelled through the environment's proxy.
#[derive(Clone)]
pub(super) struct Egress {
    direct: HttpsConnector<HttpConnector>,
    tcp: HttpConnector,
    /// The TLS settings with ALPN, for connections inside a tunnel.
    tls: Arc<rustls::ClientConfig>,
    proxies: Option<Arc<Matcher>>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("proxied", &self.proxies.is_some())
            .finish()
    }
}

impl Egress {
    /// The connector, with the proxies the environment names now.
    pub(super) fn from_env() -> Result<Self, rustls::Error> {
        let proxies = Matcher::from_env();
        let any = ["http://x.invalid/", "https://x.invalid/"]
            .iter()
            .any(|u| proxies.intercept(&http::Uri::from_static(u)).is_some());
        Self::new(any.then_some(proxies))
    }

    pub(super) fn new(proxies: Option<Matcher>) -> Result<Self, rustls::Error> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let base = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots())
        .with_no_client_auth();
        let mut tls = base.clone();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let direct = HttpsConnectorBuilder::new()
            .with_tls_config(base)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp.clone());
        Ok(Egress {
            direct,
            tcp,
            tls: Arc::new(tls),
            proxies: proxies.map(Arc::new),
        })
    }
}

/// The Mozilla roots, and the system's store: its bundle, or the files
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` name (where a company's own CA, or a
/// TLS-inspecting egress proxy's, is installed). A certificate the system
/// store holds that rustls cannot read is skipped.
fn roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    roots
}

impl tower::Service<http::Uri> for Egress {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Both ways connect on call; neither has anything to get ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let proxy = self.proxies.as_ref().and_then(|m| m.intercept(&uri));
        match proxy {
            None => {
                let connecting = self.direct.call(uri);
                Box::pin(connecting)
            }
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.tcp.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let mut https = HttpsConnector::from((tunnel, Arc::clone(&self.tls)));
                Box::pin(https.call(uri))
            }
        }
    }
}
