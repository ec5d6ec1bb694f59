//! Unit tests of the response cache (`mod.rs`).

use super::*;

#[tokio::test(start_paused = true)]
async fn entries_expire_on_tokio_time() {
    let c = ResponseCache::new(1 << 20, 1 << 20);
    let k = CacheKey::embedding("r", "{}", "\"a\"");
    let v = Payload::Embedding(Arc::from(vec![1.0, 2.0]));
    assert!(
        c.insert(k, v, Duration::from_secs(10), Duration::ZERO)
            .await
    );
    assert!(c.get(&k).await.is_some());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(c.get(&k).await.is_none());
}

#[tokio::test]
async fn stays_within_its_byte_budget() {
    let c = ResponseCache::new(64 * 1024, 4096);
    for i in 0..200 {
        let v = Payload::Embedding(Arc::from(vec![0.5; 256])); // ~1 KiB each
        let k = CacheKey::embedding("r", "{}", &i.to_string());
        c.insert(k, v, Duration::from_secs(60), Duration::ZERO)
            .await;
    }
    let (bytes, entries) = c.usage().await;
    assert!(bytes <= 64 * 1024, "{bytes}");
    assert!(entries < 200 && entries > 0, "{entries}");
}

#[tokio::test]
async fn oversized_entries_are_not_kept_and_keys_ignore_key_order() {
    let c = ResponseCache::new(1 << 20, 100);
    let k = CacheKey::embedding("r", "{}", "big");
    let v = Payload::Embedding(Arc::from(vec![0.5; 100]));
    assert!(
        !c.insert(k, v, Duration::from_secs(60), Duration::ZERO)
            .await
    );
    assert!(c.get(&k).await.is_none());
    let a: serde_json::Value =
        serde_json::from_str(r#"{"a":1,"b":{"x":[1,{"q":2,"p":3}]}}"#).unwrap();
    let b: serde_json::Value =
        serde_json::from_str(r#"{"b":{"x":[1,{"p":3,"q":2}]},"a":1}"#).unwrap();
    let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
    assert_eq!(CacheKey::chat("r", a), CacheKey::chat("r", b));
    assert_ne!(CacheKey::chat("r", a), CacheKey::chat("other", a));
}
