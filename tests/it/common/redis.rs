//! A real `redis-server` on a free 127.0.0.1 port, for the state store
//! tests: started, killed (SIGKILL) and restarted on the same port; killed
//! when dropped. No persistence (`--save "" --appendonly no`): a restart
//! comes back empty.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub struct RedisServer {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// `redis-server` on PATH, or in /usr/bin.
pub fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = Path::new("/usr/bin/redis-server");
        p.is_file().then(|| p.to_path_buf())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// A running server, or `None` (after saying SKIPPED) when
    /// `redis-server` is not installed. With `CI=true` a missing binary is a
    /// failure (`.ci/run` installs it).
    pub async fn start() -> Option<RedisServer> {
        let Some(bin) = find_binary() else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "CI=true: redis-server is required (apt-get install redis-server)"
            );
            super::skipped("redis-server not found (install redis-server)");
            return None;
        };
        // The port is free when chosen; another process may take it before
        // redis binds it, so try a few.
        for _ in 0..5 {
            let mut server = RedisServer {
                bin: bin.clone(),
                port: free_port(),
                child: None,
            };
            if server.spawn().await {
                return Some(server);
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Starts the process on `self.port`; true once it answers PING.
    async fn spawn(&mut self) -> bool {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("run redis-server");
        self.child = Some(child);
        for _ in 0..200 {
            if self.pings().await {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                self.child = None;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server on port {} not ready in 5s", self.port);
    }

    async fn pings(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if s.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        let read = tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await;
        matches!(read, Ok(Ok(_))) && &buf == b"+PONG\r\n"
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    /// Starts it again on the same port (empty: nothing is persisted).
    pub async fn restart(&mut self) {
        self.kill().await;
        for _ in 0..40 {
            if self.spawn().await {
                return;
            }
            // The port may linger for a moment after the kill.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// A plain connection, for checking what the store wrote.
    pub async fn client(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// `calls` of one command in `INFO commandstats` (0 if never called).
    pub async fn command_calls(&self, command: &str) -> u64 {
        let mut c = self.client().await;
        let info: String = ::redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await
            .unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map(|n| n.parse().unwrap())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}
