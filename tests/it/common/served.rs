//! The real binary as a child process: started with arguments and
//! environment variables, stdout to a file, found by the line that says
//! where it listens, stopped with SIGTERM.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::{TEST_KEY, eventually};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// The binary, serving with stdout redirected to a file.
pub struct Served {
    child: Child,
    pub base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// The policy folder [`Served::with_policy`] wrote.
    _policies: Option<tempfile::TempDir>,
}

impl Served {
    /// `switchyard serve` on one policy file, `yaml`, listening on a free
    /// port of 127.0.0.1 with no drain delay.
    pub async fn with_policy(yaml: &str, env: &[(&str, &str)]) -> Served {
        let policies = tempfile::tempdir().unwrap();
        std::fs::write(policies.path().join("p.yaml"), yaml).unwrap();
        let dir = policies.path().to_str().unwrap();
        let args = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--drain-delay",
            "0s",
            "--policies",
            dir,
        ];
        let mut served = Served::start(&args, env).await;
        served._policies = Some(policies);
        served
    }

    /// A one-message chat completion for route `model` (as
    /// [`TestGateway::chat`](super::TestGateway::chat) sends it).
    pub async fn chat(&self, model: &str, text: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": text}]}))
            .send()
            .await
            .unwrap()
    }

    /// Starts `switchyard` with `args` and `env` (no egress proxy variable
    /// but those in `env`), stdout to a file, and waits until the log says
    /// where it listens.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stdout.log");
        let out = std::fs::File::create(&log).unwrap();
        let errors = dir.path().join("stderr.log");
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env("TEST_UPSTREAM_KEY", TEST_KEY)
            .envs(env.iter().copied())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(std::fs::File::create(&errors).unwrap()))
            .spawn()
            .unwrap();
        let mut base = String::new();
        let path = log.clone();
        eventually(async || {
            if let Some(status) = child.try_wait().unwrap() {
                let why = std::fs::read_to_string(&errors).unwrap_or_default();
                panic!("switchyard exited ({status}) before listening:\n{why}");
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            base = text.lines().find_map(listening_at).unwrap_or_default();
            !base.is_empty()
        })
        .await;
        Served {
            child,
            base,
            log,
            _dir: dir,
            _policies: None,
        }
    }

    /// Value of one sample of its `/metrics`, as
    /// [`TestGateway::metric`](super::TestGateway::metric) reads it.
    pub async fn metric(&self, sample: &str) -> f64 {
        let url = format!("{}/metrics", self.base);
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        super::sample_in(&text, sample)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit (which flushes spans and log lines).
    pub async fn stop(self) -> (String, tempfile::TempDir) {
        let Served {
            mut child,
            log,
            _dir,
            ..
        } = self;
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "{status:?}");
        (std::fs::read_to_string(&log).unwrap(), _dir)
    }
}

/// The base URL from the line that says where the gateway listens: the
/// text announcement, or the JSON `switchyard listening` event.
pub fn listening_at(line: &str) -> Option<String> {
    if let Some(url) = line.strip_prefix("switchyard listening on ") {
        return Some(url.trim().to_string());
    }
    let v: Value = serde_json::from_str(line).ok()?;
    let addr = v["addr"].as_str()?;
    (v["message"] == "switchyard listening").then(|| format!("http://{addr}"))
}
