//! The only code that writes to provision's stdout and stderr (tests/output_channel.rs fails
//! on a print anywhere else). Everything here has been masked by [`super::Output`] already.
//!
//! Every write is flushed at once (`logs --follow` must not sit in a buffer) and write errors
//! are ignored: a closed pipe (`provision logs | head`) must not panic, as `println!` would.

use std::io::{BufRead, IsTerminal, Write};

/// Which of the two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum To {
    Stdout,
    Stderr,
}

/// Write `text` (and a newline when `newline`) and flush.
pub(super) fn write(to: To, text: &str, newline: bool) {
    fn put(mut w: impl Write, text: &str, newline: bool) {
        let _ = w.write_all(text.as_bytes());
        if newline {
            let _ = w.write_all(b"\n");
        }
        let _ = w.flush();
    }
    match to {
        To::Stdout => put(std::io::stdout().lock(), text, newline),
        To::Stderr => put(std::io::stderr().lock(), text, newline),
    }
}

/// Someone can answer a question: stdin is a terminal and `CI` is not set. (stdout may well
/// be piped: `provision unlock prod | tee log`.)
pub(super) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::env::var_os("CI").is_none()
}

/// One line from stdin; none at its end or on an error.
pub(super) fn read_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    }
}
