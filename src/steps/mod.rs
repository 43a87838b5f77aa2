//! Step kinds. Each kind lives in one file holding its spec (what the playbook says, a
//! [`Kind`]), its desired state (the spec rendered and prepared for one host), its probe (a
//! read-only `sh` snippet), its decision (a pure function of desired and observed state) and
//! its apply. `registry.rs` lists the kinds; `kind.rs` is what each of them implements.

pub mod absent;
pub mod command;
pub mod compose;
pub mod directory;
pub mod docker_build;
pub mod docker_install;
pub mod docker_run;
pub mod docker_swap;
pub mod docker_tls;
pub mod env_file;
pub mod file;
pub mod git;
pub mod group;
pub mod healthcheck;
pub mod image;
pub mod kind;
pub mod lb_drain;
pub mod line_in_file;
pub mod migrate;
pub mod packages;
pub mod registry;
pub mod shell;
pub mod state;
pub mod sync;
pub mod systemd;
pub mod template;
pub mod upload;
pub mod user;
pub mod wait;

pub use kind::{Kind, PrepareCx, PrepareError, Shared};
pub use registry::{NAMES, Spec, deserialize_kind};

use crate::transport::{ExecOutput, Input};
use futures::future::BoxFuture;
use std::path::PathBuf;

/// The fd on which a probe with input (`StepKind::probe_input`) finds the batch's stdin:
/// each such probe reads exactly its own bytes from it, in batch order.
pub const PROBE_INPUT_FD: u8 = 3;

/// Output of one probe: what the snippet printed and its exit code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Probe {
    pub out: String,
    pub rc: i32,
}

impl Probe {
    /// A successful probe that printed `out` (the common case in tests).
    pub fn with_out(out: impl Into<String>) -> Probe {
        Probe {
            out: out.into(),
            rc: 0,
        }
    }

    /// `key=value` lines as printed by most probes.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.out
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The verdict of comparing desired with observed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Already as desired; the text says what was checked.
    Ok(String),
    /// Needs a change: one-line summary, and a diff where the kind has one.
    Change {
        summary: String,
        diff: Option<String>,
    },
    /// The probe found something the step cannot fix (e.g. a path that is a file, not a dir).
    Fail(String),
}

impl Action {
    /// A change that reads nothing on stdin.
    pub fn script(script: String) -> Action {
        Action {
            script,
            ..Action::default()
        }
    }

    /// What the script reads on stdin: the file when there is one, else the bytes.
    pub fn input(&self) -> Input<'_> {
        match &self.stdin_file {
            Some(path) => Input::File(path),
            None if !self.stdin_shared.is_empty() => Input::Parts(&self.stdin_shared),
            None => Input::from(self.stdin.as_deref()),
        }
    }
}

impl Decision {
    pub fn change(summary: impl Into<String>) -> Decision {
        Decision::Change {
            summary: summary.into(),
            diff: None,
        }
    }
}

/// A change to make: a script and the bytes it reads on stdin.
#[derive(Debug, Clone, Default)]
pub struct Action {
    pub script: String,
    pub stdin: Option<Vec<u8>>,
    /// Parts sent in order instead of `stdin`, shared with other hosts' actions without a
    /// copy (an upload's content: memory does not grow with hosts × size).
    pub stdin_shared: Vec<bytes::Bytes>,
    /// A local file streamed on stdin instead of `stdin` (too large to hold per host: an
    /// image archive).
    pub stdin_file: Option<PathBuf>,
}

/// What the runner knows after a step, for `register`.
pub struct Outcome<'a> {
    pub changed: bool,
    pub check_mode: bool,
    pub probe: Option<&'a Probe>,
    pub applied: Option<&'a ExecOutput>,
}

/// A step ready to run on one host.
pub trait StepKind: Send + Sync + std::fmt::Debug {
    /// Read-only snippet that prints the current state. `None`: nothing to probe (always runs).
    /// `check` is set in plan mode, where a probe may also fetch content for a diff.
    fn probe(&self, check: bool) -> Option<String>;
    /// Bytes the probe reads, a secret that must not be in its script (a deploy key): the
    /// batch sends them on stdin, and the probe reads exactly `len` of them from fd 3
    /// (see [`PROBE_INPUT_FD`]). Such a probe is not re-sent after another
    /// step's apply, whose stdin it would need too.
    fn probe_input(&self) -> Option<Vec<u8>> {
        None
    }
    /// Whether the probe may run ahead of the step's turn, batched with the others. Gates
    /// (`wait`, `healthcheck`) observe what earlier steps start, so they only run in turn.
    fn probe_ahead(&self) -> bool {
        true
    }
    /// A gate's one look, without waiting: sent ahead in a batch (the first one, when no
    /// step before the gate has changed yet), it spares the gate a round trip of its own
    /// when what it waits for is already there (a no-op). Its result stands only when the
    /// kind decides `Ok` on it; otherwise the gate is probed in its turn. Gates only.
    fn probe_once(&self, _check: bool) -> Option<String> {
        None
    }
    /// What this step will register on the next run when nothing changes, given what it
    /// registered now: kept on the controller so the next run can render the steps that use
    /// it before it is known (`runner/guess.rs`). None (the default) when only the host can
    /// say, or when the value may hold anything secret (a command's output).
    fn steady_register(&self, _registered: &serde_json::Value) -> Option<serde_json::Value> {
        None
    }
    /// Host files whose content is part of this step's state (e.g. a container's env file).
    /// In plan mode, when an earlier step would rewrite one, this step would change too.
    fn inputs(&self) -> Vec<String> {
        Vec::new()
    }
    /// The host paths this step's probe and change are about, when that is all they are
    /// about: the probe reads only these entries (never what is below them), the change
    /// writes only them and creates their missing parent directories. A chain skips the check
    /// of a step none of whose paths an earlier change of it writes or creates (`runner/
    /// chain.rs`): its probe would print what its decision saw. None (the default): unknown,
    /// always checked.
    fn footprint(&self) -> Option<Vec<String>> {
        None
    }
    /// Host files this step writes whole (uploads).
    fn outputs(&self) -> Vec<String> {
        Vec::new()
    }
    /// Pure comparison of desired and observed state. `observed` is None when `probe` is None.
    fn decide(&self, observed: Option<&Probe>) -> Decision;
    /// Work on the controller (this machine) the decision needs, run after the probe and
    /// before `decide`: e.g. the image built once for every host. `observed` is this host's
    /// probe, so the work can be skipped where the host needs nothing. An error fails the
    /// step. In plan mode (`check`) it must only read.
    fn controller<'a>(
        &'a self,
        _check: bool,
        _observed: Option<&'a Probe>,
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        None
    }
    /// The script that makes the change; safe to run again.
    fn apply(&self) -> Action;
    /// The value stored by `register`.
    fn register(&self, outcome: &Outcome<'_>) -> serde_json::Value {
        serde_json::json!({ "changed": outcome.changed })
    }
    /// Whether the change just made (`applied`: its output) needs a new login before the
    /// steps after it: a session's supplementary groups are fixed when it logs in, so a
    /// user just added to a group only has it in a new session.
    fn reconnect_after(&self, _applied: &ExecOutput) -> bool {
        false
    }
    /// Whether `reconnect_after` can ever say yes: such a change ends a chain of changes
    /// sharing a round trip (the steps after it need the new login).
    fn may_reconnect(&self) -> bool {
        false
    }
}

/// A host port ("8080") or address:port ("127.0.0.1:8080").
pub fn check_port(key: &str, port: &str) -> Result<(), String> {
    let ok = !port.is_empty()
        && port
            .chars()
            .all(|c| c.is_ascii_hexdigit() || ".:[]".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key} `{port}` must be a host port (\"8080\") or address:port (\"127.0.0.1:8080\")"
        ))
    }
}

/// Normalize an octal mode written as "644", "0644" or "0o644" to "644"-style digits.
pub fn normalize_mode(mode: &str) -> Result<String, String> {
    let m = mode.trim().trim_start_matches("0o");
    let m = m.trim_start_matches('0');
    let m = if m.is_empty() { "0" } else { m };
    if m.len() > 4 || !m.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(format!("mode `{mode}` is not an octal mode like \"0644\""));
    }
    Ok(m.to_string())
}

/// The last lines of a command's output, for failure messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_normalize() {
        assert_eq!(normalize_mode("0644").unwrap(), "644");
        assert_eq!(normalize_mode("0o755").unwrap(), "755");
        assert_eq!(normalize_mode("600").unwrap(), "600");
        assert_eq!(normalize_mode("2775").unwrap(), "2775");
        assert!(normalize_mode("0999").is_err());
        assert!(normalize_mode("rw").is_err());
    }

    #[test]
    fn probe_fields() {
        let p = Probe::with_out("state=dir\nmode=755\n");
        assert_eq!(p.field("state"), Some("dir"));
        assert_eq!(p.field("mode"), Some("755"));
        assert_eq!(p.field("owner"), None);
    }
}
