//! One step on one host, in order: `when` (skip), render if deferred, probe (see `probe.rs`),
//! decide, then report and register, or apply (see `apply.rs`).

use super::apply::Change;
use super::chain::{Member, What};
use super::host::{HostRun, Stop};
use crate::report::{Event, Status};
use crate::steps::{Decision, Outcome, StepKind};
use crate::transport::{Connector, Keep};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl<C: Connector> HostRun<'_, C> {
    /// Step `i`; the step the run goes on from (a change may have taken later steps with it).
    pub(super) async fn step(&mut self, i: usize) -> Result<usize, Stop> {
        let started = Instant::now();
        self.emit_started(i);
        self.ensure_facts(i, started).await?;
        if self.skipped_by_when(i, started)? {
            return Ok(i + 1);
        }
        let kind = match self.render(i) {
            Ok(kind) => kind,
            Err(m) => return self.fail_unless_unknown(i, m, started).map(|()| i + 1),
        };
        self.ensure_probed(i, kind.as_ref(), started).await?;
        // Work on the controller the decision needs (an image built once for all hosts).
        let probe = self.probes.get(&i).cloned();
        if let Some(work) = kind.controller(self.check(), probe.as_ref())
            && let Err(m) = work.await
        {
            return Err(self.fail(i, m, None, started));
        }
        self.decided(i, kind, started).await
    }

    /// Step `i`'s decision, reported, registered, or applied (with the steps that can share
    /// its round trip: `chain.rs`).
    async fn decided(
        &mut self,
        i: usize,
        kind: Arc<dyn StepKind>,
        started: Instant,
    ) -> Result<usize, Stop> {
        match self.decide(kind.as_ref(), i) {
            Decision::Ok(msg) => {
                let probe = self.probes.get(&i).cloned();
                self.register_outcome(i, kind.as_ref(), false, probe.as_ref());
                self.finish(i, Status::Ok, msg, None, None, started);
                if let Some(clear) = self.pending.done_without_change(i, self.check()) {
                    self.exec(&clear, None, Duration::from_secs(60), Keep::All)
                        .await?;
                }
                Ok(i + 1)
            }
            Decision::Fail(msg) => self.fail_unless_unknown(i, msg, started).map(|()| i + 1),
            Decision::Change { summary, diff } if self.check() => {
                self.predicted.extend(kind.outputs());
                let probe = self.probes.get(&i).cloned();
                self.register_outcome(i, kind.as_ref(), true, probe.as_ref());
                self.register_is_predicted(i);
                self.finish(i, Status::Changed, summary, diff, None, started);
                Ok(i + 1)
            }
            Decision::Change { summary, diff } => {
                let action = kind.apply();
                let rest = self.chain_after(i, kind.as_ref(), &action);
                let change = Change {
                    summary,
                    diff,
                    action,
                };
                if rest.is_empty() {
                    (self.apply(i, kind.as_ref(), change, started)).await?;
                    return Ok(i + 1);
                }
                let what = What::Change(change);
                let first = Member { i, kind, what };
                self.apply_chain(first, rest, started).await
            }
        }
    }

    pub(super) fn emit_started(&self, i: usize) {
        let ps = &self.plan.steps[i];
        self.sink.emit(Event::StepStarted {
            host: self.host.name.clone(),
            index: ps.step.index,
            step: ps.step.name.clone(),
            kind: ps.step.spec.kind().to_string(),
            at_ms: self.at_ms(),
        });
    }

    /// `when` is false: the step is reported skipped (and registers that). An error in the
    /// expression fails it.
    fn skipped_by_when(&mut self, i: usize, started: Instant) -> Result<bool, Stop> {
        let ctx = self.planner.context(Some(self.host), &self.registers);
        match self.planner.when(&self.plan.steps[i].step, &ctx) {
            Ok(true) => Ok(false),
            Ok(false) => {
                self.register(i, serde_json::json!({ "changed": false, "skipped": true }));
                let msg = self.skip_message(i);
                self.finish(i, Status::Skipped, msg, None, None, started);
                Ok(true)
            }
            Err(m) => Err(self.fail(i, m, None, started)),
        }
    }

    /// Why step `i`, whose `when` is false, is skipped.
    pub(super) fn skip_message(&self, i: usize) -> String {
        match &self.plan.steps[i].step.lang.handler {
            // A handler's `when` is "notified" (and the one written, if any).
            Some(_) => "not notified (no notifying step changed)".to_string(),
            None => "`when` is false".to_string(),
        }
    }

    /// The step's kind: prepared at plan time, or rendered now with the values registered so
    /// far (a deferred step). The error fails the step (see `unknown.rs`).
    fn render(&mut self, i: usize) -> Result<Arc<dyn StepKind>, String> {
        self.drop_unconfirmed(i);
        if let Some(kind) = &self.prepared[i] {
            return Ok(kind.clone());
        }
        let ctx = self.planner.context(Some(self.host), &self.registers);
        match self.planner.prepare(&self.plan.steps[i].step, &ctx) {
            Ok(kind) => {
                self.prepared[i] = Some(kind.clone());
                Ok(kind)
            }
            Err(m) => Err(m),
        }
    }

    /// The kind's verdict on its probe; plan mode also counts inputs earlier steps rewrite.
    pub(super) fn decide(&self, kind: &dyn StepKind, i: usize) -> Decision {
        let decision = self.with_sudo_hint(i, kind.decide(self.probes.get(&i)));
        if self.check() {
            self.with_predicted_inputs(kind, decision)
        } else {
            decision
        }
    }

    /// A probe run through the step's own `become` says nothing of sudo (probes' stderr is
    /// dropped): when it failed, say that sudo may be what refused, and what fixes that.
    fn with_sudo_hint(&self, i: usize, decision: Decision) -> Decision {
        let (Decision::Fail(msg), Some(user)) = (&decision, &self.plan.steps[i].step.become_user)
        else {
            return decision;
        };
        match self.probes.get(&i).map(|p| p.rc) {
            Some(rc) if rc != 0 => Decision::Fail(format!(
                "{msg} (its probe ran through sudo as {user} and exited {rc}: if sudo refused, check the password in ssh.become_password_env, or passwordless sudo for {})",
                self.host.connect.user
            )),
            _ => decision,
        }
    }

    /// Plan mode: a step that is fine now but reads a file an earlier step would rewrite
    /// (a container and its env file) would change too.
    fn with_predicted_inputs(&self, kind: &dyn StepKind, decision: Decision) -> Decision {
        match decision {
            Decision::Ok(_) => match kind
                .inputs()
                .into_iter()
                .find(|f| self.predicted.contains(f))
            {
                Some(f) => Decision::change(format!("update: {f} changes earlier in this run")),
                None => decision,
            },
            other => other,
        }
    }

    /// Register what a step that was not applied (ok, or a predicted change) knows from the
    /// probe its decision saw.
    pub(super) fn register_outcome(
        &mut self,
        i: usize,
        kind: &dyn StepKind,
        changed: bool,
        probe: Option<&crate::steps::Probe>,
    ) {
        let v = kind.register(&Outcome {
            changed,
            check_mode: self.check(),
            probe,
            applied: None,
        });
        let v = self.pending.with_change(i, v);
        self.register(i, v);
    }

    /// Keep `value` under the step's `register` name, for the steps after it.
    /// What the kind can guess of its next run's value is kept for it (`guess.rs`).
    pub(super) fn register(&mut self, i: usize, value: serde_json::Value) {
        let Some(name) = &self.plan.steps[i].step.register else {
            return;
        };
        let steady = self.prepared[i]
            .as_ref()
            .and_then(|k| k.steady_register(&value));
        if let Some(steady) = steady {
            self.outcome.steady.insert(name.clone(), steady);
        }
        self.registers.insert(name.clone(), value);
        self.check_guesses(name);
    }
}
