//! The egress proxy the environment names, with the real binary: upstream
//! calls go through a `CONNECT` tunnel with the proxy URL's credentials,
//! and `NO_PROXY` sends a host straight to the upstream.

use crate::common;

use std::sync::{Arc, Mutex};

use common::served::Served;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A forward proxy that serves `CONNECT` only, recording each request head.
async fn connect_proxy() -> (Arc<Mutex<Vec<String>>>, String) {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                seen.lock().unwrap().push(head.clone());
                let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (heads, format!("127.0.0.1:{}", addr.port()))
}

async fn serve(up: &FakeUpstream, env: &[(&str, &str)]) -> Served {
    let yaml = format!(
        "{}routes:\n  r:\n    targets: [{{provider: p0}}]\n",
        providers_yaml(&[up], "")
    );
    Served::with_policy(&yaml, env).await
}

async fn chat(base: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "r", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn upstream_calls_go_through_the_proxy_the_environment_names() {
    let up = FakeUpstream::openai().await;
    let (heads, proxy) = connect_proxy().await;
    let url = format!("http://user:s3cret@{proxy}");
    let served = serve(&up, &[("HTTP_PROXY", &url)]).await;
    assert_eq!(chat(&served.base).await, 200);
    assert_eq!(up.calls(), 1);
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let upstream = up.base_url();
    let host = upstream
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    assert!(
        heads[0].starts_with(&format!("CONNECT {host} HTTP/1.1\r\n")),
        "{heads:?}"
    );
    // user:s3cret
    assert!(
        heads[0].contains("proxy-authorization: Basic dXNlcjpzM2NyZXQ=\r\n")
            || heads[0].contains("Proxy-Authorization: Basic dXNlcjpzM2NyZXQ=\r\n"),
        "{heads:?}"
    );
    served.stop().await;
}

#[tokio::test]
async fn no_proxy_sends_a_host_straight_to_the_upstream() {
    let up = FakeUpstream::openai().await;
    let (heads, proxy) = connect_proxy().await;
    let url = format!("http://{proxy}");
    let env = [
        ("HTTPS_PROXY", url.as_str()),
        ("HTTP_PROXY", &url),
        ("NO_PROXY", "127.0.0.1"),
    ];
    let served = serve(&up, &env).await;
    assert_eq!(chat(&served.base).await, 200);
    assert_eq!(up.calls(), 1);
    assert!(heads.lock().unwrap().is_empty());
    served.stop().await;
}
