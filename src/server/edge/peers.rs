//! Open connections per client address, so that one client cannot hold
//! every connection slot.
//!
//! Place in the pipeline: `accept` asks [`Peers::enter`] for each accepted
//! connection, with the live `server.connections` settings; past
//! `max_per_peer` the connection is closed at once (loopback peers are
//! exempt unless `loopback_exempt: false`: a sidecar or local proxy speaks
//! for many clients). The count is per IP address (IPv4-mapped IPv6 read
//! as IPv4); a [`PeerGuard`] gives its place back when the connection ends.
//! Must not look at requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::ConnectionSettings;

#[derive(Debug, Default)]
pub(super) struct Peers {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Peers {
    /// A place for one more connection from `ip` (`None`: an exempt peer,
    /// not counted), or [`OverCap`] when it holds its `max_per_peer` already.
    pub(super) fn enter(
        self: &Arc<Self>,
        ip: IpAddr,
        settings: &ConnectionSettings,
    ) -> Result<Option<PeerGuard>, OverCap> {
        let ip = ip.to_canonical();
        if ip.is_loopback() && settings.loopback_exempt {
            return Ok(None);
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= settings.max_per_peer {
            return Err(OverCap);
        }
        *n += 1;
        Ok(Some(PeerGuard {
            peers: Arc::clone(self),
            ip,
        }))
    }
}

/// The peer holds its `max_per_peer` connections already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OverCap;

/// One connection of a counted peer; its place is given back on drop.
#[derive(Debug)]
pub(super) struct PeerGuard {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let mut open = self.peers.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(max_per_peer: usize, loopback_exempt: bool) -> ConnectionSettings {
        ConnectionSettings {
            max: 100,
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            first_request_timeout: Duration::from_secs(1),
            max_per_peer,
            loopback_exempt,
            http2_keep_alive_interval: Duration::from_secs(1),
            http2_keep_alive_timeout: Duration::from_secs(1),
            http2_max_concurrent_streams: 1,
        }
    }

    #[test]
    fn each_peer_is_capped_on_its_own_and_gets_its_places_back() {
        let peers = Arc::new(Peers::default());
        let s = settings(2, true);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = peers.enter(a, &s).unwrap();
        let second = peers.enter(mapped, &s).unwrap();
        assert_eq!(
            peers.enter(a, &s).err(),
            Some(OverCap),
            "the mapped address is the same peer"
        );
        assert!(peers.enter(b, &s).is_ok(), "another peer is not held back");
        drop(first);
        assert!(peers.enter(a, &s).is_ok());
        drop(second);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(
                matches!(peers.enter(local, &s), Ok(None)),
                "loopback exempt"
            );
        }
        let strict = settings(1, false);
        let _held = peers.enter(local, &strict).unwrap();
        assert_eq!(peers.enter(local, &strict).err(), Some(OverCap));
        let open = peers.open.lock().unwrap();
        assert_eq!(
            open.keys().collect::<Vec<_>>(),
            [&local],
            "peers without connections are forgotten"
        );
    }
}
