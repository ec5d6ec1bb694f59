//! Fan-out: split a batch into sub-batches, run them in parallel, reassemble.
//!
//! Place in the pipeline: between `server`'s embeddings handler and
//! `routing`. Each sub-batch is one call of the caller's closure (which
//! routes it, with its own retries and failover), at most `concurrency` at a
//! time. Results come back in sub-batch order whatever order they finish in;
//! the first failure cancels the rest. Must not know about HTTP, caching or
//! providers.

use std::future::Future;

use futures_util::{StreamExt, TryStreamExt};

/// Splits `items` into chunks of at most `batch_size`, calls `call` on each
/// (with its 0-based index) with at most `concurrency` in flight, and
/// returns the results in chunk order.
pub async fn fan_out<I, R, E, F, Fut>(
    items: Vec<I>,
    batch_size: usize,
    concurrency: usize,
    call: F,
) -> Result<Vec<R>, E>
where
    F: Fn(usize, Vec<I>) -> Fut,
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
    let mut done: Vec<(usize, R)> = futures_util::stream::iter(chunks.into_iter().enumerate())
        .map(|(i, chunk)| async move { call(i, chunk).await.map(|r| (i, r)) })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
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
        let out: Result<Vec<Vec<u32>>, ()> = fan_out(items, 3, 2, |i, chunk| {
            let (live, peak) = (&live, &peak);
            async move {
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Later chunks finish first.
                tokio::time::sleep(Duration::from_millis(100 - chunk[0] as u64)).await;
                live.fetch_sub(1, Ordering::SeqCst);
                assert_eq!(chunk[0] as usize, i * 3, "the index is the chunk's");
                Ok(chunk)
            }
        })
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
        let out: Result<Vec<usize>, String> = fan_out(vec![1, 2, 3, 4], 1, 4, |_, c| async move {
            if c[0] == 3 {
                Err("boom".to_string())
            } else {
                Ok(c[0])
            }
        })
        .await;
        assert_eq!(out.unwrap_err(), "boom");
    }
}
