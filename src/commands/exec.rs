//! `provision exec`: one ad-hoc command on every selected host, over the same connection
//! settings (and `remote_env`) as `up`. Also the benchmark's floor: connect, authenticate,
//! run `true`.
//!
//! Hosts run in parallel; each host's output is printed as one block when it is done, every
//! line prefixed `[host]`, then a summary line. A failing or unreachable host does not stop
//! the others; the exit code says the worst (3 a command failed, 4 a host was unreachable).

use crate::error::exit;
use crate::inventory::Host;
use crate::report::OutputFormat;
use crate::secrets::Redactor;
use crate::transport::Transport;
use crate::transport::ssh::SshSession;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What happened on one host.
struct HostResult {
    host: String,
    result: Result<(Option<u32>, String, String), String>,
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

pub async fn run(hosts: Vec<Host>, command: &str, o: ExecOptions, redactor: Redactor) -> i32 {
    let (output, quiet) = (o.output, o.quiet);
    let sem = Arc::new(Semaphore::new(o.forks.max(1)));
    let (timeout, n) = (o.timeout, hosts.len());
    let command = format!("{}{command}", o.prelude);
    let mut tasks = tokio::task::JoinSet::new();
    for h in hosts {
        let (sem, command) = (sem.clone(), command.clone());
        tasks.spawn(async move {
            let _p = sem.acquire_owned().await.expect("semaphore open");
            let result = match SshSession::connect(&h.connect).await {
                Err(e) => Err(e.to_string()),
                Ok(s) => {
                    let r = s.exec(&command, None, timeout).await;
                    s.close().await;
                    r.map(|o| (o.exit, o.stdout_lossy(), o.stderr_lossy()))
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
        let ok = matches!(&r.result, Ok((Some(0), _, _)));
        if !(quiet && ok) {
            print_result(&r, output, &redactor);
        }
        results.push(r);
    }
    let unreachable = results.iter().filter(|r| r.result.is_err()).count();
    let failed = results
        .iter()
        .filter(|r| matches!(&r.result, Ok((code, _, _)) if *code != Some(0)))
        .count();
    if output != OutputFormat::Json {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(
            o,
            "exec on {}: {} ok, {failed} failed, {unreachable} unreachable",
            crate::commands::hosts_n(n),
            n - failed - unreachable
        );
    }
    exit::of_hosts(failed, unreachable)
}

fn print_result(r: &HostResult, output: OutputFormat, redactor: &Redactor) {
    let mut out = std::io::stdout().lock();
    if output == OutputFormat::Json {
        let mut v = match &r.result {
            Ok((code, so, se)) => {
                serde_json::json!({ "event": "exec", "host": r.host, "exit": code, "stdout": so, "stderr": se })
            }
            Err(e) => {
                serde_json::json!({ "event": "exec", "host": r.host, "unreachable": true, "error": e })
            }
        };
        redactor.redact_json(&mut v);
        let _ = writeln!(out, "{v}");
        return;
    }
    match &r.result {
        Err(e) => {
            let _ = writeln!(out, "[{}] UNREACHABLE: {}", r.host, redactor.redact(e));
        }
        Ok((code, so, se)) => {
            for line in so.lines().chain(se.lines()) {
                let _ = writeln!(out, "[{}] {}", r.host, redactor.redact(line));
            }
            if *code != Some(0) {
                let code = code.map_or("none (killed)".to_string(), |c| c.to_string());
                let _ = writeln!(out, "[{}] exit code {code}", r.host);
            }
        }
    }
}
