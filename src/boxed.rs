//! Futures boxed in place.
//!
//! Place in the pipeline: a leaf, used where a request's future is boxed
//! on its way through the gateway (the edge's dispatch, the router's
//! endpoints, an upstream's send, the per-attempt layers). Must not hold
//! anything but the allocation.
//!
//! `Box::pin(f())` builds `f`'s future in a temporary and then copies all
//! of it into the heap, the space for the states it has not reached yet
//! included: the chat endpoint's future is about 2.5 KB, of which its
//! arguments are about 250 bytes. With hundreds of requests in flight the
//! copy lands on memory that is not in the core's caches, so each of its
//! lines is a miss (the cache-simulated profile of 512 connections in
//! `bench/instructions.sh` showed these copies as the largest source of
//! them). [`in_place`] allocates first and builds the future in the
//! allocation: only its arguments and its state are written.

use std::future::Future;
use std::pin::Pin;

/// `make()`'s future, built in a fresh box rather than copied into one.
/// Keep `make` a closure that only calls an `async fn` or holds an
/// `async` block, so that the compiler can build the future where it is
/// stored.
#[inline(always)]
pub(crate) fn in_place<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

#[cfg(test)]
mod tests {
    use super::in_place;

    async fn sum(numbers: Vec<u64>) -> u64 {
        let mut total = 0;
        for n in numbers {
            tokio::task::yield_now().await;
            total += n;
        }
        total
    }

    #[tokio::test]
    async fn the_boxed_future_runs_to_its_answer() {
        let boxed = in_place(|| sum(vec![1, 2, 3]));
        assert_eq!(boxed.await, 6);
    }
}
