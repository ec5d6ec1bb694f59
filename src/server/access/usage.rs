//! What an answer spent: its token usage per upstream model that served it,
//! read from the answer, and settled once when the request ends.
//!
//! Place in the pipeline: endpoints and flows record a charge in the
//! request's [`Spend`] (in its `RequestCtx`) when an upstream answered:
//! from a JSON body, from embedding or rerank replies, or for a stream
//! through a [`StreamTap`] that reads the events as they are forwarded and
//! fills the charge's [`UsageCell`]. Gateway cache hits and coalesced
//! followers record nothing: they spent no tokens (the cache metrics count
//! them). `Tracked::finish` calls [`settle`] once: `switchyard_tokens_total`
//! and `switchyard_cost_usd_total` by route, provider and key alias; the
//! total goes on to the request's admission settlement (TPM, budgets).
//! Must not change an answer beyond stripping the usage the gateway asked
//! for on its own, nor decide anything about the request.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::api::usage::{Dialect, Usage, UsageTap};
use crate::cache::stream::{drop_null_usage, strip_usage};
use crate::config::{Price, Prices};
use crate::metrics::Metrics;
use crate::metrics::series::{RouteSeries, Spender};

/// The usage of a stream, filled in by its tap as events pass and read
/// when the request ends (after the body, or when the client left).
#[derive(Debug, Clone, Default)]
pub(crate) struct UsageCell(Arc<Mutex<Option<Usage>>>);

impl UsageCell {
    fn set(&self, usage: Usage) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
    }

    fn get(&self) -> Option<Usage> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
enum Tokens {
    Known(Usage),
    Streamed(UsageCell),
}

/// One upstream model's part of an answer.
#[derive(Debug)]
struct Charge {
    provider: Arc<str>,
    /// The target's model name as sent upstream (what prices are keyed on).
    model: Arc<str>,
    price: Option<Price>,
    tokens: Tokens,
}

impl Charge {
    /// The usage known so far (a stream's, as its tap has read it).
    fn usage(&self) -> Option<Usage> {
        match &self.tokens {
            Tokens::Known(u) => Some(*u),
            Tokens::Streamed(cell) => cell.get(),
        }
    }
}

/// Everything an answer spent upstream; usually one charge (embedding
/// sub-batches may be served by several targets).
#[derive(Debug, Default)]
pub(crate) struct Spend {
    charges: Vec<Charge>,
}

impl Spend {
    fn add(&mut self, prices: &Prices, provider: Arc<str>, model: Arc<str>, tokens: Tokens) {
        let price = prices.lookup(&provider, &model).copied();
        self.charges.push(Charge {
            provider,
            model,
            price,
            tokens,
        });
    }

    /// `usage` spent by `model` at `provider`.
    pub(crate) fn charge(
        &mut self,
        prices: &Prices,
        provider: Arc<str>,
        model: Arc<str>,
        usage: Usage,
    ) {
        self.add(prices, provider, model, Tokens::Known(usage));
    }

    /// A stream's charge, whose usage `cell` is filled as events pass.
    pub(crate) fn streamed(
        &mut self,
        prices: &Prices,
        provider: Arc<str>,
        model: Arc<str>,
        cell: UsageCell,
    ) {
        self.add(prices, provider, model, Tokens::Streamed(cell));
    }

    /// Tokens spent per provider (for providers' TPM buckets).
    pub(crate) fn by_provider(&self) -> Vec<(Arc<str>, u64)> {
        let mut out: Vec<(Arc<str>, u64)> = Vec::new();
        for c in &self.charges {
            let used = c.usage().map_or(0, |u| u.total());
            match out.iter_mut().find(|(p, _)| *p == c.provider) {
                Some((_, n)) => *n += used,
                None => out.push((Arc::clone(&c.provider), used)),
            }
        }
        out
    }

    /// Every charge's usage added up (for the request's trace span);
    /// `None` when nothing reported any.
    pub(crate) fn total(&self) -> Option<Usage> {
        let mut known = self.charges.iter().filter_map(Charge::usage).peekable();
        known.peek()?;
        let mut sum = Usage::default();
        for u in known {
            sum += u;
        }
        Some(sum)
    }

    /// The (first) upstream model that served the answer, for the access
    /// log; `None` when nothing went upstream.
    pub(crate) fn model(&self) -> Option<&str> {
        self.charges.first().map(|c| &*c.model)
    }
}

/// Reads a forwarded stream's usage into its cell and, when the gateway
/// asked the upstream for usage the client did not ask for, takes the
/// usage out again. Only runs that can carry usage are looked into.
#[derive(Debug)]
pub(crate) struct StreamTap {
    tap: UsageTap,
    cell: UsageCell,
    strip: bool,
}

impl StreamTap {
    /// A tap writing into `cell`; `strip` takes out the usage the client
    /// did not ask for.
    pub(crate) fn new(dialect: Dialect, cell: UsageCell, strip: bool) -> Self {
        StreamTap {
            tap: UsageTap::new(dialect),
            cell,
            strip,
        }
    }

    /// A tap writing into `cell` (for a stream read by another task).
    pub(crate) fn into_cell(dialect: Dialect, cell: UsageCell) -> Self {
        StreamTap::new(dialect, cell, false)
    }

    /// Reads the usage in `run` (whole events), if any; true when it had
    /// some.
    pub(crate) fn read(&mut self, run: &[u8]) -> bool {
        if !self.tap.feed(run) {
            return false;
        }
        if let Some(usage) = self.tap.usage() {
            self.cell.set(usage);
        }
        true
    }

    /// `run` (whole events) as the client gets it; empty when it held
    /// nothing but a stripped usage chunk. Stripping also drops the
    /// `"usage": null` that chunks carry once usage was asked for.
    pub(crate) fn pass(&mut self, run: Bytes) -> Bytes {
        let has_usage = self.read(&run);
        match (self.strip, has_usage) {
            (false, _) => run,
            (true, true) => strip_usage(&run),
            (true, false) => drop_null_usage(run),
        }
    }
}

/// The cost of `usage` at `price` (USD per million tokens): uncached
/// prompt tokens at `input`, cached ones at `cached`, completion tokens at
/// `output`.
pub(crate) fn cost_usd(usage: &Usage, price: &Price) -> f64 {
    (usage.uncached_prompt() as f64 * price.input
        + usage.cached as f64 * price.cached
        + usage.completion as f64 * price.output)
        / 1e6
}

/// Counts what the request spent (tokens by kind, and cost where priced)
/// under `route`, each charge's provider and `key` (through the route's
/// kept `series` when it has them). Returns the total usage
/// (`None`: nothing spent) and its cost in USD (the sum over the priced
/// parts; `None` when no model that served it has a price), for the
/// request's settlement (TPM, budgets).
pub(crate) fn settle(
    metrics: &Metrics,
    series: Option<&RouteSeries>,
    route: &str,
    key: &Arc<str>,
    spend: &Spend,
) -> (Option<Usage>, Option<f64>) {
    let mut total: Option<Usage> = None;
    let mut cost: Option<f64> = None;
    for c in &spend.charges {
        let Some(usage) = c.usage().filter(|u| *u != Usage::default()) else {
            continue;
        };
        let usd = c.price.as_ref().map(|price| cost_usd(&usage, price));
        let count = |s: &Spender| {
            for (counter, n) in s
                .tokens
                .iter()
                .zip([usage.prompt, usage.completion, usage.cached])
            {
                counter.inc_by(n);
            }
            if let Some(usd) = usd {
                s.cost(metrics, route).inc_by(usd);
            }
        };
        match series {
            Some(series) => series.spent(metrics, route, &c.provider, key, count),
            None => count(&Spender::new(metrics, route, &c.provider, key)),
        }
        if let Some(usd) = usd {
            *cost.get_or_insert(0.0) += usd;
        }
        *total.get_or_insert_with(Usage::default) += usage;
    }
    (total, cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64, cached: u64) -> Usage {
        Usage {
            prompt,
            completion,
            cached,
        }
    }

    #[test]
    fn cost_prices_uncached_cached_and_completion_tokens_apart() {
        let price = Price {
            input: 2.0,
            output: 8.0,
            cached: 0.5,
        };
        // 600k uncached * $2 + 400k cached * $0.5 + 250k * $8 per 1M.
        let usd = cost_usd(&usage(1_000_000, 250_000, 400_000), &price);
        assert!((usd - (1.2 + 0.2 + 2.0)).abs() < 1e-9, "{usd}");
    }

    #[test]
    fn settle_counts_every_charge_and_returns_the_total_with_the_priced_cost() {
        let metrics = Metrics::new();
        let mut prices = Prices::default();
        prices.0.insert(
            "m1".into(),
            Price {
                input: 1.0,
                output: 2.0,
                cached: 0.0,
            },
        );
        let mut spend = Spend::default();
        let (a, b) = (Arc::<str>::from("a"), Arc::<str>::from("b"));
        spend.charge(&prices, Arc::clone(&a), Arc::from("m1"), usage(10, 5, 4));
        let cell = UsageCell::default();
        spend.streamed(&prices, Arc::clone(&b), Arc::from("unpriced"), cell.clone());
        let mut tap = StreamTap::into_cell(Dialect::OpenAi, cell);
        let run = Bytes::from_static(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
        );
        assert_eq!(tap.pass(run.clone()), run, "not stripped");
        // Without the route's kept series, then through them twice (the
        // first use looks them up, the second finds them kept).
        let series = RouteSeries::default();
        let key: Arc<str> = Arc::from("_unknown");
        for kept in [None, Some(&series), Some(&series)] {
            let (total, cost) = settle(&metrics, kept, "r", &key, &spend);
            assert_eq!(total, Some(usage(13, 6, 4)));
            let usd = cost.expect("m1 is priced");
            assert!((usd - (6.0 + 10.0) / 1e6).abs() < 1e-15, "{usd}");
        }
        let count = |p: &str, kind: &str| {
            metrics
                .tokens
                .with_label_values(&["r", p, "_unknown", kind])
                .get()
        };
        assert_eq!((count("a", "prompt"), count("a", "cached")), (30, 12));
        assert_eq!((count("a", "completion"), count("b", "cached")), (15, 0));
        assert_eq!((count("b", "prompt"), count("b", "completion")), (9, 3));
        let cost_a = metrics.cost_usd.with_label_values(&["r", "a", "_unknown"]);
        assert!(
            (cost_a.get() - 3.0 * 16.0 / 1e6).abs() < 1e-15,
            "{}",
            cost_a.get()
        );
        let cost_b = metrics.cost_usd.with_label_values(&["r", "b", "_unknown"]);
        assert_eq!(cost_b.get(), 0.0, "no price, no cost");
    }

    #[test]
    fn a_stripping_tap_drops_the_usage_chunk_but_keeps_its_count() {
        let cell = UsageCell::default();
        let mut tap = StreamTap {
            tap: UsageTap::new(Dialect::OpenAi),
            cell: cell.clone(),
            strip: true,
        };
        let text = Bytes::from_static(b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n");
        assert_eq!(
            &tap.pass(text)[..],
            b"data: {\"choices\":[{\"delta\":{}}]}\n\n"
        );
        let last = Bytes::from_static(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n",
        );
        assert_eq!(&tap.pass(last)[..], b"data: [DONE]\n\n");
        assert_eq!(cell.get(), Some(usage(3, 1, 0)));
    }
}
