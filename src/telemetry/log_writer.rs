//! Where log lines go: a shared buffer that a writer thread empties into
//! stdout every few milliseconds.
//!
//! Place in the pipeline: the writer of the log layer (`logs`). A thread
//! that logs appends its formatted line to the buffer under a short lock
//! and goes on: it never waits for stdout and, while lines keep coming,
//! never wakes the writer thread (which would put a context switch on the
//! request path, and a writer woken per line spins and yields on the
//! gateway's own core). Every [`FLUSH_EVERY`] the writer thread writes
//! what has gathered in one call. A writer that found nothing for
//! [`IDLE_ROUNDS`] rounds in a row goes to sleep until a line comes, so an
//! idle gateway is not woken a hundred times a second for nothing: the
//! first line after such a pause wakes it (one system call, once per
//! pause), and it writes that line [`FLUSH_EVERY`] later as usual. When
//! stdout does not keep up and the buffer holds [`MAX_BUFFERED`] bytes,
//! new lines are dropped and counted, not waited for.
//! [`LogWriter::finish`] writes what is left. Must not format: lines
//! arrive whole.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// How often the writer thread writes what has gathered.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// Rounds of [`FLUSH_EVERY`] in a row with nothing to write after which
/// the writer thread sleeps until a line comes (100 ms).
pub(super) const IDLE_ROUNDS: u32 = 10;

/// Bytes held for stdout at most; lines beyond are dropped.
pub(super) const MAX_BUFFERED: usize = 8 * 1024 * 1024;

struct Shared {
    lines: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stop: AtomicBool,
    /// The writer thread sleeps until a line (or the stop) wakes it.
    asleep: AtomicBool,
    /// The writer thread, for that wake-up (it puts itself here).
    writer: OnceLock<Thread>,
    /// Told each time the writer thread is about to sleep (tests await it).
    #[cfg(test)]
    sleeping: Mutex<Option<std::sync::mpsc::Sender<()>>>,
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
        asleep: AtomicBool::new(false),
        writer: OnceLock::new(),
        #[cfg(test)]
        sleeping: Mutex::new(None),
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
    let _ = shared.writer.set(std::thread::current());
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut idle = 0;
    loop {
        std::thread::park_timeout(FLUSH_EVERY);
        let stopping = shared.stop.load(Ordering::Acquire);
        {
            let mut lines = shared.lines.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *lines, &mut batch);
        }
        if batch.is_empty() {
            idle += 1;
        } else {
            // A failed write (stdout closed) loses these lines; the
            // gateway serves on.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            idle = 0;
        }
        if stopping {
            return;
        }
        if idle >= IDLE_ROUNDS {
            sleep_until_a_line(shared);
            idle = 0;
        }
    }
}

/// Parks the writer thread until a line (or the stop) wakes it. The flag
/// is raised before the buffer is looked at, and a thread that logs looks
/// at the flag after its line is in, so a line is either seen here or
/// wakes the thread: none waits for the next.
fn sleep_until_a_line(shared: &Shared) {
    shared.asleep.store(true, Ordering::SeqCst);
    let empty = shared
        .lines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty();
    if empty && !shared.stop.load(Ordering::SeqCst) {
        #[cfg(test)]
        if let Some(tell) = &*shared.sleeping.lock().unwrap() {
            let _ = tell.send(());
        }
        std::thread::park();
    }
    shared.asleep.store(false, Ordering::SeqCst);
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
            drop(lines);
            // A writer that went to sleep is woken by the first line
            // after (the swap lets one thread of many do it).
            if self.0.asleep.load(Ordering::SeqCst)
                && self.0.asleep.swap(false, Ordering::SeqCst)
                && let Some(writer) = self.0.writer.get()
            {
                writer.unpark();
            }
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
    use std::sync::mpsc;

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

    /// An output that hands each write to the test.
    struct Told(mpsc::Sender<Vec<u8>>);
    impl Write for Told {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_idle_writer_sleeps_and_the_first_line_after_wakes_it() {
        let (out, written) = mpsc::channel();
        let (lines, writer) = start(Told(out));
        let (tell, slept) = mpsc::channel();
        *lines.0.sleeping.lock().unwrap() = Some(tell);
        let mut w = lines.clone();
        let wait = Duration::from_secs(10);
        for pause in 0..3 {
            // Nothing to write: the writer goes to sleep (and stays
            // asleep: no line reaches the output while it does).
            slept.recv_timeout(wait).expect("an idle writer sleeps");
            assert!(lines.0.asleep.load(Ordering::SeqCst));
            assert!(written.try_recv().is_err());
            let line = format!("line after pause {pause}\n");
            w.write_all(line.as_bytes()).unwrap();
            let got = written.recv_timeout(wait).expect("the line wakes it");
            assert_eq!(got, line.into_bytes());
        }
        assert_eq!(writer.finish(), 0);
    }

    #[test]
    fn a_sleeping_writer_stops_when_asked() {
        let (out, written) = mpsc::channel();
        let (lines, writer) = start(Told(out));
        let (tell, slept) = mpsc::channel();
        *lines.0.sleeping.lock().unwrap() = Some(tell);
        let wait = Duration::from_secs(10);
        slept.recv_timeout(wait).expect("an idle writer sleeps");
        // Stopped from another thread, so that a writer that never wakes
        // fails the test instead of hanging it.
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || done.send(writer.finish()));
        let dropped = finished
            .recv_timeout(wait)
            .expect("a sleeping writer stops");
        assert_eq!(dropped, 0);
        assert!(written.try_recv().is_err());
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
