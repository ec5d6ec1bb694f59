//! Scrubs configured secrets out of what an upstream sends back.
//!
//! Place in the pipeline: each provider builds one [`Scrubber`] from its own
//! secrets (API key, custom header values) and runs every upstream error body
//! through it before the body can reach a client, a log line or a metric.
//! Some providers and proxies quote the request's `Authorization` header in
//! their error messages; others echo a truncated key. So a secret is removed
//! whole, and so is any fragment of it of [`MIN_FRAGMENT`] bytes or more.
//! Must not allocate when there is nothing to scrub (the common case).

use std::collections::HashSet;

use bytes::Bytes;

/// Fragments of a secret at least this long are scrubbed.
pub const MIN_FRAGMENT: usize = 12;
/// Secrets shorter than this are too generic to look for (say `v1`).
const MIN_SECRET: usize = 6;
const MASK: &[u8] = b"***";

#[derive(Default)]
pub struct Scrubber {
    /// Whole secrets shorter than `MIN_FRAGMENT`.
    short: Vec<Vec<u8>>,
    /// Every `MIN_FRAGMENT`-byte window of the longer secrets.
    windows: HashSet<Vec<u8>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrubber(***)")
    }
}

impl Scrubber {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut s = Scrubber::default();
        for secret in secrets.into_iter().map(str::as_bytes) {
            if secret.len() < MIN_SECRET {
                continue;
            }
            if secret.len() < MIN_FRAGMENT {
                s.short.push(secret.to_vec());
            } else {
                s.windows
                    .extend(secret.windows(MIN_FRAGMENT).map(<[u8]>::to_vec));
            }
        }
        s
    }

    /// `body` with every secret and secret fragment replaced by `***`;
    /// the same `Bytes` (no copy) when it holds none.
    pub fn scrub(&self, body: Bytes) -> Bytes {
        let mut mask: Option<Vec<bool>> = None;
        let mut mark = |from: usize, len: usize| {
            let m = mask.get_or_insert_with(|| vec![false; body.len()]);
            m[from..from + len].iter_mut().for_each(|b| *b = true);
        };
        if !self.windows.is_empty() {
            for (i, w) in body.windows(MIN_FRAGMENT).enumerate() {
                if self.windows.contains(w) {
                    mark(i, MIN_FRAGMENT);
                }
            }
        }
        for secret in &self.short {
            for (i, w) in body.windows(secret.len()).enumerate() {
                if w == secret.as_slice() {
                    mark(i, secret.len());
                }
            }
        }
        let Some(mask) = mask else {
            return body;
        };
        let mut out = Vec::with_capacity(body.len());
        let mut i = 0;
        while i < body.len() {
            if mask[i] {
                out.extend_from_slice(MASK);
                while i < body.len() && mask[i] {
                    i += 1;
                }
            } else {
                out.push(body[i]);
                i += 1;
            }
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

    #[test]
    fn removes_whole_secrets_and_long_fragments() {
        let s = Scrubber::new([KEY, "org-12345", "x"]);
        let body = format!(
            r#"{{"error":{{"message":"bad header Authorization: Bearer {KEY} for org-12345; key starts {}..."}}}}"#,
            &KEY[..20]
        );
        let out = s.scrub(Bytes::from(body));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(!text.contains(&KEY[..MIN_FRAGMENT]), "{text}");
        assert!(!text.contains("org-12345"), "{text}");
        assert!(text.contains("Bearer ***"), "{text}");
        assert!(text.contains("key starts ***..."), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text).is_ok());
    }

    #[test]
    fn leaves_clean_bodies_untouched_and_short_fragments_alone() {
        let s = Scrubber::new([KEY]);
        let body = Bytes::from(format!("key ends with {}", &KEY[KEY.len() - 4..]));
        let out = s.scrub(body.clone());
        assert_eq!(out, body);
        assert_eq!(out.as_ptr(), body.as_ptr(), "no copy when clean");
    }
}
