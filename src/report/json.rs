//! `--output json`: one event per line on stdout; notes go to stderr so stdout stays NDJSON.

use super::stdio::{self, To};
use super::{Event, Reporter};

pub(super) struct Json;

impl Reporter for Json {
    fn event(&self, ev: &Event) {
        // Events are plain data and always serialize; should one ever not, say so on stderr
        // rather than panic in the middle of a deploy (its locks would stay behind).
        match serde_json::to_string(ev) {
            Ok(line) => stdio::write(To::Stdout, &line, true),
            Err(e) => stdio::write(
                To::Stderr,
                &format!("error: an event did not serialize: {e}"),
                true,
            ),
        }
    }

    fn note(&self, msg: &str) {
        stdio::write(To::Stderr, msg, true);
    }
}
