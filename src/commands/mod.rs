//! The operator's everyday commands besides `up`: `exec`, `status`, `logs`, `ssh`, `unlock`
//! (and `init`). They reuse the inventory's connection settings and the environment's
//! `remote_env`, and print one block or line per host, prefixed by host (or one event per
//! host with `--output json`), through the env's [`Output`] channel, which masks the secret
//! values.

pub mod completions;
pub mod config;
pub mod context;
mod converge;
pub mod down;
pub mod exec;
pub mod hosts;
pub mod init;
mod load;

pub use load::VAR_FILE;
pub mod logs;
pub mod man;
pub mod plan;
pub mod releases;
pub mod report;
pub mod rollback;
pub mod secrets;
pub mod ssh;
pub mod status;
pub mod unlock;
pub mod up;
pub mod validate;

use crate::config::{Env, Project};
use crate::error::Error;
use crate::inventory::Host;
use crate::report::{Output, OutputFormat, ReportOptions};
use crate::secrets::{Redactor, Secrets};
use crate::transport::capture::{CUT_MARK, LINE_CAP};
use crate::transport::script::quote;
use context::Context;

/// An environment loaded for an operator command.
pub struct Target {
    pub project: Project,
    pub env: Env,
    pub hosts: Vec<Host>,
    /// Masks the env's secret values in everything printed.
    pub redactor: Redactor,
    /// `export K=V` lines of the env's `remote_env`, put before every script.
    pub prelude: String,
}

impl Target {
    /// The env's hosts as they are: its static hosts and, for an env with `ec2`, its running
    /// instances (read from the EC2 API; nothing is created or started).
    /// `--limit` applies; the env's secrets are registered with `cx.redactor`.
    pub async fn load(cx: &Context, env_name: &str) -> Result<Target, Error> {
        let project = load::project(cx)?;
        let env = project.env(env_name)?.clone();
        let redactor = cx.redactor.clone();
        // Loaded only so that secret values in what the hosts print are masked.
        let secrets = Secrets::load(env.secrets.as_deref(), redactor.clone())?;
        let resolve = load::resolver(&project, cx);
        let limit = cx.limit.as_deref();
        let hosts = crate::cloud::running_hosts(&project, &env, limit, resolve).await?;
        mask_playbook_secrets(&project, &env, secrets, &hosts);
        let prelude = prelude(&env);
        Ok(Target {
            project,
            env,
            hosts,
            redactor,
            prelude,
        })
    }

    /// The channel a command on this env prints through (masking the env's secrets): NDJSON
    /// events when `json`, text lines otherwise.
    pub fn output(&self, json: bool, quiet: bool) -> Output {
        let format = if json {
            OutputFormat::Json
        } else {
            OutputFormat::Plain
        };
        let opts = ReportOptions {
            quiet,
            ..ReportOptions::default()
        };
        Output::new(format, opts, self.redactor.clone())
    }
}

/// A secret read from provision's environment (not the secrets file) is known as one only
/// through the playbook that uses it: plan the env's playbook, best effort, so that those
/// values are registered with the redactor and masked in what the hosts print too.
fn mask_playbook_secrets(project: &Project, env: &Env, secrets: Secrets, hosts: &[Host]) {
    let path = project.playbook_path(env, None);
    let Ok(playbook) = crate::config::Playbook::load(&path, &path.display().to_string()) else {
        return;
    };
    let opts = crate::plan::PlanOptions::default();
    if let Ok(mut planner) = crate::plan::Planner::new(project, &env.name, playbook, secrets, opts)
    {
        planner.set_hosts(hosts);
        for host in hosts {
            let _ = planner.plan_host(host);
        }
    }
}

/// `export K=V` for each of the env's `remote_env`, as `up` runs it.
pub fn prelude(env: &Env) -> String {
    env.remote_env
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", quote(v)))
        .collect()
}

/// Splits a byte stream into lines (a partial last line is kept until more comes or
/// [`Lines::finish`]). A line longer than [`LINE_CAP`] keeps its start and says how much was
/// cut: a log line of 60 MiB must not be held whole.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
    cut: u64,
}

impl Lines {
    /// The complete lines in `data` (and before it), without their `\n`.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            self.keep(&data[..i]);
            out.push(self.take_line());
            data = &data[i + 1..];
        }
        self.keep(data);
        out
    }

    /// What is left (a last line without `\n`).
    pub fn finish(&mut self) -> Option<String> {
        (!self.buf.is_empty() || self.cut > 0).then(|| self.take_line())
    }

    fn keep(&mut self, part: &[u8]) {
        let room = LINE_CAP.saturating_sub(self.buf.len());
        let n = part.len().min(room);
        self.buf.extend_from_slice(&part[..n]);
        self.cut += (part.len() - n) as u64;
    }

    fn take_line(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.buf);
        let mut line = line.trim_end_matches('\r').to_string();
        if self.cut > 0 {
            line.push_str(&format!("{CUT_MARK}{} bytes of this line]", self.cut));
        }
        self.buf.clear();
        self.cut = 0;
        line
    }
}

/// "1 host" / "3 hosts".
pub fn hosts_n(n: usize) -> String {
    if n == 1 {
        "1 host".into()
    } else {
        format!("{n} hosts")
    }
}

/// Resolves once SIGINT or SIGTERM arrives (Ctrl-C, `kill`, a CI job cancelled).
pub async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut l = Lines::default();
        assert!(l.push(b"ab").is_empty());
        assert_eq!(l.push(b"c\r\nd\ne"), vec!["abc", "d"]);
        assert_eq!(l.push(b"f\n"), vec!["ef"]);
        assert_eq!(l.push(b"tail"), Vec::<String>::new());
        assert_eq!(l.finish().as_deref(), Some("tail"));
        assert_eq!(l.finish(), None);
    }

    #[test]
    fn a_long_line_keeps_its_start_and_says_what_was_cut() {
        let mut l = Lines::default();
        let long = vec![b'x'; LINE_CAP + 7];
        assert!(l.push(&long[..10]).is_empty());
        let lines = l.push(&[&long[10..], b"\nnext\n".as_slice()].concat());
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(&"x".repeat(LINE_CAP)));
        assert!(lines[0].ends_with("[provision cut 7 bytes of this line]"));
        assert_eq!(lines[1], "next");
    }
}
