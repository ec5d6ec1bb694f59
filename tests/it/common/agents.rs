//! The real coding-agent CLIs (`claude -p`, `codex exec`) run against the
//! gateway.
//!
//! The CLIs come from the npm registry (`.ci/run` installs them into
//! `$SWITCHYARD_AGENTS_PREFIX`, default `~/.cache/switchyard-agents`); they
//! are found on PATH or in that prefix's `bin/`. Missing, a test fails
//! under `CI=true` and says SKIPPED elsewhere. Each run is offline (no
//! telemetry, update check or login; the environment is cleared but for
//! what it needs), loopback only, in a fresh home folder and working
//! folder, and bounded in time. The scripted upstreams they are run
//! against are in `agent_fakes.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::agent_fakes::{anthropic_upstream, carries_tool_result, openai_upstream};

/// What a CLI printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Longest a CLI may take for one prompt.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(180);

/// The folder the npm CLIs are installed into (`.ci/run`).
fn prefix() -> PathBuf {
    match std::env::var_os("SWITCHYARD_AGENTS_PREFIX") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/switchyard-agents")
        }
    }
}

/// The CLI `name` (its npm package for messages), or `None` after saying
/// SKIPPED (a failure under `CI=true`).
pub fn find_cli(name: &str, package: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    let found = on_path.or_else(|| {
        let p = prefix().join("bin").join(name);
        p.is_file().then_some(p)
    });
    if found.is_none() {
        let why = format!(
            "the `{name}` CLI is not installed (npm install --prefix {} -g {package}; .ci/run does it)",
            prefix().display()
        );
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "CI=true: {why}");
        super::skipped(&why);
    }
    found
}

/// A fresh home and working folder for one CLI run, with `hello.txt`.
pub struct Workdir {
    pub root: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("home")).unwrap();
        std::fs::create_dir_all(root.path().join("work")).unwrap();
        std::fs::write(root.path().join("work/hello.txt"), "hello from the file\n").unwrap();
        // A git repository, as coding agents expect (codex refuses to run
        // elsewhere without a flag).
        let _ = std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(root.path().join("work"))
            .status();
        Workdir { root }
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// The file the prompts ask to read.
    pub fn file(&self) -> String {
        self.work().join("hello.txt").display().to_string()
    }
}

/// PATH for a CLI: the directories of `node` and of the CLI itself, then
/// the system's.
fn cli_path(cli: &Path) -> String {
    let mut dirs: Vec<PathBuf> = cli.parent().map(Path::to_path_buf).into_iter().collect();
    if let Some(paths) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&paths));
    }
    dirs.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from));
    std::env::join_paths(dirs)
        .unwrap()
        .to_string_lossy()
        .to_string()
}

async fn run(mut cmd: tokio::process::Command) -> Run {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("start the CLI");
    match tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        },
        Ok(Err(e)) => panic!("the CLI could not be waited for: {e}"),
        Err(_) => Run {
            ok: false,
            stdout: String::new(),
            stderr: format!("timed out after {CLI_TIMEOUT:?} (killed)"),
        },
    }
}

/// `claude -p PROMPT` with its default settings against the gateway at
/// `base` (`ANTHROPIC_BASE_URL`), offline.
pub async fn claude(cli: &Path, dir: &Workdir, base: &str, prompt: &str) -> Run {
    let mut cmd = tokio::process::Command::new(cli);
    cmd.arg("-p")
        .arg(prompt)
        .current_dir(dir.work())
        .env_clear()
        .env("PATH", cli_path(cli))
        .env("HOME", dir.home())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("ANTHROPIC_BASE_URL", base)
        .env("ANTHROPIC_API_KEY", "sk-agent-claude-code")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    run(cmd).await
}

/// The `config.toml` that points Codex at the gateway: a model provider
/// with the gateway's `/v1` as `base_url`, the Responses wire API, the key
/// from an environment variable; no update check, analytics or feedback.
pub fn codex_config(base: &str) -> String {
    format!(
        "model_provider = \"switchyard\"\ncheck_for_update_on_startup = false\n\n\
         [model_providers.switchyard]\nname = \"Switchyard\"\nbase_url = \"{base}/v1\"\n\
         env_key = \"SWITCHYARD_API_KEY\"\nwire_api = \"responses\"\n\n\
         [analytics]\nenabled = false\n\n[feedback]\nenabled = false\n"
    )
}

/// `codex exec PROMPT` with its default settings (model and tools) against
/// the gateway at `base`, offline.
pub async fn codex(cli: &Path, dir: &Workdir, base: &str, prompt: &str) -> Run {
    let codex_home = dir.home().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(codex_home.join("config.toml"), codex_config(base)).unwrap();
    let mut cmd = tokio::process::Command::new(cli);
    if !dir.work().join(".git").exists() {
        cmd.arg("--skip-git-repo-check");
    }
    cmd.arg("exec")
        .arg(prompt)
        .current_dir(dir.work())
        .env_clear()
        .env("PATH", cli_path(cli))
        .env("HOME", dir.home())
        .env("CODEX_HOME", &codex_home)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("SWITCHYARD_API_KEY", "sk-agent-codex");
    run(cmd).await
}
