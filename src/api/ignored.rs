//! What a translation accepted but did not send upstream, named for the
//! client in the `x-switchyard-ignored` response header and counted in
//! `switchyard_ignored_fields_total`.
//!
//! Place in the pipeline: the Messages and Responses translations (`api/`)
//! and their endpoints fill an [`Ignored`] list; the endpoint writes it on
//! the answer. Names come from the client's body, so they are cleaned for a
//! header (visible ASCII of a field name's alphabet, length-capped) and
//! metric labels are fixed strings, never the client's text. Must not do
//! I/O.

/// The most names one header lists; more are summed up as `+N more`.
const MAX_NAMES: usize = 24;
/// The longest name kept, in bytes.
const MAX_NAME: usize = 64;

/// One field (or value of a field) accepted and not sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredField {
    /// As the header names it: `client_metadata`,
    /// `include:reasoning.encrypted_content`, `tools:web_search`.
    pub name: String,
    /// The metric label: a fixed name, never the client's own text.
    pub label: &'static str,
}

/// The fields one request had ignored, in the order they were met.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignored(Vec<IgnoredField>);

impl Ignored {
    /// Adds `name` (once) with the metric `label`.
    pub fn add(&mut self, name: impl Into<String>, label: &'static str) {
        let name = clean(&name.into());
        if !self.0.iter().any(|f| f.name == name) {
            self.0.push(IgnoredField { name, label });
        }
    }

    /// Adds a known field by its own name (also its label).
    pub fn field(&mut self, name: &'static str) {
        self.add(name, name);
    }

    pub fn extend(&mut self, other: &Ignored) {
        for f in &other.0 {
            if !self.0.iter().any(|g| g.name == f.name) {
                self.0.push(f.clone());
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> &[IgnoredField] {
        &self.0
    }

    /// The header value: names joined by `, ` (`None` when empty).
    pub fn header_value(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let mut out = self
            .0
            .iter()
            .take(MAX_NAMES)
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if self.0.len() > MAX_NAMES {
            out.push_str(&format!(", +{} more", self.0.len() - MAX_NAMES));
        }
        Some(out)
    }
}

/// `name` with anything outside a field name's alphabet replaced by `?`,
/// cut to [`MAX_NAME`] bytes: always a valid header value.
fn clean(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.:[]=/".contains(c) {
                c
            } else {
                '?'
            }
        })
        .take(MAX_NAME)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_once_cleaned_and_capped() {
        let mut i = Ignored::default();
        assert_eq!(i.header_value(), None);
        i.field("client_metadata");
        i.add("include:reasoning.encrypted_content", "include");
        i.field("client_metadata");
        i.add("bad\r\nname ✓", "unknown_field");
        assert_eq!(
            i.header_value().unwrap(),
            "client_metadata, include:reasoning.encrypted_content, bad??name??"
        );
        assert!(http::HeaderValue::from_str(&i.header_value().unwrap()).is_ok());
        let mut many = Ignored::default();
        for n in 0..30 {
            many.add(format!("f{n}"), "unknown_field");
        }
        assert!(many.header_value().unwrap().ends_with("f23, +6 more"));
        many.add("x".repeat(200), "unknown_field");
        assert_eq!(many.fields().last().unwrap().name.len(), MAX_NAME);
    }
}
