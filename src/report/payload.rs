//! What an operator command's event carries for one host: the answer (`exec` output, the
//! host's status, an unlock) or why the host could not be asked.

use crate::remote::releases::Record;
use serde::{Deserialize, Serialize};

/// One host's answer, or `{"unreachable": true, "error": ...}` in its place. Serialized
/// flattened into the event, as the schema's `exec`, `release` and `unlock` lines have it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply<T> {
    Answered(T),
    /// `unreachable` is always true (the schema's `const`); build it with [`Reply::from`].
    Unreachable {
        unreachable: bool,
        error: String,
    },
}

impl<T> From<Result<T, String>> for Reply<T> {
    fn from(r: Result<T, String>) -> Reply<T> {
        match r {
            Ok(v) => Reply::Answered(v),
            Err(error) => Reply::Unreachable {
                unreachable: true,
                error,
            },
        }
    }
}

/// `provision exec` on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// The command's exit status; none when it was killed.
    pub exit: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

/// `provision unlock` on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlocked {
    /// A lock was there (and is gone now).
    pub removed: bool,
    /// Who held it.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    /// Docker's state (`running`, `exited`, `restarting`, …), `absent` when there is no such
    /// container, `unknown` when docker could not be asked (see `error`).
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`; none without a health check.
    pub health: Option<String>,
    pub image: Option<String>,
    pub started_at: Option<String>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockStatus {
    pub owner: String,
    /// Unix time the lock was taken.
    pub since: u64,
    pub age_secs: u64,
}

/// `provision status` on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    pub release: Option<Record>,
    pub last_deploy: Option<Record>,
    pub container: ContainerStatus,
    pub lock: Option<LockStatus>,
}

/// `provision hosts` for an env with `ec2`: the instance behind a host line, as EC2 lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInstance {
    /// The instance ID (`i-0abc…`).
    pub id: String,
    /// EC2's state: `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    /// The instance's address of the kind the env connects to (`ec2.address`).
    pub instance_address: Option<String>,
    pub instance_type: Option<String>,
}
