//! Terminal output: one live view (indicatif, a single multi-line bar) drawn from
//! [`LiveView`]: a summary line, then a line per unfinished host that fits the terminal;
//! finished changes and failures printed above it; the recap at the end.

use super::live::{Live, LiveView};
use super::plain::{Batches, recap, step_lines};
use super::stdio::{self, To};
use super::timings::natural_cmp;
use super::{Counts, Event, Mode, Reporter, Status};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
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
    view: LiveView,
    bar: Option<ProgressBar>,
    recap: Vec<(String, Counts, bool, Option<String>)>,
    width: usize,
    batches: Batches,
}

impl State {
    /// Redraw the view's text for the terminal's size now (it may have been resized).
    fn draw(&self) {
        let Some(bar) = &self.bar else { return };
        let (rows, cols) = console::Term::stderr().size();
        let (rows, cols) = (usize::from(rows), usize::from(cols));
        bar.set_prefix(self.view.summary());
        let lines = self.view.host_lines(rows, cols);
        bar.set_message(lines.iter().map(|l| format!("\n{l}")).collect::<String>());
    }
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start(&self, st: &mut State, ev: &Event) {
        let Event::RunStarted {
            env,
            mode,
            playbook,
            hosts,
            ..
        } = ev
        else {
            return;
        };
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
        // The summary is the prefix, the host lines the message (each starting with `\n`).
        let style = ProgressStyle::with_template("{spinner:.green} {prefix} · {elapsed}{msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = self.mp.add(ProgressBar::new_spinner().with_style(style));
        bar.enable_steady_tick(Duration::from_millis(120));
        st.bar = Some(bar);
    }
}

impl Reporter for Human {
    fn event(&self, ev: &Event) {
        if let Some((_, line)) = super::host_notice(ev, self.color) {
            self.print(&line);
            return;
        }
        let mut st = self.state();
        st.view.event(ev);
        if let Some(line) = st.batches.take(ev) {
            self.print(&line);
            st.draw();
            return;
        }
        match ev {
            Event::RunStarted { .. } => self.start(&mut st, ev),
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
                st.recap.push((
                    host.clone(),
                    counts.clone(),
                    *unreachable,
                    stopped_at.clone(),
                ));
            }
            Event::RunFinished { .. } => {
                if let Some(bar) = st.bar.take() {
                    bar.finish_and_clear();
                }
                let _ = self.mp.clear();
                st.recap.sort_by(|a, b| natural_cmp(&a.0, &b.0));
                let text = recap(&st.recap, st.width, self.color, ev, &st.batches);
                stdio::write(To::Stdout, &text, true);
                return;
            }
            _ => {}
        }
        st.draw();
    }

    fn live(&self, hint: &Live) {
        let mut st = self.state();
        st.view.hint(hint);
        st.draw();
    }

    fn note(&self, msg: &str) {
        self.print(msg);
    }
}
