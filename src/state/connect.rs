//! Connection setup for Redis: the policy's URL, TLS certificates and
//! topology (one server, Sentinel, Cluster) -> a [`Connector`] that opens
//! one multiplexed [`Conn`].
//!
//! Place in the pipeline: built by `Store::new` from `state:`, owned by the
//! link's background task (`link.rs`), which calls [`Connector::connect`]
//! at start and after every break. Sentinel: each connect asks the
//! sentinels for the current master, so a failover is followed by the next
//! reconnect. Cluster: the client follows the slot map itself. Must not log
//! or return the URL (it holds the password): errors here are written, not
//! copied from the client.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, IntoConnectionInfo,
    Pipeline, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};

use super::types::StoreError;
use crate::config::{RedisTls, RedisTopology, Secret};

const BAD_URL: &str = "expected redis:// or rediss://[user:password@]host[:port][/db]";

/// Opens connections to the Redis the policy names.
pub(crate) enum Connector {
    // Boxed: the clients differ in size by hundreds of bytes; one per store.
    Single(Box<Client>),
    Sentinel(Box<SentinelClient>),
    Cluster(Box<ClusterClient>),
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL nor the certificates.
        f.write_str(match self {
            Connector::Single(_) => "Connector::Single",
            Connector::Sentinel(_) => "Connector::Sentinel",
            Connector::Cluster(_) => "Connector::Cluster",
        })
    }
}

impl Connector {
    /// Checks the URL and certificates and builds the client; connects
    /// nothing. `timeout` bounds each connect and reply of a cluster node
    /// (the link gives the others theirs).
    pub(crate) fn new(
        url: &Secret,
        tls: &RedisTls,
        topology: &RedisTopology,
        timeout: Duration,
    ) -> Result<Connector, StoreError> {
        // The client's parse error is not kept: it could quote the URL.
        let info = url
            .expose()
            .into_connection_info()
            .map_err(|_| StoreError::BadUrl(BAD_URL))?;
        let secure = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        let certs = (tls.ca_pem.is_some() || tls.client.is_some()).then(|| TlsCertificates {
            client_tls: tls.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.as_bytes().to_vec(),
                client_key: key.expose().as_bytes().to_vec(),
            }),
            root_cert: tls.ca_pem.as_ref().map(|pem| pem.as_bytes().to_vec()),
        });
        if certs.is_some() && !secure {
            return Err(StoreError::BadUrl("TLS certificates need a rediss:// URL"));
        }
        let bad_tls = |_| StoreError::BadUrl("the TLS certificates do not load");
        match topology {
            RedisTopology::Single => Ok(Connector::Single(Box::new(match certs {
                Some(certs) => Client::build_with_tls(info, certs).map_err(bad_tls)?,
                None => Client::open(info).map_err(|_| StoreError::BadUrl(BAD_URL))?,
            }))),
            RedisTopology::Sentinel {
                master,
                nodes,
                password,
            } => {
                let mut sentinels = vec![info.addr().clone()];
                for node in nodes {
                    sentinels.push(address(node, secure)?);
                }
                let redis = info.redis_settings();
                let mode = secure.then_some(TlsMode::Secure);
                let mut b =
                    SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)
                        .map_err(|_| StoreError::BadUrl("sentinel settings"))?
                        .set_client_to_redis_db(redis.db());
                if let Some(user) = redis.username() {
                    b = b.set_client_to_redis_username(user);
                }
                if let Some(pw) = redis.password() {
                    b = b.set_client_to_redis_password(pw);
                }
                if let Some(pw) = password {
                    b = b.set_client_to_sentinel_password(pw.expose());
                }
                if let Some(mode) = mode {
                    b = b
                        .set_client_to_redis_tls_mode(mode)
                        .set_client_to_sentinel_tls_mode(mode);
                }
                if let Some(certs) = certs {
                    b = b
                        .set_client_to_redis_certificates(certs.clone())
                        .set_client_to_sentinel_certificates(certs);
                }
                let client = b.build().map_err(bad_tls)?;
                Ok(Connector::Sentinel(Box::new(client)))
            }
            RedisTopology::Cluster { nodes } => {
                let mut seeds = vec![info.clone()];
                for node in nodes {
                    seeds.push(info.clone().set_addr(address(node, secure)?));
                }
                let mut b = ClusterClientBuilder::new(seeds)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // Redirections (MOVED, ASK) are retries: a few, quickly;
                    // the store's timeout bounds the whole call anyway.
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(100);
                if let Some(certs) = certs {
                    b = b.certs(certs);
                }
                Ok(Connector::Cluster(Box::new(b.build().map_err(bad_tls)?)))
            }
        }
    }

    /// Keys must share one hash slot in a cluster (the scripts touch several
    /// keys at once): the prefix becomes the hash tag `{prefix}`.
    pub(crate) fn key_prefix(&self, prefix: &str) -> String {
        match self {
            Connector::Cluster(_) => format!("{{{prefix}}}"),
            _ => prefix.to_string(),
        }
    }

    /// One connection (for Sentinel: to the master the sentinels name now).
    pub(crate) async fn connect(&mut self, config: &AsyncConnectionConfig) -> RedisResult<Conn> {
        match self {
            Connector::Single(client) => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(Conn::Single),
            Connector::Sentinel(client) => client
                .get_async_connection_with_config(config)
                .await
                .map(Conn::Single),
            Connector::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
        }
    }
}

/// `host:port` (checked by the policy) as an address, with the URL's TLS.
fn address(node: &str, secure: bool) -> Result<ConnectionAddr, StoreError> {
    let (host, port) = crate::config::host_port(node)
        .ok_or(StoreError::BadUrl("expected host:port for a node"))?;
    let host = host.to_string();
    Ok(if secure {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    })
}

/// A live connection: to one server (standalone or the sentinels' master),
/// or to a cluster. Cheap to clone; commands are multiplexed.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
