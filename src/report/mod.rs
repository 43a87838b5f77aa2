//! Reporting: everything provision prints goes through one [`Output`] channel, which masks
//! every secret value (the one place this happens): the runner's and operator commands'
//! [`Event`]s (rendered by the chosen reporter, or as NDJSON), notes, plain lines, prompts.
//! `stdio.rs` is the only code writing to stdout and stderr.

pub mod event;
pub mod html;
mod human;
mod json;
mod live;
mod output;
pub mod payload;
mod plain;
mod redact;
mod stdio;
pub mod timings;

pub use event::{Counts, Event, Mode, Status};
pub use live::Live;
pub use output::Output;
pub use payload::{
    ContainerStatus, ExecOutput, HostInstance, HostStatus, LockStatus, Reply, Unlocked,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Live progress on a terminal, plain lines otherwise.
    Human,
    /// One line per step, for logs and CI.
    Plain,
    /// NDJSON events on stdout.
    Json,
}

/// Renders events (already masked by [`Output`]).
pub trait Reporter: Send + Sync {
    fn event(&self, ev: &Event);
    /// Print a message that is not an event (warnings, summaries of other commands).
    fn note(&self, msg: &str);
    /// A live-view hint (steps per host, a host leaving the fork queue): only the terminal
    /// view draws these; they are not events and never reach JSON or a saved run.
    fn live(&self, _hint: &Live) {}
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

/// The runner's name for the channel (it was a type of its own before [`Output`]).
pub type Sink = Output;

/// Someone can answer a prompt: stdin is a terminal and `CI` is not set.
pub fn interactive() -> bool {
    stdio::interactive()
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
