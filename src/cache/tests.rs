//! Unit tests of the response cache (`mod.rs`).

use super::housekeeping::heap_size;
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

#[test]
fn payloads_weigh_the_size_class_their_allocation_takes() {
    for (n, class) in [
        (0, 0),
        (1, 8),
        (48, 48),
        (64, 64),
        (65, 80),
        (128, 128),
        (129, 160),
        (300, 320),
        (1000, 1024),
        (6144, 6144),
        (6160, 7168),
        (100_000, 114_688),
    ] {
        assert_eq!(heap_size(n), class, "{n} bytes");
    }
    // A 1,536-dimension vector: 6 KiB of floats and an `Arc`'s counts.
    let v = Payload::Embedding(Arc::from(vec![0.0; 1536]));
    assert_eq!(v.weight(), 7168);
    let body = Bytes::from(vec![b'x'; 300]);
    let chat = Payload::Chat {
        body,
        provider: "openai".into(),
    };
    assert_eq!(chat.weight(), 320 + 6);
}
