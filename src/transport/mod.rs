//! The one seam between provision and a remote host.
//!
//! Everything the steps do on a host is a POSIX `sh` script plus optional bytes on stdin, run
//! through [`Transport::exec`]. Uploads are `cat > tmp && mv tmp dest` scripts built by
//! `steps::upload`, so the trait needs no upload method and secrets travel on stdin only.
//! Every connection is opened through a [`Connector`], so the code that drives hosts is
//! generic over how they are reached; the one real implementation is [`ssh::SshConnector`]
//! (its sessions are [`ssh::SshSession`]s), and the runner's unit tests plug in a fake.

pub mod capture;
pub mod script;
pub mod ssh;

pub use capture::Keep;
pub use ssh::HostKey;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a remote script produced. `exit` is `None` when the process died by a signal or the
/// channel closed without an exit status; callers treat that as a failure, never as success.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: Option<u32>,
    pub signal: Option<String>,
    /// Some of what it printed was not kept (see [`capture`]); the end of stderr says how much.
    pub cut: bool,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit == Some(0)
    }
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Errors while running a script on a connected host.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("remote command timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// Lost while the command ran, with what it had printed by then (a chain of changes
    /// tells from it which of its steps went through).
    #[error("connection lost: {message}")]
    LostMidway {
        message: String,
        partial: Box<ExecOutput>,
    },
}

/// What a script reads on stdin.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Nothing: stdin is closed at once, so a remote `cat` never waits.
    None,
    /// These bytes (a password, a short input).
    Bytes(&'a [u8]),
    /// These parts, one after another, each sent without a copy: an upload whose content
    /// every host of the run shares.
    Parts(&'a [bytes::Bytes]),
    /// A local file, streamed in chunks as the remote side reads it: memory stays bounded
    /// whatever its size (an image archive shipped to many hosts).
    File(&'a Path),
}

impl<'a> From<Option<&'a [u8]>> for Input<'a> {
    fn from(bytes: Option<&'a [u8]>) -> Input<'a> {
        bytes.map_or(Input::None, Input::Bytes)
    }
}

/// A connected host. `script` is run by `/bin/sh` (wrapped by the implementation so the
/// remote user's login shell and rc files do not matter); its stdin is fed then closed.
pub trait Transport: Send + Sync {
    /// Run `script` with `input` on its stdin, keeping what it prints as `keep` says.
    fn exec_input(
        &self,
        script: &str,
        input: Input<'_>,
        timeout: Duration,
        keep: Keep,
    ) -> impl Future<Output = Result<ExecOutput, ExecError>> + Send;

    /// Run `script`, keeping what it prints as `keep` says.
    fn exec_keeping(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
        keep: Keep,
    ) -> impl Future<Output = Result<ExecOutput, ExecError>> + Send {
        self.exec_input(script, Input::from(stdin), timeout, keep)
    }

    /// Run `script`, keeping all it prints (up to [`capture::ALL_CAP`] per stream): for
    /// output that is parsed.
    fn exec(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> impl Future<Output = Result<ExecOutput, ExecError>> + Send {
        self.exec_keeping(script, stdin, timeout, Keep::All)
    }

    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// Opens connections: the one way to a host. Generic (not boxed) so a caller keeps its
/// session's concrete type, e.g. [`ssh::SshSession::exec_streaming`] for `provision logs`.
pub trait Connector: Send + Sync {
    type Session: Transport;

    /// Reach and authenticate `spec`, with its retries; every failure is a [`ConnectError`]
    /// (the host is unreachable).
    fn connect(
        &self,
        spec: &ConnectSpec,
    ) -> impl Future<Output = Result<Self::Session, ConnectError>> + Send;
}

/// How strictly host keys are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KnownHostsPolicy {
    /// The key must already be in ~/.ssh/known_hosts or the project known_hosts.
    #[default]
    Strict,
    /// A host seen for the first time is trusted and its key pinned in the project file;
    /// a changed key is still refused.
    AcceptNew,
}

/// Everything needed to reach one host, after merging host string, env settings and
/// `~/.ssh/config`. Built by `inventory`, consumed by `transport::ssh`.
/// Which ssh-agent is asked for keys: `$SSH_AUTH_SOCK` (the default), a socket of its own
/// (`IdentityAgent /path`), or none (`IdentityAgent none`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AgentSocket {
    #[default]
    Env,
    Path(PathBuf),
    None,
}

impl AgentSocket {
    /// The socket to connect to, if there is an agent at all (`$SSH_AUTH_SOCK` set, not empty).
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            AgentSocket::Env => std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(Into::into),
            AgentSocket::Path(p) => Some(p.clone()),
            AgentSocket::None => None,
        }
    }
}

/// A sudo password. Its `Debug` hides it: a spec printed in a log must not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct BecomePassword(pub std::sync::Arc<str>);

impl std::fmt::Debug for BecomePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BecomePassword(<hidden>)")
    }
}

#[derive(Debug, Clone)]
pub struct ConnectSpec {
    /// Name shown in output (the alias as written in the inventory).
    pub name: String,
    /// Address to connect to (after ssh_config HostName).
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Explicit key files; when empty (and there is no `identity_key`) the agent then the
    /// defaults (~/.ssh/id_ed25519, id_ecdsa, id_rsa) are tried.
    pub identity_files: Vec<PathBuf>,
    /// A private key given as text (an environment variable or stdin, as in CI). When set it is
    /// tried first, and only the explicit identity files after it.
    pub identity_key: Option<InlineKey>,
    /// The environment variable that was consulted for `identity_key` (for messages when it
    /// was not set).
    pub identity_env: Option<String>,
    /// Pinned host keys (`ssh.host_key`, `$PROVISION_KNOWN_HOSTS`). When one applies to this
    /// host, the offered key must match one of the applicable pins and the known_hosts files
    /// are not consulted.
    pub host_keys: Vec<HostKeyPin>,
    pub known_hosts: KnownHostsPolicy,
    /// Project-local known_hosts (read and, with accept-new, written).
    pub project_known_hosts: PathBuf,
    /// The user's known_hosts (read only). None when there is no home directory.
    pub user_known_hosts: Option<PathBuf>,
    /// The machine's identity beyond its address (an EC2 instance id), when it has one. The
    /// key pinned for it is recorded with that id, so it follows the machine to a new address
    /// (a cloud hands out another one on stop/start).
    pub instance_id: Option<String>,
    pub connect_timeout: Duration,
    /// Extra connection attempts after the first, with exponential backoff.
    pub retries: u32,
    pub keepalive: Duration,
    /// Optional jump host (ProxyJump), itself fully resolved.
    pub jump: Option<Box<ConnectSpec>>,
    /// ssh_config's `ProxyCommand`, tokens expanded: the connection runs over its stdio
    /// (never together with `jump`).
    pub proxy_command: Option<String>,
    /// Where the agent is asked for keys (ssh_config's `IdentityAgent`).
    pub agent: AgentSocket,
    /// Forward that agent to the host (`ssh.forward_agent`, like `ssh -A`): a `git` step
    /// without `key_secret` then authenticates with the operator's keys.
    pub forward_agent: bool,
    /// Run scripts through `sudo -n` (non-interactive).
    pub become_user: Option<String>,
    /// The sudo password (`ssh.become_password_env`, `-K`): sent as the first line of every
    /// script's stdin, for the connection's and the steps' `become`.
    pub become_password: Option<BecomePassword>,
    /// Ask for key passphrases on the terminal when stdin is a TTY.
    pub allow_prompt: bool,
}

impl ConnectSpec {
    /// `addr:port` (`[v6]:port`) for messages.
    pub fn target(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// A private key held as text. `Debug` shows where it came from, never the key.
#[derive(Clone)]
pub struct InlineKey {
    /// Where it came from, for messages: `$PROVISION_SSH_KEY`, `stdin`.
    pub source: String,
    /// The key text as given (OpenSSH or PEM text, possibly base64-encoded as a whole).
    pub text: Arc<str>,
}

impl std::fmt::Debug for InlineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InlineKey({})", self.source)
    }
}

/// The key part of a host-key pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinnedKey {
    /// `SHA256:...` as `ssh-keygen -l` prints it.
    Fingerprint(String),
    /// A full public key.
    Key(HostKey),
}

/// One pinned host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyPin {
    /// known_hosts host patterns (`host,[host]:port,*.example.com`); `None` pins the key for
    /// every host of the environment (a fixed deploy target).
    pub hosts: Option<String>,
    pub key: PinnedKey,
    /// Where the pin was written, for messages (`ssh.host_key`, `$PROVISION_KNOWN_HOSTS line 2`).
    pub source: String,
}

/// Why a host could not be reached. Every variant renders as one sentence that tells the
/// operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {addr}: {reason}")]
    Network { addr: String, reason: String },
    #[error("connection to {addr} timed out after {}", humantime::format_duration(*.timeout))]
    Timeout { addr: String, timeout: Duration },
    #[error(
        "host key of {host} is not known ({fingerprint}); add it to {known_hosts} or set ssh.known_hosts = \"accept-new\""
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error(
        "HOST KEY CHANGED for {host}: expected {expected} ({file}:{line}), server offered {offered}; refusing to connect. If the change is legitimate, remove that line"
    )]
    HostKeyChanged {
        host: String,
        expected: String,
        offered: String,
        file: String,
        line: usize,
    },
    #[error(
        "host key of {host} ({offered}) does not match the pinned host key ({pinned}, from {origin}); refusing to connect. If the server's key changed legitimately, update the pin"
    )]
    HostKeyNotPinned {
        host: String,
        offered: String,
        pinned: String,
        origin: String,
    },
    #[error(
        "authentication as {user}@{host} failed (tried: {tried}); check ssh.identity_file or your ssh-agent"
    )]
    Auth {
        user: String,
        host: String,
        tried: String,
    },
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("via jump host {jump}: {source}")]
    Jump {
        jump: String,
        #[source]
        source: Box<ConnectError>,
    },
    #[error("ssh: {0}")]
    Protocol(String),
}

impl ConnectError {
    /// Host-key and key-file problems do not go away by retrying.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectError::Network { .. } | ConnectError::Timeout { .. } | ConnectError::Protocol(_)
        )
    }
}
