//! The shape of the source tree, checked: no import cycle between files
//! anywhere under `src/`, one request context, every module opened by its
//! `//!` doc, no file under `src/` over 400 lines, and the upstream error
//! a real `std::error::Error`.
//!
//! Imports are read as text: every `crate::…`, `super::…` and `self::…`
//! path in a file (in `use` lines, brace groups expanded, and inline in
//! code) is resolved to the file of the deepest module it names; a file
//! naming an item of another file depends on it. `mod` declarations are
//! not imports, nor are paths in comments (a doc link is not a use). Run
//! with `cargo test --test it architecture::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/server/edge/context.rs` is
/// `["server", "edge", "context"]`; `mod.rs` and `lib.rs` are their folder.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The file of a module path, if it is a module.
fn file_of(module: &[String]) -> Option<PathBuf> {
    let mut base = src();
    if module.is_empty() {
        return Some(base.join("lib.rs"));
    }
    for m in module {
        base.push(m);
    }
    let as_file = base.with_extension("rs");
    if as_file.is_file() {
        return Some(as_file);
    }
    let as_dir = base.join("mod.rs");
    as_dir.is_file().then_some(as_dir)
}

/// `use` trees with brace groups expanded: `a::{b, c::{d, e}}` gives
/// `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// The paths a file's source names: `use` trees and inline paths.
fn paths_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` statements, possibly over several lines.
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let starts_line = before.is_empty() || before.ends_with('\n') || before.ends_with(' ');
        rest = &rest[at + 4..];
        if !starts_line {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        let tree: String = rest[..end].split_whitespace().collect();
        if tree.starts_with("crate::") || tree.starts_with("super::") || tree.starts_with("self::")
        {
            out.extend(expand(&tree));
        }
    }
    // Inline paths in code: `crate::a::b`, `super::a::b`.
    for root in ["crate::", "super::"] {
        let mut rest = text;
        while let Some(at) = rest.find(root) {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            out.push(tail[..end].trim_end_matches(':').to_string());
            rest = &rest[at + root.len()..];
        }
    }
    out
}

/// The file a path starting in `module` resolves to: its deepest module.
fn resolve(module: &[String], path: &str) -> Option<PathBuf> {
    let mut segs = path.split("::").filter(|s| !s.is_empty()).peekable();
    let mut at: Vec<String> = match segs.peek().copied() {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        Some("super") | Some("self") => {
            // A `mod.rs` file is its folder's module; `super` is one up.
            let mut m = module.to_vec();
            while let Some(s) = segs.peek().copied() {
                match s {
                    "super" => {
                        m.pop();
                        segs.next();
                    }
                    "self" => {
                        segs.next();
                    }
                    _ => break,
                }
            }
            m
        }
        _ => return None,
    };
    for seg in segs {
        let mut next = at.clone();
        next.push(seg.to_string());
        if file_of(&next).is_some() {
            at = next;
        } else {
            break;
        }
    }
    file_of(&at)
}

/// The import graph between `.rs` files under `src/`.
fn graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut edges = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read file");
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .flat_map(|l| [l, "\n"])
            .collect();
        let module = module_of(f);
        let mut to = BTreeSet::new();
        for p in paths_in(&code) {
            if let Some(target) = resolve(&module, &p)
                && &target != f
            {
                to.insert(target);
            }
        }
        edges.insert(f.clone(), to);
    }
    edges
}

/// Cycles among the files of `all` under `within` (Tarjan's strongly
/// connected components of more than one file).
fn cycles_in(all: &BTreeMap<PathBuf, BTreeSet<PathBuf>>, within: &Path) -> Vec<Vec<String>> {
    let nodes: Vec<&PathBuf> = all.keys().filter(|f| f.starts_with(within)).collect();
    let index_of: BTreeMap<&PathBuf, usize> =
        nodes.iter().enumerate().map(|(i, f)| (*f, i)).collect();
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|f| {
            all[*f]
                .iter()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    struct Tarjan<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.adj[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    _ => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    self.found.push(scc);
                }
            }
        }
    }
    let n = nodes.len();
    let mut t = Tarjan {
        adj: &adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.found
        .into_iter()
        .map(|scc| {
            scc.into_iter()
                .map(|i| {
                    let f = nodes[i];
                    f.strip_prefix(src()).unwrap_or(f).display().to_string()
                })
                .collect()
        })
        .collect()
}

#[test]
fn no_import_cycle_between_files() {
    let cycles = cycles_in(&graph(), &src());
    assert!(cycles.is_empty(), "import cycles in src/: {cycles:?}");
}

#[test]
fn the_cycle_check_finds_a_cycle_when_there_is_one() {
    // The checker itself, on a graph made up here: a -> b -> c -> a is one
    // cycle of three; d -> a is in none.
    let f = |n: &str| PathBuf::from(format!("/x/{n}.rs"));
    let made: BTreeMap<PathBuf, BTreeSet<PathBuf>> = [
        (f("a"), BTreeSet::from([f("b")])),
        (f("b"), BTreeSet::from([f("c")])),
        (f("c"), BTreeSet::from([f("a")])),
        (f("d"), BTreeSet::from([f("a")])),
    ]
    .into_iter()
    .collect();
    let found = cycles_in(&made, Path::new("/x"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].len(), 3, "{found:?}");
    assert!(!found[0].iter().any(|n| n.contains("/d.rs")), "{found:?}");
    // And it resolves `super::` and brace groups.
    let edges = graph();
    let chat = src().join("server/endpoints/chat.rs");
    let uses: Vec<String> = edges[&chat]
        .iter()
        .map(|f| f.strip_prefix(src()).unwrap().display().to_string())
        .collect();
    for expected in [
        "server/endpoints/mod.rs",
        "server/edge/context.rs",
        "server/flows/call.rs",
        "routing/mod.rs",
    ] {
        assert!(
            uses.iter().any(|u| u == expected),
            "{expected} not in {uses:?}"
        );
    }
}

#[test]
fn one_request_context_and_every_module_documented() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut undocumented = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read file");
        assert!(
            !text.contains("struct Ctx ") && !text.contains("struct Ctx<"),
            "a second request context type in {}",
            f.display()
        );
        if !text.trim_start().starts_with("//!") {
            undocumented.push(f.strip_prefix(src()).unwrap().display().to_string());
        }
    }
    assert!(
        undocumented.is_empty(),
        "no `//!` opening: {undocumented:?}"
    );
}

#[test]
fn every_source_file_stays_small() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 100, "the walk found {} files", files.len());
    let large: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > 400).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(large.is_empty(), "files over 400 lines: {large:?}");
}

#[test]
fn the_upstream_error_is_a_std_error() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<switchyard::providers::UpstreamError>();
}
