//! russh implementation of [`Transport`](super::Transport).
//!
//! One [`SshSession`] is one authenticated connection, reused for every script run on the
//! host; scripts run concurrently on separate channels.
//!
//! * `connect`: TCP or jump-host tunnel, key exchange, retries.
//! * `known_hosts` + `handler`: host-key verification (strict / accept-new).
//! * `auth` + `keyfile`: identity files, ssh-agent, default keys, passphrases.
//! * `exec`: one command on one channel.

mod auth;
mod connect;
mod exec;
mod handler;
mod keyfile;
mod known_hosts;

use std::time::Duration;

use russh::Disconnect;
use russh::client::Handle;
use tokio::sync::Semaphore;

use super::{ConnectError, ConnectSpec, ExecError, ExecOutput, Transport, script};
use handler::ClientHandler;

pub use keyfile::PASSPHRASE_ENV;

/// Concurrent channels per connection: sshd's default MaxSessions is 10, keep headroom.
const MAX_CHANNELS: usize = 8;

/// One authenticated SSH connection, reused for every script run on the host.
pub struct SshSession {
    /// Declared before `jumps`: fields drop in order, so the target goes before the tunnel
    /// that carries it.
    handle: Handle<ClientHandler>,
    /// The jump hosts this connection is tunnelled through, nearest first. Kept so they live
    /// exactly as long as this session.
    jumps: Vec<Handle<ClientHandler>>,
    channels: Semaphore,
    become_user: Option<String>,
    name: String,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("name", &self.name)
            .field("jumps", &self.jumps.len())
            .field("become_user", &self.become_user)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Connect, check the host key and authenticate as `spec.user`, retrying transient
    /// failures `spec.retries` times.
    pub async fn connect(spec: &ConnectSpec) -> Result<SshSession, ConnectError> {
        connect::connect(spec).await
    }

    fn new(
        handle: Handle<ClientHandler>,
        jumps: Vec<Handle<ClientHandler>>,
        spec: &ConnectSpec,
    ) -> Self {
        SshSession {
            handle,
            jumps,
            channels: Semaphore::new(MAX_CHANNELS),
            become_user: spec.become_user.clone(),
            name: spec.name.clone(),
        }
    }

    /// The inventory name this session was opened for.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Transport for SshSession {
    /// Waiting for a free channel slot does not count against `timeout`: only the remote
    /// command's own run time does.
    async fn exec(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        if self.handle.is_closed() {
            return Err(ExecError::Disconnected(format!(
                "the connection to {} is closed",
                self.name
            )));
        }
        let _permit = self
            .channels
            .acquire()
            .await
            .map_err(|_| ExecError::Disconnected("session closed".into()))?;
        let line = script::command_line(script, self.become_user.as_deref());
        exec::run(&self.handle, line, stdin, timeout).await
    }

    /// Target first, then the jump hosts outward; errors are irrelevant at this point.
    async fn close(&self) {
        self.channels.close();
        for handle in std::iter::once(&self.handle).chain(&self.jumps) {
            let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
        }
    }
}
