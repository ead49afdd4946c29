//! Where log lines go: an in-memory buffer that a background thread writes to stdout in
//! batches. A request never waits on the terminal or the log collector and never wakes another
//! thread per line: writers append under a short lock; the writer thread is woken once per
//! batch (when the buffer stops being empty) and gathers lines for a few milliseconds before
//! one `write`. When stdout cannot keep up and the buffer reaches its bound, writers wait for
//! it to drain: a slow consumer slows logging, it never loses lines.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer thread gathers lines before writing them.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Buffered bytes at which writers wait for the writer thread.
const HIGH_WATER: usize = 1 << 20;

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread: lines arrived, the buffer is full, or logging is closing.
    work: Condvar,
    /// Wakes writers waiting for the buffer to drain.
    drained: Condvar,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    closing: bool,
}

/// The shared line buffer. Cloning is cheap; every clone appends to the same buffer.
#[derive(Clone)]
pub struct Sink {
    shared: Arc<Shared>,
}

/// Keeps the writer thread running; dropping it writes what is left and stops the thread.
pub struct SinkGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// A sink writing to `out` from a new background thread.
    pub fn spawn(out: impl Write + Send + 'static) -> std::io::Result<(Sink, SinkGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            drained: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_loop(&shared, out)
            })?;
        let guard = SinkGuard {
            shared: Arc::clone(&shared),
            thread: Some(thread),
        };
        Ok((Sink { shared }, guard))
    }

    /// Appends whole lines (the caller ends them with `\n`).
    pub fn append(&self, bytes: &[u8]) {
        let mut state = lock(&self.shared.state);
        while state.buf.len() >= HIGH_WATER && !state.closing {
            self.shared.work.notify_one();
            state = self
                .shared
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let was_empty = state.buf.is_empty();
        state.buf.extend_from_slice(bytes);
        let full = state.buf.len() >= HIGH_WATER;
        drop(state);
        if was_empty || full {
            self.shared.work.notify_one();
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A writer that panicked mid-append leaves at worst a partial line; keep logging.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn write_loop(shared: &Shared, mut out: impl Write) {
    let mut spare = Vec::new();
    loop {
        let mut state = lock(&shared.state);
        while state.buf.is_empty() && !state.closing {
            state = shared
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !state.closing && state.buf.len() < HIGH_WATER {
            // Gather the lines of the next few milliseconds into the same write.
            state = shared
                .work
                .wait_timeout(state, BATCH_WINDOW)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        std::mem::swap(&mut state.buf, &mut spare);
        let closing = state.closing;
        drop(state);
        shared.drained.notify_all();
        // Nowhere to report a failed log write; the lines are dropped.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        spare.clear();
        if spare.capacity() > 4 * HIGH_WATER {
            spare.shrink_to(HIGH_WATER);
        }
        if closing && lock(&shared.state).buf.is_empty() {
            return;
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        lock(&self.shared.state).closing = true;
        self.shared.work.notify_one();
        self.shared.drained.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `io::Write` handed to the `tracing` formatter for one event.
pub struct SinkWriter<'a>(&'a Sink);

impl Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = SinkWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `io::Write` whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_drops() {
        let out = Captured::default();
        let (sink, guard) = Sink::spawn(out.clone()).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        sink.append(format!("t{t} line {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 80_000);
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..20_000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn lines_reach_the_output_without_a_shutdown() {
        let out = Captured::default();
        let (sink, _guard) = Sink::spawn(out.clone()).unwrap();
        sink.append(b"hello\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "line never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(&*out.0.lock().unwrap(), b"hello\n");
    }
}
