//! The Redis round trips: one script call, MGET or pipeline per operation,
//! each bounded by the store's timeout.
//!
//! Place in the pipeline: used by `shared.rs`, which decides what a failure
//! means. Keys are `{prefix}:b:{key}` (bucket hash, fields `l` level and `t`
//! µs timestamp, with a PEXPIRE so idle buckets vanish), `{prefix}:n:{key}`
//! (counter), `{prefix}:c:{hex digest}` (cache), `{prefix}:r:{key}` (a
//! stored Responses conversation, SET PX). Must not fall back, retry or log:
//! it reports, and marks the link broken on I/O errors and timeouts.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use redis::{RedisError, Script};
use tokio::time::Instant;

use super::connect::{Conn, Connector};
use super::link::Link;
use super::types::{Add, Adjust, Admit, Cap, StoreError, Take, Unavailable, Which};

pub(crate) struct Remote {
    link: Link,
    prefix: String,
    timeout: Duration,
    admit: Script,
    settle: Script,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the scripts' source.
        f.debug_struct("Remote")
            .field("link", &self.link)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Remote {
    pub(crate) fn new(
        connector: Connector,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let prefix = connector.key_prefix(prefix);
        Ok(Remote {
            link: Link::start(connector, timeout).ok_or(StoreError::NoRuntime)?,
            prefix,
            timeout,
            admit: Script::new(concat!(
                include_str!("bucket.lua"),
                include_str!("admit.lua")
            )),
            settle: Script::new(concat!(
                include_str!("bucket.lua"),
                include_str!("settle.lua")
            )),
        })
    }

    pub(crate) fn is_up(&self) -> bool {
        self.link.is_up()
    }

    fn key(&self, kind: &str, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + kind.len() + key.len() + 2);
        k.push_str(&self.prefix);
        k.push(':');
        k.push_str(kind);
        k.push(':');
        k.push_str(key);
        k
    }

    fn cache_key(&self, digest: &[u8; 32]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        self.key("c", &hex)
    }

    /// Runs one round trip within the timeout (waiting for a connection
    /// included); an I/O error or a timeout marks the connection broken.
    async fn round_trip<T, F, Fut>(&self, send: F) -> Result<T, Unavailable>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let deadline = Instant::now() + self.timeout;
        let (conn, generation) = self.link.get(self.timeout).await?;
        match tokio::time::timeout_at(deadline, send(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // READONLY: a master demoted by a failover; reconnecting
                // asks the sentinels for the new one.
                if e.is_io_error()
                    || e.is_unrecoverable_error()
                    || e.is_timeout()
                    || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
                {
                    self.link.broken(generation);
                }
                Err(Unavailable::Redis(e.to_string()))
            }
            Err(_) => {
                self.link.broken(generation);
                Err(Unavailable::Timeout(self.timeout))
            }
        }
    }

    /// The answer, and every cap's counter after the call (the last known
    /// spend, reservations included).
    pub(crate) async fn admit(
        &self,
        takes: &[Take<'_>],
        caps: &[Cap<'_>],
    ) -> Result<(Admit, Vec<u64>), Unavailable> {
        let mut call = self.admit.prepare_invoke();
        call.arg(takes.len());
        for t in takes {
            call.key(self.key("b", t.key))
                .arg(t.capacity)
                .arg(t.per_minute)
                .arg(t.amount);
        }
        for c in caps {
            let ttl_ms = u64::try_from(c.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            call.key(self.key("n", c.key))
                .arg(c.limit)
                .arg(c.amount.min(i64::MAX as u64))
                .arg(ttl_ms);
        }
        let reply: Vec<i64> = self
            .round_trip(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        let index = |i: i64, len: usize| {
            usize::try_from(i - 1)
                .ok()
                .filter(|&i| i < len)
                .ok_or(Unavailable::Reply("admit"))
        };
        let values = |v: &[i64]| -> Result<Vec<u64>, Unavailable> {
            if v.len() != caps.len() {
                return Err(Unavailable::Reply("admit"));
            }
            Ok(v.iter().map(|&n| n.max(0) as u64).collect())
        };
        match reply.as_slice() {
            [0, v @ ..] => Ok((Admit::Granted, values(v)?)),
            [1, i, wait, v @ ..] => Ok((
                Admit::Refused {
                    which: Which::Take(index(*i, takes.len())?),
                    wait: u64::try_from(*wait).ok().map(Duration::from_micros),
                },
                values(v)?,
            )),
            [2, i, v @ ..] => Ok((
                Admit::Refused {
                    which: Which::Cap(index(*i, caps.len())?),
                    wait: None,
                },
                values(v)?,
            )),
            _ => Err(Unavailable::Reply("admit")),
        }
    }

    pub(crate) async fn settle(
        &self,
        adjusts: &[Adjust<'_>],
        adds: &[Add<'_>],
    ) -> Result<Vec<u64>, Unavailable> {
        let mut call = self.settle.prepare_invoke();
        call.arg(adjusts.len());
        for a in adjusts {
            call.key(self.key("b", a.key))
                .arg(a.capacity)
                .arg(a.per_minute)
                .arg(a.delta);
        }
        for a in adds {
            // PEXPIRE 0 would delete.
            let amount = a.amount;
            let ttl_ms = u64::try_from(a.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            call.key(self.key("n", a.key)).arg(amount).arg(ttl_ms);
        }
        let totals: Vec<i64> = self
            .round_trip(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        if totals.len() != adds.len() {
            return Err(Unavailable::Reply("settle"));
        }
        Ok(totals.into_iter().map(|v| v.max(0) as u64).collect())
    }

    /// Counter values (0 for absent ones): one MGET.
    pub(crate) async fn counters(&self, keys: &[&str]) -> Result<Vec<u64>, Unavailable> {
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.key("n", k));
        }
        let values: Vec<Option<u64>> = self
            .round_trip(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await?;
        if values.len() != keys.len() {
            return Err(Unavailable::Reply("MGET"));
        }
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Cached values by digest: one MGET.
    pub(crate) async fn cache_get_many(
        &self,
        keys: &[[u8; 32]],
    ) -> Result<Vec<Option<Bytes>>, Unavailable> {
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.cache_key(k));
        }
        let values: Vec<Option<Vec<u8>>> = self
            .round_trip(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await?;
        if values.len() != keys.len() {
            return Err(Unavailable::Reply("MGET"));
        }
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    /// Stores values with their TTLs (SET PX): one pipeline.
    pub(crate) async fn cache_set_many(
        &self,
        items: &[(&[u8; 32], &Bytes, Duration)],
    ) -> Result<(), Unavailable> {
        let mut pipe = redis::pipe();
        for (digest, value, ttl) in items {
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            pipe.cmd("SET")
                .arg(self.cache_key(digest))
                .arg(value.as_ref())
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
        }
        self.round_trip(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// Stored conversations by key: one MGET.
    pub(crate) async fn responses_get_many(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<Bytes>>, Unavailable> {
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.key("r", k));
        }
        let values: Vec<Option<Vec<u8>>> = self
            .round_trip(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await?;
        if values.len() != keys.len() {
            return Err(Unavailable::Reply("MGET"));
        }
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    /// Stores conversations for `ttl` (SET PX): one pipeline.
    pub(crate) async fn responses_put_many(
        &self,
        items: &[(&str, Bytes)],
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        for (k, v) in items {
            pipe.cmd("SET")
                .arg(self.key("r", k))
                .arg(v.as_ref())
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
        }
        self.round_trip(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// Deletes conversations: one DEL; how many existed.
    pub(crate) async fn responses_delete_many(&self, keys: &[&str]) -> Result<u64, Unavailable> {
        let mut cmd = redis::cmd("DEL");
        for k in keys {
            cmd.arg(self.key("r", k));
        }
        self.round_trip(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }
}
