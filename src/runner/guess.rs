//! Guessed registers: a no-op run in one round trip although later steps use a value an
//! earlier one registers (`release = "{{ src.sha }}"`, an image tagged with the checkout's
//! SHA).
//!
//! A step rendered with a register that is not known yet cannot be probed in the first batch.
//! After each `up`, what such a step would register next time when nothing changes (its
//! kind's `StepKind::steady_register`: a git checkout's SHA, never a command's output) is
//! kept in `.provision/guesses-<env>.json`. The next run renders the steps that use it with
//! that guess and probes them in the first batch. When the real value is registered it is
//! compared with the guess: equal, the render and its probe stand (the render is a function
//! of the values the step uses); different, both are dropped and the step is rendered and
//! probed as without a guess. So a guess only ever saves round trips; a wrong or stale one
//! costs nothing but a few probe lines.

use super::host::HostRun;
use super::outcome::RunSummary;
use crate::plan::HostPlan;
use crate::transport::Connector;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Register name → value, per host name.
type ByHost = BTreeMap<String, BTreeMap<String, Value>>;

fn file(root: &Path, env: &str) -> PathBuf {
    root.join(".provision").join(format!("guesses-{env}.json"))
}

fn read(root: &Path, env: &str) -> ByHost {
    std::fs::read(file(root, env))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Give each host's plan the guesses its last `up` left (none for a host never deployed).
pub fn fill(root: &Path, env: &str, plans: &mut [HostPlan]) {
    let mut all = read(root, env);
    for plan in plans {
        plan.guesses = all.remove(&plan.host.name).unwrap_or_default();
    }
}

/// After an `up`: keep what each host registered that its kinds can guess for next time.
/// Best effort, as `last_failed`: a read-only project folder must not fail the run.
pub fn record(root: &Path, env: &str, summary: &RunSummary) {
    let mut all = read(root, env);
    for host in &summary.hosts {
        if !host.steady.is_empty() {
            all.insert(host.name.clone(), host.steady.clone());
        }
    }
    if let Ok(text) = serde_json::to_vec_pretty(&all) {
        let _ = std::fs::create_dir_all(root.join(".provision"));
        let _ = std::fs::write(file(root, env), text);
    }
}

impl<C: Connector> HostRun<'_, C> {
    /// Deferred step `j` rendered with the guesses for the values not registered yet, when
    /// there is one for each; kept as a guess until they are (see [`Self::check_guesses`]).
    pub(super) fn render_with_guesses(&mut self, j: usize) {
        let ps = &self.plan.steps[j];
        let missing: BTreeMap<String, Value> = ps
            .deps
            .iter()
            .filter(|d| !self.registers.contains_key(*d))
            .filter_map(|d| Some((d.clone(), self.plan.guesses.get(d)?.clone())))
            .collect();
        let unknown = ps.deps.iter().filter(|d| !self.registers.contains_key(*d));
        if missing.is_empty() || unknown.count() != missing.len() {
            return;
        }
        let mut values = self.registers.clone();
        values.extend(missing.clone());
        let ctx = self.planner.context(Some(self.host), &values);
        if let Ok(kind) = self.planner.prepare(&ps.step, &ctx) {
            self.prepared[j] = Some(kind);
            self.guessed.insert(j, missing);
        }
    }

    /// `name` was just registered: every step rendered with a guess of it keeps its render
    /// (and probe) when the guess was right, and loses both when it was not.
    pub(super) fn check_guesses(&mut self, name: &str) {
        let Some(real) = self.registers.get(name).cloned() else {
            return;
        };
        let steps: Vec<usize> = self.guessed.keys().copied().collect();
        for j in steps {
            let Some(used) = self.guessed.get_mut(&j) else {
                continue;
            };
            match used.get(name) {
                None => {}
                Some(guess) if *guess == real => {
                    used.remove(name);
                    if used.is_empty() {
                        self.guessed.remove(&j);
                    }
                }
                Some(_) => self.drop_guess(j),
            }
        }
    }

    /// Step `j`'s turn came with a guess still unconfirmed (the value was never registered):
    /// it is rendered for real.
    pub(super) fn drop_unconfirmed(&mut self, j: usize) {
        if self.guessed.contains_key(&j) {
            self.drop_guess(j);
        }
    }

    fn drop_guess(&mut self, j: usize) {
        self.guessed.remove(&j);
        self.prepared[j] = self.plan.steps[j].prepared.clone();
        self.probes.remove(&j);
        self.looked_once.remove(&j);
    }
}
