//! `provision exec`: one ad-hoc command on every selected host, over the same connection
//! settings (and `remote_env`) as `up`. Also the benchmark's floor: connect, authenticate,
//! run `true`.
//!
//! Hosts run in parallel; each host's output is printed as one block when it is done, every
//! line prefixed `[host]`, then a summary line. A failing or unreachable host does not stop
//! the others; the exit code says the worst (3 a command failed, 4 a host was unreachable).

use super::Target;
use super::context::Context;
use crate::config::ConfigError;
use crate::error::{Error, exit};
use crate::inventory::Host;
use crate::report::{Event, ExecOutput, Output, OutputFormat, ReportOptions};
use crate::secrets::Redactor;
use crate::transport::script::quote;
use crate::transport::ssh::SshConnector;
use crate::transport::{Connector, Keep, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What happened on one host.
struct HostResult {
    host: String,
    result: Result<ExecOutput, String>,
}

/// How `exec` runs and prints.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub forks: usize,
    pub timeout: Duration,
    pub output: OutputFormat,
    /// Print only failing hosts and the summary.
    pub quiet: bool,
    /// Put before the command (the env's `remote_env` exports).
    pub prelude: String,
}

/// How `exec` runs the command: its time limit, inside which container, on a terminal.
#[derive(Debug, Clone, Default)]
pub struct How {
    /// Seconds.
    pub timeout: u64,
    /// `docker exec` in this container; empty: the app's.
    pub container: Option<String>,
    /// One host, on this terminal, through the system ssh client.
    pub tty: bool,
}

/// `provision exec <env> -- <command>`: on the env's hosts as they are (static hosts and
/// running EC2 instances, nothing created).
pub async fn run(cx: &Context, env: &str, command: &str, how: How) -> Result<i32, Error> {
    let t = Target::load(cx, env).await?;
    let command = match how.container.as_deref() {
        None => command.to_string(),
        Some("") => in_container(&t.project.app, command, how.tty),
        Some(name) => in_container(name, command, how.tty),
    };
    if how.tty {
        return on_terminal(&t, &command).await;
    }
    let o = ExecOptions {
        forks: cx.forks,
        timeout: Duration::from_secs(how.timeout),
        output: cx.output,
        quiet: cx.quiet(),
        prelude: t.prelude.clone(),
    };
    Ok(run_on(t.hosts, &command, o, t.redactor).await)
}

/// `docker exec` of `command` in container `name`, with `-it` on a terminal. The host's shell
/// splits `command` into words, as `docker exec NAME cmd…` typed there would: the container
/// needs no shell of its own.
fn in_container(name: &str, command: &str, tty: bool) -> String {
    let flags = if tty { "-it " } else { "" };
    format!("docker exec {flags}{} {command}", quote(name))
}

/// `-t`: the one selected host, through the system ssh client with a terminal (it does raw
/// mode, window size and escapes). `become` is sudo on that terminal, which may ask there.
async fn on_terminal(t: &Target, command: &str) -> Result<i32, Error> {
    let [host] = t.hosts.as_slice() else {
        let n = t.hosts.len();
        return Err(ConfigError::new(
            &t.project.file,
            format!("-t runs a command on one host's terminal, and {n} hosts are selected"),
        )
        .with_help("pick one with --limit HOST (`provision hosts ENV` lists them)")
        .into());
    };
    let line = format!("{}{command}", t.prelude);
    let line = match &host.connect.become_user {
        Some(user) => format!("sudo -H -u {} -- /bin/sh -c {}", quote(user), quote(&line)),
        None => line,
    };
    let out = Output::text(t.redactor.clone());
    Ok(super::ssh::hand_over(host, &[line], true, &out).await)
}

/// Run `command` on `hosts`, print each host's block (or JSON line) and a summary line.
pub async fn run_on(hosts: Vec<Host>, command: &str, o: ExecOptions, redactor: Redactor) -> i32 {
    let quiet = o.quiet;
    let opts = ReportOptions {
        quiet,
        ..ReportOptions::default()
    };
    let out = Output::new(o.output, opts, redactor);
    let sem = Arc::new(Semaphore::new(o.forks.max(1)));
    let (timeout, n) = (o.timeout, hosts.len());
    let command = format!("{}{command}", o.prelude);
    let mut tasks = tokio::task::JoinSet::new();
    for h in hosts {
        let (sem, command) = (sem.clone(), command.clone());
        tasks.spawn(async move {
            let _p = sem.acquire_owned().await.expect("semaphore open");
            let result = match SshConnector.connect(&h.connect).await {
                Err(e) => Err(e.to_string()),
                Ok(s) => {
                    // Only shown: lines cut short and the middle of a flood dropped.
                    let r = s.exec_keeping(&command, None, timeout, Keep::Shown).await;
                    s.close().await;
                    r.map(|o| ExecOutput {
                        exit: o.exit,
                        stdout: o.stdout_lossy(),
                        stderr: o.stderr_lossy(),
                    })
                    .map_err(|e| e.to_string())
                }
            };
            HostResult {
                host: h.name,
                result,
            }
        });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let r = r.expect("exec task panicked");
        let ok = matches!(&r.result, Ok(o) if o.exit == Some(0));
        if !(quiet && ok) {
            print_result(&r, &out);
        }
        results.push(r);
    }
    let unreachable = results.iter().filter(|r| r.result.is_err()).count();
    let failed = results
        .iter()
        .filter(|r| matches!(&r.result, Ok(o) if o.exit != Some(0)))
        .count();
    if !out.json() {
        out.line(&format!(
            "exec on {}: {} ok, {failed} failed, {unreachable} unreachable",
            crate::commands::hosts_n(n),
            n - failed - unreachable
        ));
    }
    exit::of_hosts(failed, unreachable)
}

fn print_result(r: &HostResult, out: &Output) {
    let host = &r.host;
    if out.json() {
        out.emit(Event::exec(host, r.result.clone()));
        return;
    }
    match &r.result {
        Err(e) => out.line(&format!("[{host}] UNREACHABLE: {e}")),
        Ok(o) => {
            for line in o.stdout.lines().chain(o.stderr.lines()) {
                out.line(&format!("[{host}] {line}"));
            }
            if o.exit != Some(0) {
                let code = o
                    .exit
                    .map_or("none (killed)".to_string(), |c| c.to_string());
                out.line(&format!("[{host}] exit code {code}"));
            }
        }
    }
}
