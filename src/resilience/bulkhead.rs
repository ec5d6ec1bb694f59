//! The bulkhead as a tower layer: a provider's concurrency limit in front
//! of its attempt stack.
//!
//! Place in the pipeline: outermost in each provider's attempt stack
//! (`routing::attempt`): `Bulkhead -> RateLimit -> (TPM hold) -> Breaker ->
//! UpstreamMetrics -> adapter`. A call takes a slot of the provider's
//! [`ConcurrencyLimit`] or is refused at once ([`Refusal::saturated`]),
//! unless its request says it may wait (the route's last target), then it
//! waits up to the limit's `max_wait`. The call's outcome is reported on
//! the slot as the [`Signal`] the owner's function reads from it; the slot
//! of a successful call is handed to the request's [`Kept`] (so a stream
//! holds it to its end), any other is released when the call returns or is
//! dropped. Must not know providers, HTTP or what an error means: it is
//! told by the functions its owner gives it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::concurrency::{ConcurrencyLimit, Refused, Signal, Slot};
use super::layers::Refusal;
use crate::boxed::in_place;

type BoxFut<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// What the bulkhead needs of a request.
pub trait SlotRequest {
    /// The call may wait for a slot rather than be refused at once (no
    /// other target is left to try).
    fn may_wait(&self) -> bool;
    /// Where the slot of a successful call is left, to be held for as long
    /// as its answer is read; `None` releases it when the call returns.
    fn keeper(&self) -> Option<Arc<Kept>>;
}

/// A successful call's slot, until its owner takes it (or drops this).
#[derive(Debug, Default)]
pub struct Kept(Mutex<Option<Slot>>);

impl Kept {
    pub fn put(&self, slot: Slot) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
    }
    pub fn take(&self) -> Option<Slot> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Takes a slot of `limit` for each call; `signal` reads each outcome;
/// `on_refuse` is told of each refusal (to count it).
pub struct BulkheadLayer<R, E> {
    limit: Arc<ConcurrencyLimit>,
    signal: fn(&Result<R, E>) -> Signal,
    on_refuse: Arc<dyn Fn(Refused) + Send + Sync>,
}

impl<R, E> Clone for BulkheadLayer<R, E> {
    fn clone(&self) -> Self {
        BulkheadLayer {
            limit: Arc::clone(&self.limit),
            signal: self.signal,
            on_refuse: Arc::clone(&self.on_refuse),
        }
    }
}

impl<R, E> std::fmt::Debug for BulkheadLayer<R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<R, E> BulkheadLayer<R, E> {
    pub fn new(
        limit: Arc<ConcurrencyLimit>,
        signal: fn(&Result<R, E>) -> Signal,
        on_refuse: impl Fn(Refused) + Send + Sync + 'static,
    ) -> Self {
        BulkheadLayer {
            limit,
            signal,
            on_refuse: Arc::new(on_refuse),
        }
    }
}

impl<S, R, E> Layer<S> for BulkheadLayer<R, E> {
    type Service = Bulkhead<S, R, E>;
    fn layer(&self, inner: S) -> Bulkhead<S, R, E> {
        Bulkhead {
            inner,
            layer: self.clone(),
        }
    }
}

pub struct Bulkhead<S, R, E> {
    inner: S,
    layer: BulkheadLayer<R, E>,
}

impl<S: Clone, R, E> Clone for Bulkhead<S, R, E> {
    fn clone(&self) -> Self {
        Bulkhead {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, R, E> std::fmt::Debug for Bulkhead<S, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, Req, R, E> Service<Req> for Bulkhead<S, R, E>
where
    S: Service<Req, Response = R, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Req: SlotRequest + Send + 'static,
    R: Send + 'static,
    E: Refusal + Send + 'static,
{
    type Response = R;
    type Error = E;
    type Future = BoxFut<R, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The inner service was made ready for this call: take it (the
        // call may first wait for a slot), leave a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        in_place(move || async move {
            let slot = match layer.limit.acquire(req.may_wait()).await {
                Ok(slot) => slot,
                Err(why) => {
                    (layer.on_refuse)(why);
                    return Err(E::saturated());
                }
            };
            let keeper = req.keeper();
            let result = inner.call(req).await;
            slot.record((layer.signal)(&result));
            if let (Ok(_), Some(keeper)) = (&result, keeper) {
                keeper.put(slot);
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConcurrencySpec, LimitSpec};
    use std::time::Duration;
    use tower::ServiceExt;

    #[derive(Debug, PartialEq)]
    enum E {
        Saturated,
        Boom,
    }
    impl Refusal for E {
        fn rate_limited(_: Duration) -> Self {
            E::Boom
        }
        fn breaker_open() -> Self {
            E::Boom
        }
        fn saturated() -> Self {
            E::Saturated
        }
    }

    #[derive(Debug, Clone)]
    struct Req {
        wait: bool,
        kept: Option<Arc<Kept>>,
    }
    impl SlotRequest for Req {
        fn may_wait(&self) -> bool {
            self.wait
        }
        fn keeper(&self) -> Option<Arc<Kept>> {
            self.kept.clone()
        }
    }

    fn signal(r: &Result<u32, E>) -> Signal {
        if r.is_ok() {
            Signal::Success
        } else {
            Signal::Overload
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_its_limit_a_call_is_refused_or_waits_and_a_kept_slot_stays_taken() {
        let limit = ConcurrencyLimit::new(
            ConcurrencySpec {
                limit: LimitSpec::Fixed(Some(1)),
                max_wait: Duration::from_secs(10),
            },
            100,
            Box::new(|_, _| {}),
        );
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&refusals);
        let layer = BulkheadLayer::new(Arc::clone(&limit), signal, move |r| {
            seen.lock().unwrap().push(r)
        });
        let (mock, mut handle) = tower_test::mock::pair::<Req, u32>();
        let svc = layer.layer(mock.map_err(|_| E::Boom));
        let plain = |wait| Req { wait, kept: None };

        let first = tokio::spawn(svc.clone().oneshot(plain(false)));
        let (_, answer) = handle.next_request().await.unwrap();
        assert_eq!(
            svc.clone().oneshot(plain(false)).await,
            Err(E::Saturated),
            "refused at once: another target may take it"
        );
        let last = tokio::spawn(svc.clone().oneshot(plain(true)));
        tokio::task::yield_now().await;
        answer.send_error("upstream down");
        assert_eq!(first.await.unwrap(), Err(E::Boom));
        let (_, answer) = handle.next_request().await.unwrap();
        answer.send_response(7);
        assert_eq!(
            last.await.unwrap(),
            Ok(7),
            "the last target waited its turn"
        );
        assert_eq!(*refusals.lock().unwrap(), [Refused::AtLimit]);

        let kept = Arc::new(Kept::default());
        let call = tokio::spawn(svc.clone().oneshot(Req {
            wait: false,
            kept: Some(Arc::clone(&kept)),
        }));
        handle.next_request().await.unwrap().1.send_response(8);
        assert_eq!(call.await.unwrap(), Ok(8));
        assert_eq!(
            limit.in_flight(),
            1,
            "a stream's slot is held past its call"
        );
        drop(kept.take());
        assert_eq!(limit.in_flight(), 0);
    }
}
