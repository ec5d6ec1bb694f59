//! A future (or a body) polled only when its own waker has fired.
//!
//! Place in the pipeline: around what watches a connection or a stream
//! from the side: the accept loop's quiet timer and drain signal per
//! connection, and an upstream stream's idle timer (`providers::body`).
//! The connection's task is woken for every request and every chunk of a
//! stream, and a `select!` polls each branch at each wake-up, so those
//! watches were polled (a timer's state read, a waker compared) hundreds
//! of times for each time one of them had anything to say. [`OnWake`]
//! gives the inner future a waker of its own that marks it before waking
//! the task, and polls it only when marked (and once at first). The same
//! [`Gate`] keeps a streamed answer's body from being walked down to its
//! upstream socket when nothing woke it (`server::edge::span`): after each
//! chunk hyper polls the body once more than the one that found it empty.
//! Must not hold anything but the inner future and its mark: it is part
//! of every connection's task; and must only wrap what wakes its last
//! waker whenever it has news (a timer moved later keeps its waker).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

pin_project_lite::pin_project! {
    /// `F`, polled only after a wake-up of its own.
    pub(crate) struct OnWake<F> {
        #[pin]
        inner: F,
        gate: Gate,
    }
}

/// What is polled through it is polled at first, after each `Ready`, and
/// otherwise only after a wake-up of its own (a waker that marks it, then
/// wakes the task that polled last).
pub(crate) struct Gate {
    mark: Arc<Mark>,
    waker: Waker,
}

/// The inner future's waker: marks it, then wakes the task.
struct Mark {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Mark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    pub(crate) fn new() -> Self {
        let mark = Arc::new(Mark {
            // Polled at first, to arm whatever the inner one waits on.
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Gate {
            waker: Waker::from(Arc::clone(&mark)),
            mark,
        }
    }

    /// `poll` (given the gate's own context) when it may have news, else
    /// `Pending` without a look.
    #[inline]
    pub(crate) fn poll<T>(
        &self,
        cx: &Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // The task's waker first: a wake-up after the look below finds it.
        self.mark.task.register(cx.waker());
        if !self.mark.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let out = poll(&mut Context::from_waker(&self.waker));
        if out.is_ready() {
            // What gave one item may have the next at once.
            self.mark.woken.store(true, Ordering::Release);
        }
        out
    }
}

impl<F> OnWake<F> {
    pub(crate) fn new(inner: F) -> Self {
        OnWake {
            inner,
            gate: Gate::new(),
        }
    }

    /// The inner future, to change (a timer's deadline).
    pub(crate) fn inner(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().inner
    }
}

impl<F: Future> Future for OnWake<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        this.gate.poll(cx, |cx| inner.poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A oneshot receiver that counts its polls.
    fn counted(
        rx: tokio::sync::oneshot::Receiver<u8>,
    ) -> (Arc<AtomicUsize>, impl Future<Output = Option<u8>>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&polls);
        let mut rx = rx;
        let fut = std::future::poll_fn(move |cx| {
            counter.fetch_add(1, Ordering::SeqCst);
            Pin::new(&mut rx).poll(cx).map(Result::ok)
        });
        (polls, fut)
    }

    #[tokio::test]
    async fn the_inner_future_is_polled_at_first_and_then_only_after_its_own_wake() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (polls, inner) = counted(rx);
        let mut side = std::pin::pin!(OnWake::new(inner));
        for _ in 0..5 {
            assert!(futures_util::poll!(side.as_mut()).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        tx.send(7).unwrap();
        assert_eq!(side.await, Some(7));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn its_wake_wakes_the_task_that_polled_it() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (polls, inner) = counted(rx);
        let (polled_tx, polled_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut side = std::pin::pin!(OnWake::new(inner));
            assert!(futures_util::poll!(side.as_mut()).is_pending());
            polled_tx.send(()).unwrap();
            side.await
        });
        // Sent once the task waits: only the inner future's wake-up can
        // bring it back.
        polled_rx.await.unwrap();
        tx.send(9).unwrap();
        assert_eq!(task.await.unwrap(), Some(9));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
