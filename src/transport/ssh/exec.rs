//! Running one command line on a session channel and collecting what it produced.

use std::time::Duration;

use russh::client::{Handle, Msg};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};

use super::handler::ClientHandler;
use crate::transport::capture::{Capture, Keep, finish_streams};
use crate::transport::{ExecError, ExecOutput, Input};

/// What one channel runs: the command line, and what its stdin starts with before `stdin`
/// (the sudo password line, see `script::Sudo`).
pub(super) struct Command<'a> {
    pub line: String,
    pub preamble: Option<&'a [u8]>,
    /// Ask the server to forward the agent on this channel (`ssh.forward_agent`).
    pub forward_agent: bool,
}

/// Open a channel, run `cmd`, feed `stdin` (or close it at once so a remote `cat` never
/// waits), and collect until the channel closes; the whole thing bounded by `timeout`.
pub(super) async fn run(
    handle: &Handle<ClientHandler>,
    cmd: Command<'_>,
    stdin: Input<'_>,
    open_timeout: Duration,
    timeout: Duration,
    keep: Keep,
) -> Result<ExecOutput, ExecError> {
    let channel = open_within(open_timeout, handle.channel_open_session()).await?;
    let (mut rx, tx) = channel.split();
    let talk = converse(&mut rx, &tx, cmd, stdin, keep);
    let outcome = tokio::time::timeout(timeout, talk).await;
    match outcome {
        Ok(result) => result,
        Err(_) => {
            // Best effort: TERM the remote shell (OpenSSH >= 7.9 honours it), then close so
            // sshd hangs up on whatever is left.
            let _ = tx.signal(Sig::TERM).await;
            let _ = tx.close().await;
            Err(ExecError::Timeout(timeout))
        }
    }
}

/// A channel being opened, given up after `limit`: a server that stays mute after the
/// connection (or one whose channel slots never free up) is reported as lost, not waited on.
pub(super) async fn open_within<C, E: std::fmt::Display>(
    limit: Duration,
    open: impl std::future::Future<Output = Result<C, E>>,
) -> Result<C, ExecError> {
    match tokio::time::timeout(limit, open).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(ExecError::Disconnected(format!(
            "cannot open a channel: {e}"
        ))),
        Err(_) => Err(ExecError::Disconnected(format!(
            "the server did not open a channel within {} (connect_timeout)",
            humantime::format_duration(limit)
        ))),
    }
}

/// Write and read concurrently: a command that echoes its input (`cat`) would otherwise
/// fill the windows both ways and deadlock. Reading decides when we are done; a writer still
/// blocked because the remote never read its stdin is simply dropped then.
async fn converse(
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
    cmd: Command<'_>,
    stdin: Input<'_>,
    keep: Keep,
) -> Result<ExecOutput, ExecError> {
    if cmd.forward_agent {
        tx.agent_forward(false).await.map_err(lost)?;
    }
    tx.exec(true, cmd.line).await.map_err(lost)?;
    let writing = async {
        if let Some(first) = cmd.preamble
            && tx.data_bytes(first.to_vec()).await.is_err()
        {
            let _ = tx.close().await;
            return std::future::pending::<()>().await;
        }
        let fed = match stdin {
            Input::None => true,
            Input::Bytes(bytes) => tx.data_bytes(bytes.to_vec()).await.is_ok(),
            Input::Parts(parts) => feed_parts(tx, parts).await,
            Input::File(path) => feed_file(tx, path).await,
        };
        // A file that could not be read whole is not ended as if it were: the channel is
        // closed instead, so the remote reader sees a broken stream, never a short one.
        if fed {
            let _ = tx.eof().await;
        } else {
            let _ = tx.close().await;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        output = collect(rx, keep) => output,
        _ = writing => unreachable!("the writer never finishes on its own"),
    }
}

/// Send each part as is (a clone of `Bytes` is a reference count): however many hosts
/// receive an upload at once, its content is in memory once.
async fn feed_parts(tx: &ChannelWriteHalf<Msg>, parts: &[bytes::Bytes]) -> bool {
    for part in parts {
        for at in (0..part.len()).step_by(FEED_SLICE) {
            let slice = part.slice(at..part.len().min(at + FEED_SLICE));
            if tx.data_bytes(slice).await.is_err() {
                return false;
            }
            // russh's session task encrypts everything queued before it writes to the
            // socket: a slice at a time, it writes (and frees) each before the next is queued.
            tokio::task::yield_now().await;
        }
    }
    true
}

/// What one connection queues for encryption at a time from a shared upload.
const FEED_SLICE: usize = 16 * 1024;

/// How much of a streamed file is read at a time: what one host's transfer holds in memory
/// (plus the SSH window russh keeps in flight).
const FILE_CHUNK: usize = 256 * 1024;

/// Stream `path` into the channel chunk by chunk; each write waits for the remote window,
/// so memory stays at one chunk however large the file is. False when it could not be read
/// to its end.
async fn feed_file(tx: &ChannelWriteHalf<Msg>, path: &std::path::Path) -> bool {
    use tokio::io::AsyncReadExt;
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return false;
    };
    let mut buf = vec![0u8; FILE_CHUNK];
    loop {
        match file.read(&mut buf).await {
            Ok(0) => return true,
            Ok(n) => {
                if tx.data_bytes(buf[..n].to_vec()).await.is_err() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

async fn collect(rx: &mut ChannelReadHalf, keep: Keep) -> Result<ExecOutput, ExecError> {
    let mut out = Collected::new(keep);
    // ExitStatus may arrive before the last Data, so read until the channel is gone.
    while let Some(msg) = rx.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.stdout.push(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.push(&data),
            ChannelMsg::ExitStatus { exit_status } => out.exit = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => out.signal = Some(sig_name(signal_name)),
            // Reply to our exec request: the server would not start the command.
            ChannelMsg::Failure => {
                return Err(ExecError::Disconnected(
                    "the server refused to run the command".into(),
                ));
            }
            _ => {}
        }
    }
    // sshd always reports how a command ended; a channel that closes without a word is a
    // connection (or a host's sshd) that went away mid-command.
    if out.exit.is_none() && out.signal.is_none() {
        return Err(ExecError::LostMidway {
            message: "the connection was lost while the command ran (the channel closed without an exit status)".into(),
            partial: Box::new(out.finish()),
        });
    }
    Ok(out.finish())
}

fn lost(e: russh::Error) -> ExecError {
    ExecError::Disconnected(e.to_string())
}

fn sig_name(sig: Sig) -> String {
    match sig {
        Sig::Custom(name) => name,
        other => format!("{other:?}"),
    }
}

struct Collected {
    stdout: Capture,
    stderr: Capture,
    exit: Option<u32>,
    signal: Option<String>,
}

impl Collected {
    fn new(keep: Keep) -> Collected {
        Collected {
            stdout: Capture::new(keep),
            stderr: Capture::new(keep),
            exit: None,
            signal: None,
        }
    }

    fn finish(self) -> ExecOutput {
        let (stdout, stderr, cut) = finish_streams(self.stdout, self.stderr);
        ExecOutput {
            stdout,
            stderr,
            cut,
            exit: self.exit,
            signal: self.signal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_is_noted_in_stderr() {
        let mut c = Collected::new(Keep::Shown);
        c.stdout
            .push(&vec![b'x'; crate::transport::capture::LINE_CAP + 2]);
        c.stderr.push(b"why\n");
        let out = c.finish();
        assert_eq!(
            out.stderr_lossy(),
            "why\n\n[provision: stdout truncated: 2 bytes not kept]\n"
        );
    }

    #[tokio::test]
    async fn a_channel_that_never_opens_is_given_up_after_the_limit() {
        let never = std::future::pending::<Result<(), String>>();
        let err = open_within(Duration::from_secs(10), never)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("did not open a channel within 10s"),
            "{err}"
        );
        let refused = async { Err::<(), _>("refused") };
        let err = open_within(Duration::from_secs(10), refused)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot open a channel: refused"),
            "{err}"
        );
    }

    #[test]
    fn signal_names_are_plain() {
        assert_eq!(sig_name(Sig::KILL), "KILL");
        assert_eq!(sig_name(Sig::Custom("XCPU".into())), "XCPU");
    }
}
