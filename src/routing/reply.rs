//! What routing needs of a call's reply: how big it is ([`Reply`]), that
//! a stream keeps its provider's concurrency slot until it ends
//! ([`KeepsSlot`]), and what it says of itself for its attempt's trace
//! span ([`ReplyFacts`] of a whole answer, [`watch_chat_usage`] for a
//! stream's usage as it goes by).
//!
//! Place in the pipeline: beside `call`: endpoints implement these for
//! their replies, the attempt stack and `span` use them. Must not know
//! endpoints, status codes or wire formats beyond a reply's usage.

use futures_util::StreamExt;

use crate::api::embeddings::EmbedAnswer;
use crate::api::rerank::RerankReply;
use crate::api::usage::{Dialect, Usage, UsageTap, model_and_usage};
use crate::providers::ChatReply;
use crate::resilience::Slot;

/// What routing needs of a call's reply.
pub trait Reply: KeepsSlot + Sized + Send + 'static {
    /// How big the answer is in the units its latency is divided by
    /// (output tokens, items); 1 when unknown.
    fn units(&self) -> u64 {
        1
    }
}

/// A stream has answered when the attempt returns it: every provider is
/// wrapped so that its streams are held until their first real content
/// (`providers::hold`), so one that fails before it fails the attempt and
/// is retried, failed over or hedged like any other.
impl Reply for ChatReply {
    fn units(&self) -> u64 {
        match self {
            ChatReply::Full(body, usage) => usage.output_tokens(body).unwrap_or(1),
            ChatReply::Stream(_) => 1,
        }
    }
}

impl Reply for EmbedAnswer {
    fn units(&self) -> u64 {
        self.count() as u64
    }
}

impl Reply for RerankReply {
    fn units(&self) -> u64 {
        self.scores.len() as u64
    }
}

impl Reply for () {}

/// A reply that holds its provider's concurrency slot for as long as it is
/// read: a stream to its end; a whole answer gives it back at once.
pub trait KeepsSlot {
    fn keep(&mut self, slot: Slot) {
        drop(slot);
    }
}

impl KeepsSlot for ChatReply {
    fn keep(&mut self, slot: Slot) {
        let ChatReply::Stream(events) = self else {
            return;
        };
        let events = std::mem::replace(events, futures_util::stream::empty().boxed());
        // The slot goes when the stream is dropped (ended, failed or abandoned).
        *self = ChatReply::Stream(
            events
                .map(move |event| {
                    let _held = &slot;
                    event
                })
                .boxed(),
        );
    }
}

impl KeepsSlot for EmbedAnswer {}
impl KeepsSlot for RerankReply {}
impl KeepsSlot for () {}

/// What an answer says of itself, for a trace span.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyFacts {
    pub model: Option<String>,
    pub usage: Option<Usage>,
}

impl ReplyFacts {
    /// From a whole answer in `dialect`; nothing from a stream (its usage
    /// comes at its end: [`watch_chat_usage`]).
    pub fn of_chat(dialect: Dialect, reply: &ChatReply) -> ReplyFacts {
        match reply {
            ChatReply::Full(body, _) => {
                let (model, usage) = model_and_usage(dialect, body);
                ReplyFacts { model, usage }
            }
            ChatReply::Stream(_) => ReplyFacts::default(),
        }
    }
}

/// What is called with a stream's usage as it is seen.
pub type UsageSeen = Box<dyn FnMut(Usage) + Send>;

/// [`Call::watch_usage`](super::Call::watch_usage) for a chat-like reply whose events are in
/// `dialect`: a stream is read by a [`UsageTap`] as it goes by (events
/// that cannot carry usage cost no parse).
pub fn watch_chat_usage(dialect: Dialect, reply: &mut ChatReply, mut seen: UsageSeen) {
    let ChatReply::Stream(events) = reply else {
        return;
    };
    let events = std::mem::replace(events, futures_util::stream::empty().boxed());
    let mut tap = UsageTap::new(dialect);
    *reply = ChatReply::Stream(
        events
            .inspect(move |event| {
                if let Ok(run) = event
                    && tap.feed(run)
                    && let Some(usage) = tap.usage()
                {
                    seen(usage);
                }
            })
            .boxed(),
    );
}
