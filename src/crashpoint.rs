//! A testing hook for crash safety: `SKIM_PAUSE_AT=<point>` makes skim stop
//! at one named step of a trade command, so that a test can kill it there
//! with SIGKILL and prove that running the command again recovers.
//!
//! Why a pause rather than a self-inflicted abort at the point: the test
//! delivers a real SIGKILL from outside, as the operating system's OOM
//! killer or a power cut would, with nothing of skim's own unwinding or
//! exit code involved; and the same pause lets a test hold a trade command
//! at a known step (with its lock taken) while it starts another.
//!
//! At the point skim writes one line, `skim: paused at <point>`, to stderr,
//! flushes it, and blocks until a line (or end of input) arrives on its
//! standard input; the test then either kills the process or writes a line
//! to let it go on. Only the first arrival at the point pauses. The
//! variable is read from the process environment only (never `.env`), once;
//! unset, every [`pause`] is a comparison against `None`.
//!
//! The points, in the order a trade command reaches them:
//!
//! | point | where |
//! |---|---|
//! | `lock-held` | the trade lock is taken, nothing else done |
//! | `order-journaled` | an order's intent is committed; nothing sent |
//! | `order-answered` | IBKR answered the order request; nothing recorded |
//! | `order-commit` | the outcome is written but its transaction not committed |
//! | `stop-modify-answered` | IBKR answered a stop modification; nothing recorded |
//! | `stop-modify-commit` | the modified stop is written, not committed |
//! | `half-marked` | the half exit's sell and the position's new state are committed |
//! | `cancel-answered` | IBKR answered a cancel; nothing recorded |
//! | `exit-marked` | the stop is cancelled and the trailing exit is about to be journaled |
//!
//! "After the request was sent, before the answer" is no point of skim's:
//! tests get it from the simulator, which carries an order out and then
//! withholds the answer while skim waits.

use std::io::{BufRead, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Every point skim can pause at (see the module docs).
pub const POINTS: &[&str] = &[
    "lock-held",
    "order-journaled",
    "order-answered",
    "order-commit",
    "stop-modify-answered",
    "stop-modify-commit",
    "half-marked",
    "cancel-answered",
    "exit-marked",
];

static PAUSE_AT: OnceLock<Option<String>> = OnceLock::new();
static PAUSED: AtomicBool = AtomicBool::new(false);

/// Pauses here if `SKIM_PAUSE_AT` names `point` and no pause happened yet;
/// otherwise returns at once.
pub fn pause(point: &str) {
    debug_assert!(POINTS.contains(&point), "unlisted crash point {point}");
    let wanted = PAUSE_AT.get_or_init(|| {
        std::env::var("SKIM_PAUSE_AT")
            .ok()
            .filter(|v| !v.is_empty())
    });
    if wanted.as_deref() != Some(point) || PAUSED.swap(true, Ordering::SeqCst) {
        return;
    }
    {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "skim: paused at {point}");
        let _ = err.flush();
    }
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}
