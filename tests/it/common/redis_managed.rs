//! Real Redis deployments of the kinds managed services offer, started by
//! the test on free 127.0.0.1 ports, each in its own temporary folder and
//! killed when dropped: a redis-server speaking only TLS on a certificate
//! made here by a CA made here (rcgen), a master watched by one
//! redis-sentinel, and a three-master Redis Cluster made with
//! `redis-cli --cluster create`. `None` (after SKIPPED) when redis-server is
//! missing; with `CI=true` that is a failure, as in `redis.rs`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::process::{Child, Command};

/// redis-server, or `None` after SKIPPED (a failure under `CI=true`).
fn redis_server() -> Option<PathBuf> {
    let found = super::redis::find_binary();
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI=true: redis-server is required (apt-get install redis-server)"
        );
        super::skipped("redis-server not found (install redis-server)");
    }
    found
}

/// A port free now whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Starts `bin args…` with its output in `dir/<log>`; killed on drop.
fn spawn(bin: &Path, args: &[String], dir: &Path, log: &str) -> Child {
    let out = std::fs::File::create(dir.join(log)).unwrap();
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .expect("run redis-server")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Polls `ready` until it holds (at most 10 s): a server answering.
async fn until<F: AsyncFnMut() -> bool>(what: &str, dir: &Path, mut ready: F) {
    for _ in 0..400 {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let logs: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    panic!("{what} not ready in 10s; logs:\n{}", logs.join("\n---\n"));
}

/// A connection to `client`, or `None` if it does not answer within 1 s.
async fn connect(client: &redis::Client) -> Option<MultiplexedConnection> {
    let c = tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    );
    c.await.ok()?.ok()
}

async fn query<T: redis::FromRedisValue>(
    conn: &mut MultiplexedConnection,
    cmd: &mut redis::Cmd,
) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(1), cmd.query_async(conn))
        .await
        .ok()?
        .ok()
}

/// Every key on the server of `client` (tests use few keys).
pub async fn keys(client: &redis::Client) -> Vec<String> {
    let mut c = connect(client).await.expect("redis answers");
    query(&mut c, redis::cmd("KEYS").arg("*"))
        .await
        .unwrap_or_default()
}

/// redis-server listening only with TLS (`--port 0`), on a server
/// certificate for `localhost` and `127.0.0.1` signed by a test CA.
pub struct TlsRedis {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// PEM of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    _server: Child,
}

impl TlsRedis {
    pub async fn start() -> Option<TlsRedis> {
        let bin = redis_server()?;
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, cert_pem, key_pem) = certificates();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert_pem).unwrap();
        std::fs::write(dir.path().join("server.key"), key_pem).unwrap();
        let port = free_port();
        let server = spawn(
            &bin,
            &args(&[
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.pem",
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
            dir.path(),
            "redis.log",
        );
        let tls = TlsRedis {
            dir,
            port,
            ca_file,
            _server: server,
        };
        let client = tls.client();
        until(
            "redis-server with TLS",
            tls.dir.path(),
            async || match connect(&client).await {
                Some(mut c) => query::<String>(&mut c, &mut redis::cmd("PING"))
                    .await
                    .is_some(),
                None => false,
            },
        )
        .await;
        Some(tls)
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }

    /// A client trusting the test CA.
    pub fn client(&self) -> redis::Client {
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&self.ca_file).unwrap()),
        };
        redis::Client::build_with_tls(self.url(), certs).unwrap()
    }
}

/// A CA, and a server certificate it signed: PEMs of the CA certificate,
/// the server certificate and the server key.
pub fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "switchyard test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = server.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// A master (and optionally a replica of it) watched by one sentinel, which
/// knows it as `mymaster`.
pub struct Sentinel {
    pub dir: tempfile::TempDir,
    pub master_port: u16,
    pub sentinel_port: u16,
    pub replica_port: Option<u16>,
    procs: Vec<Child>,
}

pub const SENTINEL_MASTER: &str = "mymaster";

impl Sentinel {
    /// A master watched by one sentinel.
    pub async fn start() -> Option<Sentinel> {
        Sentinel::start_with(false).await
    }

    /// A master and its replica watched by one sentinel that fails over
    /// half a second after the master stops answering.
    pub async fn with_replica() -> Option<Sentinel> {
        Sentinel::start_with(true).await
    }

    async fn start_with(replica: bool) -> Option<Sentinel> {
        let bin = redis_server()?;
        let dir = tempfile::tempdir().unwrap();
        let master_port = free_port();
        let sentinel_port = free_port();
        let server = |port: u16, extra: &[&str], log: &str| {
            let port = port.to_string();
            let mut a = vec![
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ];
            a.extend_from_slice(extra);
            spawn(&bin, &args(&a), dir.path(), log)
        };
        let mut procs = vec![server(master_port, &[], "master.log")];
        let replica_port = replica.then(free_port);
        if let Some(port) = replica_port {
            let of = master_port.to_string();
            procs.push(server(
                port,
                &["--replicaof", "127.0.0.1", &of],
                "replica.log",
            ));
        }
        let down_after = if replica { 500 } else { 2000 };
        // Sentinel rewrites its configuration file: it must be writable.
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\n\
                 sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} {down_after}\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 5000\n"
            ),
        )
        .unwrap();
        procs.push(spawn(
            &bin,
            &[conf.display().to_string(), "--sentinel".into()],
            dir.path(),
            "sentinel.log",
        ));
        let s = Sentinel {
            dir,
            master_port,
            sentinel_port,
            replica_port,
            procs,
        };
        until("redis-sentinel", s.dir.path(), async || {
            s.master_port_now().await == Some(master_port)
        })
        .await;
        if replica_port.is_some() {
            // The replica in sync, and known to the sentinel (it can only
            // promote a replica it has seen).
            let replica = s.replica();
            until("the replica", s.dir.path(), async || {
                let Some(mut c) = connect(&replica).await else {
                    return false;
                };
                let info: Option<String> =
                    query(&mut c, redis::cmd("INFO").arg("replication")).await;
                let synced = info.is_some_and(|i| i.contains("master_link_status:up"));
                synced && s.replicas_known().await == Some(1)
            })
            .await;
        }
        Some(s)
    }

    /// The master's port as the sentinel names it now.
    pub async fn master_port_now(&self) -> Option<u16> {
        let client = redis::Client::open(self.sentinel_url()).unwrap();
        let mut c = connect(&client).await?;
        let addr: Option<Vec<String>> = query(
            &mut c,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(SENTINEL_MASTER),
        )
        .await;
        addr?.get(1)?.parse().ok()
    }

    /// How many replicas of the master the sentinel knows.
    async fn replicas_known(&self) -> Option<usize> {
        let client = redis::Client::open(self.sentinel_url()).unwrap();
        let mut c = connect(&client).await?;
        let replicas: Option<Vec<redis::Value>> = query(
            &mut c,
            redis::cmd("SENTINEL").arg("replicas").arg(SENTINEL_MASTER),
        )
        .await;
        replicas.map(|r| r.len())
    }

    /// Kills the master (SIGKILL) and waits until the sentinel names its
    /// replica as the master.
    pub async fn fail_over(&mut self) {
        let replica = self.replica_port.expect("a sentinel with a replica");
        self.procs[0].kill().await.expect("the master killed");
        until("the failover", self.dir.path(), async || {
            self.master_port_now().await == Some(replica)
        })
        .await;
    }

    /// Returns once the replica holds every write the master has taken so
    /// far: a write of the test's own, then `WAIT` until the replica has
    /// acknowledged it (replication is one ordered stream, so the
    /// gateways' earlier writes reached it first).
    pub async fn replicated(&self) {
        let mut c = connect(&self.master()).await.expect("the master answers");
        let acked = tokio::time::timeout(Duration::from_secs(15), async {
            let _: () = redis::cmd("SET")
                .arg("test:replication-probe")
                .arg(1)
                .query_async(&mut c)
                .await?;
            redis::cmd("WAIT")
                .arg(1)
                .arg(10_000)
                .query_async::<i64>(&mut c)
                .await
        })
        .await;
        assert!(
            matches!(acked, Ok(Ok(1))),
            "the replica did not acknowledge the master's writes: {acked:?}"
        );
    }

    /// The replica (the master after [`Sentinel::fail_over`]).
    pub fn replica(&self) -> redis::Client {
        let port = self.replica_port.expect("a sentinel with a replica");
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap()
    }

    pub fn sentinel_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.sentinel_port)
    }

    pub fn master(&self) -> redis::Client {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.master_port)).unwrap()
    }
}

/// Three masters sharing the 16384 slots, no replicas.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ports: Vec<u16>,
    _procs: Vec<Child>,
}

impl Cluster {
    pub async fn start() -> Option<Cluster> {
        let bin = redis_server()?;
        let cli = bin.with_file_name("redis-cli");
        assert!(cli.is_file(), "redis-cli next to redis-server");
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut procs = Vec::new();
        for p in &ports {
            procs.push(spawn(
                &bin,
                &args(&[
                    "--port",
                    &p.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                    "--cluster-node-timeout",
                    "5000",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]),
                dir.path(),
                &format!("node-{p}.log"),
            ));
        }
        let c = Cluster {
            dir,
            ports,
            _procs: procs,
        };
        for client in c.clients() {
            until("cluster node", c.dir.path(), async || {
                match connect(&client).await {
                    Some(mut conn) => query::<String>(&mut conn, &mut redis::cmd("PING"))
                        .await
                        .is_some(),
                    None => false,
                }
            })
            .await;
        }
        let mut create = std::process::Command::new(&cli);
        create.arg("--cluster").arg("create");
        for p in &c.ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for client in c.clients() {
            until("cluster_state:ok", c.dir.path(), async || {
                let Some(mut conn) = connect(&client).await else {
                    return false;
                };
                let info: Option<String> =
                    query(&mut conn, redis::cmd("CLUSTER").arg("INFO")).await;
                info.is_some_and(|i| i.contains("cluster_state:ok"))
            })
            .await;
        }
        Some(c)
    }

    /// One client per node (plain connections, not cluster-aware).
    pub fn clients(&self) -> Vec<redis::Client> {
        self.ports
            .iter()
            .map(|p| redis::Client::open(format!("redis://127.0.0.1:{p}/")).unwrap())
            .collect()
    }
}
