//! Token usage of one answer, as every endpoint reports it.
//!
//! Place in the pipeline: filled by `server` from the answer (JSON bodies,
//! stream events, embedding sub-batches), read once at the end of the
//! request by accounting (metrics, TPM, budgets). Must not price anything:
//! prices are applied by whoever reads it.

/// Tokens of one answer. `cached` is the part of `prompt` the provider
/// served from its own prompt cache (priced apart), not gateway cache hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt + self.completion
    }
}
