//! Establishing a connection: TCP (or a tunnel through a jump host), key exchange with
//! host-key check, retries with backoff, then authentication.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{Algorithm, PublicKey};
use tokio::net::TcpStream;

use super::auth;
use super::handler::{ClientHandler, accepted_key, take_verdict};
use super::known_hosts::HostKeyCheck;
use super::proxy::{self, Proxy};
use super::{HostKey, SshSession};
use crate::transport::{ConnectError, ConnectSpec};

/// Backoff between attempts: 200 ms, 400 ms, ... capped here.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Jump host first (its own retries and host-key check), then the target through it.
pub(super) async fn connect(spec: &ConnectSpec) -> Result<SshSession, ConnectError> {
    let mut jumps = Vec::new();
    let mut jump_keys = Vec::new();
    if let Some(jump) = spec.jump.as_deref() {
        // Boxed: the jump may itself have a jump, so this future is recursive.
        let via = Box::pin(connect(jump))
            .await
            .map_err(|e| ConnectError::Jump {
                jump: jump.name.clone(),
                source: Box::new(e),
            })?;
        jumps.push(via.handle);
        jumps.extend(via.jumps);
        jump_keys = via.host_keys;
    }
    let (mut handle, key, proxy) = with_retries(spec, jumps.first()).await?;
    auth::authenticate(&mut handle, spec).await?;
    let mut session = SshSession::new(handle, jumps, spec);
    session.host_keys = key.into_iter().map(HostKey).chain(jump_keys).collect();
    session.proxy = proxy.map(|p| p.child);
    Ok(session)
}

/// Retry only what may go away by itself (refused/reset/timeout, a server dropping us
/// during key exchange because of MaxStartups); host-key refusals are final.
async fn with_retries(
    spec: &ConnectSpec,
    jump: Option<&Handle<ClientHandler>>,
) -> Result<Handshake, ConnectError> {
    let mut attempt = 0;
    loop {
        match handshake(spec, jump).await {
            Ok(handle) => return Ok(handle),
            Err(e) if attempt < spec.retries && e.is_retryable() => {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let ms = 200u64.saturating_mul(1u64 << attempt.min(16));
    Duration::from_millis(ms).min(MAX_BACKOFF)
}

/// A finished key exchange: the session, the host key accepted, and the ProxyCommand the
/// connection runs over (it lives as long as the session).
type Handshake = (Handle<ClientHandler>, Option<PublicKey>, Option<Proxy>);

/// One attempt up to a finished key exchange, all under `connect_timeout` (a listener that
/// accepts but never speaks SSH must not hang us).
async fn handshake(
    spec: &ConnectSpec,
    jump: Option<&Handle<ClientHandler>>,
) -> Result<Handshake, ConnectError> {
    let check = HostKeyCheck::new(spec);
    let config = client_config(spec, &check.known_algorithms());
    let (handler, verdict) = ClientHandler::new(check, forwarded_agent(spec));
    let attempt = async {
        match (jump, spec.proxy_command.as_deref()) {
            (Some(via), _) => {
                let tunnel = open_tunnel(via, spec).await?;
                let h = client::connect_stream(config, tunnel.into_stream(), handler).await;
                Ok((h.map_err(|e| kex_error(spec, e))?, None))
            }
            (None, Some(command)) => {
                let (proxy, stream) = proxy::spawn(spec, command)?;
                match client::connect_stream(config, stream, handler).await {
                    Ok(h) => Ok((h, Some(proxy))),
                    Err(e) => Err(proxy.explain(spec, command, kex_error(spec, e)).await),
                }
            }
            (None, None) => {
                let tcp = tcp_connect(spec).await?;
                let h = client::connect_stream(config, tcp, handler).await;
                Ok((h.map_err(|e| kex_error(spec, e))?, None))
            }
        }
    };
    match tokio::time::timeout(spec.connect_timeout, attempt).await {
        Err(_) => Err(ConnectError::Timeout {
            addr: spec.target(),
            timeout: spec.connect_timeout,
        }),
        Ok(Ok((handle, proxy))) => Ok((handle, accepted_key(&verdict), proxy)),
        // The handler's refusal says more than russh's generic "unknown key".
        Ok(Err(e)) => Err(take_verdict(&verdict).unwrap_or(e)),
    }
}

/// The agent socket a forwarding connection joins the host's agent channels to.
fn forwarded_agent(spec: &ConnectSpec) -> Option<std::path::PathBuf> {
    spec.forward_agent.then(|| spec.agent.path()).flatten()
}

async fn tcp_connect(spec: &ConnectSpec) -> Result<TcpStream, ConnectError> {
    let tcp = TcpStream::connect((spec.address.as_str(), spec.port))
        .await
        .map_err(|e| ConnectError::Network {
            addr: spec.target(),
            reason: e.to_string(),
        })?;
    // Small request/response packets: Nagle would only add latency.
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// A `direct-tcpip` channel from the jump host to the target (ProxyJump semantics: the
/// target's host key is still checked end to end by the inner session).
async fn open_tunnel(
    via: &Handle<ClientHandler>,
    spec: &ConnectSpec,
) -> Result<russh::Channel<client::Msg>, ConnectError> {
    via.channel_open_direct_tcpip(spec.address.clone(), u32::from(spec.port), "127.0.0.1", 0)
        .await
        .map_err(|e| ConnectError::Network {
            addr: spec.target(),
            reason: format!("the jump host could not open a tunnel to it ({e})"),
        })
}

/// I/O errors are network trouble; an early close during key exchange is what sshd does
/// when over MaxStartups, so it stays retryable.
fn kex_error(spec: &ConnectSpec, e: russh::Error) -> ConnectError {
    match e {
        russh::Error::IO(io) => ConnectError::Network {
            addr: spec.target(),
            reason: io.to_string(),
        },
        russh::Error::Disconnect | russh::Error::HUP => ConnectError::Protocol(format!(
            "{} closed the connection during key exchange (server busy, or not an SSH server?)",
            spec.target()
        )),
        other => ConnectError::Protocol(format!(
            "key exchange with {} failed: {other}",
            spec.target()
        )),
    }
}

/// russh settings for one connection. Key algorithms already recorded for the host go first
/// so the server proves the identity we know, as OpenSSH orders them.
fn client_config(spec: &ConnectSpec, known: &[Algorithm]) -> Arc<client::Config> {
    let mut preferred = russh::Preferred::default();
    preferred.kex = Cow::Owned(kex_order(&preferred.kex));
    preferred.key = Cow::Owned(key_order(&preferred.key, known));
    Arc::new(client::Config {
        nodelay: true,
        keepalive_interval: (!spec.keepalive.is_zero()).then_some(spec.keepalive),
        keepalive_max: 3,
        // Dead peers are found by keepalives; an idle but healthy connection stays open.
        inactivity_timeout: None,
        preferred,
        ..Default::default()
    })
}

/// curve25519-sha256 first: the cheapest key exchange on the CPU (see perf-baseline.md);
/// the rest keep russh's order as fallbacks.
fn kex_order(default: &[russh::kex::Name]) -> Vec<russh::kex::Name> {
    let mut order = vec![russh::kex::CURVE25519];
    order.extend(
        default
            .iter()
            .copied()
            .filter(|n| *n != russh::kex::CURVE25519),
    );
    order
}

fn key_order(default: &[Algorithm], known: &[Algorithm]) -> Vec<Algorithm> {
    let rsa = |a: &Algorithm| matches!(a, Algorithm::Rsa { .. });
    let is_known = |a: &Algorithm| known.iter().any(|k| k == a || (rsa(k) && rsa(a)));
    let (mut first, rest): (Vec<_>, Vec<_>) = default.iter().cloned().partition(is_known);
    first.extend(rest);
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(4), Duration::from_millis(3200));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn known_key_types_come_first() {
        let default = russh::Preferred::default().key.to_vec();
        let order = key_order(&default, &[Algorithm::Rsa { hash: None }]);
        assert!(matches!(order[0], Algorithm::Rsa { .. }));
        assert_eq!(order.len(), default.len());
        let kex = kex_order(&russh::Preferred::default().kex);
        assert_eq!(kex[0], russh::kex::CURVE25519);
    }
}
