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
mod host_key;
mod keyfile;
mod known_hosts;
pub mod proxy;

use std::time::Duration;

use russh::Disconnect;
use russh::client::Handle;
use tokio::sync::Semaphore;

use super::{
    ConnectError, ConnectSpec, Connector, ExecError, ExecOutput, Input, Keep, Transport, script,
};
use handler::ClientHandler;

pub use host_key::HostKey;
pub use keyfile::{PASSPHRASE_ENV, check_inline_key, check_key_file};
pub use known_hosts::{entries_in as known_hosts_entries, forget_pins, parse_pin};

/// The decoded (and, with its passphrase, decrypted) private key given as text, in OpenSSH
/// format: what `provision ssh` hands the system ssh client in a private temp file.
pub async fn inline_key_openssh(key: &super::InlineKey) -> Result<String, ConnectError> {
    let decoded = keyfile::load_inline(key).await?;
    decoded
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map(|text| text.to_string())
        .map_err(|e| ConnectError::KeyFile {
            path: key.source.clone(),
            reason: format!("cannot encode it for ssh: {e}"),
        })
}

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
    /// The ProxyCommand the connection runs over, killed when the session drops (after the
    /// handle, declared before it).
    proxy: Option<tokio::process::Child>,
    channels: Semaphore,
    become_user: Option<String>,
    /// `password\n` when the env gives a sudo password: the first line of every channel's
    /// stdin (never its command line).
    password_line: Option<Vec<u8>>,
    /// Every channel asks for the agent to be forwarded (`ssh.forward_agent`).
    forward_agent: bool,
    name: String,
    /// How long a channel may take to open (the host's `connect_timeout`): a server that
    /// accepted the connection but stopped answering must not hang the run.
    open_timeout: Duration,
    /// The host keys accepted for this connection: the target's, then each jump host's
    /// outward.
    host_keys: Vec<HostKey>,
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

/// The [`Connector`] over SSH: what every command hands the code that drives hosts.
#[derive(Debug, Clone, Copy, Default)]
pub struct SshConnector;

impl Connector for SshConnector {
    type Session = SshSession;

    async fn connect(&self, spec: &ConnectSpec) -> Result<SshSession, ConnectError> {
        connect::connect(spec).await
    }
}

impl SshSession {
    /// Connect, check the host key and authenticate as `spec.user`, retrying transient
    /// failures `spec.retries` times. Kept for the commands not yet on [`SshConnector`]
    /// (tests/seams.rs lists them); new code goes through the connector.
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
            proxy: None,
            channels: Semaphore::new(MAX_CHANNELS),
            become_user: spec.become_user.clone(),
            password_line: (spec.become_password.as_ref())
                .map(|p| format!("{}\n", p.0).into_bytes()),
            forward_agent: spec.forward_agent,
            name: spec.name.clone(),
            open_timeout: spec.connect_timeout,
            host_keys: Vec::new(),
        }
    }

    fn sudo(&self) -> script::Sudo {
        script::Sudo {
            password: self.password_line.is_some(),
            agent: self.forward_agent,
        }
    }

    /// The inventory name this session was opened for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verified host keys of this connection: the target's first, then each jump host's
    /// outward.
    pub fn host_keys(&self) -> &[HostKey] {
        &self.host_keys
    }
}

/// Which stream a chunk of streamed output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl SshSession {
    /// Run `script` (wrapped like [`Transport::exec`]) and hand its output to `on_data` as it
    /// arrives, until the command exits or `stop` resolves: then the remote command is sent
    /// TERM and the channel closed (sshd hangs up on whatever is left). Returns the exit
    /// status; `None` when stopped or killed by a signal.
    pub async fn exec_streaming(
        &self,
        script: &str,
        stop: impl std::future::Future<Output = ()>,
        mut on_data: impl FnMut(Stream, &[u8]),
    ) -> Result<Option<u32>, ExecError> {
        let _permit = self
            .channels
            .acquire()
            .await
            .map_err(|_| ExecError::Disconnected("session closed".into()))?;
        let lost = |e: russh::Error| ExecError::Disconnected(e.to_string());
        let mut channel =
            exec::open_within(self.open_timeout, self.handle.channel_open_session()).await?;
        let line = script::command_line(script, self.become_user.as_deref(), self.sudo());
        if self.forward_agent {
            channel.agent_forward(false).await.map_err(lost)?;
        }
        channel.exec(true, line).await.map_err(lost)?;
        if let Some(first) = &self.password_line {
            channel.data(&first[..]).await.map_err(lost)?;
        }
        let _ = channel.eof().await;
        let mut stop = std::pin::pin!(stop);
        let mut exit = None;
        loop {
            tokio::select! {
                msg = channel.wait() => match msg {
                    None => break,
                    Some(russh::ChannelMsg::Data { data }) => on_data(Stream::Stdout, &data),
                    Some(russh::ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        on_data(Stream::Stderr, &data)
                    }
                    Some(russh::ChannelMsg::ExitStatus { exit_status }) => exit = Some(exit_status),
                    Some(russh::ChannelMsg::Failure) => {
                        return Err(ExecError::Disconnected(
                            "the server refused to run the command".into(),
                        ));
                    }
                    Some(_) => {}
                },
                () = &mut stop => {
                    let _ = channel.signal(russh::Sig::TERM).await;
                    let _ = channel.close().await;
                    return Ok(None);
                }
            }
        }
        Ok(exit)
    }
}

impl Transport for SshSession {
    /// Waiting for a free channel slot does not count against `timeout`: only the remote
    /// command's own run time does.
    async fn exec_input(
        &self,
        script: &str,
        stdin: Input<'_>,
        timeout: Duration,
        keep: Keep,
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
        let cmd = exec::Command {
            line: script::command_line(script, self.become_user.as_deref(), self.sudo()),
            preamble: self.password_line.as_deref(),
            forward_agent: self.forward_agent,
        };
        exec::run(&self.handle, cmd, stdin, self.open_timeout, timeout, keep).await
    }

    /// Target first, then the jump hosts outward; errors are irrelevant at this point.
    async fn close(&self) {
        self.channels.close();
        for handle in std::iter::once(&self.handle).chain(&self.jumps) {
            let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
        }
    }
}
