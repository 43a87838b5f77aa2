//! The russh client handler: host-key checking, and the agent channels of `ssh.forward_agent`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};

use super::known_hosts::HostKeyCheck;
use crate::transport::ConnectError;

/// Where the handler leaves its precise refusal (russh itself only reports a generic
/// `UnknownKey`, and `connect` wants to return "changed" vs "unknown" with fingerprints), or
/// the key it accepted (`provision ssh` hands it to the system ssh client).
pub(super) type Verdict = Arc<Mutex<VerdictState>>;

#[derive(Default)]
pub(super) struct VerdictState {
    refusal: Option<ConnectError>,
    accepted: Option<PublicKey>,
}

pub(super) struct ClientHandler {
    check: HostKeyCheck,
    verdict: Verdict,
    /// The local agent socket the server's agent channels are joined to (`ssh.forward_agent`);
    /// without it they are refused.
    agent: Option<PathBuf>,
}

impl ClientHandler {
    pub(super) fn new(check: HostKeyCheck, agent: Option<PathBuf>) -> (Self, Verdict) {
        let verdict = Verdict::default();
        let handler = ClientHandler {
            check,
            verdict: verdict.clone(),
            agent,
        };
        (handler, verdict)
    }
}

/// Take the refusal recorded by the handler, if any.
pub(super) fn take_verdict(verdict: &Verdict) -> Option<ConnectError> {
    verdict
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .refusal
        .take()
}

/// The host key the handler accepted, if it accepted one.
pub(super) fn accepted_key(verdict: &Verdict) -> Option<PublicKey> {
    verdict
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .accepted
        .clone()
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    /// File reads here are small and synchronous; pinning appends one line.
    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = server_public_key.public_key();
        let mut verdict = self.verdict.lock().unwrap_or_else(|p| p.into_inner());
        match self.check.verify(&key) {
            Ok(()) => {
                verdict.accepted = Some(key);
                Ok(true)
            }
            Err(refusal) => {
                verdict.refusal = Some(refusal);
                Ok(false)
            }
        }
    }

    /// A remote process asks the forwarded agent (git over ssh on the host): joined to the
    /// local agent's socket, only when forwarding was asked for; refused otherwise.
    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let Some(path) = self.agent.clone() else {
            return Ok(()); // dropping `reply` refuses the channel
        };
        let Ok(mut agent) = tokio::net::UnixStream::connect(&path).await else {
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(async move {
            let mut remote = channel.into_stream();
            let _ = tokio::io::copy_bidirectional(&mut remote, &mut agent).await;
        });
        Ok(())
    }
}
