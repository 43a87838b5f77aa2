//! Reporting: the runner emits [`Event`]s into a [`Sink`], which scrubs every secret value
//! from them (the one place this happens) and hands them to the chosen reporter.

pub mod event;
mod human;
mod json;
mod plain;

pub use event::{Counts, Event, Mode, Status};

use crate::secrets::Redactor;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Live progress on a terminal, plain lines otherwise.
    Human,
    /// One line per step, for logs and CI.
    Plain,
    /// NDJSON events on stdout.
    Json,
}

/// Renders events.
pub trait Reporter: Send + Sync {
    fn event(&self, ev: &Event);
    /// Print a message that is not an event (warnings, summaries of other commands).
    fn note(&self, msg: &str);
}

/// How text output looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// -v / -vv.
    pub verbosity: u8,
    /// -q: only failures, unreachable hosts and the final summary line.
    pub quiet: bool,
    /// ANSI colors (decided once from --color, NO_COLOR and the terminal).
    pub color: bool,
}

/// Where the runner sends events: redact, then report.
#[derive(Clone)]
pub struct Sink {
    redactor: Redactor,
    reporter: Arc<dyn Reporter>,
    verbosity: u8,
}

impl Sink {
    pub fn new(format: OutputFormat, verbosity: u8, redactor: Redactor, color: bool) -> Sink {
        let opts = ReportOptions {
            verbosity,
            quiet: false,
            color,
        };
        Sink::with_options(format, opts, redactor)
    }

    /// Human output becomes plain lines when stdout is not a terminal, when `CI` is set, and
    /// in quiet mode.
    pub fn with_options(format: OutputFormat, opts: ReportOptions, redactor: Redactor) -> Sink {
        let ReportOptions {
            verbosity,
            quiet,
            color,
        } = opts;
        let plain_only =
            quiet || !console::Term::stdout().is_term() || std::env::var_os("CI").is_some();
        let reporter: Arc<dyn Reporter> = match format {
            OutputFormat::Json => Arc::new(json::Json),
            OutputFormat::Human if !plain_only => Arc::new(human::Human::new(verbosity, color)),
            _ => Arc::new(plain::Plain::new(verbosity, color, quiet)),
        };
        Sink {
            redactor,
            reporter,
            verbosity: if quiet { 0 } else { verbosity },
        }
    }

    /// Events to `reporter` (the runner's unit tests record them with one).
    pub fn with_reporter(reporter: Arc<dyn Reporter>, redactor: Redactor, verbosity: u8) -> Sink {
        Sink {
            redactor,
            reporter,
            verbosity,
        }
    }

    pub fn verbosity(&self) -> u8 {
        self.verbosity
    }

    pub fn emit(&self, ev: Event) {
        if matches!(ev, Event::Debug { .. }) && self.verbosity < 2 {
            return;
        }
        // Round-trip through JSON so every string field is scrubbed, including ones added later.
        let mut v = serde_json::to_value(&ev).expect("events serialize");
        self.redactor.redact_json(&mut v);
        let ev: Event = serde_json::from_value(v).expect("events deserialize");
        self.reporter.event(&ev);
    }

    pub fn note(&self, msg: &str) {
        self.reporter.note(&self.redactor.redact(msg));
    }
}

/// The one line both text reporters print for a host-level event that is not a step result
/// (unreachable, warning, -vv debug), with the host it belongs to.
pub(crate) fn host_notice(ev: &Event, color: bool) -> Option<(&str, String)> {
    match ev {
        Event::HostUnreachable { host, error } => Some((
            host,
            format!(
                "[{host}] {}: {error}",
                paint("UNREACHABLE", Status::Failed, color)
            ),
        )),
        Event::HostWarning { host, message } => Some((
            host,
            format!(
                "[{host}] {}: {message}",
                paint("WARNING", Status::Changed, color)
            ),
        )),
        Event::Debug { host, message } => Some((host, format!("[{host}] debug: {message}"))),
        _ => None,
    }
}

/// Shared formatting: "3.2s" / "140ms".
pub(crate) fn fmt_ms(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

/// The recap table both text reporters print at the end.
pub(crate) fn recap_line(
    host: &str,
    width: usize,
    c: &Counts,
    unreachable: bool,
    stopped_at: Option<&str>,
    style: &dyn Fn(&str, Status) -> String,
) -> String {
    if unreachable {
        let at = stopped_at
            .map(|s| format!(" (at step `{s}`)"))
            .unwrap_or_default();
        return format!(
            "{host:width$}  {}{at}",
            style("UNREACHABLE", Status::Failed)
        );
    }
    let part = |label: &str, n: usize, s: Status| {
        let text = format!("{label}={n}");
        if n > 0 { style(&text, s) } else { text }
    };
    format!(
        "{host:width$}  {}  {}  {}  {}",
        part("ok", c.ok, Status::Ok),
        part("changed", c.changed, Status::Changed),
        part("failed", c.failed, Status::Failed),
        part("skipped", c.skipped, Status::Skipped)
    )
}

pub(crate) fn paint(text: &str, s: Status, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let st = console::style(text);
    match s {
        Status::Ok => st.green(),
        Status::Changed => st.yellow(),
        Status::Failed => st.red().bold(),
        Status::Skipped => st.cyan(),
    }
    .force_styling(true)
    .to_string()
}
