//! The CLI's one writer to standard output. Every result a subcommand prints goes
//! through [`text`], [`line`] or [`json`]; the first failed write (a full disk, a file
//! system error) is kept and later output dropped, and [`finish`] turns it into one
//! line on stderr and [`EXIT_ERROR`] instead of a panic. A closed pipe does not reach
//! this writer: the CLI restores SIGPIPE's default, so `| head` still ends quietly.

use std::io::{self, Write};
use std::sync::Mutex;

use super::commands::EXIT_ERROR;

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

/// The exit code after flushing: `code`, or [`EXIT_ERROR`] with the reason on stderr
/// when the output could not be written.
pub(crate) fn finish(code: u8) -> u8 {
    let flushed = io::stdout().lock().flush();
    match failed().take().map_or(flushed, Err) {
        Ok(()) => code,
        Err(e) => {
            eprintln!("ctmr-skill: cannot write the result to standard output: {e}");
            EXIT_ERROR
        }
    }
}
