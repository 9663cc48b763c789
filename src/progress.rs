//! A one-line status on stderr for waits long enough to look like a hang:
//! the Diffie-Hellman prime search, a pacing wait, history for many tickers.
//!
//! The line is drawn only when stderr is a terminal. Under cron, systemd or
//! a pipe nothing is written at all, so logs and mail stay clean; whatever
//! the status said that matters is also logged by its caller. Callers never
//! ask about the terminal themselves: they make a [`StatusLine`] and use it
//! as if it were always shown.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// How often a countdown redraws; fast enough for the spinner to look alive.
const TICK: Duration = Duration::from_millis(250);

/// Longer text is cut, so the line never wraps on an 80-column terminal
/// (a wrapped line cannot be erased with one carriage return).
const MAX_WIDTH: usize = 76;

const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

/// A status line that redraws itself in place, or does nothing at all.
///
/// Safe to share between threads (the DH search reports from its
/// workers). The line is erased by [`StatusLine::clear`] and on drop, so
/// whatever is printed next starts on a clean line.
pub struct StatusLine {
    sink: Option<Mutex<Sink>>,
}

struct Sink {
    out: Box<dyn Write + Send>,
    frame: usize,
    drawn: bool,
}

impl StatusLine {
    /// A line on stderr when stderr is a terminal; otherwise a line that
    /// writes nothing.
    pub fn stderr() -> StatusLine {
        if std::io::stderr().is_terminal() {
            StatusLine::to_writer(std::io::stderr())
        } else {
            StatusLine::hidden()
        }
    }

    /// A line that writes nothing.
    pub fn hidden() -> StatusLine {
        StatusLine { sink: None }
    }

    /// A line drawn on `out` regardless of what it is (tests, or a caller
    /// that has decided for itself).
    pub fn to_writer(out: impl Write + Send + 'static) -> StatusLine {
        StatusLine {
            sink: Some(Mutex::new(Sink {
                out: Box::new(out),
                frame: 0,
                drawn: false,
            })),
        }
    }

    /// Whether anything is drawn; callers may skip formatting text when not.
    pub fn is_shown(&self) -> bool {
        self.sink.is_some()
    }

    /// Replaces the line with a spinner frame and `text`. Control characters
    /// in `text` (it may quote a broker's reply) are shown as `?`, and text
    /// too long for the line is cut.
    pub fn show(&self, text: &str) {
        let Some(sink) = &self.sink else { return };
        let mut sink = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let frame = SPINNER[sink.frame % SPINNER.len()];
        sink.frame = sink.frame.wrapping_add(1);
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .take(MAX_WIDTH)
            .collect();
        // A progress line that cannot be drawn is not worth failing for.
        let _ = write!(sink.out, "\r\x1b[2K{frame} {text}");
        let _ = sink.out.flush();
        sink.drawn = true;
    }

    /// Erases the line if anything is on it.
    pub fn clear(&self) {
        let Some(sink) = &self.sink else { return };
        let mut sink = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if sink.drawn {
            let _ = write!(sink.out, "\r\x1b[2K");
            let _ = sink.out.flush();
            sink.drawn = false;
        }
    }

    /// Sleeps for `wait`, showing `label` and the seconds left, then erases
    /// the line. On a hidden line this is exactly `thread::sleep(wait)`.
    pub fn countdown(&self, label: &str, wait: Duration) {
        if !self.is_shown() {
            thread::sleep(wait);
            return;
        }
        let end = Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.show(&format!(
                "{label}: {} s left",
                left.as_secs_f64().ceil() as u64
            ));
            thread::sleep(left.min(TICK));
        }
        self.clear();
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Progress through a known number of items, e.g. daily history for each
/// of 40 tickers: `label 3/40 BHP`.
pub struct Steps {
    line: StatusLine,
    label: String,
    total: usize,
    done: usize,
}

impl Steps {
    /// Progress through `total` items on stderr, shown only on a terminal.
    pub fn new(label: impl Into<String>, total: usize) -> Steps {
        Steps::on(StatusLine::stderr(), label, total)
    }

    /// Progress drawn on `line`.
    pub fn on(line: StatusLine, label: impl Into<String>, total: usize) -> Steps {
        Steps {
            line,
            label: label.into(),
            total,
            done: 0,
        }
    }

    /// Marks the start of the next item, named `item`. Starting more items
    /// than announced is not an error; the count then reads past the total.
    pub fn start(&mut self, item: &str) {
        self.done += 1;
        if self.line.is_shown() {
            self.line.show(&format!(
                "{} {}/{} {item}",
                self.label, self.done, self.total
            ));
        }
    }

    /// How many items have been started.
    pub fn started(&self) -> usize {
        self.done
    }

    /// Erases the line; dropping the `Steps` does the same.
    pub fn finish(self) {
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer whose bytes the test can read after handing it away.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn a_shown_line_redraws_in_place_and_is_erased_on_drop() {
        let out = Shared::default();
        let line = StatusLine::to_writer(out.clone());
        line.show("one");
        line.show("two");
        drop(line);
        assert_eq!(
            out.text(),
            "\r\x1b[2K| one\r\x1b[2K/ two\r\x1b[2K",
            "spinner advances, line erased"
        );
    }

    #[test]
    fn clearing_an_empty_line_writes_nothing() {
        let out = Shared::default();
        let line = StatusLine::to_writer(out.clone());
        line.clear();
        drop(line);
        assert_eq!(out.text(), "");
    }

    #[test]
    fn untrusted_text_is_defused_and_cut() {
        let out = Shared::default();
        let line = StatusLine::to_writer(out.clone());
        line.show(&format!("evil\x1b]0;title\x07{}", "x".repeat(200)));
        line.clear();
        let text = out.text();
        let drawn = text.split('\r').nth(1).unwrap();
        assert!(drawn.starts_with("\x1b[2K| evil?]0;title?x"), "{drawn:?}");
        assert_eq!(
            drawn.chars().count(),
            "\x1b[2K| ".chars().count() + MAX_WIDTH
        );
    }

    #[test]
    fn a_hidden_countdown_only_sleeps() {
        let start = Instant::now();
        StatusLine::hidden().countdown("pacing", Duration::from_millis(120));
        assert!(start.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn a_countdown_shows_the_seconds_left_then_erases() {
        let out = Shared::default();
        let line = StatusLine::to_writer(out.clone());
        let start = Instant::now();
        line.countdown("waiting for IBKR's pacing", Duration::from_millis(1300));
        assert!(start.elapsed() >= Duration::from_millis(1300));
        let text = out.text();
        assert!(
            text.contains("| waiting for IBKR's pacing: 2 s left"),
            "{text:?}"
        );
        assert!(
            text.contains("waiting for IBKR's pacing: 1 s left"),
            "{text:?}"
        );
        assert!(text.ends_with("\r\x1b[2K"), "{text:?}");
        assert!(!text.contains('\n'), "never moves to a new line: {text:?}");
    }

    #[test]
    fn steps_count_items() {
        let out = Shared::default();
        let mut steps = Steps::on(StatusLine::to_writer(out.clone()), "history", 2);
        steps.start("BHP");
        steps.start("14D");
        assert_eq!(steps.started(), 2);
        steps.finish();
        let text = out.text();
        assert!(text.contains("| history 1/2 BHP"), "{text:?}");
        assert!(text.contains("/ history 2/2 14D"), "{text:?}");
        assert!(text.ends_with("\r\x1b[2K"), "{text:?}");
    }
}
