//! Terminal output: a live line per host (indicatif) showing the step it is on, finished
//! changes and failures printed above the bars, and the recap at the end.

use super::plain::{Batches, recap, step_lines};
use super::stdio::{self, To};
use super::{Counts, Event, Mode, Reporter, Status};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

pub(super) struct Human {
    verbosity: u8,
    color: bool,
    mp: MultiProgress,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    bars: HashMap<String, ProgressBar>,
    recap: Vec<(String, Counts, bool, Option<String>)>,
    width: usize,
    batches: Batches,
}

impl Human {
    pub(super) fn new(verbosity: u8, color: bool) -> Human {
        Human {
            verbosity,
            color,
            mp: MultiProgress::new(),
            state: Mutex::new(State::default()),
        }
    }

    fn print(&self, text: &str) {
        let _ = self.mp.println(text);
    }
}

/// A batch starts: its hosts connect, the later ones wait for theirs; a stopped rollout's
/// hosts never start.
fn batch_bars(bars: &HashMap<String, ProgressBar>, ev: &Event) {
    match ev {
        Event::BatchStarted {
            batch: 1, hosts, ..
        } => {
            for (_, bar) in bars.iter().filter(|(h, _)| !hosts.contains(h)) {
                bar.set_message("waiting for its batch");
            }
        }
        Event::BatchStarted { hosts, .. } => {
            for bar in hosts.iter().filter_map(|h| bars.get(h)) {
                bar.set_message("connecting");
            }
        }
        Event::RolloutStopped { not_reached, .. } => {
            for bar in not_reached.iter().filter_map(|h| bars.get(h)) {
                bar.finish_and_clear();
            }
        }
        _ => {}
    }
}

impl Reporter for Human {
    fn event(&self, ev: &Event) {
        if let Some((_, line)) = super::host_notice(ev, self.color) {
            self.print(&line);
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(line) = st.batches.take(ev) {
            self.print(&line);
            batch_bars(&st.bars, ev);
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
                let verb = if *mode == Mode::Check {
                    "Planning"
                } else {
                    "Deploying"
                };
                self.print(&format!(
                    "{verb} {env} ({playbook}) on {} host(s)",
                    hosts.len()
                ));
                let style = ProgressStyle::with_template(&format!(
                    "{{spinner:.green}} {{prefix:{}}} {{wide_msg}}",
                    st.width
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                for h in hosts {
                    let bar = self.mp.add(
                        ProgressBar::new_spinner()
                            .with_style(style.clone())
                            .with_prefix(h.clone()),
                    );
                    bar.set_message("connecting");
                    bar.enable_steady_tick(Duration::from_millis(120));
                    st.bars.insert(h.clone(), bar);
                }
            }
            Event::StepStarted { host, step, .. } => {
                if let Some(b) = st.bars.get(host) {
                    b.set_message(step.clone());
                }
            }
            Event::StepFinished { status, .. } => {
                if (*status != Status::Ok || self.verbosity >= 1)
                    && let Some(s) = step_lines(ev, st.mode, self.verbosity, self.color)
                {
                    self.print(&s);
                }
            }
            Event::HostFinished {
                host,
                counts,
                unreachable,
                stopped_at,
                ..
            } => {
                if let Some(b) = st.bars.get(host) {
                    b.finish_and_clear();
                }
                st.recap.push((
                    host.clone(),
                    counts.clone(),
                    *unreachable,
                    stopped_at.clone(),
                ));
            }
            Event::RunFinished { .. } => {
                let _ = self.mp.clear();
                st.recap.sort_by(|a, b| a.0.cmp(&b.0));
                let text = recap(&st.recap, st.width, self.color, ev, &st.batches);
                stdio::write(To::Stdout, &text, true);
            }
            _ => {}
        }
    }

    fn note(&self, msg: &str) {
        self.print(msg);
    }
}
