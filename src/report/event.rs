//! The one event type every reporter renders. `--output json` prints these as NDJSON, one
//! object per line, with an `event` field naming the variant; `docs/events.schema.json`
//! documents every variant (tests/ci_path.rs checks each one against it).

use super::payload::{ExecOutput, HostInstance, HostStatus, Reply, Unlocked};
use crate::inventory::Host;
use crate::remote::releases::Record;
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

/// Serialized for `--output json`; read back by `provision report` (a saved run's NDJSON).
/// Fields added after version 1 began are `#[serde(default)]`, so older files still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        env: String,
        mode: Mode,
        playbook: String,
        hosts: Vec<String>,
        /// Who ran it: `user@machine`.
        #[serde(default)]
        user: String,
        /// When it started: UTC, RFC 3339.
        #[serde(default)]
        started_at: String,
    },
    /// A rolling deploy (`serial`) starts batch `batch` of `of` (from 1) on `hosts`.
    BatchStarted {
        batch: usize,
        of: usize,
        hosts: Vec<String>,
    },
    /// Batch `batch` failed beyond the env's limits: `not_reached` are never connected to
    /// and keep their release.
    RolloutStopped {
        batch: usize,
        of: usize,
        failed_hosts: Vec<String>,
        not_reached: Vec<String>,
        /// The limits exceeded, as written (e.g. `max_failures = 1`).
        limits: String,
    },
    HostConnected {
        host: String,
        ms: u64,
        /// Milliseconds since the run started, when the connection was up.
        #[serde(default)]
        at_ms: u64,
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
        /// Milliseconds since the run started.
        #[serde(default)]
        at_ms: u64,
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
        /// Milliseconds since the run started, when the step finished (it started `ms` before).
        #[serde(default)]
        at_ms: u64,
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
        /// The release recorded on the host (`release` of the playbook, e.g. the commit).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        release: Option<String>,
    },
    RunFinished {
        mode: Mode,
        totals: Counts,
        failed_hosts: Vec<String>,
        unreachable_hosts: Vec<String>,
        exit_code: i32,
        ms: u64,
    },
    /// `provision exec`: one host's command result.
    Exec {
        host: String,
        #[serde(flatten)]
        reply: Reply<ExecOutput>,
    },
    /// `provision status`: one host's release, last deploy, container and lock.
    Status {
        host: String,
        unreachable: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Boxed: the other events are much smaller.
        #[serde(flatten)]
        status: Option<Box<HostStatus>>,
    },
    /// `provision releases`: one record of a host's release log.
    Release {
        host: String,
        #[serde(flatten)]
        reply: Reply<Record>,
    },
    /// `provision hosts`: one host of the env and how provision connects to it. For an env
    /// with `ec2`, an instance line also carries the instance, and the connection fields are
    /// null for an instance provision cannot reach (not running, or without an address).
    Host {
        host: String,
        roles: Vec<String>,
        address: Option<String>,
        port: Option<u16>,
        user: Option<String>,
        /// `user@address:port` of the jump host.
        jump: Option<String>,
        #[serde(flatten)]
        instance: Option<HostInstance>,
    },
    /// `provision unlock`: what was removed on one host.
    Unlock {
        host: String,
        #[serde(flatten)]
        reply: Reply<Unlocked>,
    },
}

impl Event {
    pub fn exec(host: &str, r: Result<ExecOutput, String>) -> Event {
        Event::Exec {
            host: host.to_string(),
            reply: r.into(),
        }
    }

    pub fn status(host: &str, r: Result<HostStatus, String>) -> Event {
        let (status, error) = match r {
            Ok(s) => (Some(Box::new(s)), None),
            Err(e) => (None, Some(e)),
        };
        Event::Status {
            host: host.to_string(),
            unreachable: status.is_none(),
            error,
            status,
        }
    }

    /// One record, or (`Err`) the host's release log could not be read.
    pub fn release(host: &str, r: Result<Record, String>) -> Event {
        Event::Release {
            host: host.to_string(),
            reply: r.into(),
        }
    }

    /// A host line of `provision hosts`: how provision connects to `h` (and, for an EC2
    /// instance, the instance).
    pub fn host(h: &Host, instance: Option<HostInstance>) -> Event {
        let c = &h.connect;
        Event::Host {
            host: h.name.clone(),
            roles: h.roles.clone(),
            address: Some(c.address.clone()),
            port: Some(c.port),
            user: Some(c.user.clone()),
            jump: c
                .jump
                .as_ref()
                .map(|j| format!("{}@{}:{}", j.user, j.address, j.port)),
            instance,
        }
    }

    /// `Ok(owner)`: the lock `owner` held was removed (none: there was no lock).
    pub fn unlock(host: &str, r: Result<Option<String>, String>) -> Event {
        let r = r.map(|owner| Unlocked {
            removed: owner.is_some(),
            owner,
        });
        Event::Unlock {
            host: host.to_string(),
            reply: r.into(),
        }
    }
}
