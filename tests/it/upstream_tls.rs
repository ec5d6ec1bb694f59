//! HTTPS upstreams, with the real binary: the gateway trusts a CA the
//! system store names (`SSL_CERT_FILE`), speaks HTTP/2 where the upstream
//! offers it by ALPN, and refuses a certificate no trusted CA signed.

use crate::common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::redis_managed::certificates;
use common::served::Served;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// An OpenAI-compatible upstream over TLS (HTTP/2 or HTTP/1.1 by ALPN),
/// recording the HTTP version of each request; and the CA's PEM.
async fn tls_upstream() -> (Arc<Mutex<Vec<http::Version>>>, String, String) {
    let (ca, cert, key) = certificates();
    let certs = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let versions = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&versions);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    seen.lock().unwrap().push(req.version());
                    let answer = json!({"id": "c", "object": "chat.completion", "created": 1,
                        "model": "m", "choices": [{"index": 0, "message": {"role": "assistant",
                        "content": "over tls"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
                    let response = hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(answer.to_string())))
                        .unwrap();
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (
        versions,
        format!("https://127.0.0.1:{}/v1", addr.port()),
        ca,
    )
}

async fn serve(base: &str, env: &[(&str, &str)]) -> Served {
    let yaml = format!(
        "providers:\n  tls:\n    kind: openai\n    base_url: {base}\nroutes:\n  r:\n    targets: [{{provider: tls}}]\n"
    );
    Served::with_policy(&yaml, env).await
}

async fn chat(base: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "r", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_ca_the_system_store_names_is_trusted_and_http2_is_spoken() {
    let (versions, base, ca) = tls_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let served = serve(&base, &[("SSL_CERT_FILE", ca_file.to_str().unwrap())]).await;
    for _ in 0..3 {
        let (status, body) = chat(&served.base).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "over tls");
    }
    assert_eq!(*versions.lock().unwrap(), vec![http::Version::HTTP_2; 3]);
    served.stop().await;
}

#[tokio::test]
async fn a_certificate_no_trusted_ca_signed_is_refused() {
    let (versions, base, _ca) = tls_upstream().await;
    let served = serve(&base, &[]).await;
    let (status, body) = chat(&served.base).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("certificate"), "{message}");
    assert!(versions.lock().unwrap().is_empty());
    served.stop().await;
}
