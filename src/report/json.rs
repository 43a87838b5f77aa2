//! `--output json`: one event per line on stdout.

use super::{Event, Reporter};
use std::io::Write;

pub(super) struct Json;

impl Reporter for Json {
    fn event(&self, ev: &Event) {
        let line = serde_json::to_string(ev).expect("events serialize");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn note(&self, msg: &str) {
        eprintln!("{msg}");
    }
}
