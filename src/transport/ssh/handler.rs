//! The russh client handler: only host-key checking.

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
}

impl ClientHandler {
    pub(super) fn new(check: HostKeyCheck) -> (Self, Verdict) {
        let verdict = Verdict::default();
        let handler = ClientHandler {
            check,
            verdict: verdict.clone(),
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
}
