//! The live view's model on a terminal: what each host is doing and the run's totals, rendered
//! into as many lines as the terminal has room for. Pure (events in, text out), so it is
//! tested without a terminal; `human.rs` draws it.
//!
//! - One summary line: hosts done/total, steps done/total, changed, failed, queued.
//! - One line per unfinished host, `web4  3/10 blob`: hosts at work first, then hosts queued
//!   for a fork slot or waiting for their batch, each group in natural order (`web2` before
//!   `web10`). Finished hosts fold into the summary; their failures were printed above.
//! - Fewer rows than hosts: the last line says how many more are running and queued.

use super::timings::natural_cmp;
use super::{Event, Mode, Status};
use std::collections::HashMap;

/// A live-view hint from the runner that is not part of the run's record (not an event, never
/// in JSON): how many steps each host will run, and when a host got its fork slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    Planned(Vec<(String, usize)>),
    Started(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for a fork slot (`--forks`).
    Queued,
    /// Its batch has not started (`serial`).
    Waiting,
    Connecting,
    Step {
        n: usize,
        name: String,
    },
    Done,
}

#[derive(Debug, Clone)]
struct HostLine {
    name: String,
    steps: usize,
    phase: Phase,
}

impl HostLine {
    fn active(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Step { .. })
    }
}

#[derive(Debug, Default)]
pub(super) struct LiveView {
    mode: Option<Mode>,
    /// In natural order of their names.
    hosts: Vec<HostLine>,
    at: HashMap<String, usize>,
    steps_done: usize,
    changed: usize,
    failed: usize,
}

impl LiveView {
    pub(super) fn hint(&mut self, hint: &Live) {
        match hint {
            Live::Planned(steps) => {
                for (host, n) in steps {
                    if let Some(h) = self.host(host) {
                        h.steps = *n;
                    }
                }
            }
            Live::Started(host) => self.set(host, Phase::Connecting),
        }
    }

    pub(super) fn event(&mut self, ev: &Event) {
        match ev {
            Event::RunStarted { mode, hosts, .. } => self.start(*mode, hosts),
            Event::BatchStarted { hosts, .. } => {
                for h in self.hosts.iter_mut().filter(|h| h.phase == Phase::Queued) {
                    if !hosts.contains(&h.name) {
                        h.phase = Phase::Waiting;
                    }
                }
                for h in hosts {
                    self.set(h, Phase::Queued);
                }
            }
            Event::RolloutStopped { not_reached, .. } => {
                for h in not_reached {
                    self.set(h, Phase::Done);
                }
            }
            Event::StepStarted {
                host, index, step, ..
            } => self.set(
                host,
                Phase::Step {
                    n: index + 1,
                    name: step.clone(),
                },
            ),
            Event::StepFinished { status, .. } => {
                self.steps_done += 1;
                match status {
                    Status::Changed => self.changed += 1,
                    Status::Failed => self.failed += 1,
                    Status::Ok | Status::Skipped => {}
                }
            }
            Event::HostFinished { host, .. } => self.set(host, Phase::Done),
            _ => {}
        }
    }

    fn start(&mut self, mode: Mode, hosts: &[String]) {
        self.mode = Some(mode);
        let mut names: Vec<&String> = hosts.iter().collect();
        names.sort_by(|a, b| natural_cmp(a, b));
        self.hosts = names
            .into_iter()
            .map(|name| HostLine {
                name: name.clone(),
                steps: 0,
                phase: Phase::Queued,
            })
            .collect();
        self.at = (self.hosts.iter().enumerate())
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
    }

    fn host(&mut self, name: &str) -> Option<&mut HostLine> {
        let i = *self.at.get(name)?;
        self.hosts.get_mut(i)
    }

    fn set(&mut self, name: &str, phase: Phase) {
        if let Some(h) = self.host(name)
            && h.phase != Phase::Done
        {
            h.phase = phase;
        }
    }

    /// The summary line.
    pub(super) fn summary(&self) -> String {
        let done = self.count(|h| h.phase == Phase::Done);
        let total_steps: usize = self.hosts.iter().map(|h| h.steps).sum();
        let changed = if self.mode == Some(Mode::Check) {
            "to change"
        } else {
            "changed"
        };
        let queued = self.count(|h| matches!(h.phase, Phase::Queued | Phase::Waiting));
        let mut s = format!(
            "{done}/{} hosts done · {}/{total_steps} steps · {} {changed} · {} failed",
            self.hosts.len(),
            self.steps_done,
            self.changed,
            self.failed,
        );
        if queued > 0 {
            s.push_str(&format!(" · {queued} queued"));
        }
        s
    }

    fn count(&self, f: impl Fn(&HostLine) -> bool) -> usize {
        self.hosts.iter().filter(|h| f(h)).count()
    }

    /// The host lines for a terminal of `rows` × `cols`: at most `rows - 2` lines (the
    /// summary and the cursor's line take the rest), each cut to `cols`.
    pub(super) fn host_lines(&self, rows: usize, cols: usize) -> Vec<String> {
        let room = rows.saturating_sub(2).max(1);
        let width = self.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        let (active, idle): (Vec<&HostLine>, Vec<&HostLine>) = self
            .hosts
            .iter()
            .filter(|h| h.phase != Phase::Done)
            .partition(|h| h.active());
        let shown: Vec<&HostLine> = active.iter().chain(idle.iter()).copied().collect();
        let mut lines: Vec<String> = Vec::new();
        let fits = shown.len() <= room;
        let take = if fits { shown.len() } else { room - 1 };
        for h in &shown[..take] {
            lines.push(fit(&format!("  {:width$}  {}", h.name, doing(h)), cols));
        }
        if !fits {
            let rest = &shown[take..];
            let running = rest.iter().filter(|h| h.active()).count();
            lines.push(fit(
                &format!(
                    "  … {} more: {running} running, {} queued",
                    rest.len(),
                    rest.len() - running
                ),
                cols,
            ));
        }
        lines
    }
}

/// `3/10 blob`, `connecting`, `queued`.
fn doing(h: &HostLine) -> String {
    match &h.phase {
        Phase::Queued => "queued".into(),
        Phase::Waiting => "waiting for its batch".into(),
        Phase::Connecting => "connecting".into(),
        Phase::Step { n, name } if h.steps > 0 => format!("{n}/{} {name}", h.steps),
        Phase::Step { name, .. } => name.clone(),
        Phase::Done => "done".into(),
    }
}

/// Cut to the terminal's width: a wrapped line would break the redraw's line count.
fn fit(line: &str, cols: usize) -> String {
    console::truncate_str(line, cols.saturating_sub(1).max(8), "…").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Counts;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("web{i}")).collect()
    }

    fn started(n: usize, steps: usize) -> LiveView {
        let mut v = LiveView::default();
        v.event(&Event::RunStarted {
            env: "prod".into(),
            mode: Mode::Apply,
            playbook: "deploy".into(),
            hosts: names(n).into_iter().rev().collect(),
            user: "u".into(),
            started_at: String::new(),
        });
        v.hint(&Live::Planned(
            names(n).into_iter().map(|h| (h, steps)).collect(),
        ));
        v
    }

    fn step(v: &mut LiveView, host: &str, index: usize, name: &str) {
        v.event(&Event::StepStarted {
            host: host.into(),
            index,
            step: name.into(),
            kind: "command".into(),
            at_ms: 0,
        });
    }

    fn finish(v: &mut LiveView, host: &str, status: Status) {
        v.event(&Event::StepFinished {
            host: host.into(),
            index: 0,
            step: "s".into(),
            kind: "command".into(),
            status,
            message: String::new(),
            diff: None,
            output: None,
            ms: 0,
            at_ms: 0,
        });
    }

    fn host_done(v: &mut LiveView, host: &str) {
        v.event(&Event::HostFinished {
            host: host.into(),
            counts: Counts::default(),
            unreachable: false,
            stopped_at: None,
            round_trips: 1,
            ms: 0,
            release: None,
        });
    }

    #[test]
    fn hosts_at_work_come_first_with_their_step_counter_then_the_queued() {
        let mut v = started(4, 10);
        v.hint(&Live::Started("web3".into()));
        step(&mut v, "web3", 2, "blob");
        v.hint(&Live::Started("web4".into()));
        assert_eq!(
            v.host_lines(40, 120),
            [
                "  web3  3/10 blob",
                "  web4  connecting",
                "  web1  queued",
                "  web2  queued"
            ]
        );
        assert_eq!(
            v.summary(),
            "0/4 hosts done · 0/40 steps · 0 changed · 0 failed · 2 queued"
        );
    }

    #[test]
    fn finished_hosts_fold_into_the_summary() {
        let mut v = started(2, 2);
        for h in ["web1", "web2"] {
            v.hint(&Live::Started(h.into()));
        }
        finish(&mut v, "web1", Status::Changed);
        finish(&mut v, "web1", Status::Failed);
        host_done(&mut v, "web1");
        assert_eq!(v.host_lines(40, 120), ["  web2  connecting"]);
        assert_eq!(
            v.summary(),
            "1/2 hosts done · 2/4 steps · 1 changed · 1 failed"
        );
    }

    #[test]
    fn more_hosts_than_rows_end_with_a_count_of_the_rest() {
        let mut v = started(50, 3);
        for i in 1..=10 {
            v.hint(&Live::Started(format!("web{i}")));
        }
        let lines = v.host_lines(8, 120);
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert_eq!(lines[0], "  web1   connecting");
        assert_eq!(lines[4], "  web5   connecting");
        assert_eq!(lines[5], "  … 45 more: 5 running, 40 queued");
        // A terminal too small for anything still gets one line.
        assert_eq!(v.host_lines(1, 120).len(), 1);
    }

    #[test]
    fn lines_are_cut_to_the_terminal_width() {
        let mut v = started(1, 1);
        v.hint(&Live::Started("web1".into()));
        step(&mut v, "web1", 0, &"x".repeat(200));
        let line = &v.host_lines(10, 40)[0];
        assert_eq!(console::measure_text_width(line), 39, "{line}");
    }

    #[test]
    fn batches_not_started_wait_and_a_stopped_rollout_drops_them() {
        let mut v = started(3, 1);
        v.event(&Event::BatchStarted {
            batch: 1,
            of: 2,
            hosts: vec!["web1".into()],
        });
        assert_eq!(
            v.host_lines(40, 120),
            [
                "  web1  queued",
                "  web2  waiting for its batch",
                "  web3  waiting for its batch"
            ]
        );
        v.event(&Event::RolloutStopped {
            batch: 1,
            of: 2,
            failed_hosts: vec!["web1".into()],
            not_reached: vec!["web2".into(), "web3".into()],
            limits: String::new(),
        });
        assert_eq!(v.host_lines(40, 120), ["  web1  queued"]);
    }
}
