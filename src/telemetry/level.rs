//! The level filter: which events and spans the log keeps, from
//! `--log-level` or `RUST_LOG` (`EnvFilter` syntax), `info` by default.
//!
//! Place in the pipeline: part of the subscriber [`super::init`] installs,
//! in front of the log layer. A directive of targets and levels only
//! (`info`, `warn,switchyard::access=info`, the usual ones) becomes
//! tracing-subscriber's `Targets`, which decides from an event's target
//! and level alone; one that filters on spans or fields
//! (`[request{route=chat}]=debug`) needs `EnvFilter`, which keeps a table
//! of live spans behind a lock, looked up each time a span is entered or
//! left. The request's span is entered on every poll of its work and of
//! its answer's body: with a stream, once or twice per chunk. Per chunk
//! of a stream 5 ms apart, entering and leaving it took about 1,120 of
//! the gateway's 13,400 instructions, 450 of them `EnvFilter`'s
//! (callgrind). Both read a directive the same way (the same directive
//! type, matched by target prefix, the most specific first), and every
//! directive is checked by `EnvFilter`'s parser, so errors read as they
//! always have. Must not decide what the code logs.

use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use super::TelemetryError;

/// A parsed level directive.
#[derive(Debug)]
pub(super) enum LevelFilter {
    /// Targets and levels only.
    Targets(Box<Targets>),
    /// Span or field filters too.
    Spans(Box<EnvFilter>),
}

impl LevelFilter {
    /// `level` if given, else `RUST_LOG`, else `info`.
    pub(super) fn new(level: Option<&str>) -> Result<Self, TelemetryError> {
        match level {
            Some(d) => Self::parse(d),
            None => match std::env::var("RUST_LOG") {
                Ok(d) if !d.trim().is_empty() => Self::parse(&d),
                _ => Self::parse("info"),
            },
        }
    }

    /// `directive`, checked by `EnvFilter`'s parser.
    pub(super) fn parse(directive: &str) -> Result<Self, TelemetryError> {
        let env = EnvFilter::try_new(directive)
            .map_err(|e| TelemetryError::Level(directive.into(), e.to_string()))?;
        // `[` opens a span filter (`target[span{field=value}]=level`).
        if directive.contains('[') {
            return Ok(LevelFilter::Spans(Box::new(env)));
        }
        Ok(match directive.trim().parse::<Targets>() {
            Ok(targets) => LevelFilter::Targets(Box::new(targets)),
            Err(_) => LevelFilter::Spans(Box::new(env)),
        })
    }

    /// As a layer of its own (it then filters every layer above it).
    pub(super) fn into_layer<S>(self) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match self {
            LevelFilter::Targets(t) => t,
            LevelFilter::Spans(e) => e,
        }
    }

    /// As one layer's filter.
    pub(super) fn into_filter<S>(self) -> Box<dyn Filter<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match self {
            LevelFilter::Targets(t) => t,
            LevelFilter::Spans(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::test_sink::Sink;
    use tracing_subscriber::layer::SubscriberExt;

    const EVENTS: [&str; 6] = [
        "access-debug",
        "access-info",
        "routing-info",
        "routing-warn",
        "hyper-info",
        "in-span-debug",
    ];

    /// Plain text lines into `sink`.
    fn log_to<S>(sink: &Sink) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let out = sink.clone();
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(move || out.clone())
    }

    /// Which of a fixed set of events (in and out of a `request` span) a
    /// log filtered by `filter` writes, the filter installed as the
    /// process installs it: a layer of its own, or (when traces are
    /// exported) the log layer's own filter. Both ways must agree.
    fn kept(directive: &str, spans: bool) -> Vec<&'static str> {
        let filter = || match spans {
            false => LevelFilter::parse(directive).unwrap(),
            true => LevelFilter::Spans(Box::new(EnvFilter::try_new(directive).unwrap())),
        };
        let run = |per_layer: bool| {
            let sink = Sink::default();
            let emit = || {
                tracing::debug!(target: "switchyard::access", "access-debug");
                tracing::info!(target: "switchyard::access", "access-info");
                tracing::info!(target: "switchyard::routing", "routing-info");
                tracing::warn!(target: "switchyard::routing", "routing-warn");
                tracing::info!(target: "hyper::proto", "hyper-info");
                let span = tracing::info_span!("request", route = "chat");
                let _in = span.enter();
                tracing::debug!(target: "switchyard::routing", "in-span-debug");
            };
            if per_layer {
                let log = log_to(&sink).with_filter(filter().into_filter());
                tracing::subscriber::with_default(tracing_subscriber::registry().with(log), emit);
            } else {
                let subscriber = tracing_subscriber::registry()
                    .with(filter().into_layer())
                    .with(log_to(&sink));
                tracing::subscriber::with_default(subscriber, emit);
            }
            let lines = sink.text();
            EVENTS
                .into_iter()
                .filter(|n| lines.contains(n))
                .collect::<Vec<_>>()
        };
        let global = run(false);
        assert_eq!(
            run(true),
            global,
            "{directive}: per layer and global differ"
        );
        global
    }

    #[test]
    fn targets_and_levels_filter_as_env_filter_does() {
        let cases: [(&str, &[&str]); 5] = [
            ("info", &EVENTS[1..5]),
            (
                "warn,switchyard::access=info",
                &["access-info", "routing-warn"],
            ),
            (
                "switchyard=debug,hyper=off",
                &[
                    "access-debug",
                    "access-info",
                    "routing-info",
                    "routing-warn",
                    "in-span-debug",
                ],
            ),
            ("off", &[]),
            ("WARN", &["routing-warn"]),
        ];
        for (directive, want) in cases {
            let filter = LevelFilter::parse(directive).unwrap();
            assert!(matches!(filter, LevelFilter::Targets(_)), "{directive}");
            assert_eq!(kept(directive, false), want, "Targets, {directive}");
            assert_eq!(kept(directive, true), want, "EnvFilter, {directive}");
        }
    }

    #[test]
    fn span_filters_keep_env_filter() {
        let filter = LevelFilter::parse("info,[request{route=chat}]=debug").unwrap();
        assert!(matches!(filter, LevelFilter::Spans(_)));
        let got = kept("info,[request{route=chat}]=debug", false);
        assert_eq!(got, EVENTS[1..]);
    }

    #[test]
    fn a_bad_directive_is_refused_as_before() {
        let e = LevelFilter::parse("info,switchyard=loud").unwrap_err();
        assert!(e.to_string().contains("switchyard=loud"), "{e}");
    }
}
