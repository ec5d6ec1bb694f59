//! A request's conversation key, for prompt-cache affinity: what makes two
//! requests "the same conversation" in the wire formats the gateway speaks.
//!
//! Place in the pipeline: `server` computes [`conversation_key`] once per
//! request on a route with `affinity`, from the parsed body (and the chosen
//! header's value), and hands it to routing inside the call. By `user`: the
//! body's `prompt_cache_key`, `safety_identifier` or `user` (Messages:
//! `metadata.user_id`), the first present; by `header`: the header's
//! value; by `prefix`: a hash of the system prompt (`system`,
//! `instructions`) and the leading `n` messages (`messages`, or the
//! Responses API's `input` list), which providers' prompt caches key on
//! too. The hash walks the JSON values without serialising them. Must not
//! keep or log what it hashes.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value};

use crate::config::AffinityBy;

/// The conversation key of a request body, per `by`; `header` is the value
/// of the chosen header, when `by` names one. `None`: no key (the request
/// is routed by the strategy alone).
pub fn conversation_key(
    by: &AffinityBy,
    body: &Map<String, Value>,
    header: Option<&[u8]>,
) -> Option<u64> {
    let mut h = DefaultHasher::new();
    match by {
        AffinityBy::Header(_) => {
            let value = header.filter(|v| !v.is_empty())?;
            0u8.hash(&mut h);
            value.hash(&mut h);
        }
        AffinityBy::User => {
            let user = ["prompt_cache_key", "safety_identifier", "user"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_str))
                .or_else(|| {
                    body.get("metadata")
                        .and_then(|m| m.get("user_id"))
                        .and_then(Value::as_str)
                })
                .filter(|u| !u.is_empty())?;
            1u8.hash(&mut h);
            user.hash(&mut h);
        }
        AffinityBy::Prefix(n) => {
            let messages = body
                .get("messages")
                .or_else(|| body.get("input"))
                .and_then(Value::as_array)?;
            2u8.hash(&mut h);
            for key in ["system", "instructions"] {
                if let Some(v) = body.get(key) {
                    hash_value(v, &mut h);
                }
            }
            for m in messages.iter().take(*n) {
                hash_value(m, &mut h);
            }
        }
    }
    Some(h.finish())
}

/// Hashes a JSON value by its content (object keys in their stored order,
/// which serde_json keeps sorted).
fn hash_value(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, n.to_string()).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            for i in items {
                hash_value(i, h);
            }
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(h);
            for (k, v) in map {
                k.hash(h);
                hash_value(v, h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_same_user_or_leading_messages_make_the_same_key() {
        let turn1 = body(json!({"user": "u1", "messages": [
            {"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]}));
        let turn2 = body(json!({"user": "u1", "messages": [
            {"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]}));
        let other = body(json!({"user": "u2", "messages": [{"role": "user", "content": "hi"}]}));
        let by_user = AffinityBy::User;
        assert_eq!(
            conversation_key(&by_user, &turn1, None),
            conversation_key(&by_user, &turn2, None)
        );
        assert_ne!(
            conversation_key(&by_user, &turn1, None),
            conversation_key(&by_user, &other, None)
        );
        let by_prefix = AffinityBy::Prefix(2);
        assert_eq!(
            conversation_key(&by_prefix, &turn1, None),
            conversation_key(&by_prefix, &turn2, None)
        );
        assert_ne!(
            conversation_key(&by_prefix, &turn1, None),
            conversation_key(&by_prefix, &other, None)
        );
        assert_ne!(
            conversation_key(&AffinityBy::Prefix(4), &turn1, None),
            conversation_key(&AffinityBy::Prefix(4), &turn2, None)
        );
    }

    #[test]
    fn keys_come_from_each_dialect_or_the_header_and_can_be_absent() {
        let cache_key = body(json!({"prompt_cache_key": "k", "user": "u"}));
        let user = body(json!({"user": "k"}));
        assert_ne!(
            conversation_key(&AffinityBy::User, &cache_key, None),
            None,
            "prompt_cache_key comes first"
        );
        let messages_api = body(json!({"metadata": {"user_id": "k"}, "messages": []}));
        assert_eq!(
            conversation_key(&AffinityBy::User, &messages_api, None),
            conversation_key(&AffinityBy::User, &user, None)
        );
        assert_eq!(
            conversation_key(&AffinityBy::User, &body(json!({})), None),
            None
        );
        let h = AffinityBy::Header("x-session".into());
        assert!(conversation_key(&h, &user, Some(b"s1")).is_some());
        assert_eq!(conversation_key(&h, &user, None), None);
        assert_ne!(
            conversation_key(&h, &user, Some(b"s1")),
            conversation_key(&h, &user, Some(b"s2"))
        );
    }
}
