//! Where the cache's memory comes from: a per-thread mark, set while the
//! cache stores, looks up, evicts or expires entries, which the binary's
//! global allocator (`src/alloc.rs`) reads to take those blocks from a heap
//! of their own.
//!
//! Place in the pipeline: under [`super::ResponseCache`], around each of
//! its calls into moka and the copy of each payload it keeps. Why: cached
//! entries live for their TTL, request memory for microseconds. In one
//! heap, the few long-lived objects allocated while a cache filled (metric
//! label strings, for one) each pin a page of entries that have since
//! expired, so the process kept 6-8 MiB after a full cache expired; with
//! the entries on pages of their own, those pages empty out and are
//! returned (`bench/mi_pages.py` shows a process's pages). Only a placement hint: without the binary's
//! allocator (tests, the library used alone) the mark changes nothing.
//! Must not hold the mark across an `.await` (other tasks would run under
//! it): futures are marked for each poll only.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;

thread_local! {
    /// Whether allocations on this thread are the cache's. A `const`
    /// `Cell` with no destructor: reading it from the allocator neither
    /// allocates nor registers anything.
    static CACHE: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is working for the cache now.
#[inline]
pub fn active() -> bool {
    CACHE.with(Cell::get)
}

/// Sets the mark and puts the previous value back on drop, so a panic or
/// a nested call leaves the thread as it found it.
struct Mark(bool);

impl Mark {
    #[inline]
    fn set() -> Mark {
        Mark(CACHE.with(|c| c.replace(true)))
    }
}

impl Drop for Mark {
    #[inline]
    fn drop(&mut self) {
        CACHE.with(|c| c.set(self.0));
    }
}

/// Runs `f` with the mark set.
#[inline]
pub fn within<T>(f: impl FnOnce() -> T) -> T {
    let _mark = Mark::set();
    f()
}

/// Awaits `fut` with the mark set during each of its polls, and only then.
pub async fn placed<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    std::future::poll_fn(move |cx| {
        let _mark = Mark::set();
        fut.as_mut().poll(cx)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_holds_inside_and_is_restored_after_nesting_and_panics() {
        assert!(!active());
        within(|| {
            assert!(active());
            within(|| assert!(active()));
            assert!(active(), "an inner scope must not clear the outer one");
        });
        assert!(!active());
        let caught = std::panic::catch_unwind(|| within(|| panic!("inside")));
        assert!(caught.is_err());
        assert!(!active(), "a panic inside must not leave the mark set");
    }

    #[tokio::test]
    async fn a_future_is_marked_while_polled_and_not_between_polls() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(placed(async move {
            let before = active();
            rx.await.unwrap();
            (before, active())
        }));
        tokio::task::yield_now().await;
        // The task is parked on `rx`: this thread runs without the mark.
        assert!(!active());
        tx.send(()).unwrap();
        assert_eq!(task.await.unwrap(), (true, true));
        assert!(!active());
    }
}
