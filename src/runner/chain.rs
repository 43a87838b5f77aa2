//! Changes in a chain: after a step decided to change, the steps after it are decided from
//! the probes the runner already has, and every change of the run goes in one round trip
//! (`plan/chain.rs`), each step's probe checked again on the host right before its change.
//! A check that sees another state (an earlier change in the chain touched what the step
//! looks at) stops the chain there, and the runner goes on from that step with the re-probe
//! the same round trip brought: decisions always stand on the state right before their own
//! change, as with one round trip per change. A fresh apply costs the probe plus one.
//!
//! A step joins only when its decision needs nothing the chain itself produces: no value a
//! step in the chain registers, no gate (probed only in turn), no probe that reads input, no
//! work on the controller, no streamed file, no `run_once`, no pending-reload markers and no
//! `timeout` of its own; a change that may need a new login ends the chain. A Ctrl-C during
//! the chain stops it before its next step (a flag the script looks for), as between steps.

use super::DEFAULT_STEP_TIMEOUT;
use super::apply::{Change, Changed};
use super::host::{HostRun, Stop};
use crate::plan::chain::{self, ChainParsed, Link, Ran};
use crate::remote::{facts, state_dir};
use crate::report::Status;
use crate::steps::Probe;
use crate::steps::{Action, Decision, StepKind};
use crate::transport::{Connector, ExecOutput, Input, Keep};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

/// Kinds whose change runs the user's own command: it ends a chain.
const OPEN_ENDED: &[&str] = &["command", "migrate"];

/// A step of a chain, decided from the probe the runner had before it.
pub(super) struct Member {
    pub i: usize,
    pub kind: Arc<dyn StepKind>,
    pub what: What,
}

pub(super) enum What {
    /// `when` is false (the message says why).
    Skipped(String),
    /// Nothing to do, if its check finds the state its decision saw.
    Ok(String),
    Change(Change),
}

impl<C: Connector> HostRun<'_, C> {
    /// The steps after `first` (which changes) that can share its round trip; empty when it
    /// goes alone.
    pub(super) fn chain_after(
        &mut self,
        first: usize,
        kind: &dyn StepKind,
        action: &Action,
    ) -> Vec<Member> {
        let alone = kind.may_reconnect() || action.stdin_file.is_some() || self.open_ended(first);
        if self.check() || alone || !self.may_chain(first) {
            return Vec::new();
        }
        let mut registers: BTreeSet<String> = self.plan.steps[first]
            .step
            .register
            .iter()
            .cloned()
            .collect();
        let mut members = Vec::new();
        for j in first + 1..self.plan.steps.len() {
            let Some(m) = self.member(j, &registers) else {
                break;
            };
            let ends =
                matches!(m.what, What::Change(_)) && (m.kind.may_reconnect() || self.open_ended(j));
            registers.extend(self.plan.steps[j].step.register.iter().cloned());
            members.push(m);
            if ends {
                break;
            }
        }
        members
    }

    /// Whether step `j` runs the user's own command (unknown effect, unknown length): its
    /// change ends a chain, so a Ctrl-C while it runs stops the run right after it, whenever
    /// the signal lands.
    fn open_ended(&self, j: usize) -> bool {
        OPEN_ENDED.contains(&self.plan.steps[j].step.spec.kind())
    }

    /// Whether step `j`'s place in the run lets it share a round trip: another host does not
    /// run it or wait for it, no pending-reload marker rides on it, and it has no `timeout`
    /// of its own (a round trip has one timeout, and that step's must hold for it alone).
    fn may_chain(&self, j: usize) -> bool {
        let step = &self.plan.steps[j].step;
        let index = step.index;
        step.timeout.is_none()
            && self.once.elsewhere(index, &self.host.name).is_none()
            && !self.once.runs_here(index, &self.host.name)
            && !self.pending.involves(j)
    }

    /// Step `j` decided now, from what the runner has, or None when it cannot be (see the
    /// module's rules). `registers`: the names the chain's steps so far register.
    fn member(&mut self, j: usize, registers: &BTreeSet<String>) -> Option<Member> {
        let ps = &self.plan.steps[j];
        let uses_chain = ps.deps.iter().any(|d| registers.contains(d))
            || super::pending::when_references(self.planner, &ps.step)
                .iter()
                .any(|r| registers.contains(r));
        let no_facts = ps.facts && !self.registers.contains_key(facts::NAME);
        if self.interrupt_set() || !self.may_chain(j) || uses_chain || no_facts {
            return None;
        }
        let kind = self.prepared[j].clone()?;
        let probe = self.probes.get(&j);
        let unprobed = kind.probe(false).is_some() && probe.is_none();
        if unprobed || !kind.probe_ahead() || kind.probe_input().is_some() {
            return None;
        }
        if kind.controller(false, probe).is_some() {
            return None;
        }
        let ctx = self.planner.context(Some(self.host), &self.registers);
        let what = match self.planner.when(&ps.step, &ctx).ok()? {
            false => What::Skipped(self.skip_message(j)),
            true => match self.decide(kind.as_ref(), j) {
                Decision::Ok(msg) => What::Ok(msg),
                Decision::Change { summary, diff } => {
                    let action = kind.apply();
                    if action.stdin_file.is_some() {
                        return None;
                    }
                    What::Change(Change {
                        summary,
                        diff,
                        action,
                    })
                }
                Decision::Fail(_) => return None,
            },
        };
        Some(Member { i: j, kind, what })
    }

    /// Step `first` (deciding `summary`/`diff`) and `rest` in one round trip; then the report
    /// of each, in order, up to the first failure or the step whose check saw another state.
    /// Returns the step the run goes on from.
    pub(super) async fn apply_chain(
        &mut self,
        first: Member,
        rest: Vec<Member>,
        started: Instant,
    ) -> Result<usize, Stop> {
        let members: Vec<Member> = std::iter::once(first).chain(rest).collect();
        let (links, parts) = self.links(&members);
        // What each step's decision saw: what it registers comes from it.
        let seen: BTreeMap<usize, Probe> = members
            .iter()
            .filter_map(|m| Some((m.i, self.probes.get(&m.i)?.clone())))
            .collect();
        let first_i = members[0].i;
        let last = members[members.len() - 1].i;
        self.probes.retain(|j, _| *j <= first_i);
        let reprobe = self.reprobe_after(first_i, last);
        let release = self.folded_release(&members);
        // A Ctrl-C during the chain creates this flag (in the state dir, named by the run's
        // nonce): the chain stops before its next step, as between steps.
        let state = state_dir(&self.planner.app, &self.planner.env);
        let flag = format!("\"$st/stop.\"{}", self.nonce);
        let chain = chain::chain_script(
            &self.nonce,
            &links,
            &reprobe,
            release.as_ref().map(|(_, sh)| sh.as_str()),
            Some(&flag),
        );
        // A flag another run's Ctrl-C created after its chain had ended is never read: sweep it.
        let sweep = format!(
            "for pv_f in \"$st\"/stop.*; do [ ! -e \"$pv_f\" ] || [ \"$pv_f\" = \"$st/stop.{}\" ] || rm -f \"$pv_f\"; done\n",
            self.nonce
        );
        let script = format!("{state}{sweep}{chain}");
        self.on_interrupt = Some(format!("{state}mkdir -p \"$st\" && : > {flag}\n"));
        let timeout = members
            .iter()
            .map(|m| {
                self.plan.steps[m.i]
                    .step
                    .timeout
                    .unwrap_or(DEFAULT_STEP_TIMEOUT)
            })
            .sum();
        let keep = match members
            .iter()
            .any(|m| self.plan.steps[m.i].step.register.is_some())
        {
            true => Keep::All,
            false => Keep::Shown,
        };
        let input = Input::Parts(&parts);
        let out = (self.exec_change(first_i, &script, input, timeout, keep, started)).await;
        self.on_interrupt = None;
        let out = match out {
            Err(Stop::Lost(why)) => {
                let at = self.lost_in_chain(members, &seen, started).await;
                return Err(at.unwrap_or(Stop::Lost(why)));
            }
            Err(Stop::TimedOut(e)) => {
                let msg = format!(
                    "{} (and the {} steps after it, in one round trip): {e}",
                    summary_of(&members[0]),
                    members.len() - 1
                );
                return Err(self.fail(first_i, msg, None, started));
            }
            other => other?,
        };
        let mut parsed = chain::parse_chain(&self.nonce, &out.stdout, &out.stderr);
        self.probes.clear();
        self.probes.extend(std::mem::take(&mut parsed.rest.probes));
        let next = (self.report_chain(members, &seen, &mut parsed, &out, started)).await?;
        if let (Some((release, _)), Some((stdout, rc))) = (release, &parsed.after) {
            self.released(release, stdout, *rc == 0, "");
        }
        Ok(next)
    }

    /// The chain's links and its stdin: each step's expected probe output (the first step
    /// excepted), then its change's input.
    fn links(&self, members: &[Member]) -> (Vec<Link>, Vec<Bytes>) {
        let mut parts = Vec::new();
        let mut links = Vec::new();
        for (n, m) in members.iter().enumerate() {
            let check = match (n, &m.what, m.kind.probe(false), self.probes.get(&m.i)) {
                (0, ..) | (_, What::Skipped(_), ..) => None,
                _ if untouched(&members[..n], m) => None,
                (_, _, Some(probe), Some(seen)) => {
                    let expected = Bytes::from(chain::expected(&seen.out, seen.rc));
                    let len = expected.len();
                    parts.push(expected);
                    Some((self.as_step_user(m.i, probe), len))
                }
                _ => None,
            };
            let apply = match &m.what {
                What::Change(Change { action, .. }) => {
                    let len = push_input(action, &mut parts);
                    Some((self.as_step_user(m.i, action.script.clone()), len))
                }
                _ => None,
            };
            links.push(Link {
                id: m.i,
                check,
                apply,
            });
        }
        (links, parts)
    }

    /// The probes sent after the chain: every step after the first that can be probed then
    /// (a chain stopped by a check goes on from there), and the step right after the chain
    /// in full: a gate there waits in this round trip instead of only looking once.
    fn reprobe_after(&mut self, first: usize, last: usize) -> Vec<(usize, String)> {
        let mut items = self.probe_items(first + 1, false);
        if last + 1 < self.plan.steps.len() {
            let next = self.probe_items(last + 1, false);
            if let Some(full) = next.into_iter().find(|(j, _)| *j == last + 1) {
                items.retain(|(j, _)| *j != last + 1);
                items.push(full);
            }
        }
        items
    }

    /// The release record and the lock's release, in the chain's round trip, when the chain
    /// ends the playbook and the release's name uses no value the chain registers: (release,
    /// script), counting the chain's changes as made (it runs only when they all were).
    fn folded_release(&self, members: &[Member]) -> Option<(String, String)> {
        let lock = self.lock.clone()?;
        let last = members[members.len() - 1].i;
        if last + 1 != self.plan.steps.len() {
            return None;
        }
        if let Some(t) = &self.planner.playbook.release {
            let used = (self.planner.templates)
                .referenced_in_str("release", t)
                .ok()?;
            let registered = members
                .iter()
                .filter_map(|m| self.plan.steps[m.i].step.register.as_ref());
            if registered.into_iter().any(|r| used.contains(r)) {
                return None;
            }
        }
        let changes = members
            .iter()
            .filter(|m| matches!(m.what, What::Change(_)))
            .count();
        Some(self.release_sh(&lock, self.outcome.counts.changed + changes))
    }

    /// The connection was lost during the chain: the steps whose changes came back (their
    /// markers are in what arrived) are reported, and the host stops at the step after them,
    /// as it would have with a round trip per change. Some(stop) when reporting them failed.
    async fn lost_in_chain(
        &mut self,
        members: Vec<Member>,
        seen: &BTreeMap<usize, Probe>,
        started: Instant,
    ) -> Option<Stop> {
        let partial = self.lost_output.take().unwrap_or_default();
        let mut parsed = chain::parse_chain(&self.nonce, &partial.stdout, &partial.stderr);
        let went_through = |m: &Member| parsed.ran.get(&m.i).is_some_and(|r| r.rc == 0);
        let done = members
            .iter()
            .rposition(|m| matches!(m.what, What::Change(_)) && went_through(m));
        // Nothing went through: the host stopped at the first step.
        let done = done?;
        let mut members = members;
        let at = members.drain(done + 1..).next();
        parsed.diverged = None;
        if let Err(stop) = self
            .report_chain(members, seen, &mut parsed, &partial, started)
            .await
        {
            return Some(stop);
        }
        if let Some(m) = at {
            self.current = Some(self.plan.steps[m.i].step.name.clone());
            self.emit_started(m.i);
        }
        None
    }

    /// Report the chain's steps in order. A failed change stops the host; a step whose
    /// check saw another state is where the run goes on.
    async fn report_chain(
        &mut self,
        members: Vec<Member>,
        seen: &BTreeMap<usize, Probe>,
        parsed: &mut ChainParsed,
        out: &ExecOutput,
        started: Instant,
    ) -> Result<usize, Stop> {
        let last = members[members.len() - 1].i;
        for (n, m) in members.into_iter().enumerate() {
            if parsed.diverged == Some(m.i) {
                return Ok(m.i);
            }
            if n > 0 {
                self.current = Some(self.plan.steps[m.i].step.name.clone());
                self.emit_started(m.i);
            }
            match m.what {
                What::Skipped(msg) => {
                    self.register(
                        m.i,
                        serde_json::json!({ "changed": false, "skipped": true }),
                    );
                    self.finish(m.i, Status::Skipped, msg, None, None, started);
                }
                What::Ok(msg) => {
                    self.register_outcome(m.i, m.kind.as_ref(), false, seen.get(&m.i));
                    self.finish(m.i, Status::Ok, msg, None, None, started);
                }
                What::Change(Change { summary, diff, .. }) => {
                    let ran = parsed.ran.remove(&m.i);
                    let applied = ran_output(ran, out);
                    let change = Changed {
                        summary,
                        diff,
                        probe: seen.get(&m.i),
                        applied: &applied,
                    };
                    self.changed(m.i, m.kind.as_ref(), change, out, started)?;
                    if m.kind.reconnect_after(&applied) {
                        self.reconnect().await?;
                    }
                }
            }
        }
        Ok(last + 1)
    }
}

/// Whether no change before `m` in the chain can have altered what `m`'s probe prints: it
/// and every earlier change declare their paths (`StepKind::footprint`), and no path of `m`
/// is one an earlier change writes or may create as a parent directory. (A path reached
/// through a symbolic link under another name is not seen as the same: for these kinds the
/// end state is the same either way, only a summary could say "create" for "update".)
fn untouched(before: &[Member], m: &Member) -> bool {
    let Some(reads) = m.kind.footprint() else {
        return false;
    };
    let changes = before.iter().filter(|b| matches!(b.what, What::Change(_)));
    changes
        .map(|b| b.kind.footprint())
        .all(|writes| match writes {
            Some(writes) => writes.iter().all(|w| reads.iter().all(|r| !covers(r, w))),
            None => false,
        })
}

/// `r` is `w` or one of its parent directories (either unclear: yes).
fn covers(r: &str, w: &str) -> bool {
    let parts = |p: &str| -> Option<Vec<String>> {
        let parts: Vec<String> = p
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        (!parts.iter().any(|c| c == "." || c == "..")).then_some(parts)
    };
    match (parts(r), parts(w)) {
        (Some(r), Some(w)) => w.starts_with(&r),
        _ => true,
    }
}

/// What a member's report says it is.
fn summary_of(m: &Member) -> &str {
    match &m.what {
        What::Change(c) => &c.summary,
        What::Ok(msg) | What::Skipped(msg) => msg,
    }
}

/// A change's output as the chain split it; when its markers are missing (the script died),
/// the whole round trip's, with no exit status.
fn ran_output(ran: Option<Ran>, out: &ExecOutput) -> ExecOutput {
    match ran {
        Some(r) => ExecOutput {
            stdout: r.stdout.into_bytes(),
            stderr: r.stderr.into_bytes(),
            exit: Some(r.rc as u32),
            signal: None,
            cut: out.cut,
        },
        None => ExecOutput {
            exit: None,
            ..out.clone()
        },
    }
}

/// Append what `action` reads on stdin to `parts` (without copying shared content); its length.
fn push_input(action: &Action, parts: &mut Vec<Bytes>) -> usize {
    match action.input() {
        Input::None | Input::File(_) => 0,
        Input::Bytes(b) => {
            parts.push(Bytes::copy_from_slice(b));
            b.len()
        }
        Input::Parts(p) => {
            parts.extend(p.iter().cloned());
            p.iter().map(Bytes::len).sum()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::{Action, directory, upload::Upload};

    fn change(i: usize, kind: Arc<dyn StepKind>) -> Member {
        let action = Action::script("true".into());
        let (summary, diff) = ("change".to_string(), None);
        let what = What::Change(Change {
            summary,
            diff,
            action,
        });
        Member { i, kind, what }
    }

    fn dir(path: &str) -> Arc<dyn StepKind> {
        let spec = directory::Spec {
            path: path.into(),
            mode: Some("0755".into()),
            owner: None,
            group: None,
            state: Default::default(),
        };
        Arc::new(directory::Desired::prepare(&spec).unwrap())
    }

    fn file(dest: &str) -> Arc<dyn StepKind> {
        Arc::new(Upload::new(dest, &b"x\n"[..], "0644", None, None).unwrap())
    }

    #[test]
    fn a_check_is_skipped_only_where_no_earlier_change_can_touch_the_paths() {
        let m = |kind| change(9, kind);
        // A directory, then files in it and beside each other: nothing they look at changed.
        assert!(untouched(
            &[change(0, dir("/srv/app"))],
            &m(file("/srv/app/.env"))
        ));
        let before = [
            change(0, dir("/srv/app/")),
            change(1, file("/srv/app/.env")),
        ];
        assert!(untouched(&before, &m(file("/srv/app/app.conf"))));
        assert!(untouched(&before, &m(dir("/srv/app/data"))));
        // The same path again, or a directory a file's `mkdir -p` may have created.
        assert!(!untouched(&before, &m(file("/srv/app/.env"))));
        assert!(!untouched(&before, &m(dir("/srv/app"))));
        assert!(!untouched(&before, &m(dir("/srv"))));
        assert!(!untouched(&[change(0, file("/a//b/c"))], &m(dir("/a/b"))));
        // Unclear paths, or a kind that does not say what it touches (a command): checked.
        assert!(!untouched(
            &[change(0, file("/a/../b/c"))],
            &m(file("/x/y"))
        ));
        let cmd = crate::steps::command::Desired::prepare(&crate::steps::command::Spec {
            run: "touch /srv/app/.env".into(),
            creates: None,
            unless: None,
            chdir: None,
        })
        .unwrap();
        assert!(!untouched(&[change(0, Arc::new(cmd))], &m(file("/srv/x"))));
    }
}
