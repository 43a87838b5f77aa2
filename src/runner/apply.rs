//! A change: the apply script, the re-probe of the steps after it (an apply can change what
//! they see) and, with the first change of the run, taking the deploy lock, all in one
//! round trip.

use super::DEFAULT_STEP_TIMEOUT;
use super::host::{HostRun, Stop};
use crate::plan::batch::{self, Parsed};
use crate::remote::lock::{self, Lock};
use crate::report::{Event, Status};
use crate::steps::{Action, Outcome, Probe, StepKind, tail};
use crate::transport::{Connector, ExecOutput, Input, Keep};
use std::time::{Duration, Instant};

/// A change as it came back.
pub(super) struct Changed<'a> {
    pub summary: String,
    pub diff: Option<String>,
    /// What its decision saw.
    pub probe: Option<&'a Probe>,
    pub applied: &'a ExecOutput,
}

/// A change decided: what the report says, and what makes it.
pub(super) struct Change {
    pub summary: String,
    pub diff: Option<String>,
    pub action: Action,
}

impl<C: Connector> HostRun<'_, C> {
    pub(super) async fn apply(
        &mut self,
        i: usize,
        kind: &dyn StepKind,
        change: Change,
        started: Instant,
    ) -> Result<(), Stop> {
        let Change {
            summary,
            diff,
            action,
        } = change;
        let probe_before = self.probes.remove(&i);
        // Later steps' probes are stale once this changes: all of them are sent again.
        self.probes.retain(|j, _| *j < i);
        let rest = self.probe_items(i + 1, false);
        let apply = (self.pending).wrap_apply(i, self.as_step_user(i, action.script.clone()));
        let step = &self.plan.steps[i].step;
        let timeout = step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT);
        // Output nobody registers is only shown: keep its end, with lines cut short.
        let keep = match step.register {
            Some(_) => Keep::All,
            None => Keep::Shown,
        };
        let script = batch::apply_script(&self.nonce, &apply, &rest);
        let out = match (self.exec_change(i, &script, action.input(), timeout, keep, started)).await
        {
            Err(Stop::TimedOut(e)) => {
                return Err(self.fail(i, format!("{summary}: {e}"), None, started));
            }
            other => other?,
        };
        self.probes.clear();
        let parsed = batch::parse(&self.nonce, &out.stdout);
        let applied = applied_output(&parsed, &out);
        if applied.exit == Some(0) {
            self.probes.extend(parsed.probes);
        }
        let change = Changed {
            summary,
            diff,
            probe: probe_before.as_ref(),
            applied: &applied,
        };
        self.changed(i, kind, change, &out, started)?;
        if kind.reconnect_after(&applied) {
            self.reconnect().await?;
        }
        Ok(())
    }

    /// The round trip of a change (step `i`'s, or a chain's led by it), with the deploy lock
    /// taken in front of it when this run does not hold it yet. A lock whose holder is
    /// provably gone is taken over at once, by a second attempt naming its token (the first
    /// stopped before the change). A refused lock fails step `i`. The stdout
    /// comes back without the lock's take-over marker (reported here).
    pub(super) async fn exec_change(
        &mut self,
        i: usize,
        script: &str,
        input: Input<'_>,
        timeout: Duration,
        keep: Keep,
        started: Instant,
    ) -> Result<ExecOutput, Stop> {
        let take_lock = self.lock.as_ref().filter(|_| !self.locked).cloned();
        let mut gone: Option<String> = None;
        let mut out = loop {
            let script = match &take_lock {
                Some(lock) => format!("{}{script}", lock.acquire_sh(&self.nonce, gone.as_deref())),
                None => script.to_string(),
            };
            let out = self.exec_input(&script, input, timeout, keep).await?;
            match take_lock.as_ref().and_then(|_| self.gone_holder(&out)) {
                Some(token) if gone.is_none() => gone = Some(token),
                _ => break out,
            }
        };
        if let Some(lock) = &take_lock {
            self.lock_taken(i, lock, &out, started)?;
        }
        let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(held) = lock::take_taken_over(&self.nonce, &mut stdout) {
            self.sink.emit(Event::HostWarning {
                host: self.host.name.clone(),
                message: held.taken_over(gone.is_some()),
            });
            out.stdout = stdout.into_bytes();
        }
        Ok(out)
    }

    /// The lock rode in front of the apply: taken, taken over or refused. Either way it is
    /// reported here, not at the end of the run.
    fn lock_taken(
        &mut self,
        i: usize,
        lock: &Lock,
        out: &ExecOutput,
        started: Instant,
    ) -> Result<(), Stop> {
        self.lock_seen = None;
        if let Some(held) = lock::parse_held(&self.nonce, &out.stdout_lossy()) {
            return Err(self.fail(i, held.message(lock.stale), None, started));
        }
        self.locked = true;
        Ok(())
    }
}

impl<C: Connector> HostRun<'_, C> {
    /// A change came back (alone or in a chain): report it changed (and register what it
    /// did), or failed, which stops the host.
    pub(super) fn changed(
        &mut self,
        i: usize,
        kind: &dyn StepKind,
        change: Changed<'_>,
        out: &ExecOutput,
        started: Instant,
    ) -> Result<(), Stop> {
        let Changed {
            summary,
            diff,
            probe,
            applied,
        } = change;
        let output = combined_output(applied);
        if applied.exit != Some(0) {
            let msg = failure_message(&summary, applied, &output);
            return Err(self.fail(i, msg, Some(output), started));
        }
        let v = kind.register(&Outcome {
            changed: true,
            check_mode: false,
            probe,
            applied: Some(applied),
        });
        self.register(i, v);
        let summary = with_truncation_note(summary, out);
        let output = Some(output).filter(|o| !o.is_empty());
        self.finish(i, Status::Changed, summary, diff, output, started);
        Ok(())
    }

    /// The token of the lock that refused us, when its holder is provably gone.
    fn gone_holder(&self, out: &ExecOutput) -> Option<String> {
        let held = lock::parse_held(&self.nonce, &out.stdout_lossy())?;
        held.gone_token().map(str::to_string)
    }
}

/// What the apply part of the round trip printed and how it exited (its marker's status;
/// the script's when the marker is missing).
fn applied_output(parsed: &Parsed, out: &ExecOutput) -> ExecOutput {
    let rc = parsed.apply_rc.or(out.exit.map(|e| e as i32));
    ExecOutput {
        stdout: parsed.apply_out.clone().into_bytes(),
        stderr: out.stderr.clone(),
        exit: rc.map(|r| r as u32),
        signal: out.signal.clone(),
        cut: out.cut,
    }
}

/// A message is one line to read, not a dump: the output has the rest.
const LAST_LINE_CHARS: usize = 300;

/// `<summary>: <why>: <last line>`: the last line the change printed usually says why
/// (e.g. a failed health check).
fn failure_message(summary: &str, applied: &ExecOutput, output: &str) -> String {
    let why = match (applied.exit, &applied.signal) {
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), _) => format!("exit code {}", code as i32),
        (None, _) => "no exit status".into(),
    };
    let last = output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let last = cut_to(last, LAST_LINE_CHARS);
    if last.is_empty() {
        format!("{summary}: {why}")
    } else {
        format!("{summary}: {why}: {last}")
    }
}

/// The transport notes at the end of stderr what it did not keep (long lines, the middle
/// of long output): say so where a plain report shows it too.
fn with_truncation_note(summary: String, out: &ExecOutput) -> String {
    if out.cut {
        format!("{summary} (output truncated: long lines and the middle were not kept)")
    } else {
        summary
    }
}

/// The first `chars` characters of `line`, with `…` when there were more.
fn cut_to(line: &str, chars: usize) -> std::borrow::Cow<'_, str> {
    match line.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &line[..at]).into(),
        None => line.into(),
    }
}

/// stdout and stderr of a change, trimmed to the last lines.
fn combined_output(out: &ExecOutput) -> String {
    let mut s = out.stdout_lossy();
    let err = out.stderr_lossy();
    if !err.trim().is_empty() {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&err);
    }
    tail(&s, 40)
}
