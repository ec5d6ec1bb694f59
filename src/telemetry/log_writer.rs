//! Where log lines go: a shared buffer that a writer thread empties into
//! stdout every few milliseconds.
//!
//! Place in the pipeline: the writer of the log layer (`logs`). A thread
//! that logs appends its formatted line to the buffer under a short lock
//! and goes on: it never makes a system call, never waits for stdout and
//! never wakes the writer thread (which would put a context switch on the
//! request path, and a writer woken per line spins and yields on the
//! gateway's own core). Every [`FLUSH_EVERY`] the writer thread writes
//! what has gathered in one call. When stdout does not keep up and the
//! buffer holds [`MAX_BUFFERED`] bytes, new lines are dropped and counted,
//! not waited for. [`LogWriter::finish`] writes what is left. Must not
//! format: lines arrive whole.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the writer thread writes what has gathered.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// Bytes held for stdout at most; lines beyond are dropped.
pub(super) const MAX_BUFFERED: usize = 8 * 1024 * 1024;

struct Shared {
    lines: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stop: AtomicBool,
}

/// The `MakeWriter` of the log layer: appends each line to the buffer.
#[derive(Clone)]
pub(crate) struct Lines(Arc<Shared>);

/// The writer thread.
pub(super) struct LogWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread, writing to `out`.
pub(super) fn start(out: impl Write + Send + 'static) -> (Lines, LogWriter) {
    let shared = Arc::new(Shared {
        lines: Mutex::new(Vec::with_capacity(64 * 1024)),
        dropped: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let thread = std::thread::Builder::new()
        .name("switchyard-log".into())
        .spawn({
            let shared = Arc::clone(&shared);
            move || write_loop(&shared, out)
        })
        .ok();
    let writer = LogWriter {
        shared: Arc::clone(&shared),
        thread,
    };
    (Lines(shared), writer)
}

fn write_loop(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        std::thread::park_timeout(FLUSH_EVERY);
        let stopping = shared.stop.load(Ordering::Acquire);
        {
            let mut lines = shared.lines.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *lines, &mut batch);
        }
        if !batch.is_empty() {
            // A failed write (stdout closed) loses these lines; the
            // gateway serves on.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
        if stopping {
            return;
        }
    }
}

impl LogWriter {
    /// Writes what is buffered, stops the thread, and returns how many
    /// lines were dropped.
    pub(super) fn finish(mut self) -> u64 {
        self.stop();
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut lines = self.0.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() + line.len() > MAX_BUFFERED {
            drop(lines);
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            lines.extend_from_slice(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::test_sink::Sink;

    #[test]
    fn lines_reach_the_output_in_order_and_finish_writes_the_rest() {
        let sink = Sink::default();
        let (lines, writer) = start(sink.clone());
        let mut w = lines.clone();
        for i in 0..1000 {
            w.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert_eq!(writer.finish(), 0);
        let text = sink.text();
        let want: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, want);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_lines_instead_of_waiting() {
        // An output that blocks until the test lets it go.
        struct Stuck(Arc<(Mutex<bool>, std::sync::Condvar)>);
        impl Write for Stuck {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let (open, cv) = &*self.0;
                let mut g = open.lock().unwrap();
                while !*g {
                    g = cv.wait(g).unwrap();
                }
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (lines, writer) = start(Stuck(Arc::clone(&gate)));
        let mut w = lines.clone();
        let line = vec![b'x'; 1024];
        // Twice what the buffer holds (and the writer takes at most one
        // batch before it blocks): some lines must be dropped.
        for _ in 0..(3 * MAX_BUFFERED / 1024) {
            w.write_all(&line).unwrap();
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        assert!(writer.finish() >= (MAX_BUFFERED / 1024) as u64);
    }
}
