//! For unit tests of log output: a writer that keeps what it is given.
//!
//! Place in the pipeline: none (compiled for tests only). Must not be used
//! outside `#[cfg(test)]` code.

use std::sync::{Arc, Mutex};

/// Every byte written, shared by its clones.
#[derive(Clone, Default)]
pub(super) struct Sink(pub(super) Arc<Mutex<Vec<u8>>>);

impl Sink {
    /// What was written, as text.
    pub(super) fn text(&self) -> String {
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
