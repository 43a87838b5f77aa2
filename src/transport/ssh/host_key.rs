//! A server's public host key, as the rest of provision sees it: russh's key type wrapped so
//! that no module outside `transport::ssh` names russh (tests/seams.rs checks that).

use russh::keys::PublicKey;

/// One host key: a pinned key (`ssh.host_key`) or one a connection verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey(pub(super) PublicKey);

impl HostKey {
    /// The key from the base64 blob of an OpenSSH public key line (`AAAAC3NzaC1lZDI1NTE5...`).
    pub fn from_base64(b64: &str) -> Result<HostKey, String> {
        russh::keys::parse_public_key_base64(b64)
            .map(HostKey)
            .map_err(|e| e.to_string())
    }

    /// `<key type> <base64>` as an OpenSSH public key line (or known_hosts entry) writes it.
    pub fn to_openssh(&self) -> Result<String, String> {
        self.0.to_openssh().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_openssh_text() {
        let b64 = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
        let key = HostKey::from_base64(b64).unwrap();
        assert_eq!(key.to_openssh().unwrap(), format!("ssh-ed25519 {b64}"));
        assert!(HostKey::from_base64("not base64!").is_err());
    }
}
