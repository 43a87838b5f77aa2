//! The one event type every reporter renders. `--output json` prints these as NDJSON, one
//! object per line, with an `event` field naming the variant.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Changed (apply), or would change (plan).
    Changed,
    Failed,
    Skipped,
}

pub use crate::value::Mode;

/// Counts for one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn add(&mut self, s: Status) {
        match s {
            Status::Ok => self.ok += 1,
            Status::Changed => self.changed += 1,
            Status::Failed => self.failed += 1,
            Status::Skipped => self.skipped += 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        env: String,
        mode: Mode,
        playbook: String,
        hosts: Vec<String>,
    },
    HostConnected {
        host: String,
        ms: u64,
    },
    HostUnreachable {
        host: String,
        error: String,
    },
    StepStarted {
        host: String,
        index: usize,
        step: String,
        kind: String,
    },
    StepFinished {
        host: String,
        index: usize,
        step: String,
        kind: String,
        status: Status,
        /// What was found or done, one line.
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        diff: Option<String>,
        /// Output of the change (command stdout/stderr), shown with -v or on failure.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        output: Option<String>,
        ms: u64,
    },
    /// Something the operator should act on that is not a step's result (e.g. a deploy lock
    /// left behind by a killed run).
    HostWarning {
        host: String,
        message: String,
    },
    /// -vv: what went over the wire (scripts and raw output; stdin payloads are never shown).
    Debug {
        host: String,
        message: String,
    },
    HostFinished {
        host: String,
        counts: Counts,
        unreachable: bool,
        /// The step the host stopped at, when it failed or lost its connection.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        stopped_at: Option<String>,
        round_trips: usize,
        ms: u64,
    },
    RunFinished {
        mode: Mode,
        totals: Counts,
        failed_hosts: Vec<String>,
        unreachable_hosts: Vec<String>,
        exit_code: i32,
        ms: u64,
    },
}
