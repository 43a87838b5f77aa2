//! russh implementation of [`Transport`](super::Transport). (Being written.)

use super::{ConnectError, ConnectSpec, ExecError, ExecOutput, Transport};
use std::time::Duration;

/// One authenticated SSH connection, reused for every script run on the host.
pub struct SshSession {
    _private: (),
}

impl SshSession {
    pub async fn connect(spec: &ConnectSpec) -> Result<SshSession, ConnectError> {
        Err(ConnectError::Protocol(format!("not yet implemented: {}", spec.name)))
    }
}

impl Transport for SshSession {
    async fn exec(&self, _script: &str, _stdin: Option<&[u8]>, _timeout: Duration) -> Result<ExecOutput, ExecError> {
        Err(ExecError::Disconnected("not yet implemented".into()))
    }
    async fn close(&self) {}
}
