//! Error collection for policy loading: every problem, each at its own line.
//!
//! Place in the pipeline: shared by every loading step (syntax, shape,
//! merge, validate). While a file is read, `shape` records the line of every
//! key and list item under its dotted path (`routes.r.retry.max_attempts`,
//! `routes.r.targets[0]`); a check then names only a [`Loc`] (file + path) and
//! the line is looked up here, falling back to the nearest enclosing key when
//! the field itself is absent. A path whose value could not be read at all is
//! marked failed, so checks that ran on its placeholder add no second error.
//! Must not decide what is an error, only where it is and whether it repeats.

use std::collections::{BTreeSet, HashMap};

use super::ConfigError;
use super::node::join;
use super::shape::Findings;

/// One place in one file: the file's name and a dotted path inside it.
#[derive(Debug, Clone)]
pub(super) struct Loc<'a> {
    file: &'a str,
    path: String,
}

impl<'a> Loc<'a> {
    pub(super) fn new(file: &'a str, path: impl Into<String>) -> Self {
        Loc {
            file,
            path: path.into(),
        }
    }

    /// The place of a key below this one (`name` may itself be dotted).
    pub(super) fn field(&self, name: &str) -> Loc<'a> {
        Loc::new(self.file, join(&self.path, name))
    }

    pub(super) fn file(&self) -> &'a str {
        self.file
    }

    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// The place of the `i`th list item below this one.
    pub(super) fn index(&self, i: usize) -> Loc<'a> {
        Loc::new(self.file, format!("{}[{i}]", self.path))
    }
}

/// Every error so far, plus the line of every key seen in every file.
#[derive(Default)]
pub(super) struct Errors {
    list: Vec<ConfigError>,
    lines: HashMap<(String, String), u64>,
    failed: BTreeSet<(String, String)>,
}

impl Errors {
    /// An error whose location is already spelled out (a file, a folder, or
    /// a section name when no file says anything).
    pub(super) fn push(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigError {
            location: location.into(),
            message: message.into(),
        });
    }

    /// An error at `loc`, located at the line of its key (or the nearest
    /// enclosing key). Dropped if `loc` is at or below a value that could not
    /// be read: that value already has its error.
    pub(super) fn at(&mut self, loc: &Loc, message: impl Into<String>) {
        if self.is_failed(loc) {
            return;
        }
        let location = self.location(loc.file, &loc.path);
        self.push(location, message);
    }

    /// `file:line: path` for a path in a file (`file:line` for the top level).
    pub(super) fn location(&self, file: &str, path: &str) -> String {
        if file.is_empty() {
            return path.to_string(); // a default, not from any file
        }
        let place = self.place(file, path);
        if path.is_empty() {
            place
        } else {
            format!("{place}: {path}")
        }
    }

    /// `file:line` of a path in a file (`file` if no line is known).
    pub(super) fn place(&self, file: &str, path: &str) -> String {
        match self.line(file, path) {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        }
    }

    /// The line of `path` in `file`, or of its nearest recorded ancestor.
    pub(super) fn line(&self, file: &str, path: &str) -> Option<u64> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(&(file.to_string(), path.to_string())) {
                return Some(*line);
            }
            path = parent(path)?;
        }
    }

    /// Takes over what `shape` found in one file: its key lines and errors.
    pub(super) fn add_findings(&mut self, file: &str, findings: Findings) {
        for (path, line) in findings.lines {
            self.lines.entry((file.to_string(), path)).or_insert(line);
        }
        for f in findings.errors {
            let location = if f.path.is_empty() {
                format!("{file}:{}", f.line)
            } else {
                format!("{file}:{}: {}", f.line, f.path)
            };
            self.failed.insert((file.to_string(), f.path));
            self.push(location, f.message);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn into_vec(self) -> Vec<ConfigError> {
        self.list
    }

    fn is_failed(&self, loc: &Loc) -> bool {
        let mut path = loc.path.as_str();
        loop {
            if self
                .failed
                .contains(&(loc.file.to_string(), path.to_string()))
            {
                return true;
            }
            match parent(path) {
                Some(p) => path = p,
                None => return false,
            }
        }
    }
}

/// `a.b[0].c` -> `a.b[0]` -> `a.b` -> `a` -> `` -> None.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    Some(match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    })
}
