//! Probe round trips: the steps that can be rendered now go in one batch with the step in
//! turn (gates only look once, without waiting: a closed gate is probed again in its own
//! turn), and the first batch also looks for a deploy lock left on the host.

use super::DEFAULT_STEP_TIMEOUT;
use super::host::{HostRun, Stop};
use super::pending::PENDING_PROBE;
use crate::plan::batch;
use crate::remote::{facts, lock};
use crate::steps::{StepKind, tail};
use crate::transport::{Connector, ExecOutput, Keep};
use std::time::{Duration, Instant};

/// The id of the deploy-lock probe in the first probe batch (no step has it).
const LOCK_PROBE: usize = usize::MAX;
/// The id of the facts probe in the first probe batch (see `remote/facts.rs`).
const FACTS_PROBE: usize = usize::MAX - 2;

impl<C: Connector> HostRun<'_, C> {
    /// Make sure step `i` has a probe result when its kind has a probe: one round trip
    /// (with every later step that can be probed ahead) unless an earlier batch brought it.
    pub(super) async fn ensure_probed(
        &mut self,
        i: usize,
        kind: &dyn StepKind,
        started: Instant,
    ) -> Result<(), Stop> {
        // A gate's look ahead found it closed: it waits in its turn, as if never looked at.
        if self.looked_once.remove(&i)
            && let Some(p) = self.probes.get(&i)
            && !matches!(kind.decide(Some(p)), crate::steps::Decision::Ok(_))
        {
            self.probes.remove(&i);
        }
        if kind.probe(self.check()).is_none() || self.probes.contains_key(&i) {
            return Ok(());
        }
        let out = self.probe_round(i, started).await?;
        if !self.probes.contains_key(&i) {
            let err = no_probe_output(&self.nonce, &out);
            return Err(self.fail(i, err, None, started));
        }
        Ok(())
    }

    /// Step `i` uses `facts` and no round trip has brought them yet (it is the first step
    /// probed): the first probe batch goes now, before its `when` is evaluated. Probes are
    /// read-only, so sending the later steps' ones ahead costs nothing when `when` is false.
    pub(super) async fn ensure_facts(&mut self, i: usize, started: Instant) -> Result<(), Stop> {
        if !self.plan.steps[i].facts || self.registers.contains_key(facts::NAME) {
            return Ok(());
        }
        let out = self.probe_round(i, started).await?;
        if !self.registers.contains_key(facts::NAME) {
            let err = no_probe_output(&self.nonce, &out);
            return Err(self.fail(i, err, None, started));
        }
        Ok(())
    }

    /// One probe round trip from step `i` on; its results kept (the side probes of the
    /// first batch too: lock, pending markers, facts). A timeout fails step `i`.
    async fn probe_round(&mut self, i: usize, started: Instant) -> Result<ExecOutput, Stop> {
        let out = match self.probe_batch(i).await {
            Err(Stop::TimedOut(e)) => {
                return Err(self.fail(i, format!("inspecting the host: {e}"), None, started));
            }
            other => other?,
        };
        let mut parsed = batch::parse(&self.nonce, &out.stdout);
        if let Some(p) = parsed.probes.remove(&LOCK_PROBE) {
            self.lock_probed = true;
            self.lock_seen = lock::parse_status(&p.out);
        }
        if let Some(p) = parsed.probes.remove(&PENDING_PROBE) {
            self.pending.parse_probe(&p.out);
        }
        if let Some(p) = parsed.probes.remove(&FACTS_PROBE) {
            // Facts are a value every later step may use, like a registered one.
            let facts = facts::parse(&p.out);
            self.registers.insert(facts::NAME.to_string(), facts);
        }
        self.probes.extend(parsed.probes);
        Ok(out)
    }

    /// Send the probes from step `i` on (and the lock probe, the first time).
    async fn probe_batch(&mut self, i: usize) -> Result<ExecOutput, Stop> {
        let mut items = self.probe_items(i, true);
        let timeout = self.timeout_for(&items);
        if !self.lock_probed {
            let probe = lock::status_probe_sh(&self.planner.app, &self.planner.env);
            items.push((LOCK_PROBE, probe));
            items.extend(self.pending.probe_sh().map(|p| (PENDING_PROBE, p)));
        }
        // In the first probe batch: no round trip of its own.
        if !self.registers.contains_key(facts::NAME) {
            items.push((FACTS_PROBE, facts::probe_sh().to_string()));
        }
        let script = batch::probe_script(&self.nonce, &items);
        let input = self.probe_inputs(&items);
        let stdin = (!input.is_empty()).then_some(input.as_slice());
        self.exec(&script, stdin, timeout, Keep::All).await
    }

    /// The probes' inputs, concatenated in batch order (each probe reads its own length).
    fn probe_inputs(&self, items: &[(usize, String)]) -> Vec<u8> {
        let mut input = Vec::new();
        for (j, _) in items {
            let kind = self.prepared.get(*j).and_then(|k| k.as_ref());
            input.extend(kind.and_then(|k| k.probe_input()).unwrap_or_default());
        }
        input
    }

    /// Probes to send in one batch, starting at step `from`: every later step that can be
    /// rendered now and has no valid probe result yet. Without `with_input` (after an apply,
    /// which reads the stdin), probes that read input wait for a round trip of their own.
    pub(super) fn probe_items(&mut self, from: usize, with_input: bool) -> Vec<(usize, String)> {
        let mut items = Vec::new();
        for j in from..self.plan.steps.len() {
            let index = self.plan.steps[j].step.index;
            // Another host runs it: this one never looks.
            if self.probes.contains_key(&j) || self.once.elsewhere(index, &self.host.name).is_some()
            {
                continue;
            }
            self.try_render(j);
            let Some(kind) = self.prepared[j].as_ref() else {
                continue;
            };
            if !with_input && kind.probe_input().is_some() {
                continue;
            }
            let reads_input = kind.probe_input().is_some();
            let script = match j > from && !kind.probe_ahead() {
                true => kind.probe_once(self.check()),
                false => kind.probe(self.check()),
            };
            let Some(script) = script else { continue };
            match j > from && !kind.probe_ahead() {
                true => self.looked_once.insert(j),
                false => self.looked_once.remove(&j),
            };
            items.push((j, self.probe_as_step_user(j, script, reads_input)));
        }
        items
    }

    /// Step `j`'s script as its `become_user`, when it names one.
    pub(super) fn as_step_user(&self, j: usize, script: String) -> String {
        match &self.plan.steps[j].step.become_user {
            Some(user) => {
                let sudo = crate::transport::script::Sudo {
                    password: self.host.connect.become_password.is_some(),
                    agent: false,
                };
                crate::transport::script::as_user(&script, user, sudo)
            }
            None => script,
        }
    }

    /// [`Self::as_step_user`] for a probe: sudo closes every fd above 2, so a probe that
    /// reads its input from the batch's fd 3 gets that fd as its stdin through sudo and makes
    /// it fd 3 again inside.
    fn probe_as_step_user(&self, j: usize, script: String, reads_input: bool) -> String {
        if !reads_input || self.plan.steps[j].step.become_user.is_none() {
            return self.as_step_user(j, script);
        }
        let fd = crate::steps::PROBE_INPUT_FD;
        let inner = format!("exec {fd}<&0\n{script}");
        format!("{} 0<&{fd}", self.as_step_user(j, inner))
    }

    /// Render deferred step `j` if every value it needs is registered. Errors surface when
    /// the step's turn comes; here we only try.
    fn try_render(&mut self, j: usize) {
        let ps = &self.plan.steps[j];
        if self.prepared[j].is_some() {
            return;
        }
        if !ps.deps.iter().all(|d| self.registers.contains_key(d)) {
            return self.render_with_guesses(j);
        }
        let ctx = self.planner.context(Some(self.host), &self.registers);
        self.prepared[j] = self.planner.prepare(&ps.step, &ctx).ok();
    }

    /// A batch may run as long as the slowest of its steps may.
    fn timeout_for(&self, items: &[(usize, String)]) -> Duration {
        items
            .iter()
            .map(|(j, _)| {
                self.plan.steps[*j]
                    .step
                    .timeout
                    .unwrap_or(DEFAULT_STEP_TIMEOUT)
            })
            .max()
            .unwrap_or(DEFAULT_STEP_TIMEOUT)
    }
}

/// Why a probe script gave nothing for a step, with what the host did say. When none of the
/// script's markers came back, the script never ran: the remote login shell (or an rc file it
/// reads, such as a ~/.bashrc that exits) stopped it.
fn no_probe_output(nonce: &str, out: &ExecOutput) -> String {
    let status = match (out.exit, &out.signal) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "no exit status".to_string(),
    };
    let said: Vec<String> = [out.stderr_lossy(), out.stdout_lossy()]
        .iter()
        .map(|t| tail(t, 3))
        .filter(|t| !t.trim().is_empty())
        .collect();
    let said = if said.is_empty() {
        "no output".to_string()
    } else {
        format!("output: {}", said.join(" / "))
    };
    if out.stdout_lossy().contains(nonce) {
        format!("could not inspect the host ({status}, {said})")
    } else {
        format!(
            "could not inspect the host: provision's script did not run ({status}, {said}); check the remote user's login shell and the rc files it reads (e.g. a ~/.bashrc that exits)"
        )
    }
}
