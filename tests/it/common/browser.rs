//! A real headless browser for pages: the system Chromium (Debian's
//! `chromium`, /usr/bin/chromium) driven by `tests/browser/dashboard.mjs`
//! through playwright-core (installed by `npm ci --prefix tests/browser`;
//! it downloads no browser). With `CI=true` a missing piece is a failure
//! (`.ci/run` installs them); elsewhere the test says SKIPPED and why.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// What a page test needs: node, the script's folder, Chromium.
pub struct Browser {
    scripts: PathBuf,
    chromium: PathBuf,
}

fn missing(what: &str) -> Option<Browser> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!ci, "CI=true: {what} is required (.ci/run installs it)");
    super::skipped(&format!("{what} is not installed"));
    None
}

impl Browser {
    /// The browser, or `None` after saying SKIPPED (a failure under CI).
    pub fn find() -> Option<Browser> {
        let chromium = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        if !chromium.is_file() {
            return missing(&format!(
                "Chromium ({}; apt-get install chromium)",
                chromium.display()
            ));
        }
        let node = std::process::Command::new("node").arg("--version").output();
        if !node.is_ok_and(|o| o.status.success()) {
            return missing("node (apt-get install nodejs)");
        }
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        if !scripts.join("node_modules/playwright-core").is_dir() {
            return missing("the npm package playwright-core (npm ci --prefix tests/browser)");
        }
        Some(Browser { scripts, chromium })
    }

    /// Loads `url` as a person would and reports what the page shows
    /// (see `tests/browser/dashboard.mjs`); screenshots go to `shots`.
    pub async fn look_at(&self, url: &str, shots: &Path, credentials: Option<&str>) -> Value {
        std::fs::create_dir_all(shots).unwrap();
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(self.scripts.join("dashboard.mjs"))
            .arg(url)
            .arg(shots)
            .args(credentials)
            .env("CHROMIUM", &self.chromium)
            .current_dir(&self.scripts)
            .kill_on_drop(true);
        let run = tokio::time::timeout(std::time::Duration::from_secs(90), cmd.output());
        let out = run
            .await
            .expect("the browser script finishes within 90 s")
            .expect("node runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the browser script failed:\n{stderr}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "the browser script printed no report ({e}):\n{}\n{stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// Where a test keeps its screenshots: under target/ (printed by the test).
pub fn artifacts(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("artifacts")
        .join(name)
}

/// Prints one line on the test output even when the test passes (past
/// libtest's capture, like [`super::skipped`]): where an artifact is.
pub fn artifact_note(what: &str, path: &Path) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "ARTIFACT {what}: {}", path.display());
}
