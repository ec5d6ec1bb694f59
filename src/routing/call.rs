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
//! `execute`, the one place that knows both. Must not know endpoints,
//! status codes or wire formats.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::providers::{Need, Provider, UpstreamError};

/// One request as routing sees it.
pub trait Call: Send + Sync + 'static {
    /// What one successful attempt answers.
    type Reply: Send + 'static;

    /// What a target must be able to do to serve this call (targets that
    /// cannot are skipped, not failed).
    fn need(&self) -> Need;

    /// The tokens this call may use, estimated before it is sent (for
    /// provider TPM limits; see `api::estimate`).
    fn estimated_tokens(&self) -> u64;

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

/// A call's reply with its type erased, between the adapter and `execute`.
pub(super) type AnyReply = Box<dyn Any + Send>;

/// [`Call`] with its reply type erased, so attempt stacks take any call.
trait ErasedCall: Send + Sync {
    fn run(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> BoxFuture<'static, Result<AnyReply, UpstreamError>>;
}

impl<C: Call> ErasedCall for C {
    fn run(
        self: Arc<Self>,
        provider: Arc<dyn Provider>,
        model: Arc<str>,
    ) -> BoxFuture<'static, Result<AnyReply, UpstreamError>> {
        self.attempt(provider, model)
            .map(|r| r.map(|reply| Box::new(reply) as AnyReply))
            .boxed()
    }
}

/// One attempt of a call on one target, as the attempt stack gets it.
#[derive(Clone)]
pub struct Attempt {
    /// The target's model, as the provider is asked for it.
    pub model: Arc<str>,
    /// The call's token estimate (what a TPM hold takes).
    pub estimate: u64,
    call: Arc<dyn ErasedCall>,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("model", &self.model)
            .field("estimate", &self.estimate)
            .finish_non_exhaustive()
    }
}

impl Attempt {
    pub(super) fn new<C: Call>(call: &Arc<C>, model: &str, estimate: u64) -> Attempt {
        Attempt {
            model: Arc::from(model),
            estimate,
            call: Arc::clone(call) as Arc<dyn ErasedCall>,
        }
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
