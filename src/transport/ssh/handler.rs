//! The russh client handler: only host-key checking.

use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::PublicKeyOrCertificate;

use super::known_hosts::HostKeyCheck;
use crate::transport::ConnectError;

/// Where the handler leaves its precise refusal: russh itself only reports a generic
/// `UnknownKey`, and `connect` wants to return "changed" vs "unknown" with fingerprints.
pub(super) type Verdict = Arc<Mutex<Option<ConnectError>>>;

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
    verdict.lock().unwrap_or_else(|p| p.into_inner()).take()
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    /// File reads here are small and synchronous; pinning appends one line.
    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match self.check.verify(&server_public_key.public_key()) {
            Ok(()) => Ok(true),
            Err(refusal) => {
                *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
                Ok(false)
            }
        }
    }
}
