//! `switchyard` command line (clap): `serve` (the default), `check`, `keys`,
//! `version`, `completions`; every option also from a `SWITCHYARD_*`
//! environment variable.
//!
//! Place in the pipeline: outside it. Parses arguments, sets up logging and
//! tracing (`telemetry`) and signal handling, and hands an explicit
//! shutdown token to the server. `check` runs exactly the loading code that
//! startup and reload run.
#![deny(unsafe_code)]

// The global allocator, the one module allowed `unsafe` (FFI to mimalloc).
#[allow(unsafe_code)]
mod alloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use switchyard::config;
use switchyard::routing::RouteTable;
use switchyard::server::{Gateway, GatewayOptions};
use switchyard::telemetry::{self, LogFormat, LogOptions};
use tokio_util::sync::CancellationToken;

/// mimalloc rather than the system allocator: measured side by side with
/// jemalloc and glibc's malloc on the ageing row of `cargo bench --bench
/// proxy` (docs/benchmarks.md), it gives memory back once a full cache
/// expires (RSS 54 MiB, against 168 MiB for jemalloc and 307 MiB for glibc)
/// and spends the least CPU per request. Through `alloc`, which asks for
/// plain blocks where their alignment suffices.
#[global_allocator]
static ALLOC: alloc::MiMalloc = alloc::MiMalloc;

/// switchyard: a resilient, multi-provider, OpenAI-compatible LLM gateway.
///
/// Every option can also be set by the environment variable shown with it;
/// an option on the command line wins over its variable.
#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Without a command, `switchyard [OPTIONS]` is `switchyard serve [OPTIONS]`."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the gateway on a policy folder (the default command).
    Serve(ServeArgs),
    /// Validate a policy folder without serving it: every error at its file:line.
    ///
    /// Runs exactly the loading code a start or a reload runs (environment
    /// variables the policy names must be set). Exits 1 on any error.
    Check(CheckArgs),
    /// Make and hash virtual keys for `keys:` in a policy.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the version.
    Version,
    /// Print a shell completion script (e.g. `switchyard completions bash > /etc/bash_completion.d/switchyard`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Read a key on stdin (one line) and print its secret_hash for a policy.
    ///
    /// The key is read from stdin so it stays out of shell history and
    /// process listings: `echo "$KEY" | switchyard keys hash`.
    Hash,
    /// Make a random key (sk-sy-...) and print it with its secret_hash.
    New,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Folder of *.yaml policy files.
    #[arg(
        short,
        long,
        value_name = "DIR",
        env = "SWITCHYARD_POLICIES",
        default_value = "policies"
    )]
    policies: PathBuf,
    /// Address to bind, overriding server.listen (e.g. 127.0.0.1:8080; port 0 picks one).
    #[arg(short, long, value_name = "ADDR", env = "SWITCHYARD_LISTEN")]
    listen: Option<String>,
    /// On shutdown, stay up but not ready this long (overrides server.drain_delay; e.g. 5s).
    #[arg(long, value_name = "DURATION", env = "SWITCHYARD_DRAIN_DELAY", value_parser = duration)]
    drain_delay: Option<Duration>,
    /// Log line format on stdout.
    #[arg(long, value_enum, value_name = "FORMAT", env = "SWITCHYARD_LOG_FORMAT", default_value_t = Format::Text)]
    log_format: Format,
    /// Log filter (`info`, `warn,switchyard::access=info`, ...); without it, RUST_LOG, else info.
    #[arg(long, value_name = "FILTER", env = "SWITCHYARD_LOG_LEVEL")]
    log_level: Option<String>,
    /// Runtime worker threads (default: one per CPU the process may run on).
    #[arg(long, value_name = "N", env = "SWITCHYARD_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
    /// After a request starts or ends, keep polling sockets this long
    /// before sleeping (at most; it shrinks when requests come far apart);
    /// 0 turns it off. Cuts the latency one request at a time sees where
    /// waking a thread is slow (virtual machines); see docs/operations.md.
    #[arg(long, value_name = "DURATION", env = "SWITCHYARD_BUSY_POLL", value_parser = duration_or_zero, default_value = "100us")]
    busy_poll: Duration,
    /// Leave transparent huge pages to the system's setting (by default the
    /// gateway turns them off for itself: the kernel would back a mostly
    /// free 2 MiB stretch of the heap with a whole huge page); 1/0 etc. too.
    #[arg(long, env = "SWITCHYARD_HUGE_PAGES", value_parser = clap::builder::BoolishValueParser::new())]
    huge_pages: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The policy folder (same as --policies).
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Folder of *.yaml policy files.
    #[arg(
        short,
        long,
        value_name = "DIR",
        env = "SWITCHYARD_POLICIES",
        default_value = "policies"
    )]
    policies: PathBuf,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// Human-readable lines (coloured only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

fn duration(text: &str) -> Result<Duration, config::DurationError> {
    config::parse_duration(text)
}

fn duration_or_zero(text: &str) -> Result<Duration, config::DurationError> {
    match text.trim() {
        "0" => Ok(Duration::ZERO),
        _ => config::parse_duration(text),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => serve_main(args),
        Command::Check(args) => check(args.dir.as_deref().unwrap_or(&args.policies)),
        Command::Keys(KeysCommand::Hash) => keys_hash(),
        Command::Keys(KeysCommand::New) => keys_new(),
        Command::Version => {
            println!("switchyard {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "switchyard",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

/// `serve`: the policy is read first (its `tracing:` section and the
/// `OTEL_*` variables decide the exporter), then logging and tracing are
/// set up, then the gateway starts (and loads the folder as every reload
/// does). Spans and log lines still queued are flushed on the way out.
fn serve_main(args: ServeArgs) -> ExitCode {
    let pages = if args.huge_pages {
        Ok(())
    } else {
        small_pages()
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.worker_threads {
        builder.worker_threads(usize::from(n));
    }
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let env = config::process_env();
    let policy = match config::load_dir(&args.policies, &env, switchyard::providers::check_kind) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let logs = LogOptions {
        format: match args.log_format {
            Format::Text => LogFormat::Text,
            Format::Json => LogFormat::Json,
        },
        level: args.log_level.clone(),
    };
    let telemetry = match telemetry::init(&logs, policy.tracing.as_ref(), runtime.handle()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = pages {
        tracing::warn!("cannot turn transparent huge pages off: {e}");
    }
    runtime.spawn(alloc::purge_freed(Duration::from_secs(1)));
    let code = runtime.block_on(serve(args, env));
    telemetry.shutdown();
    code
}

/// Turns transparent huge pages off for this process (and what it starts).
///
/// Measured on the ageing row of `cargo bench --bench proxy`: with them on
/// (mimalloc asks for them on its arenas, and hosts set to `always` give
/// them anyway), the kernel's khugepaged folds heap stretches that are
/// mostly free after a cache expires into whole 2 MiB pages, and RSS grows
/// while the process is idle (42 -> 47.7 MiB after expiry, idle 31 MiB);
/// with them off, idle is 21.6 MiB and after expiry 28 MiB, with no change
/// in CPU per request the bench can show. `--huge-pages` keeps them.
#[cfg(target_os = "linux")]
fn small_pages() -> std::io::Result<()> {
    rustix::thread::disable_transparent_huge_pages(true).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn small_pages() -> std::io::Result<()> {
    Ok(())
}

fn check(dir: &Path) -> ExitCode {
    // The same code a start or a reload runs: load, validate, build.
    let env = config::process_env();
    let loaded =
        config::load_dir(dir, &env, switchyard::providers::check_kind).and_then(|policy| {
            let metrics = std::sync::Arc::new(switchyard::metrics::Metrics::new());
            RouteTable::build(
                &policy,
                None,
                &metrics,
                &env,
                &switchyard::state::Store::memory(metrics.clone()),
            )
            .map(|_| policy)
        });
    match loaded {
        Ok(policy) => {
            println!(
                "{}: OK ({} providers, {} routes, {} keys)",
                dir.display(),
                policy.providers.len(),
                policy.routes.len(),
                policy.keys.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s) in {}", errors.0.len(), dir.display());
            ExitCode::FAILURE
        }
    }
}

/// `keys hash`: the key is read from stdin (one line), so it stays out of
/// shell history and process listings.
fn keys_hash() -> ExitCode {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(_) if !line.trim().is_empty() => {
            println!("{}", config::key_hash(line.trim()));
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("error: no key on stdin (try: echo \"$KEY\" | switchyard keys hash)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: reading stdin: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `keys new`: 32 random bytes from the OS, as `sk-sy-<hex>`, and its hash.
fn keys_new() -> ExitCode {
    let mut bytes = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut bytes) {
        eprintln!("error: no randomness from the OS: {e}");
        return ExitCode::FAILURE;
    }
    let key = format!("sk-sy-{}", hex::encode(bytes));
    println!("key:         {key}");
    println!("secret_hash: \"{}\"", config::key_hash(&key));
    ExitCode::SUCCESS
}

async fn serve(args: ServeArgs, env: config::Env) -> ExitCode {
    let shutdown = CancellationToken::new();
    let json = matches!(args.log_format, Format::Json);
    let opts = GatewayOptions {
        policy_dir: args.policies,
        env,
        listen: args.listen,
        watch: true,
        sighup: true,
        drain_delay: args.drain_delay,
        busy_poll: args.busy_poll,
        dispatch_hook: None,
    };
    let gateway = match Gateway::start(opts, shutdown.clone()).await {
        Ok(g) => g,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    // Signals are registered before the line that says the gateway is up.
    let signalled = shutdown_signal();
    // In JSON, every stdout line is a log object: the address is in the
    // `switchyard listening` event instead.
    if !json {
        println!("switchyard listening on http://{}", gateway.local_addr());
    }
    tokio::spawn(async move {
        signalled.await;
        tracing::info!("shutdown signal received");
        shutdown.cancel();
    });
    gateway.wait().await;
    ExitCode::SUCCESS
}

/// SIGTERM or Ctrl-C, registered now, awaited later.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        {
            let Some(mut term) = term else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;

    #[test]
    fn busy_poll_defaults_to_the_gateways_window_and_takes_0_for_off() {
        let cli = Cli::try_parse_from(["switchyard"]).unwrap();
        assert_eq!(cli.serve.busy_poll, switchyard::server::DEFAULT_BUSY_POLL);
        let cli = Cli::try_parse_from(["switchyard", "--busy-poll", "0"]).unwrap();
        assert_eq!(cli.serve.busy_poll, Duration::ZERO);
        let cli = Cli::try_parse_from(["switchyard", "--busy-poll", "120us"]).unwrap();
        assert_eq!(cli.serve.busy_poll, Duration::from_micros(120));
        let e = Cli::try_parse_from(["switchyard", "--busy-poll", "5"]).unwrap_err();
        assert!(e.to_string().contains("needs a unit"), "{e}");
    }
}
