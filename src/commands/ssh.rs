//! `provision ssh <env> [host] [-- command]`: the system `ssh` client, interactive, through
//! exactly the connection settings provision uses.
//!
//! provision first connects itself (russh), which checks the host key against the pins and
//! known_hosts files (and the jump host's the same way) and proves the login works. It then
//! writes, into a private temp folder, an ssh_config naming the target and each jump host
//! (`ProxyJump`), a known_hosts holding exactly the keys it just verified (strict checking,
//! `HostKeyAlias`), and the key given as text if there is one; runs `ssh -F <that config>`;
//! and removes the folder when ssh exits. ssh's exit status is provision's.

use super::Target;
use super::context::Context;
use crate::config::ConfigError;
use crate::error::Error;
use crate::inventory::Host;
use crate::report::Output;
use crate::transport::Connector;
use crate::transport::ssh::SshConnector;
use crate::transport::{ConnectSpec, HostKey, Transport};
use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Exit status for "ssh could not be run", as ssh itself uses for its own errors.
pub const SSH_ERROR: i32 = 255;

/// The host of `hosts` that `wanted` names (name, address, or a role with one host); with
/// no `wanted`, the only host.
pub fn pick<'a>(
    hosts: &'a [Host],
    wanted: Option<&str>,
    file: &Path,
) -> Result<&'a Host, ConfigError> {
    let names = || {
        hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(w) = wanted else {
        return match hosts {
            [one] => Ok(one),
            _ => Err(
                ConfigError::new(file, "which host? the environment has several")
                    .with_help(format!("name one of: {}", names())),
            ),
        };
    };
    if let Some(h) = hosts.iter().find(|h| h.name == w) {
        return Ok(h);
    }
    let by_addr: Vec<&Host> = hosts
        .iter()
        .filter(|h| h.connect.address == w || h.roles.iter().any(|r| r == w))
        .collect();
    match by_addr.as_slice() {
        [one] => Ok(one),
        [] => Err(
            ConfigError::new(file, format!("no host `{w}` in this environment"))
                .with_help(format!("hosts: {}", names())),
        ),
        many => Err(
            ConfigError::new(file, format!("`{w}` names {} hosts", many.len()))
                .with_help(format!("name one of: {}", names())),
        ),
    }
}

/// `"value"` for ssh_config (paths may hold spaces).
fn q(v: &str) -> String {
    format!("\"{}\"", v.replace('"', ""))
}

/// The alias of hop `i`: 0 is the target, 1.. the jump hosts outward.
fn alias(i: usize) -> String {
    if i == 0 {
        "provision-target".into()
    } else {
        format!("provision-jump-{i}")
    }
}

/// ssh_config text for the target and its jump hosts (`specs[0]` is the target).
pub fn config_text(specs: &[&ConnectSpec], dir: &Path, inline_key: Option<&Path>) -> String {
    let mut c = String::from("# written by provision ssh; removed when ssh exits\n");
    for (i, spec) in specs.iter().enumerate() {
        let _ = writeln!(c, "Host {}", alias(i));
        let _ = writeln!(c, "  HostName {}", spec.address);
        let _ = writeln!(c, "  Port {}", spec.port);
        let _ = writeln!(c, "  User {}", q(&spec.user));
        let _ = writeln!(c, "  HostKeyAlias {}", alias(i));
        let _ = writeln!(
            c,
            "  UserKnownHostsFile {}",
            q(&dir.join("known_hosts").display().to_string())
        );
        c.push_str("  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  UpdateHostKeys no\n  CheckHostIP no\n");
        let mut keys: Vec<String> = Vec::new();
        if let Some(k) = inline_key.filter(|_| spec.identity_key.is_some()) {
            keys.push(k.display().to_string());
        }
        keys.extend(spec.identity_files.iter().map(|p| p.display().to_string()));
        for k in &keys {
            let _ = writeln!(c, "  IdentityFile {}", q(k));
        }
        if !keys.is_empty() {
            c.push_str("  IdentitiesOnly yes\n");
        }
        let _ = writeln!(
            c,
            "  ConnectTimeout {}",
            spec.connect_timeout.as_secs().max(1)
        );
        if !spec.keepalive.is_zero() {
            let _ = writeln!(
                c,
                "  ServerAliveInterval {}",
                spec.keepalive.as_secs().max(1)
            );
        }
        if i + 1 < specs.len() {
            let _ = writeln!(c, "  ProxyJump {}", alias(i + 1));
        }
        c.push_str("  LogLevel ERROR\n");
    }
    c
}

/// known_hosts lines pinning each hop's verified key under its alias.
pub fn known_hosts_text(keys: &[HostKey]) -> String {
    keys.iter()
        .enumerate()
        .filter_map(|(i, k)| {
            let text = k.to_openssh().ok()?;
            let mut parts = text.split_whitespace();
            Some(format!(
                "{} {} {}\n",
                alias(i),
                parts.next()?,
                parts.next()?
            ))
        })
        .collect()
}

/// A private folder (0700) under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let base = std::env::temp_dir();
        for _ in 0..10 {
            let p = base.join(format!(
                "provision-ssh-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free temp folder name"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// `provision ssh <env> [host] [-- command]`: the host picked from the env's hosts as they
/// are (static hosts and running EC2 instances, nothing created).
pub async fn run(
    cx: &Context,
    env: &str,
    host: Option<&str>,
    command: &[String],
    tty: bool,
) -> Result<i32, Error> {
    let t = Target::load(cx, env).await?;
    let h = pick(&t.hosts, host, &t.project.file)?;
    Ok(hand_over(h, command, tty, &Output::text(t.redactor.clone())).await)
}

/// Verify, then hand over to `ssh` (`-t`: with a terminal even for a command). Returns ssh's
/// exit status.
pub async fn hand_over(host: &Host, command: &[String], tty: bool, out: &Output) -> i32 {
    let name = &host.name;
    let session = match SshConnector.connect(&host.connect).await {
        Ok(s) => s,
        Err(e) => {
            out.err_line(&format!("error: [{name}] {e}"));
            return crate::error::exit::UNREACHABLE;
        }
    };
    let keys = session.host_keys().to_vec();
    session.close().await;
    let mut specs = vec![&host.connect];
    while let Some(j) = specs.last().and_then(|s| s.jump.as_deref()) {
        specs.push(j);
    }
    if keys.len() != specs.len() {
        out.err_line(&format!(
            "error: [{name}] the verified host keys are missing; cannot hand over to ssh"
        ));
        return SSH_ERROR;
    }
    let dir = match TempDir::new() {
        Ok(d) => d,
        Err(e) => {
            out.err_line(&format!("error: cannot create a private temp folder: {e}"));
            return SSH_ERROR;
        }
    };
    let key_path = dir.0.join("identity");
    let inline = specs.iter().find_map(|s| s.identity_key.as_ref());
    if let Some(key) = inline {
        let text = match crate::transport::ssh::inline_key_openssh(key).await {
            Ok(t) => t,
            Err(e) => {
                out.err_line(&format!("error: {e}"));
                return SSH_ERROR;
            }
        };
        if let Err(e) = write_private(&key_path, &text) {
            out.err_line(&format!("error: cannot write the key for ssh: {e}"));
            return SSH_ERROR;
        }
    }
    let config = config_text(&specs, &dir.0, inline.map(|_| key_path.as_path()));
    let written = std::fs::write(dir.0.join("config"), config)
        .and_then(|()| std::fs::write(dir.0.join("known_hosts"), known_hosts_text(&keys)));
    if let Err(e) = written {
        out.err_line(&format!("error: cannot write the ssh config: {e}"));
        return SSH_ERROR;
    }
    // Ctrl-C belongs to ssh (and the remote side) now: keep provision alive to clean up.
    // A handler (not SIG_IGN) so ssh starts with the default disposition.
    let _sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.arg("-F").arg(dir.0.join("config"));
    if command.is_empty() && host.connect.become_user.is_some() {
        out.err_line("note: ssh.become is not applied to `provision ssh`; use sudo on the host");
    }
    if tty {
        cmd.arg("-t");
    }
    cmd.arg(alias(0));
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    let status = match cmd.status().await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.err_line("error: `provision ssh` runs the OpenSSH client, and `ssh` is not in PATH (install openssh-client)");
            return SSH_ERROR;
        }
        Err(e) => {
            out.err_line(&format!("error: cannot run ssh: {e}"));
            return SSH_ERROR;
        }
    };
    drop(dir);
    status.code().unwrap_or(SSH_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::KnownHostsPolicy;
    use std::time::Duration;

    fn spec(addr: &str, port: u16, jump: Option<ConnectSpec>) -> ConnectSpec {
        ConnectSpec {
            name: addr.into(),
            address: addr.into(),
            port,
            user: "deploy".into(),
            identity_files: vec![PathBuf::from("/keys/id one")],
            identity_key: None,
            identity_env: None,
            host_keys: vec![],
            known_hosts: KnownHostsPolicy::Strict,
            project_known_hosts: PathBuf::from("/p/.provision/known_hosts"),
            user_known_hosts: None,
            instance_id: None,
            connect_timeout: Duration::from_secs(10),
            retries: 0,
            keepalive: Duration::from_secs(15),
            jump: jump.map(Box::new),
            become_user: None,
            become_password: None,
            proxy_command: None,
            agent: Default::default(),
            forward_agent: false,
            allow_prompt: false,
        }
    }

    #[test]
    fn config_chains_jump_hosts_and_pins_keys() {
        let target = spec("10.0.0.5", 2222, Some(spec("bastion", 22, None)));
        let specs = vec![&target, target.jump.as_deref().unwrap()];
        let text = config_text(&specs, Path::new("/tmp/x"), None);
        assert!(text.contains("Host provision-target\n  HostName 10.0.0.5\n  Port 2222\n"));
        assert!(text.contains("  ProxyJump provision-jump-1\n"));
        assert!(text.contains("Host provision-jump-1\n  HostName bastion\n  Port 22\n"));
        assert!(text.contains("  IdentityFile \"/keys/id one\"\n  IdentitiesOnly yes\n"));
        assert!(text.contains("  UserKnownHostsFile \"/tmp/x/known_hosts\"\n"));
        assert_eq!(text.matches("StrictHostKeyChecking yes").count(), 2);
        let key = HostKey::from_base64(
            "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ",
        )
        .unwrap();
        let kh = known_hosts_text(&[key.clone(), key]);
        assert!(kh.starts_with("provision-target ssh-ed25519 AAAAC3"));
        assert!(kh.contains("\nprovision-jump-1 ssh-ed25519 AAAAC3"));
    }
}
