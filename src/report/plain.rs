//! Plain lines, one per step, prefixed by host: for CI logs, pipes and NO_COLOR.
//!
//! Lines are grouped per host even though hosts run in parallel: the first host to print
//! streams live; the others' lines are held back and printed as one block each, when the
//! live host finishes (finished hosts first, then a running one takes over the live stream).
//! A single-host run is therefore fully live, and a CI log never interleaves hosts.
//! Quiet mode prints only failures, unreachable hosts and the final summary line.

use super::stdio::{self, To};
use super::{Counts, Event, Mode, Reporter, Status, fmt_ms, paint, recap_line};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

pub(super) struct Plain {
    verbosity: u8,
    color: bool,
    quiet: bool,
    state: Mutex<State>,
    /// Lines go here instead of stdout (unit tests).
    captured: Option<Mutex<Vec<String>>>,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    recap: Vec<(String, Counts, bool, Option<String>)>,
    width: usize,
    /// The host whose lines go out as they come.
    live: Option<String>,
    /// Lines of the other hosts, held back.
    held: BTreeMap<String, Vec<String>>,
    /// Hosts that finished while another was live, in the order they finished.
    done: Vec<String>,
    batches: Batches,
}

/// A rolling deploy's batches, for the recap (shared with the human reporter).
#[derive(Default)]
pub(super) struct Batches {
    /// How many batches the run has (0: no `serial`).
    of: usize,
    batch_of: BTreeMap<String, usize>,
    /// The rollout stopped: after which batch, why, and the hosts never reached.
    stopped: Option<(usize, String, Vec<String>)>,
}

impl Batches {
    /// Keep what a rolling deploy's event says; the line to print for it.
    pub(super) fn take(&mut self, ev: &Event) -> Option<String> {
        match ev {
            Event::BatchStarted { batch, of, hosts } => {
                self.of = *of;
                for h in hosts {
                    self.batch_of.insert(h.clone(), *batch);
                }
                Some(format!("batch {batch}/{of}: {}", hosts.join(", ")))
            }
            Event::RolloutStopped {
                batch,
                of,
                failed_hosts,
                not_reached,
                limits,
            } => {
                self.stopped = Some((*batch, limits.clone(), not_reached.clone()));
                Some(format!(
                    "rollout stopped after batch {batch}/{of} ({} failed; {limits}): not reached: {}",
                    failed_hosts.join(", "),
                    not_reached.join(", ")
                ))
            }
            _ => None,
        }
    }

    fn batch(&self, host: &str) -> usize {
        self.batch_of.get(host).copied().unwrap_or(0)
    }
}

impl Plain {
    pub(super) fn new(verbosity: u8, color: bool, quiet: bool) -> Plain {
        Plain {
            verbosity,
            color,
            quiet,
            state: Mutex::new(State::default()),
            captured: None,
        }
    }

    fn out(&self, text: &str) {
        if let Some(c) = &self.captured {
            if let Ok(mut c) = c.lock() {
                c.push(text.to_string());
            }
            return;
        }
        stdio::write(To::Stdout, text, true);
    }

    /// A line of `host`: out now if it is the live host (or none is), else held back.
    fn host_out(&self, st: &mut State, host: &str, text: String) {
        match st.live.as_deref() {
            None => {
                st.live = Some(host.to_string());
                self.out(&text);
            }
            Some(l) if l == host => self.out(&text),
            Some(_) => st.held.entry(host.to_string()).or_default().push(text),
        }
    }

    /// `host` finished: when it was live, print the finished hosts' blocks and hand the live
    /// stream to a running host that has lines waiting.
    fn host_done(&self, st: &mut State, host: &str) {
        if st.live.as_deref() != Some(host) {
            if st.held.contains_key(host) {
                st.done.push(host.to_string());
            }
            return;
        }
        st.live = None;
        for h in std::mem::take(&mut st.done) {
            for line in st.held.remove(&h).unwrap_or_default() {
                self.out(&line);
            }
        }
        if let Some(next) = st.held.keys().next().cloned() {
            for line in st.held.remove(&next).unwrap_or_default() {
                self.out(&line);
            }
            st.live = Some(next);
        }
    }

    /// Whatever is still held (only when a host never reported finishing).
    fn flush_all(&self, st: &mut State) {
        let order: Vec<String> = std::mem::take(&mut st.done)
            .into_iter()
            .chain(st.held.keys().cloned())
            .collect();
        for h in order {
            for line in st.held.remove(&h).unwrap_or_default() {
                self.out(&line);
            }
        }
        st.live = None;
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
    batches: &Batches,
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
    let mut in_batch = 0;
    let mut hosts: Vec<_> = state_recap.iter().collect();
    hosts.sort_by_key(|h| batches.batch(&h.0));
    for (host, counts, unreachable, at) in hosts {
        let b = batches.batch(host);
        if batches.of > 0 && b != in_batch {
            in_batch = b;
            s.push_str(&format!("batch {b}/{}\n", batches.of));
        }
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
    let mut not_reached = 0;
    if let Some((b, limits, rest)) = &batches.stopped {
        not_reached = rest.len();
        s.push_str(&format!(
            "not reached (the rollout stopped after batch {b}/{}: {limits})\n",
            batches.of
        ));
        for host in rest {
            s.push_str(&format!(
                "{host:width$}  {}\n",
                style("NOT REACHED", Status::Skipped)
            ));
        }
    }
    let changed = if *mode == Mode::Check {
        "would change"
    } else {
        "changed"
    };
    let not_reached = match not_reached {
        0 => String::new(),
        n => format!(", {n} not reached"),
    };
    s.push_str(&format!(
        "{} hosts: {} failed, {} unreachable{not_reached}; {} {changed}, {} ok ({})",
        state_recap.len() + batches.stopped.as_ref().map_or(0, |s| s.2.len()),
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
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let st = &mut *st;
        let loud = !self.quiet;
        if let Some((host, line)) = super::host_notice(ev, self.color) {
            // -q keeps what needs acting on (unreachable, warnings), not -vv chatter.
            if loud || !matches!(ev, Event::Debug { .. }) {
                self.host_out(st, host, line);
            }
            return;
        }
        if let Some(line) = st.batches.take(ev) {
            // Every host of the batch before has finished: nothing is held back.
            self.flush_all(st);
            if loud {
                self.out(&line);
            }
            return;
        }
        match ev {
            Event::RunStarted {
                env,
                mode,
                playbook,
                hosts,
                ..
            } => {
                st.mode = Some(*mode);
                st.width = hosts.iter().map(String::len).max().unwrap_or(0);
                let verb = if *mode == Mode::Check { "PLAN" } else { "UP" };
                if loud {
                    self.out(&format!(
                        "{verb} {env} ({playbook}) on {} host(s)",
                        hosts.len()
                    ));
                }
            }
            Event::HostConnected { host, ms, .. } if loud && self.verbosity >= 1 => {
                self.host_out(st, host, format!("[{host}] connected ({})", fmt_ms(*ms)));
            }
            Event::StepFinished { host, status, .. } if loud || *status == Status::Failed => {
                if let Some(s) = step_lines(ev, st.mode, self.verbosity, self.color) {
                    self.host_out(st, host, s);
                }
            }
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
                self.host_done(st, host);
            }
            Event::RunFinished { .. } => {
                self.flush_all(st);
                st.recap
                    .sort_by(|a, b| super::timings::natural_cmp(&a.0, &b.0));
                let text = recap(&st.recap, st.width, self.color, ev, &st.batches);
                if loud {
                    self.out(&text);
                } else if let Some(last) = text.lines().last() {
                    self.out(last);
                }
            }
            _ => {}
        }
    }

    fn note(&self, msg: &str) {
        self.out(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &Plain, events: &[(&str, &str)]) -> Vec<String> {
        // Drive host_out / host_done directly: ("line", host) or ("done", host).
        let mut st = State::default();
        let mut seen = Vec::new();
        for (what, host) in events {
            match *what {
                "done" => p.host_done(&mut st, host),
                text => p.host_out(&mut st, host, format!("{host}:{text}")),
            }
            seen.push(st.live.clone().unwrap_or_default());
        }
        seen
    }

    #[test]
    fn live_host_streams_and_others_are_held_until_it_finishes() {
        let p = Plain {
            captured: Some(Mutex::default()),
            ..Plain::new(0, false, false)
        };
        let live = lines(
            &p,
            &[
                ("1", "a"),
                ("1", "b"),
                ("2", "a"),
                ("1", "c"),
                ("done", "b"),
                ("done", "a"),
                ("2", "c"),
                ("done", "c"),
            ],
        );
        assert_eq!(live, ["a", "a", "a", "a", "a", "c", "c", ""]);
        let out = p.captured.unwrap().into_inner().unwrap();
        assert_eq!(out, ["a:1", "a:2", "b:1", "c:1", "c:2"]);
    }

    #[test]
    fn the_recap_groups_hosts_by_batch_and_lists_the_hosts_not_reached() {
        let mut b = Batches::default();
        let started = Event::BatchStarted {
            batch: 1,
            of: 2,
            hosts: vec!["web1".into()],
        };
        assert_eq!(b.take(&started).as_deref(), Some("batch 1/2: web1"));
        let stopped = Event::RolloutStopped {
            batch: 1,
            of: 2,
            failed_hosts: vec!["web1".into()],
            not_reached: vec!["web2".into()],
            limits: "max_failures = 0".into(),
        };
        let line = b.take(&stopped).unwrap();
        assert!(
            line.ends_with("(web1 failed; max_failures = 0): not reached: web2"),
            "{line}"
        );
        let failed = Counts {
            failed: 1,
            ..Counts::default()
        };
        let finished = Event::RunFinished {
            mode: Mode::Apply,
            totals: failed.clone(),
            failed_hosts: vec!["web1".into()],
            unreachable_hosts: vec![],
            exit_code: 3,
            ms: 5,
        };
        let text = recap(
            &[("web1".into(), failed, false, None)],
            4,
            false,
            &finished,
            &b,
        );
        assert_eq!(
            text,
            "\nRECAP\nbatch 1/2\nweb1  ok=0  changed=0  failed=1  skipped=0\n\
             not reached (the rollout stopped after batch 1/2: max_failures = 0)\n\
             web2  NOT REACHED\n\
             2 hosts: 1 failed, 0 unreachable, 1 not reached; 0 changed, 0 ok (5ms)"
        );
    }
}
