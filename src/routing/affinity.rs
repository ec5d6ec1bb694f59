//! Prompt-cache affinity: which target served each recent conversation of
//! a route, so its next turns go there while the provider's prompt cache
//! for it is warm.
//!
//! Place in the pipeline: a route with `affinity` keeps one [`Affinity`]
//! (built by `table`, kept over reloads while its settings are unchanged).
//! `plan` looks the call's conversation key up ([`Affinity::get`]) and puts
//! that target first when it is usable, healthy and not saturated (so
//! affinity yields to failover, breakers and the bulkhead); `run` records
//! the target that answered ([`Affinity::set`]), which is how a
//! conversation moves when its target failed. Entries unused for `ttl` are
//! forgotten (checked on `tokio::time`); at `max_entries` expired entries
//! are swept, then an eighth of the rest is dropped. Must not know how a
//! conversation key is made (the endpoint makes it) or judge health.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::config::AffinitySpec;

/// A target, as affinity remembers it (its provider and model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub provider: Arc<str>,
    pub model: Arc<str>,
}

#[derive(Debug)]
struct Entry {
    pin: Pin,
    used: Instant,
}

/// A route's conversations and the targets that served them.
#[derive(Debug)]
pub struct Affinity {
    spec: AffinitySpec,
    map: Mutex<HashMap<u64, Entry>>,
}

impl Affinity {
    pub fn new(spec: AffinitySpec) -> Self {
        Affinity {
            spec,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn spec(&self) -> &AffinitySpec {
        &self.spec
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The target that last served conversation `key`, unless forgotten.
    pub fn get(&self, key: u64) -> Option<Pin> {
        let now = Instant::now();
        let mut map = self.lock();
        let entry = map.get(&key)?;
        if now.saturating_duration_since(entry.used) > self.spec.ttl {
            map.remove(&key);
            return None;
        }
        Some(entry.pin.clone())
    }

    /// Conversation `key` was served by `pin`.
    pub fn set(&self, key: u64, pin: Pin) {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(entry) = map.get_mut(&key) {
            if entry.pin != pin {
                entry.pin = pin;
            }
            entry.used = now;
            return;
        }
        if map.len() >= self.spec.max_entries {
            let ttl = self.spec.ttl;
            map.retain(|_, e| now.saturating_duration_since(e.used) <= ttl);
            if map.len() >= self.spec.max_entries {
                let drop = (map.len() / 8).max(1);
                let victims: Vec<u64> = map.keys().take(drop).copied().collect();
                for k in victims {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, Entry { pin, used: now });
    }

    /// Conversations remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AffinityBy;
    use std::time::Duration;

    fn pin(p: &str) -> Pin {
        Pin {
            provider: Arc::from(p),
            model: Arc::from("m"),
        }
    }

    fn affinity(max_entries: usize) -> Affinity {
        Affinity::new(AffinitySpec {
            by: AffinityBy::User,
            ttl: Duration::from_secs(60),
            max_entries,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_conversation_keeps_its_target_until_it_moves_or_expires() {
        let a = affinity(100);
        assert_eq!(a.get(1), None);
        a.set(1, pin("p0"));
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(a.get(1), Some(pin("p0")));
        // Served elsewhere (its target failed): it moves.
        a.set(1, pin("p1"));
        assert_eq!(a.get(1), Some(pin("p1")));
        // Each use keeps it alive; a minute unused forgets it.
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(a.get(1), Some(pin("p1")));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(a.get(1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded() {
        let a = affinity(16);
        for k in 0..16 {
            a.set(k, pin("p0"));
        }
        assert_eq!(a.len(), 16);
        a.set(100, pin("p1"));
        assert!(a.len() <= 16, "{}", a.len());
        assert_eq!(a.get(100), Some(pin("p1")), "the newest is kept");
        // Expired entries go first.
        tokio::time::advance(Duration::from_secs(61)).await;
        a.set(200, pin("p1"));
        a.set(201, pin("p1"));
        assert_eq!(a.len(), 2, "full: the expired ones were swept");
    }
}
