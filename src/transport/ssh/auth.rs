//! Public-key authentication: explicit identity files, else ssh-agent then the default keys.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::handler::ClientHandler;
use super::keyfile;
use crate::transport::{AgentSocket, ConnectError, ConnectSpec};

/// Key files tried when the spec names none, in OpenSSH's order.
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// One authentication run on a fresh connection. `tried` only ever holds paths and labels,
/// never key material.
struct Auth<'a> {
    handle: &'a mut Handle<ClientHandler>,
    spec: &'a ConnectSpec,
    tried: Vec<String>,
    /// The server's preferred RSA signature hash, asked for once and only for RSA keys
    /// (asking may wait up to a second for the server's extension info).
    rsa_hash: Option<Option<HashAlg>>,
}

pub(super) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    spec: &ConnectSpec,
) -> Result<(), ConnectError> {
    let mut auth = Auth {
        handle,
        spec,
        tried: Vec::new(),
        rsa_hash: None,
    };
    if auth.run().await? {
        return Ok(());
    }
    let tried = match auth.tried.is_empty() {
        true => "no ssh-agent and no key in ~/.ssh/id_ed25519, id_ecdsa, id_rsa".to_string(),
        false => auth.tried.join(", "),
    };
    let tried = if spec.identity_key.is_none() && std::env::var_os("CI").is_some() {
        format!(
            "{tried}; in CI, give the key in ${} or with --ssh-key-stdin",
            spec.identity_env.as_deref().unwrap_or("PROVISION_SSH_KEY")
        )
    } else {
        tried
    };
    Err(ConnectError::Auth {
        user: spec.user.clone(),
        host: spec.name.clone(),
        tried,
    })
}

impl Auth<'_> {
    /// Explicit identity files are the only thing tried when given (and a broken one is a
    /// hard error); otherwise the agent, then default keys, where a broken or encrypted key
    /// is noted and skipped.
    async fn run(&mut self) -> Result<bool, ConnectError> {
        if let Some(inline) = self.spec.identity_key.clone() {
            let key = keyfile::load_inline(&inline).await?;
            if self
                .try_key(std::path::Path::new(&inline.source), key)
                .await?
            {
                return Ok(true);
            }
        } else if let Some(var) = &self.spec.identity_env {
            self.tried.push(format!("${var} (not set)"));
        }
        if self.spec.identity_key.is_some() || !self.spec.identity_files.is_empty() {
            for path in self.spec.identity_files.clone() {
                let key = keyfile::load(&path, self.spec.allow_prompt).await?;
                if self.try_key(&path, key).await? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        if self.try_agent().await? {
            return Ok(true);
        }
        for path in default_keys() {
            match keyfile::load(&path, self.spec.allow_prompt).await {
                Ok(key) => {
                    if self.try_key(&path, key).await? {
                        return Ok(true);
                    }
                }
                Err(e) => self
                    .tried
                    .push(format!("{} (skipped: {e})", path.display())),
            }
        }
        Ok(false)
    }

    async fn try_key(
        &mut self,
        path: &std::path::Path,
        key: Arc<PrivateKey>,
    ) -> Result<bool, ConnectError> {
        self.tried.push(path.display().to_string());
        let hash = self.hash_for(key.public_key()).await;
        let user = self.spec.user.clone();
        let attempt = self
            .handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash));
        match bounded(self.spec, attempt).await? {
            Ok(result) => Ok(result.success()),
            Err(e) => Err(self.lost(e)),
        }
    }

    /// Every identity the agent holds, in its order. An unreachable agent is noted, not fatal.
    async fn try_agent(&mut self) -> Result<bool, ConnectError> {
        let socket = match &self.spec.agent {
            AgentSocket::None => return Ok(false),
            AgentSocket::Env if std::env::var_os("SSH_AUTH_SOCK").is_none() => return Ok(false),
            AgentSocket::Env => None,
            AgentSocket::Path(p) => Some(p.clone()),
        };
        // A wedged agent (accepts, never answers) is skipped after `connect_timeout`, like
        // an unreachable one: the key files are tried next.
        let limit = self.spec.connect_timeout;
        let mute = || {
            format!(
                "agent (no answer within {})",
                humantime::format_duration(limit)
            )
        };
        let connecting = async {
            match &socket {
                Some(path) => AgentClient::connect_uds(path).await,
                None => AgentClient::connect_env().await,
            }
        };
        let mut agent = match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(agent)) => agent,
            Ok(Err(e)) => {
                self.tried.push(format!("agent (unreachable: {e})"));
                return Ok(false);
            }
            Err(_) => {
                self.tried.push(mute());
                return Ok(false);
            }
        };
        let identities = match tokio::time::timeout(limit, agent.request_identities()).await {
            Ok(ids) => ids.unwrap_or_default(),
            Err(_) => {
                self.tried.push(mute());
                return Ok(false);
            }
        };
        self.tried
            .push(format!("agent ({} keys)", identities.len()));
        for identity in identities {
            let key = identity.public_key().into_owned();
            let hash = self.hash_for(&key).await;
            let user = self.spec.user.clone();
            let attempt = self
                .handle
                .authenticate_publickey_with(user, key, hash, &mut agent);
            // A signing refusal by the agent only skips that identity.
            if let Ok(result) = bounded(self.spec, attempt).await?
                && result.success()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// RSA keys sign with the best hash the server accepts; other keys ignore it.
    async fn hash_for(&mut self, key: &PublicKey) -> Option<HashAlg> {
        if !key.algorithm().is_rsa() {
            return None;
        }
        if self.rsa_hash.is_none() {
            let best = self.handle.best_supported_rsa_hash().await;
            self.rsa_hash = Some(best.ok().flatten().flatten());
        }
        self.rsa_hash.flatten()
    }

    fn lost(&self, e: russh::Error) -> ConnectError {
        ConnectError::Protocol(format!(
            "connection to {} lost during authentication: {e}",
            self.spec.target()
        ))
    }
}

/// A server that stops answering during authentication must not hang the run.
async fn bounded<T>(spec: &ConnectSpec, fut: impl Future<Output = T>) -> Result<T, ConnectError> {
    tokio::time::timeout(spec.connect_timeout, fut)
        .await
        .map_err(|_| ConnectError::Timeout {
            addr: spec.target(),
            timeout: spec.connect_timeout,
        })
}

/// `~/.ssh/id_*` files that exist.
fn default_keys() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let dir = PathBuf::from(home).join(".ssh");
    DEFAULT_KEYS
        .iter()
        .map(|name| dir.join(name))
        .filter(|p| p.is_file())
        .collect()
}
