//! `switchyard` command line: `serve` (default), `check` and `keys`.
//!
//! Place in the pipeline: outside it. Parses arguments, sets up logging and
//! signal handling, and hands an explicit shutdown token to the server.
//! `check` runs exactly the loading code that startup and reload run.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::config;
use switchyard::routing::RouteTable;
use switchyard::server::{Gateway, GatewayOptions};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "\
switchyard: an OpenAI-compatible gateway

USAGE:
    switchyard [serve] [--policies DIR] [--listen ADDR]
    switchyard check [--policies DIR | DIR]
    switchyard keys hash     reads a key on stdin, prints the secret_hash for a policy
    switchyard keys new      makes a random key; prints it and its secret_hash

    --policies DIR   folder of *.yaml policy files (default: policies)
    --listen ADDR    address to bind, overriding server.listen (e.g. 127.0.0.1:8080)
    --drain-delay D  on shutdown, stay up but not ready this long (overrides server.drain_delay)

Logging: RUST_LOG (default info).";

struct Args {
    command: String,
    policies: PathBuf,
    listen: Option<String>,
    drain_delay: Option<std::time::Duration>,
}

/// Why the command line was not run.
#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("help requested")]
    Help,
    #[error("{0} needs a value")]
    Missing(&'static str),
    #[error("--drain-delay: {0}")]
    Duration(#[from] config::DurationError),
    #[error("unknown argument {0:?}")]
    Unknown(String),
}

fn parse_args() -> Result<Args, ArgsError> {
    let mut args = std::env::args().skip(1).peekable();
    let command = match args.peek().map(String::as_str) {
        Some("serve") | Some("check") => args.next().unwrap_or_default(),
        Some("keys") => {
            args.next();
            match args.next().as_deref() {
                Some("hash") => "keys-hash".to_string(),
                Some("new") => "keys-new".to_string(),
                Some(other) => return Err(ArgsError::Unknown(other.to_string())),
                None => return Err(ArgsError::Missing("keys")),
            }
        }
        _ => "serve".to_string(),
    };
    let mut out = Args {
        command,
        policies: PathBuf::from("policies"),
        listen: None,
        drain_delay: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--policies" | "-p" => {
                out.policies = args.next().ok_or(ArgsError::Missing("--policies"))?.into()
            }
            "--listen" | "-l" => {
                out.listen = Some(args.next().ok_or(ArgsError::Missing("--listen"))?)
            }
            "--drain-delay" => {
                let text = args.next().ok_or(ArgsError::Missing("--drain-delay"))?;
                out.drain_delay = Some(config::parse_duration(&text)?);
            }
            "-h" | "--help" => return Err(ArgsError::Help),
            "-V" | "--version" => {
                println!("switchyard {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other if !other.starts_with('-') && out.command == "check" => {
                out.policies = other.into()
            }
            other => return Err(ArgsError::Unknown(other.to_string())),
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(ArgsError::Help) => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.command.as_str() {
        "check" => return check(&args.policies),
        "keys-hash" => return keys_hash(),
        "keys-new" => return keys_new(),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(args))
}

fn check(dir: &std::path::Path) -> ExitCode {
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

async fn serve(args: Args) -> ExitCode {
    let shutdown = CancellationToken::new();
    let opts = GatewayOptions {
        policy_dir: args.policies,
        env: config::process_env(),
        listen: args.listen,
        watch: true,
        sighup: true,
        drain_delay: args.drain_delay,
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
    println!("switchyard listening on http://{}", gateway.local_addr());
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
