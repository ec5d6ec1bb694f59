//! `server.dashboard`: where the built-in live page and its stats JSON are
//! served, or that they are not.
//!
//! Place in the pipeline: read by `validate` with the rest of `server:`;
//! the edge (health bypass) and the router ask [`DashboardSettings::part`]
//! which of the two a request path is. Must not know HTTP beyond paths.

use super::fields::FieldReader;
use super::report::Loc;

/// The page's path when the policy names none.
pub const DEFAULT_DASHBOARD_PATH: &str = "/";

/// The stats JSON, below the page's path.
const STATS_SUFFIX: &str = "/stats.json";

#[derive(Debug, Clone, PartialEq)]
pub struct DashboardSettings {
    pub enabled: bool,
    /// The page's path as written (`/`, `/status`), trailing `/` removed
    /// except for the root.
    pub path: String,
    /// The page's path as requests are matched (without its trailing `/`,
    /// so `/` is empty).
    page: String,
    /// `<page>/stats.json`.
    stats: String,
}

/// Which part of the dashboard a request path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardPart {
    Page,
    Stats,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings::at(true, DEFAULT_DASHBOARD_PATH)
    }
}

impl DashboardSettings {
    fn at(enabled: bool, path: &str) -> Self {
        let page = path.trim_end_matches('/').to_string();
        let stats = format!("{page}{STATS_SUFFIX}");
        let path = if page.is_empty() {
            "/".into()
        } else {
            page.clone()
        };
        DashboardSettings {
            enabled,
            path,
            page,
            stats,
        }
    }

    /// The stats JSON's path (`/stats.json` for a page at `/`).
    pub fn stats_path(&self) -> &str {
        &self.stats
    }

    /// What `path` (a request path with its trailing `/` removed, as the
    /// request context keeps it) asks for, when the dashboard is on.
    pub fn part(&self, path: &str) -> Option<DashboardPart> {
        if !self.enabled {
            None
        } else if path == self.page {
            Some(DashboardPart::Page)
        } else if path == self.stats {
            Some(DashboardPart::Stats)
        } else {
            None
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDashboard {
    pub enabled: Option<bool>,
    pub path: Option<String>,
}

/// Paths the gateway answers itself, which the page must not shadow.
const TAKEN: &[&str] = &["/v1", "/admin", "/healthz", "/readyz", "/metrics"];

/// `server.dashboard`, every problem at its line.
pub(super) fn dashboard_settings(
    cx: &mut FieldReader,
    loc: &Loc,
    raw: &Option<RawDashboard>,
) -> DashboardSettings {
    let Some(raw) = raw else {
        return DashboardSettings::default();
    };
    let enabled = raw.enabled.unwrap_or(true);
    let Some(path) = &raw.path else {
        return DashboardSettings::at(enabled, DEFAULT_DASHBOARD_PATH);
    };
    let path_loc = loc.field("path");
    if let Err(why) = check_path(path) {
        cx.errors.at(&path_loc, format!("{path:?} {why}"));
        return DashboardSettings::at(enabled, DEFAULT_DASHBOARD_PATH);
    }
    let settings = DashboardSettings::at(enabled, path);
    for taken in TAKEN {
        let under = |p: &str| p == *taken || p.starts_with(&format!("{taken}/"));
        if under(&settings.page) || under(&settings.stats) {
            cx.errors.at(
                &path_loc,
                format!("{path:?} would hide the gateway's own {taken}; choose another path"),
            );
        }
    }
    settings
}

/// A request path: `/` then visible ASCII, no query, fragment, `//`, `.`
/// or `..` segments.
fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must start with /");
    }
    if path.len() > 200 {
        return Err("is longer than 200 characters");
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("may hold only visible ASCII characters (no spaces)");
    }
    if path.contains(['?', '#', '%', '\\']) {
        return Err("must be a plain path (no ?, #, % or \\)");
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.contains("//") || trimmed.split('/').any(|s| s == "." || s == "..") {
        return Err("must not contain //, . or .. segments");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_page_has_its_stats_beside_it() {
        let d = DashboardSettings::default();
        assert_eq!(d.path, "/");
        assert_eq!(d.stats_path(), "/stats.json");
        assert_eq!(d.part(""), Some(DashboardPart::Page));
        assert_eq!(d.part("/stats.json"), Some(DashboardPart::Stats));
        assert_eq!(d.part("/other"), None);
    }

    #[test]
    fn a_moved_page_matches_with_or_without_its_slash() {
        let d = DashboardSettings::at(true, "/ops/live/");
        assert_eq!(d.path, "/ops/live");
        assert_eq!(d.part("/ops/live"), Some(DashboardPart::Page));
        assert_eq!(d.part("/ops/live/stats.json"), Some(DashboardPart::Stats));
        assert_eq!(d.part(""), None);
    }

    #[test]
    fn a_disabled_page_matches_nothing() {
        let d = DashboardSettings::at(false, "/");
        assert_eq!(d.part(""), None);
        assert_eq!(d.part("/stats.json"), None);
    }

    #[test]
    fn bad_paths_say_why() {
        for (p, why) in [
            ("dash", "must start with /"),
            ("/a b", "may hold only visible ASCII characters (no spaces)"),
            ("/a?x=1", "must be a plain path (no ?, #, % or \\)"),
            ("/a//b", "must not contain //, . or .. segments"),
            ("/a/../b", "must not contain //, . or .. segments"),
        ] {
            assert_eq!(check_path(p), Err(why), "{p}");
        }
        assert_eq!(check_path("/status/"), Ok(()));
    }
}
