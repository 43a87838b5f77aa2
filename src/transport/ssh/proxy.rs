//! `ProxyCommand` (from ssh_config): the SSH connection runs over a local command's stdin and
//! stdout instead of TCP, as OpenSSH does (`nc %h %p`, `ssh -W %h:%p bastion`, a cloud's
//! tunnel helper). The target's host key is still checked: the command only carries bytes.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, Join};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use crate::transport::{ConnectError, ConnectSpec};

/// The running command: its stdio as one stream, and the child, killed when dropped (the
/// session ends, or the attempt failed).
pub(super) struct Proxy {
    pub child: Child,
    stderr: Option<ChildStderr>,
}

/// The command's stdout (what the server says) and stdin (what we send), as one stream.
pub(super) type ProxyStream = Join<ChildStdout, ChildStdin>;

/// Start `command` with `sh -c`. Its stderr is kept for the error message when the connection
/// through it fails (it never reaches the terminal unmasked).
pub(super) fn spawn(
    spec: &ConnectSpec,
    command: &str,
) -> Result<(Proxy, ProxyStream), ConnectError> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ConnectError::Network {
            addr: spec.target(),
            reason: format!("cannot run its ProxyCommand `{command}`: {e}"),
        })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(ConnectError::Network {
            addr: spec.target(),
            reason: "the ProxyCommand's stdio could not be opened".into(),
        });
    };
    let stderr = child.stderr.take();
    Ok((Proxy { child, stderr }, tokio::io::join(stdout, stdin)))
}

impl Proxy {
    /// The connection through the command failed: say so with what the command printed and
    /// how it exited (the usual cause: it could not reach the host).
    pub async fn explain(
        mut self,
        spec: &ConnectSpec,
        command: &str,
        e: ConnectError,
    ) -> ConnectError {
        let mut said = Vec::new();
        if let Some(mut err) = self.stderr.take() {
            let _ =
                tokio::time::timeout(Duration::from_millis(500), err.read_to_end(&mut said)).await;
        }
        let status = match tokio::time::timeout(Duration::from_millis(500), self.child.wait()).await
        {
            Ok(Ok(s)) => format!("it exited with {s}"),
            _ => "it is still running".to_string(),
        };
        let said = String::from_utf8_lossy(&said);
        let said = said.trim();
        let said = if said.is_empty() {
            String::new()
        } else {
            let last: Vec<&str> = said.lines().rev().take(3).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            format!(", saying: {}", last.join(" / "))
        };
        ConnectError::Network {
            addr: spec.target(),
            reason: format!("through its ProxyCommand `{command}` ({status}{said}): {e}"),
        }
    }
}

/// OpenSSH's tokens in a ProxyCommand: `%h` host, `%p` port, `%r` user, `%n` the alias as
/// written, `%%` a percent sign. Others are left as they are.
pub fn expand(command: &str, host: &str, port: u16, user: &str, alias: &str) -> String {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(host),
            Some('p') => out.push_str(&port.to_string()),
            Some('r') => out.push_str(user),
            Some('n') => out.push_str(alias),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expand_like_openssh() {
        assert_eq!(
            expand(
                "ssh -W %h:%p -l %r bastion # %n %% %x%",
                "10.0.0.5",
                2222,
                "deploy",
                "web"
            ),
            "ssh -W 10.0.0.5:2222 -l deploy bastion # web % %x%"
        );
    }
}
