//! Fan-out: split a batch into sub-batches, run them in parallel, reassemble.
//!
//! Place in the pipeline: between `server`'s embeddings handler and
//! `routing`. Each sub-batch is one call of the caller's closure (which
//! routes it, with its own retries and failover), at most `width()` at a
//! time: the width is asked again before each sub-batch starts, so a long
//! fan-out follows a limit that moves while it runs (a provider's adaptive
//! concurrency limit). Results come back in sub-batch order whatever order
//! they finish in; the first failure cancels the rest. Must not know about
//! HTTP, caching or providers.

use std::future::Future;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

/// Splits `items` into chunks of at most `batch_size`, calls `call` on each
/// with at most `width()` in flight (asked before each one starts), and
/// returns the results in chunk order.
pub async fn fan_out<I, R, E, F, Fut>(
    items: Vec<I>,
    batch_size: usize,
    width: impl Fn() -> usize,
    call: F,
) -> Result<Vec<R>, E>
where
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    let batch_size = batch_size.max(1);
    let mut chunks = Vec::with_capacity(items.len().div_ceil(batch_size));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(batch_size).collect::<Vec<I>>());
    }
    let count = chunks.len();
    let call = &call;
    let mut waiting = chunks.into_iter().enumerate();
    let mut running = FuturesUnordered::new();
    let mut done: Vec<(usize, R)> = Vec::with_capacity(count);
    loop {
        while running.len() < width().max(1) {
            let Some((i, chunk)) = waiting.next() else {
                break;
            };
            running.push(async move { call(chunk).await.map(|r| (i, r)) });
        }
        match running.next().await {
            Some(result) => done.push(result?),
            None => break,
        }
    }
    debug_assert_eq!(done.len(), count);
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn keeps_order_and_bounds_concurrency() {
        let live = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..10).collect();
        let out: Result<Vec<Vec<u32>>, ()> = fan_out(
            items,
            3,
            || 2,
            |chunk| {
                let (live, peak) = (&live, &peak);
                async move {
                    let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Later chunks finish first.
                    tokio::time::sleep(Duration::from_millis(100 - chunk[0] as u64)).await;
                    live.fetch_sub(1, Ordering::SeqCst);
                    Ok(chunk)
                }
            },
        )
        .await;
        let out = out.unwrap();
        assert_eq!(
            out,
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]
        );
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn first_error_fails_the_whole_batch() {
        let out: Result<Vec<usize>, String> = fan_out(
            vec![1, 2, 3, 4],
            1,
            || 4,
            |c| async move {
                if c[0] == 3 {
                    Err("boom".to_string())
                } else {
                    Ok(c[0])
                }
            },
        )
        .await;
        assert_eq!(out.unwrap_err(), "boom");
    }

    #[tokio::test(start_paused = true)]
    async fn the_width_is_asked_again_as_sub_batches_end() {
        let live = AtomicUsize::new(0);
        let started = std::sync::Mutex::new(Vec::new());
        let width = AtomicUsize::new(1);
        let out: Result<Vec<u32>, ()> = fan_out(
            (0..12).collect(),
            1,
            || width.load(Ordering::SeqCst),
            |chunk| {
                let (live, started, width) = (&live, &started, &width);
                async move {
                    let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                    started.lock().unwrap().push(now);
                    // The limit grows by one as each sub-batch ends.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    width.fetch_add(1, Ordering::SeqCst);
                    live.fetch_sub(1, Ordering::SeqCst);
                    Ok(chunk[0])
                }
            },
        )
        .await;
        assert_eq!(out.unwrap(), (0..12).collect::<Vec<_>>());
        let started = started.into_inner().unwrap();
        assert_eq!(started[0], 1, "starts at the width it was given");
        assert!(
            started.iter().max().unwrap() >= &3,
            "widened as the limit grew: {started:?}"
        );
    }
}
