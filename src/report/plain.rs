//! Plain lines, one per step, prefixed by host: for CI logs, pipes and NO_COLOR.

use super::{Counts, Event, Mode, Reporter, Status, fmt_ms, paint, recap_line};
use std::io::Write;
use std::sync::Mutex;

pub(super) struct Plain {
    verbosity: u8,
    color: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    recap: Vec<(String, Counts, bool, Option<String>)>,
    width: usize,
}

impl Plain {
    pub(super) fn new(verbosity: u8, color: bool) -> Plain {
        Plain {
            verbosity,
            color,
            state: Mutex::new(State::default()),
        }
    }

    fn out(&self, text: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{text}");
        let _ = o.flush();
    }
}

/// Status word: in plan mode "changed" reads "would change".
pub(super) fn label(s: Status, mode: Option<Mode>) -> &'static str {
    match (s, mode) {
        (Status::Changed, Some(Mode::Check)) => "would change",
        (Status::Changed, _) => "changed",
        (Status::Ok, _) => "ok",
        (Status::Failed, _) => "failed",
        (Status::Skipped, _) => "skipped",
    }
}

pub(super) fn indent(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines for one finished step (shared with the human reporter).
pub(super) fn step_lines(
    ev: &Event,
    mode: Option<Mode>,
    verbosity: u8,
    color: bool,
) -> Option<String> {
    let Event::StepFinished {
        host,
        step,
        status,
        message,
        diff,
        output,
        ms,
        ..
    } = ev
    else {
        return None;
    };
    let mut s = format!(
        "[{host}] {:<12} {step}",
        paint(label(*status, mode), *status, color)
    );
    if !message.is_empty() {
        s.push_str(&format!(": {message}"));
    }
    s.push_str(&format!(" ({})", fmt_ms(*ms)));
    let show_diff = mode == Some(Mode::Check) || verbosity >= 1;
    if let Some(d) = diff.as_ref().filter(|d| show_diff && !d.is_empty()) {
        s.push('\n');
        s.push_str(&indent(d));
    }
    let show_output = *status == Status::Failed || verbosity >= 1;
    if let Some(o) = output
        .as_ref()
        .filter(|o| show_output && !o.trim().is_empty())
    {
        s.push('\n');
        s.push_str(&indent(o));
    }
    Some(s)
}

pub(super) fn recap(
    state_recap: &[(String, Counts, bool, Option<String>)],
    width: usize,
    color: bool,
    ev: &Event,
) -> String {
    let Event::RunFinished {
        mode,
        totals,
        failed_hosts,
        unreachable_hosts,
        ms,
        ..
    } = ev
    else {
        return String::new();
    };
    let style = |t: &str, s: Status| paint(t, s, color);
    let mut s = String::from("\nRECAP\n");
    for (host, counts, unreachable, at) in state_recap {
        s.push_str(&recap_line(
            host,
            width,
            counts,
            *unreachable,
            at.as_deref(),
            &style,
        ));
        s.push('\n');
    }
    let changed = if *mode == Mode::Check {
        "would change"
    } else {
        "changed"
    };
    s.push_str(&format!(
        "{} hosts: {} failed, {} unreachable; {} {changed}, {} ok ({})",
        state_recap.len(),
        failed_hosts.len(),
        unreachable_hosts.len(),
        totals.changed,
        totals.ok,
        fmt_ms(*ms)
    ));
    s
}

impl Reporter for Plain {
    fn event(&self, ev: &Event) {
        let mut st = self.state.lock().expect("reporter lock");
        match ev {
            Event::RunStarted {
                env,
                mode,
                playbook,
                hosts,
            } => {
                st.mode = Some(*mode);
                st.width = hosts.iter().map(String::len).max().unwrap_or(0);
                let verb = if *mode == Mode::Check { "PLAN" } else { "UP" };
                self.out(&format!(
                    "{verb} {env} ({playbook}) on {} host(s)",
                    hosts.len()
                ));
            }
            Event::HostConnected { host, ms } if self.verbosity >= 1 => {
                self.out(&format!("[{host}] connected ({})", fmt_ms(*ms)));
            }
            Event::HostUnreachable { host, error } => {
                self.out(&format!(
                    "[{host}] {}: {error}",
                    paint("UNREACHABLE", Status::Failed, self.color)
                ));
            }
            Event::StepFinished { .. } => {
                if let Some(s) = step_lines(ev, st.mode, self.verbosity, self.color) {
                    self.out(&s);
                }
            }
            Event::Debug { host, message } => self.out(&format!("[{host}] debug: {message}")),
            Event::HostFinished {
                host,
                counts,
                unreachable,
                stopped_at,
                ..
            } => {
                st.recap.push((
                    host.clone(),
                    counts.clone(),
                    *unreachable,
                    stopped_at.clone(),
                ));
            }
            Event::RunFinished { .. } => {
                st.recap.sort_by(|a, b| a.0.cmp(&b.0));
                self.out(&recap(&st.recap, st.width, self.color, ev));
            }
            _ => {}
        }
    }

    fn note(&self, msg: &str) {
        self.out(msg);
    }
}
