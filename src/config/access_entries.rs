//! Validation of `keys:`, `prices:` and `server.auth`: raw entries ->
//! [`KeySpec`]s and [`Prices`], every error at its line (`state:` is
//! `state_entries`).
//!
//! Place in the pipeline: called by `validate` after routes, since a key's
//! `models` patterns are checked against the routes and its dollar budget
//! against the prices of what it may call. Secrets from the environment are
//! hashed here and the clear text dropped. Must not build runtime objects or
//! reach Redis.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::access::*;
use super::fields::FieldReader;
use super::names::glob_match;
use super::raw::{RawKey, RawPrice};
use super::report::Loc;
use super::route_spec::RouteSpec;

/// `sha256:<64 hex digits>` as written by `switchyard keys hash`.
pub fn parse_key_hash(text: &str) -> Option<[u8; 32]> {
    let digits = text.trim().strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// The policy form of a key's hash: `sha256:<hex>`.
pub fn key_hash(secret: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

pub(super) fn auth_mode(cx: &mut FieldReader, loc: &Loc, value: Option<&str>) -> AuthMode {
    match value {
        None | Some("open") => AuthMode::Open,
        Some("required") => AuthMode::Required,
        Some(other) => {
            cx.errors.at(
                loc,
                format!("unknown auth mode {other:?} (expected open or required)"),
            );
            AuthMode::Open
        }
    }
}

fn money(cx: &mut FieldReader, loc: &Loc, value: Option<f64>) -> Option<f64> {
    let v = value?;
    if !v.is_finite() || v < 0.0 {
        cx.errors
            .at(loc, "must be a number of US dollars, zero or more");
        return None;
    }
    Some(v)
}

pub(super) fn prices(cx: &mut FieldReader, raw: &BTreeMap<String, (String, RawPrice)>) -> Prices {
    let mut out = BTreeMap::new();
    for (model, (file, p)) in raw {
        let loc = Loc::new(file, format!("prices.{model}"));
        if p.input.is_none() {
            cx.errors.at(&loc.field("input"), "is required");
        }
        let input = money(cx, &loc.field("input"), p.input).unwrap_or(0.0);
        let output = money(cx, &loc.field("output"), p.output).unwrap_or(0.0);
        let cached = money(cx, &loc.field("cached"), p.cached).unwrap_or(input);
        out.insert(
            model.clone(),
            Price {
                input,
                output,
                cached,
            },
        );
    }
    Prices(out)
}

/// A name usable as a metric label: letters, digits, `-`, `_`, `.`, not
/// starting with `_` (reserved for the gateway's own labels).
fn alias_ok(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= 64
        && !alias.starts_with('_')
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(super) fn keys(
    cx: &mut FieldReader,
    raw: &BTreeMap<String, (String, RawKey)>,
    routes: &BTreeMap<String, RouteSpec>,
    prices: &Prices,
) -> Vec<KeySpec> {
    let mut out: Vec<KeySpec> = Vec::with_capacity(raw.len());
    let mut seen: BTreeMap<[u8; 32], String> = BTreeMap::new();
    for (alias, (file, k)) in raw {
        let loc = Loc::new(file, format!("keys.{alias}"));
        let before = cx.errors.len();
        if !alias_ok(alias) {
            cx.errors.at(
                &loc,
                "a key alias is 1 to 64 letters, digits, '-', '_' or '.', not starting with '_'",
            );
        }
        let secret = match (&k.secret_hash, &k.secret_env) {
            (Some(h), None) => parse_key_hash(h).or_else(|| {
                cx.errors.at(
                    &loc.field("secret_hash"),
                    "must be \"sha256:\" and 64 hex digits (print one with `switchyard keys hash`)",
                );
                None
            }),
            (None, Some(_)) => cx
                .secret(&loc.field("secret_env"), &k.secret_env)
                .map(|s| Sha256::digest(s.expose().as_bytes()).into()),
            (Some(_), Some(_)) => {
                cx.errors.at(
                    &loc.field("secret_env"),
                    "give secret_hash or secret_env, not both",
                );
                None
            }
            (None, None) => {
                cx.errors.at(
                    &loc,
                    "needs secret_hash (\"sha256:...\", from `switchyard keys hash`) or secret_env",
                );
                None
            }
        };
        if let Some(digest) = secret {
            if let Some(other) = seen.get(&digest) {
                cx.errors
                    .at(&loc, format!("has the same secret as keys.{other}"));
            } else {
                seen.insert(digest, alias.clone());
            }
        }
        let models = k.models.clone().unwrap_or_else(|| vec!["*".to_string()]);
        if models.is_empty() {
            cx.errors
                .at(&loc.field("models"), "must list at least one route pattern");
        }
        for (i, pattern) in models.iter().enumerate() {
            if !routes.keys().any(|r| glob_match(pattern, r)) {
                cx.errors.at(
                    &loc.field("models").index(i),
                    format!("{pattern:?} matches no route"),
                );
            }
        }
        let rpm = cx.per_minute(&loc.field("rpm"), k.rpm);
        let tpm = cx.per_minute(&loc.field("tpm"), k.tpm);
        let budget = k.budget.as_ref().and_then(|b| {
            let bloc = loc.field("budget");
            let period = match b.period.as_deref() {
                Some("day") => Some(BudgetPeriod::Day),
                Some("month") => Some(BudgetPeriod::Month),
                Some(other) => {
                    cx.errors.at(
                        &bloc.field("period"),
                        format!("unknown period {other:?} (expected day or month)"),
                    );
                    None
                }
                None => {
                    cx.errors
                        .at(&bloc.field("period"), "is required (day or month)");
                    None
                }
            };
            if b.tokens.is_none() && b.usd.is_none() {
                cx.errors.at(&bloc, "needs tokens, usd or both");
            }
            if b.tokens == Some(0) {
                cx.errors.at(&bloc.field("tokens"), "must be at least 1");
            }
            let usd = money(cx, &bloc.field("usd"), b.usd);
            if usd.is_some() {
                unpriced(cx, &bloc.field("usd"), &models, routes, prices);
            }
            Some(KeyBudget {
                period: period?,
                tokens: b.tokens,
                usd,
            })
        });
        let mut overrides = Overrides::default();
        for (i, what) in k.overrides.iter().flatten().enumerate() {
            match what.as_str() {
                "strategy" => overrides.strategy = true,
                "targets" => overrides.targets = true,
                other => cx.errors.at(
                    &loc.field("overrides").index(i),
                    format!("unknown override {other:?} (expected strategy or targets)"),
                ),
            }
        }
        if let (true, Some(secret_sha256)) = (cx.errors.len() == before, secret) {
            out.push(KeySpec {
                alias: alias.clone(),
                secret_sha256,
                models,
                rpm,
                tpm,
                budget,
                labels: k.labels.clone(),
                overrides,
            });
        }
    }
    out
}

/// A dollar budget only holds if everything the key may call has a price:
/// reports each target model without one.
fn unpriced(
    cx: &mut FieldReader,
    loc: &Loc,
    models: &[String],
    routes: &BTreeMap<String, RouteSpec>,
    prices: &Prices,
) {
    for route in routes
        .values()
        .filter(|r| models.iter().any(|p| glob_match(p, &r.name)))
    {
        for t in &route.targets {
            if prices.lookup(&t.provider, &t.model).is_none() {
                cx.errors.at(
                    loc,
                    format!(
                        "route {} sends model {:?} to {}, which has no entry in prices: its spend \
                         could not count against this budget",
                        route.name, t.model, t.provider
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("*", "chat"));
        assert!(glob_match("embed-*", "embed-small"));
        assert!(!glob_match("embed-*", "chat-embed-small"));
        assert!(glob_match("c?at", "chat"));
        assert!(!glob_match("chat", "chat2"));
        assert!(glob_match("*-mini*", "gpt-4o-mini"));
        assert!(!glob_match("a*b", "ac"));
    }

    #[test]
    fn key_hashes_round_trip() {
        let h = key_hash("sk-test");
        assert_eq!(
            parse_key_hash(&h),
            Some(<[u8; 32]>::from(Sha256::digest(b"sk-test")))
        );
        let digits = &h["sha256:".len()..];
        let upper = format!("sha256:{}", digits.to_uppercase());
        assert_eq!(parse_key_hash(&upper), parse_key_hash(&h));
        let not_hex = format!("sha256:g{}", &digits[1..]);
        assert_eq!(parse_key_hash(&not_hex), None);
        assert_eq!(parse_key_hash("sha256:abc"), None);
        assert_eq!(parse_key_hash(&h.replace("sha256:", "md5:")), None);
    }
}
