//! The policy files merged into one view: each section and each named
//! entry once, with the file it came from.
//!
//! Place in the pipeline: the step of loading between reading the files
//! (`shape`) and validating them (`validate`, `entries`): a section or an
//! entry written in two files is an error at its second place. Must not
//! apply defaults or check values.

use std::collections::BTreeMap;

use super::raw::*;
use super::report::Errors;

/// Merged view of all files, remembering which file each entry came from.
pub(super) struct Merged {
    pub server: Option<(String, RawServer)>,
    pub cache: Option<(String, RawCache)>,
    pub limits: Option<(String, RawLimits)>,
    pub providers: BTreeMap<String, (String, RawProvider)>,
    pub routes: BTreeMap<String, (String, RawRoute)>,
    pub keys: BTreeMap<String, (String, RawKey)>,
    pub prices: BTreeMap<String, (String, RawPrice)>,
    pub state: Option<(String, RawState)>,
    pub tracing: Option<(String, RawTracing)>,
}

fn merge_section<T>(
    slot: &mut Option<(String, T)>,
    file: &str,
    value: Option<T>,
    name: &str,
    errors: &mut Errors,
) {
    let Some(value) = value else { return };
    if let Some((first, _)) = slot {
        let first = errors.place(first, name);
        errors.push(
            errors.location(file, name),
            format!("section is already set in {first}; set it in one file only"),
        );
    } else {
        *slot = Some((file.to_string(), value));
    }
}

fn merge_map<T>(
    into: &mut BTreeMap<String, (String, T)>,
    file: &str,
    entries: BTreeMap<String, T>,
    section: &str,
    errors: &mut Errors,
) {
    for (name, value) in entries {
        let path = format!("{section}.{name}");
        if let Some((first, _)) = into.get(&name) {
            let first = errors.place(first, &path);
            errors.push(
                errors.location(file, &path),
                format!("duplicate name; first defined in {first}"),
            );
        } else {
            into.insert(name, (file.to_string(), value));
        }
    }
}
pub(super) fn merge(files: Vec<(String, RawFile)>, errors: &mut Errors) -> Merged {
    let mut m = Merged {
        server: None,
        cache: None,
        limits: None,
        providers: BTreeMap::new(),
        routes: BTreeMap::new(),
        keys: BTreeMap::new(),
        prices: BTreeMap::new(),
        state: None,
        tracing: None,
    };
    for (file, raw) in files {
        merge_section(&mut m.server, &file, raw.server, "server", errors);
        merge_section(&mut m.cache, &file, raw.cache, "cache", errors);
        merge_section(&mut m.limits, &file, raw.limits, "limits", errors);
        merge_map(&mut m.providers, &file, raw.providers, "providers", errors);
        merge_map(&mut m.routes, &file, raw.routes, "routes", errors);
        merge_map(&mut m.keys, &file, raw.keys, "keys", errors);
        merge_map(&mut m.prices, &file, raw.prices, "prices", errors);
        merge_section(&mut m.state, &file, raw.state, "state", errors);
        merge_section(&mut m.tracing, &file, raw.tracing, "tracing", errors);
    }
    m
}
