//! One test's log lines, captured while it runs (see [`capture_logs`]).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// What one test logs, captured while it lives: a subscriber set as the
/// default of the test's own thread only (`tracing::subscriber::set_default`),
/// so tests running on other threads of this process neither write here nor
/// are captured. `#[tokio::test]` runs a current-thread runtime on the test's
/// thread, and the in-process gateway's tasks (hyper connections, request
/// handling, the access log) are spawned on it, so they log here too.
pub struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _scope: tracing::subscriber::DefaultGuard,
}

pub fn capture_logs() -> Logs {
    // tracing-core caches each callsite's interest for the whole process.
    // While exactly one dispatcher is registered, it works that interest out
    // from the default of whichever thread reaches the callsite first
    // (tokio-rs/tracing#2874, #3611), so a callsite first reached by another
    // test's thread, which has no subscriber, would be cached as "never" for
    // this test too (its lines would lose the request span). A second,
    // inert dispatcher registered once for the life of the process makes
    // tracing-core ask every registered dispatcher instead.
    static SECOND: OnceLock<tracing::Dispatch> = OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Sink(sink.clone()))
        .with_ansi(false)
        .with_env_filter("switchyard=debug")
        .finish();
    Logs {
        buf,
        _scope: tracing::subscriber::set_default(subscriber),
    }
}

impl Logs {
    /// Everything logged so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).to_string()
    }

    pub fn lines_with(&self, text: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_string)
            .collect()
    }
}
