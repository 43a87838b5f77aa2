//! Pending reloads: a change whose consequence runs later (`when = "conf.changed"` on a
//! reload after a template step registered `conf`) must not be lost when the run stops in
//! between. The change writes a marker in the state dir in the same round trip as itself;
//! while the marker exists, later runs treat the register as changed; the marker goes when the
//! last step whose `when` uses the register ran (in that step's round trip, or its own one
//! when the step had nothing to do): with two handlers notified by one change, a run that
//! stops between them still runs the second next time.
//!
//! Markers are `<state dir>/pending/<register>`; the first probe batch lists them.

use crate::plan::{HostPlan, Planner};
use crate::remote::state_dir;
use crate::transport::script::quote;
use std::collections::{BTreeMap, BTreeSet};

/// The id of the pending-markers probe in the first probe batch (no step has it).
pub(super) const PENDING_PROBE: usize = usize::MAX - 1;

/// Which registers later `when`s use, and which markers the host has.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Step index → its register, when a later step's `when` uses it.
    watched: BTreeMap<usize, String>,
    /// Step index → the watched registers its `when` uses and it is the last step to use.
    dependents: BTreeMap<usize, BTreeSet<String>>,
    /// Markers found on the host (or written by this run).
    seen: BTreeSet<String>,
    app: String,
    env: String,
}

impl Pending {
    pub(super) fn new(planner: &Planner, plan: &HostPlan) -> Pending {
        let mut p = Pending {
            app: planner.app.clone(),
            env: planner.env.clone(),
            ..Pending::default()
        };
        let mut registered: BTreeMap<String, usize> = BTreeMap::new();
        let mut last_use: BTreeMap<String, usize> = BTreeMap::new();
        for (j, ps) in plan.steps.iter().enumerate() {
            let uses = when_references(planner, &ps.step);
            for (name, i) in registered.iter().filter(|(n, _)| uses.contains(*n)) {
                p.watched.insert(*i, name.clone());
                last_use.insert(name.clone(), j);
            }
            if let Some(r) = &ps.step.register {
                registered.insert(r.clone(), j);
            }
        }
        for (name, j) in last_use {
            p.dependents.entry(j).or_default().insert(name);
        }
        p
    }

    /// Whether step `j` writes or clears a marker (a later `when` uses its register, or its
    /// own `when` is the last use of one).
    pub(super) fn involves(&self, j: usize) -> bool {
        self.watched.contains_key(&j) || self.dependents.contains_key(&j)
    }

    /// The probe listing the markers; None when no `when` uses a register.
    pub(super) fn probe_sh(&self) -> Option<String> {
        (!self.watched.is_empty()).then(|| {
            format!(
                "{}[ -d \"$st/pending\" ] || exit 0\nls -1 \"$st/pending\"\n",
                state_dir(&self.app, &self.env)
            )
        })
    }

    pub(super) fn parse_probe(&mut self, out: &str) {
        self.seen.extend(
            out.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }

    /// The apply script of step `i` with, after it succeeded, the marker of its register
    /// written (a later step reacts to it) and the markers its `when` used removed (it ran).
    pub(super) fn wrap_apply(&mut self, i: usize, script: String) -> String {
        let set = self
            .watched
            .get(&i)
            .map(|r| self.marker_sh("mkdir -p \"$st/pending\" && : >", r));
        let clear = self.clear_sh(i);
        if set.is_none() && clear.is_none() {
            return script;
        }
        if let Some(r) = self.watched.get(&i) {
            self.seen.insert(r.clone());
        }
        let after = [clear, set].into_iter().flatten().collect::<String>();
        // The markers change only when the apply succeeded; its exit status is kept.
        format!("( {script}\n)\nrc=$?\nif [ $rc -eq 0 ]; then ( {after}) || true; fi\nexit $rc\n")
    }

    /// Removing the markers step `i`'s `when` uses that the host has; None when there are none.
    fn clear_sh(&mut self, i: usize) -> Option<String> {
        let names: Vec<String> = self
            .dependents
            .get(&i)?
            .iter()
            .filter(|r| self.seen.contains(*r))
            .cloned()
            .collect();
        if names.is_empty() {
            return None;
        }
        let sh = names.iter().map(|r| self.marker_sh("rm -f", r)).collect();
        for r in &names {
            self.seen.remove(r);
        }
        Some(sh)
    }

    fn marker_sh(&self, what: &str, register: &str) -> String {
        format!(
            "{}{what} \"$st/pending/\"{}\n",
            state_dir(&self.app, &self.env),
            quote(register)
        )
    }

    /// A register value of step `i` as it is now; `changed` when a marker says a change of
    /// an earlier run (that stopped before the step reacting to it ran) is still waiting.
    pub(super) fn with_change(&self, i: usize, mut v: serde_json::Value) -> serde_json::Value {
        let marked = self.watched.get(&i).is_some_and(|r| self.seen.contains(r));
        if marked && v.get("changed") == Some(&serde_json::Value::Bool(false)) {
            v["changed"] = serde_json::Value::Bool(true);
        }
        v
    }

    /// Step `i` ran and had nothing to do: the script removing the markers its `when` used,
    /// for a round trip of its own (None when there are none, and in plan mode).
    pub(super) fn done_without_change(&mut self, i: usize, check: bool) -> Option<String> {
        if check {
            return None;
        }
        self.clear_sh(i)
    }
}

/// Root names a step's `when` uses (none when it has none or does not parse: the step fails
/// on its turn then).
pub(super) fn when_references(planner: &Planner, step: &crate::config::Step) -> BTreeSet<String> {
    let Some(w) = &step.when else {
        return BTreeSet::new();
    };
    planner
        .templates
        .referenced_in_expr(&step.name, w)
        .or_else(|_| planner.templates.referenced_in_str(&step.name, w))
        .unwrap_or_default()
}
