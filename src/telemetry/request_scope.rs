//! A request's scope: what its work is polled in so that every log line
//! it writes says which request it belongs to. Either its tracing span
//! (JSON lines, coloured text, trace export), or, where the text log keeps
//! the span's fields beside it ([`SpanText`]), that text alone, entered in
//! a thread-local slot for the length of each poll.
//!
//! Place in the pipeline: the edge's span step makes one per request and
//! enters it around each poll of the request's work and its answer's
//! body; work spawned on the request's behalf (a stream's upstream pump,
//! a coalesced leader's call) takes the current one along
//! ([`RequestScope::current`], [`RequestScope::instrument`]). The text
//! log's event format (`text_event`) writes the entered text as the root
//! span `request{…}:` of a line. A span in the registry cost some 2,400
//! instructions of a 1 KB chat request for that prefix (its slab entry,
//! every layer told of it, its extensions, six enters and exits, its
//! close); the slot costs a reference count. Must not change what a line
//! says, and must leave the slot as it found it when a poll ends (or
//! unwinds).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Span;

use super::span_text::SpanText;

thread_local! {
    /// The text of the request whose work this thread is polling.
    static CURRENT: RefCell<Option<SpanText>> = const { RefCell::new(None) };
}

/// The scope a request's work is polled in: a span (possibly
/// `Span::none()`) and, where the text log keeps the request span's
/// fields beside it, that text standing for the request's span.
#[derive(Clone, Debug)]
pub(crate) struct RequestScope {
    span: Span,
    text: Option<SpanText>,
}

impl RequestScope {
    /// A scope that is a tracing span.
    pub(crate) fn span(span: Span) -> Self {
        RequestScope { span, text: None }
    }

    /// A scope that is the text of a request span not in the registry.
    pub(crate) fn text(text: SpanText) -> Self {
        RequestScope {
            span: Span::none(),
            text: Some(text),
        }
    }

    /// No scope: lines are written as outside any request.
    pub(crate) fn none() -> Self {
        Self::span(Span::none())
    }

    /// The scope this thread is polling in now: the entered request text
    /// and the current span (what a task spawned here should carry).
    pub(crate) fn current() -> Self {
        RequestScope {
            span: Span::current(),
            text: current_text(),
        }
    }

    /// Enters the scope until the guard drops.
    #[inline]
    pub(crate) fn enter(&self) -> Entered<'_> {
        Entered {
            _text: self.text.as_ref().map(enter_text),
            _span: self.span.enter(),
        }
    }

    /// `f`, run in the scope.
    pub(crate) fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        let _in = self.enter();
        f()
    }

    /// `fut`, polled in the scope each time.
    pub(crate) fn instrument<F: Future>(self, fut: F) -> Scoped<F> {
        Scoped { fut, scope: self }
    }
}

/// The scope entered, until dropped. The span is left (dropped) before the
/// text, the reverse of their entering.
pub(crate) struct Entered<'a> {
    _span: tracing::span::Entered<'a>,
    _text: Option<TextEntered>,
}

/// A request text in the slot, until dropped: then the slot holds what it
/// held before (another request's text, when one scope is entered inside
/// another, or nothing).
struct TextEntered {
    before: Option<SpanText>,
}

fn enter_text(text: &SpanText) -> TextEntered {
    let before = CURRENT
        .try_with(|c| c.replace(Some(text.clone())))
        .ok()
        .flatten();
    TextEntered { before }
}

impl Drop for TextEntered {
    fn drop(&mut self) {
        let before = self.before.take();
        // The slot is gone only while the thread ends; nothing to restore.
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = before);
    }
}

/// The request text entered on this thread, if any (none while the
/// thread ends and its slot is gone).
pub(super) fn current_text() -> Option<SpanText> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

pin_project_lite::pin_project! {
    /// A future polled in a [`RequestScope`].
    pub(crate) struct Scoped<F> {
        #[pin]
        fut: F,
        scope: RequestScope,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _in = this.scope.enter();
        this.fut.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::text_both_ways;

    fn slot() -> Option<String> {
        current_text().map(|t| {
            let mut out = String::new();
            t.write_braced(&mut out).unwrap();
            out
        })
    }

    #[test]
    fn the_slot_holds_the_innermost_scope_and_is_restored_as_each_ends() {
        let a = RequestScope::text(SpanText::request("a", "POST", "/a"));
        let b = RequestScope::text(SpanText::request("b", "GET", "/b"));
        assert_eq!(slot(), None);
        a.in_scope(|| {
            assert_eq!(slot().as_deref(), Some("{id=a method=POST path=/a}"));
            b.in_scope(|| assert_eq!(slot().as_deref(), Some("{id=b method=GET path=/b}")));
            // A span alone leaves the text where it is.
            RequestScope::none().in_scope(|| assert!(slot().unwrap().contains("id=a")));
            assert!(slot().unwrap().contains("id=a"));
        });
        assert_eq!(slot(), None);
        // A poll that unwinds leaves the slot as it found it.
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.in_scope(|| panic!("in the request"))
        }));
        assert!(unwound.is_err());
        assert_eq!(slot(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_spawned_in_a_scope_is_polled_in_it_on_any_thread() {
        let text = SpanText::request("r-7", "POST", "/v1/chat/completions");
        let scope = RequestScope::text(text);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The spawn takes the current scope, and its polls after a wait
        // (on whichever thread) are in it too; the spawner's are not.
        let spawned = scope.in_scope(|| {
            tokio::spawn(RequestScope::current().instrument(async move {
                let before = slot();
                rx.await.unwrap();
                (before, slot())
            }))
        });
        assert_eq!(slot(), None);
        tx.send(()).unwrap();
        let (before, after) = spawned.await.unwrap();
        assert!(before.unwrap().contains("id=r-7"));
        assert!(after.unwrap().contains("id=r-7"));
    }

    #[test]
    fn a_line_with_a_parent_of_its_own_is_outside_the_request() {
        let (layer, _) = text_both_ways(|_| {
            let scope = RequestScope::text(SpanText::request("r-1", "POST", "/x"));
            scope.in_scope(|| {
                tracing::warn!(target: "switchyard::x", "in");
                tracing::warn!(target: "switchyard::x", parent: None, "root");
                let other = tracing::info_span!("other");
                tracing::warn!(target: "switchyard::x", parent: &other, "other");
            });
            tracing::warn!(target: "switchyard::x", "after");
        });
        let lines: Vec<&str> = layer.lines().collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].ends_with(" WARN request{id=r-1 method=POST path=/x}: switchyard::x: in"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(" WARN switchyard::x: root"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(" WARN other: switchyard::x: other"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].ends_with(" WARN switchyard::x: after"),
            "{}",
            lines[3]
        );
    }
}
