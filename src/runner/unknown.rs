//! Plan mode: values earlier steps register that cannot be known before they run.
//!
//! A step predicted to change (not applied: this is a plan) registers what its kind can
//! predict: git the SHA the remote ref resolves to, but a command's stdout, or a git step on a
//! host without git yet, nothing. A later step using such a value renders with a blank (a
//! `docker_build` tag `counter:`), and would fail for a reason that is not real. When a step
//! depending on a register of a predicted change fails to render or be decided, it is shown
//! as a change that depends on the value, and its own register is unknown in turn.

use super::host::{HostRun, Stop};
use crate::report::Status;
use crate::transport::Connector;
use std::time::Instant;

impl<C: Connector> HostRun<'_, C> {
    /// Plan mode: step `i` was predicted to change, so what it registers is a prediction.
    pub(super) fn register_is_predicted(&mut self, i: usize) {
        let step = &self.plan.steps[i].step;
        if let Some(name) = &step.register {
            let by = format!("`{}` ({})", step.name, step.spec.kind());
            self.unknown.insert(name.clone(), by);
        }
    }

    /// Step `i` could not be rendered or decided (`why`): in plan mode, when it uses a value a
    /// predicted change registers, it is a change depending on that value; otherwise it fails.
    pub(super) fn fail_unless_unknown(
        &mut self,
        i: usize,
        why: String,
        started: Instant,
    ) -> Result<(), Stop> {
        let Some((dep, by)) = self.unknown_dep(i) else {
            return Err(self.fail(i, why, None, started));
        };
        let value = used_attribute(&self.plan.steps[i].step, &dep);
        let msg = format!("would change (depends on `{value}`, known after {by} runs)");
        self.register(i, serde_json::json!({ "changed": true, "unknown": true }));
        self.register_is_predicted(i);
        self.finish(i, Status::Changed, msg, None, None, started);
        Ok(())
    }

    /// The first register step `i` uses whose value is only predicted, and who registers it.
    fn unknown_dep(&self, i: usize) -> Option<(String, String)> {
        if !self.check() {
            return None;
        }
        let ps = &self.plan.steps[i];
        ps.deps
            .iter()
            .find_map(|d| self.unknown.get(d).map(|by| (d.clone(), by.clone())))
    }
}

/// `src.sha` when the step's fields use `src.sha`; `src` when only the whole value is used.
fn used_attribute(step: &crate::config::Step, dep: &str) -> String {
    let text = serde_json::to_string(&step.spec).unwrap_or_default();
    let prefix = format!("{dep}.");
    let attr = text.match_indices(&prefix).find_map(|(at, _)| {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return None;
        }
        let rest = &text[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (end > 0).then(|| rest[..end].to_string())
    });
    match attr {
        Some(a) => format!("{dep}.{a}"),
        None => dep.to_string(),
    }
}
