//! The CLI's one writer to standard output. Every result a subcommand prints goes
//! through [`text`], [`line()`] or [`json`]; the first failed write (a full disk, a file
//! system error) is kept and later output dropped, and [`finish`] hands it back, for
//! `cli::main` to report as one line on stderr and exit code 1 instead of a panic. A closed pipe does not reach
//! this writer: the CLI restores SIGPIPE's default, so `| head` still ends quietly.

use std::io::{self, Write};
use std::sync::Mutex;

/// The first write error, if any.
static FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

fn failed() -> std::sync::MutexGuard<'static, Option<io::Error>> {
    FAILED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write `s` to standard output (nothing once a write has failed).
pub(crate) fn text(s: &str) {
    let mut failed = failed();
    if failed.is_none() {
        if let Err(e) = io::stdout().lock().write_all(s.as_bytes()) {
            *failed = Some(e);
        }
    }
}

/// `s` and a newline.
pub(crate) fn line(s: &str) {
    text(&format!("{s}\n"));
}

/// `value` as pretty JSON and a newline.
pub(crate) fn json(value: &impl serde::Serialize) {
    line(&serde_json::to_string_pretty(value).expect("JSON values serialise"));
}

/// Flush standard output: `Ok`, or the first error any write (or the flush) met.
pub(crate) fn finish() -> io::Result<()> {
    let flushed = io::stdout().lock().flush();
    failed().take().map_or(flushed, Err)
}
