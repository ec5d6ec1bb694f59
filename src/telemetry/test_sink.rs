//! For unit tests of log output: a writer that keeps what it is given.
//!
//! Place in the pipeline: none (compiled for tests only). Must not be used
//! outside `#[cfg(test)]` code.

use std::sync::{Arc, Mutex};

/// Every byte written, shared by its clones.
#[derive(Clone, Default)]
pub(crate) struct Sink(pub(super) Arc<Mutex<Vec<u8>>>);

impl Sink {
    /// What was written, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fixed timestamp, so that two ways of writing a line write the same.
#[derive(Clone)]
pub(crate) struct FixedTime;

impl tracing_subscriber::fmt::time::FormatTime for FixedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        w.write_str("2026-12-06T05:00:00.000001Z")
    }
}
