//! `provision logs <env>`: `docker logs` of the app container on every host, streamed line by
//! line with a `[host]` prefix (container stdout to stdout, stderr to stderr). `--follow`
//! runs until every host's stream ends or provision gets SIGINT/SIGTERM, which stops the
//! remote `docker logs` too. The log lines are the command's output, so `-q` only drops the
//! closing summary line (kept when a host failed).

use super::context::Context;
use super::{Lines, Target, hosts_n, interrupted};
use crate::error::{Error, exit};
use crate::transport::Connector;
use crate::transport::Transport;
use crate::transport::script::quote;
use crate::transport::ssh::{SshConnector, Stream};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    /// Container name; default: the app name.
    pub container: Option<String>,
    /// Lines from the end (`docker logs --tail`).
    pub tail: Option<String>,
    /// `docker logs --since` (e.g. `10m`, an RFC 3339 time).
    pub since: Option<String>,
    pub timestamps: bool,
}

/// The remote script: `exec` so that a TERM from us reaches `docker logs` itself.
pub fn script(prelude: &str, name: &str, o: &LogsOptions) -> String {
    let mut args = vec!["docker".to_string(), "logs".to_string()];
    if o.follow {
        args.push("--follow".into());
    }
    if o.timestamps {
        args.push("--timestamps".into());
    }
    if let Some(t) = &o.tail {
        args.push(format!("--tail={}", quote(t)));
    }
    if let Some(s) = &o.since {
        args.push(format!("--since={}", quote(s)));
    }
    args.push(quote(name).into_owned());
    format!("{prelude}exec {}\n", args.join(" "))
}

/// `logs` without `--follow` prints what the container logged and ends: one that has not
/// ended after this long (a mute server, a wedged `docker logs`) is stopped and reported.
pub const LOGS_TIMEOUT: Duration = Duration::from_secs(300);

enum Ended {
    Exit(Option<u32>),
    TimedOut,
    Stopped,
    Unreachable(String),
}

/// `provision logs <env>`: on the env's hosts as they are (static hosts and running EC2
/// instances, nothing created).
pub async fn run(cx: &Context, env: &str, o: LogsOptions) -> Result<i32, Error> {
    let t = Target::load(cx, env).await?;
    Ok(stream(t, o, cx.quiet()).await)
}

/// Stream every host's logs until they end or provision is interrupted.
async fn stream(t: Target, o: LogsOptions, quiet: bool) -> i32 {
    let out = t.output(false, quiet);
    let name = o.container.clone().unwrap_or_else(|| t.project.app.clone());
    let script = script(&t.prelude, &name, &o);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every host streams at once (a follow must not wait for another host's follow to end).
    let mut tasks = tokio::task::JoinSet::new();
    let n = t.hosts.len();
    for h in t.hosts {
        let (script, output, mut stop) = (script.clone(), out.clone(), stop_rx.clone());
        let seen = stop_rx.clone();
        let limit = (!o.follow).then_some(LOGS_TIMEOUT);
        tasks.spawn(async move {
            let session = match SshConnector.connect(&h.connect).await {
                Ok(s) => s,
                Err(e) => return (h.name, Ended::Unreachable(e.to_string())),
            };
            let (mut out, mut err) = (Lines::default(), Lines::default());
            let prefix = format!("[{}] ", h.name);
            let print = |stream: Stream, line: &str| {
                let line = format!("{prefix}{line}");
                match stream {
                    Stream::Stdout => output.line(&line),
                    Stream::Stderr => output.err_line(&line),
                }
            };
            let timed_out = std::sync::atomic::AtomicBool::new(false);
            let stopped = async {
                let expired = async {
                    match limit {
                        Some(limit) => tokio::time::sleep(limit).await,
                        None => std::future::pending().await,
                    }
                    timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                };
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => {}
                    () = expired => {}
                }
            };
            let r = session
                .exec_streaming(&script, stopped, |stream, data| {
                    let lines = match stream {
                        Stream::Stdout => out.push(data),
                        Stream::Stderr => err.push(data),
                    };
                    for l in lines {
                        print(stream, &l);
                    }
                })
                .await;
            for (stream, rest) in [
                (Stream::Stdout, out.finish()),
                (Stream::Stderr, err.finish()),
            ] {
                if let Some(l) = rest {
                    print(stream, &l);
                }
            }
            session.close().await;
            let ended = match r {
                Ok(None) if timed_out.load(std::sync::atomic::Ordering::SeqCst) => Ended::TimedOut,
                Ok(None) if *seen.borrow() => Ended::Stopped,
                Ok(code) => Ended::Exit(code),
                Err(e) => Ended::Unreachable(e.to_string()),
            };
            (h.name, ended)
        });
    }
    let mut stopped = false;
    let mut results = Vec::new();
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                Some(r) => results.push(r.expect("logs task panicked")),
                None => break,
            },
            () = interrupted(), if !stopped => {
                stopped = true;
                let _ = stop_tx.send(true);
            }
        }
    }
    let (mut failed, mut unreachable) = (0, 0);
    for (host, ended) in &results {
        match ended {
            Ended::Exit(Some(0)) => {}
            Ended::Stopped | Ended::Exit(None) if stopped => {}
            Ended::Exit(code) => {
                failed += 1;
                let code = code.map_or("none (killed)".into(), |c| c.to_string());
                out.err_line(&format!("[{host}] docker logs exit code {code}"));
            }
            Ended::Stopped => {}
            Ended::TimedOut => {
                failed += 1;
                out.err_line(&format!(
                    "[{host}] docker logs did not finish within {} (stopped; use --follow to stream)",
                    humantime::format_duration(LOGS_TIMEOUT)
                ));
            }
            Ended::Unreachable(e) => {
                unreachable += 1;
                out.err_line(&format!("[{host}] UNREACHABLE: {e}"));
            }
        }
    }
    if !quiet || failed + unreachable > 0 {
        let how = if stopped { "stopped" } else { "done" };
        out.err_line(&format!(
            "logs of {name} on {}: {how}; {failed} failed, {unreachable} unreachable",
            hosts_n(n)
        ));
    }
    exit::of_hosts(failed, unreachable)
}
