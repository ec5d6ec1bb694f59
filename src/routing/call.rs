//! What routing needs of a request, and nothing of its endpoint: the
//! [`Call`] trait, and [`Attempt`], one call on one target as the attempt
//! stack sees it.
//!
//! Place in the pipeline: an endpoint (in `server`) implements [`Call`] for
//! its request (what a target must be able to do, a token estimate, and one
//! attempt on a provider as a given model); `run::execute` orders the
//! route's targets, skips those whose declared capabilities do not serve
//! the call, and hands each attempt to the target's stack as an
//! [`Attempt`]: the call with its type erased, so one stack per provider
//! serves every endpoint and a new endpoint adds nothing here. The reply
//! comes back erased too and is turned back into the call's own type in
//! `execute`, the one place that knows both. What strategies need of a
//! call (its token estimates, whether it may be sent twice, a conversation
//! key, how its latency is measured) are methods with defaults, and what
//! they need of a reply (how big it is) is [`Reply`].
//! What routing needs of a reply is in `reply`. Must not know endpoints,
//! status codes or wire formats.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::reply::{Reply, ReplyFacts, UsageSeen};
use crate::boxed::in_place;
use crate::providers::{Need, Provider, UpstreamError};
use crate::resilience::Slot;
use crate::resilience::bulkhead::{Kept, SlotRequest};

/// One request as routing sees it.
pub trait Call: Send + Sync + 'static {
    /// What one successful attempt answers.
    type Reply: Reply;

    /// What a target must be able to do to serve this call (targets that
    /// cannot are skipped, not failed).
    fn need(&self) -> Need;

    /// The tokens this call may use, estimated before it is sent (for
    /// provider TPM limits; see `api::estimate`).
    fn estimated_tokens(&self) -> u64;

    /// The fan-out sub-batch this call is, if it is one (for its attempts'
    /// trace spans).
    fn sub_batch(&self) -> Option<SubBatch> {
        None
    }

    /// What a successful reply says of itself (the model that answered,
    /// the tokens it reports), for its attempt's trace span; asked only
    /// when tracing is on. Nothing by default (and for streams).
    fn describe(_reply: &Self::Reply) -> ReplyFacts
    where
        Self: Sized,
    {
        ReplyFacts::default()
    }

    /// Has `seen` called with the usage a streamed reply reports as its
    /// events go by (for its attempt's trace span, kept open until the
    /// stream ends; asked only when tracing is on). Whole answers tell
    /// theirs in [`Call::describe`]. Nothing by default.
    fn watch_usage(_reply: &mut Self::Reply, _seen: UsageSeen)
    where
        Self: Sized,
    {
    }

    /// The prompt's tokens, estimated (a target whose `context_window`
    /// cannot hold this plus [`Call::output_tokens`] is skipped; `cost`
    /// prices it at the input price).
    fn input_tokens(&self) -> u64 {
        self.estimated_tokens()
    }

    /// The output tokens the call asks for at most (0: no bound given).
    fn output_tokens(&self) -> u64 {
        0
    }

    /// Whether the call may be sent twice (a hedge): no side effect
    /// upstream beyond its answer.
    fn idempotent(&self) -> bool {
        false
    }

    /// The conversation this call belongs to, for prompt-cache affinity
    /// (computed by the endpoint per the route's `affinity.by`).
    fn affinity(&self) -> Option<u64> {
        None
    }

    /// How this call's latency is measured.
    fn pace(&self) -> Pace {
        Pace::of(self.need())
    }

    /// One attempt on `provider`, sent as its `model`. Must not retry or
    /// fail over: routing does.
    fn attempt(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> impl Future<Output = Result<Self::Reply, UpstreamError>> + Send + 'static;

    /// For stream continuation (`streams`): this call asking a target to
    /// continue `partial`, the text a broken chat stream had carried;
    /// `None` when the call cannot be continued (the default).
    fn resume(&self, _partial: &str) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// How an attempt's latency is measured, each kept apart per provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Streams: time to the first event.
    FirstByte,
    /// Whole answers: total time per output token.
    PerToken,
    /// Embeddings and rerank: total time per input item.
    PerItem,
}

impl Pace {
    pub const ALL: [Pace; 3] = [Pace::FirstByte, Pace::PerToken, Pace::PerItem];

    /// The measure of a call needing `need`.
    pub fn of(need: Need) -> Pace {
        match need {
            Need::Chat { stream: true } | Need::NativeOrChat { stream: true, .. } => {
                Pace::FirstByte
            }
            Need::Embeddings | Need::Rerank => Pace::PerItem,
            _ => Pace::PerToken,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which part of a fanned-out request a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubBatch {
    /// 0-based, in input order.
    pub index: usize,
    /// Items in it.
    pub size: usize,
}

/// A call's reply with its type erased, between the adapter and `execute`.
pub(super) type AnyReply = Box<dyn Any + Send>;

/// [`Call`] with its reply type erased, so attempt stacks take any call.
trait ErasedCall: Send + Sync {
    fn describe(&self, reply: &AnyReply) -> ReplyFacts;

    fn run(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> BoxFuture<'static, Result<AnyReply, UpstreamError>>;

    /// [`Reply::units`] of an erased reply of this call.
    fn units(&self, reply: &AnyReply) -> u64;

    /// [`Call::watch_usage`] of an erased reply of this call.
    fn watch_usage(&self, reply: &mut AnyReply, seen: UsageSeen);
}

impl<C: Call> ErasedCall for C {
    fn describe(&self, reply: &AnyReply) -> ReplyFacts {
        reply
            .downcast_ref::<C::Reply>()
            .map(C::describe)
            .unwrap_or_default()
    }

    fn run(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> BoxFuture<'static, Result<AnyReply, UpstreamError>> {
        in_place(move || {
            self.attempt(provider, model)
                .map(|r| r.map(|reply| Box::new(reply) as AnyReply))
        })
    }

    fn units(&self, reply: &AnyReply) -> u64 {
        reply.downcast_ref::<C::Reply>().map_or(1, Reply::units)
    }

    fn watch_usage(&self, reply: &mut AnyReply, seen: UsageSeen) {
        if let Some(reply) = reply.downcast_mut::<C::Reply>() {
            C::watch_usage(reply, seen);
        }
    }
}

/// One attempt of a call on one target, as the attempt stack gets it.
#[derive(Clone)]
pub struct Attempt {
    /// The target's model, as the provider is asked for it.
    pub model: Arc<str>,
    /// The call's token estimate (what a TPM hold takes).
    pub estimate: u64,
    /// How its latency is measured, and how fast the route forgets peaks.
    pub pace: Pace,
    pub decay: Duration,
    /// No other target is left: it may wait for a concurrency slot.
    pub may_wait: bool,
    /// Where the bulkhead leaves the slot of a successful attempt (shared
    /// by a hedge made from this attempt: only one of them can succeed).
    kept: Arc<Kept>,
    /// What the call needs of a target (names its operation in traces).
    pub need: Need,
    /// Tries of this target before this one (0: the first).
    pub retry: u32,
    /// The fan-out sub-batch the call is, if any.
    pub sub_batch: Option<SubBatch>,
    call: Arc<dyn ErasedCall>,
}

impl SlotRequest for Attempt {
    fn may_wait(&self) -> bool {
        self.may_wait
    }
    fn keeper(&self) -> Option<Arc<Kept>> {
        Some(Arc::clone(&self.kept))
    }
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("model", &self.model)
            .field("estimate", &self.estimate)
            .field("may_wait", &self.may_wait)
            .finish_non_exhaustive()
    }
}

impl Attempt {
    pub(super) fn new<C: Call>(call: &Arc<C>, model: &str, estimate: u64) -> Attempt {
        Attempt {
            model: Arc::from(model),
            estimate,
            pace: call.pace(),
            decay: Duration::from_secs(10),
            may_wait: false,
            kept: Arc::default(),
            need: call.need(),
            retry: 0,
            sub_batch: call.sub_batch(),
            call: Arc::clone(call) as Arc<dyn ErasedCall>,
        }
    }

    /// [`Reply::units`] of this attempt's (erased) reply.
    pub(super) fn units(&self, reply: &AnyReply) -> u64 {
        self.call.units(reply).max(1)
    }

    /// The concurrency slot of the attempt that just succeeded.
    pub(super) fn take_slot(&self) -> Option<Slot> {
        self.kept.take()
    }

    /// What `reply` (this attempt's) says of itself, for its trace span.
    pub(super) fn describe(&self, reply: &AnyReply) -> ReplyFacts {
        self.call.describe(reply)
    }

    /// Has `seen` called with the usage `reply` (this attempt's, a stream)
    /// reports as it goes by.
    pub(super) fn watch_usage(&self, reply: &mut AnyReply, seen: UsageSeen) {
        self.call.watch_usage(reply, seen);
    }

    /// Runs the attempt on `provider` (the adapter, innermost in the stack).
    pub(super) fn run(
        self,
        provider: Arc<dyn Provider>,
    ) -> BoxFuture<'static, Result<AnyReply, UpstreamError>> {
        self.call.run(provider, self.model)
    }
}

/// A successful call and who served it.
#[derive(Debug)]
pub struct Served<T> {
    pub value: T,
    pub provider: Arc<str>,
    /// The target's model, as the provider was asked for it (prices are
    /// keyed on it).
    pub model: Arc<str>,
    pub attempts: u32,
}

impl<T> Served<T> {
    /// The same call with its value turned into `U` (or an error).
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Served<U>, E> {
        Ok(Served {
            value: f(self.value)?,
            provider: self.provider,
            model: self.model,
            attempts: self.attempts,
        })
    }
}
