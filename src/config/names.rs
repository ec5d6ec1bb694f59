//! Model names as clients send them: which route a requested name selects
//! (exact route names, then `aliases:`, then `match:` glob patterns), the
//! model name each target is asked for, and the glob match itself (also
//! what a key's `models:` list is matched with).
//!
//! Place in the pipeline: a leaf inside `config`. `entries` reads a route's
//! `match:` / `aliases:` lists and checks their syntax; [`index`] checks
//! them across routes (an alias that is another route's name or alias, a
//! pattern listed twice) and builds the [`ModelNames`] index kept in the
//! policy; `routing::table` resolves every request's name with it and
//! [`TargetSpec::model_for`](super::TargetSpec::model_for) fills in a
//! target's `{model}` / `{*}` placeholders. Must not know routes' handles,
//! keys or requests.

use std::collections::{BTreeMap, HashMap};

use super::raw::RawRoute;
use super::report::{Errors, Loc};

/// Longest requested name a pattern is tried on (longer names only match
/// exactly): bounds the work a client's name can cause.
pub const MAX_MATCHED_NAME: usize = 256;

/// Which route a requested name selects, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub route: &'a str,
    pub via: Via,
}

/// How a requested name selected its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The route's own name.
    Exact,
    /// One of the route's `aliases`.
    Alias,
    /// A `match` pattern; `star` is the byte range of the name its first
    /// `*` matched (empty when it has none).
    Pattern { star: (usize, usize) },
}

/// Every alias and pattern of the policy's routes, for lookups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelNames {
    /// Alias -> route.
    aliases: HashMap<String, String>,
    /// (pattern, route), most specific first: more literal characters,
    /// then fewer wildcards, then route name.
    patterns: Vec<(String, String)>,
}

impl ModelNames {
    /// The route `requested` selects: its exact name (`is_route` says
    /// whether a name is a route), an alias, or the most specific pattern.
    pub fn resolve<'a>(
        &'a self,
        requested: &'a str,
        is_route: impl Fn(&str) -> bool,
    ) -> Option<Resolved<'a>> {
        if is_route(requested) {
            return Some(Resolved {
                route: requested,
                via: Via::Exact,
            });
        }
        if let Some(route) = self.aliases.get(requested) {
            return Some(Resolved {
                route,
                via: Via::Alias,
            });
        }
        if requested.len() > MAX_MATCHED_NAME {
            return None;
        }
        self.patterns.iter().find_map(|(pattern, route)| {
            let star = first_star(pattern, requested)?;
            Some(Resolved {
                route,
                via: Via::Pattern { star },
            })
        })
    }

    /// Every alias with its route, sorted by alias.
    pub fn aliases(&self) -> Vec<(&str, &str)> {
        let mut all: Vec<(&str, &str)> = self
            .aliases
            .iter()
            .map(|(a, r)| (a.as_str(), r.as_str()))
            .collect();
        all.sort_unstable();
        all
    }

    /// Whether any route has patterns.
    pub fn has_patterns(&self) -> bool {
        !self.patterns.is_empty()
    }
}

/// The byte range of `name` that the first `*` of `pattern` matches, if
/// `pattern` matches `name` at all (`(0, 0)` for a pattern without `*`).
/// The shortest such range whose rest still matches.
pub fn first_star(pattern: &str, name: &str) -> Option<(usize, usize)> {
    if !glob_match(pattern, name) {
        return None;
    }
    let Some(at) = pattern.find('*') else {
        return Some((0, 0));
    };
    // Before the first `*` only literals and `?`: one byte each.
    let start = at;
    let rest = &pattern[at + 1..];
    (start..=name.len())
        .filter(|&end| name.is_char_boundary(end))
        .find(|&end| glob_match(rest, &name[end..]))
        .map(|end| (start, end))
}

/// Characters a pattern or alias may use (model names as providers write
/// them), besides the wildcards `*` and `?` in patterns.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@' | '+')
}

/// Checks one route's `match` and `aliases` entries (syntax only).
pub(super) fn check_route_names(
    errors: &mut Errors,
    loc: &Loc,
    patterns: &[String],
    aliases: &[String],
) {
    for (i, p) in patterns.iter().enumerate() {
        let at = loc.field("match").index(i);
        if p.is_empty() || !p.chars().all(|c| name_char(c) || c == '*' || c == '?') {
            errors.at(
                &at,
                format!("{p:?} is not a model name pattern (letters, digits, - _ . : / @ + and the wildcards * ?)"),
            );
        } else if !p.contains(['*', '?']) {
            errors.at(
                &at,
                format!("{p:?} has no wildcard: list exact names under `aliases`"),
            );
        } else if p.chars().all(|c| c == '*') {
            errors.at(
                &at,
                format!("{p:?} matches every name: use a prefix such as \"claude-*\""),
            );
        }
    }
    for (i, a) in aliases.iter().enumerate() {
        if a.is_empty() || a.len() > MAX_MATCHED_NAME || !a.chars().all(name_char) {
            errors.at(
                &loc.field("aliases").index(i),
                format!("{a:?} is not a model name (letters, digits, - _ . : / @ +, no wildcards)"),
            );
        }
    }
}

/// Builds the index of the valid routes' aliases and patterns, reporting
/// (across every route, valid or not) an alias that is a route's name or
/// another route's alias, and a pattern listed by two routes.
pub(super) fn index(
    errors: &mut Errors,
    raw: &BTreeMap<String, (String, RawRoute)>,
    valid: &BTreeMap<String, impl Sized>,
) -> ModelNames {
    let mut names = ModelNames::default();
    let mut alias_owner: HashMap<&str, &str> = HashMap::new();
    let mut pattern_owner: HashMap<&str, &str> = HashMap::new();
    for (name, (file, r)) in raw {
        let loc = Loc::new(file, format!("routes.{name}"));
        let ok = valid.contains_key(name);
        for (i, alias) in r.aliases.iter().flatten().enumerate() {
            let at = loc.field("aliases").index(i);
            if raw.contains_key(alias) {
                errors.at(&at, format!("{alias:?} is the name of route {alias}"));
            } else if let Some(other) = alias_owner.insert(alias, name) {
                errors.at(
                    &at,
                    format!("{alias:?} is already an alias of route {other}"),
                );
            } else if ok {
                names.aliases.insert(alias.clone(), name.clone());
            }
        }
        for (i, pattern) in r.patterns.iter().flatten().enumerate() {
            if let Some(other) = pattern_owner.insert(pattern, name) {
                errors.at(
                    &loc.field("match").index(i),
                    format!("{pattern:?} is already matched by route {other}"),
                );
            } else if ok {
                names.patterns.push((pattern.clone(), name.clone()));
            }
        }
    }
    names.patterns.sort_by(|(a, ra), (b, rb)| {
        let literal = |p: &str| p.chars().filter(|c| !matches!(c, '*' | '?')).count();
        let wild = |p: &str| p.chars().filter(|c| *c == '*').count();
        literal(b)
            .cmp(&literal(a))
            .then(wild(a).cmp(&wild(b)))
            .then(ra.cmp(rb))
            .then(a.cmp(b))
    });
    names
}

/// `template` (a target's `model`) for a request: `{model}` is the name
/// the client asked for (an alias resolved to the route's name), `{*}` the
/// part of it the matching pattern's first `*` matched (the whole name
/// otherwise).
pub(super) fn fill_model(template: &str, route: &str, requested: &str, via: Via) -> String {
    if !template.contains('{') {
        return template.to_string();
    }
    let asked = match via {
        Via::Alias => route,
        Via::Exact | Via::Pattern { .. } => requested,
    };
    let star = match via {
        Via::Pattern { star: (s, e) } if e > s => &requested[s..e],
        _ => asked,
    };
    template.replace("{model}", asked).replace("{*}", star)
}

/// `*` matches any run of characters, `?` one character; nothing else is special.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Checks a target's `model` placeholders: only `{model}` and `{*}`.
pub(super) fn check_model_template(errors: &mut Errors, loc: &Loc, model: &str) {
    let rest = model.replace("{model}", "").replace("{*}", "");
    if rest.contains(['{', '}']) {
        errors.at(
            loc,
            format!("{model:?} has an unknown placeholder (known: {{model}}, the name the client asked for; {{*}}, what the route's pattern's first * matched)"),
        );
    } else if model.trim().is_empty() {
        errors.at(loc, "must not be empty");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_star_captures_what_a_prefix_leaves() {
        assert_eq!(
            first_star("anthropic/*", "anthropic/claude-x"),
            Some((10, 18))
        );
        assert_eq!(first_star("claude-*", "claude-opus-4-8"), Some((7, 15)));
        assert_eq!(first_star("gpt-5*", "gpt-5"), Some((5, 5)));
        assert_eq!(first_star("gpt-?", "gpt-5"), Some((0, 0)));
        assert_eq!(first_star("claude-*", "gpt-5"), None);
        assert_eq!(first_star("*-mini", "gpt-4o-mini"), Some((0, 6)));
    }

    #[test]
    fn placeholders_are_filled_per_request() {
        let star = Via::Pattern { star: (10, 18) };
        assert_eq!(
            fill_model("{*}", "r", "anthropic/claude-x", star),
            "claude-x"
        );
        assert_eq!(
            fill_model("{model}", "r", "anthropic/claude-x", star),
            "anthropic/claude-x"
        );
        assert_eq!(fill_model("{model}", "route", "alias", Via::Alias), "route");
        assert_eq!(fill_model("fixed", "route", "x", Via::Exact), "fixed");
        assert_eq!(fill_model("us.{*}-v1", "r", "r", Via::Exact), "us.r-v1");
    }
}
