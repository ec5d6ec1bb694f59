//! The shared cache's value format: a [`Payload`] and its expiry as bytes.
//!
//! Place in the pipeline: used by [`super::ResponseCache`] when the cache
//! has a shared tier (Redis): entries written by one replica are read by
//! another, so the format is explicit and versioned by its first byte, not
//! a Rust layout. Layout: tag (1 byte), expiry as Unix milliseconds (8, LE),
//! then per tag: chat `provider_len u16 | provider | body`; stream `usage u8
//! | provider_len u16 | provider | events`; embedding `f32 LE...`; score `f64
//! LE`. Must not panic on bytes from elsewhere: anything malformed decodes
//! to `None` (a miss).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use super::Payload;

const CHAT: u8 = 1;
const STREAM: u8 = 2;
const EMBEDDING: u8 = 3;
const SCORE: u8 = 4;

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn put_provider(out: &mut BytesMut, provider: &str) {
    let p = &provider.as_bytes()[..provider.len().min(u16::MAX as usize)];
    out.put_u16_le(p.len() as u16);
    out.put_slice(p);
}

/// `payload` with `ttl` from now, as bytes for the shared tier.
pub(super) fn encode(payload: &Payload, ttl: Duration) -> Bytes {
    let expires = unix_ms(SystemTime::now() + ttl);
    let mut out = BytesMut::with_capacity(payload.size() + 16);
    match payload {
        Payload::Chat { body, provider } => {
            out.put_u8(CHAT);
            out.put_u64_le(expires);
            put_provider(&mut out, provider);
            out.put_slice(body);
        }
        Payload::ChatStream {
            events,
            provider,
            usage,
        } => {
            out.put_u8(STREAM);
            out.put_u64_le(expires);
            out.put_u8(u8::from(*usage));
            put_provider(&mut out, provider);
            out.put_slice(events);
        }
        Payload::Embedding(v) => {
            out.put_u8(EMBEDDING);
            out.put_u64_le(expires);
            for x in v.iter() {
                out.put_f32_le(*x);
            }
        }
        Payload::Score(s) => {
            out.put_u8(SCORE);
            out.put_u64_le(expires);
            out.put_f64_le(*s);
        }
    }
    out.freeze()
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

fn provider(b: &mut &[u8]) -> Option<Arc<str>> {
    let len = u16::from_le_bytes(take(b, 2)?.try_into().ok()?) as usize;
    std::str::from_utf8(take(b, len)?).ok().map(Arc::from)
}

/// The payload and its time left, or `None` for malformed or expired bytes.
pub(super) fn decode(bytes: &[u8]) -> Option<(Payload, Duration)> {
    let (payload, expires) = decode_any(bytes)?;
    let left = Duration::from_millis(expires.checked_sub(unix_ms(SystemTime::now()))?);
    (!left.is_zero()).then_some((payload, left))
}

/// The payload if it is fresh or expired at most `max_stale` ago.
pub(super) fn decode_stale(bytes: &[u8], max_stale: Duration) -> Option<Payload> {
    let (payload, expires) = decode_any(bytes)?;
    let until = expires.saturating_add(max_stale.as_millis() as u64);
    (unix_ms(SystemTime::now()) < until).then_some(payload)
}

/// The payload and its expiry (Unix milliseconds), expired or not.
fn decode_any(bytes: &[u8]) -> Option<(Payload, u64)> {
    let mut b = bytes;
    let tag = take(&mut b, 1)?[0];
    let expires = u64::from_le_bytes(take(&mut b, 8)?.try_into().ok()?);
    let payload = match tag {
        CHAT => {
            let provider = provider(&mut b)?;
            Payload::Chat {
                body: Bytes::copy_from_slice(b),
                provider,
            }
        }
        STREAM => {
            let usage = take(&mut b, 1)?[0] == 1;
            let provider = provider(&mut b)?;
            Payload::ChatStream {
                events: Bytes::copy_from_slice(b),
                provider,
                usage,
            }
        }
        EMBEDDING if b.len().is_multiple_of(4) => Payload::Embedding(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        SCORE if b.len() == 8 => Payload::Score(f64::from_le_bytes(b.try_into().ok()?)),
        _ => return None,
    };
    Some((payload, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payload_round_trips_and_garbage_is_a_miss() {
        let ttl = Duration::from_secs(60);
        let payloads = [
            Payload::Chat {
                body: Bytes::from_static(b"{\"id\":1}"),
                provider: Arc::from("p"),
            },
            Payload::ChatStream {
                events: Bytes::from_static(b"data: [DONE]\n\n"),
                provider: Arc::from("q"),
                usage: true,
            },
            Payload::Embedding(Arc::from(vec![1.5f32, -2.0, 0.0])),
            Payload::Score(0.25),
        ];
        for p in payloads {
            let (back, left) = decode(&encode(&p, ttl)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{p:?}"));
            assert!(left <= ttl && left > Duration::from_secs(50), "{left:?}");
        }
        assert!(decode(b"").is_none());
        assert!(decode(&[EMBEDDING, 0, 0, 0, 0, 0, 0, 0, 0, 1]).is_none());
        let mut stale = encode(&Payload::Score(1.0), ttl).to_vec();
        stale[1..9].copy_from_slice(&1u64.to_le_bytes());
        assert!(decode(&stale).is_none());
        assert!(decode_stale(&stale, Duration::from_secs(3600)).is_none());
        let an_hour_ago = unix_ms(SystemTime::now()) - 3_600_000;
        stale[1..9].copy_from_slice(&an_hour_ago.to_le_bytes());
        assert!(decode(&stale).is_none(), "expired");
        assert!(decode_stale(&stale, Duration::from_secs(7200)).is_some());
        assert!(decode_stale(&stale, Duration::from_secs(1800)).is_none());
        let mut bad = encode(&Payload::Score(1.0), ttl).to_vec();
        bad[0] = 99;
        assert!(decode(&bad).is_none());
    }
}
