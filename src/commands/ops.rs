//! Entry points of the operator commands whose bodies are in `exec.rs`, `logs.rs`, `ssh.rs`,
//! `status.rs` and `unlock.rs`: load the env's hosts as they are (static hosts and running
//! EC2 instances, nothing created), then run the command on them.

use super::Target;
use super::context::{self, Context};
use crate::config::{ConfigError, Project};
use crate::error::Error;
use std::time::Duration;

async fn target(cx: &Context, env: &str) -> Result<Target, Error> {
    Target::load(cx.config.as_deref(), env, cx.limit.as_deref(), &cx.access).await
}

/// `provision exec <env> -- <command>`.
pub async fn exec(cx: &Context, env: &str, command: &str, timeout: u64) -> Result<i32, Error> {
    let t = target(cx, env).await?;
    let o = super::exec::ExecOptions {
        forks: cx.forks,
        timeout: Duration::from_secs(timeout),
        output: cx.output,
        quiet: cx.quiet(),
        prelude: t.prelude.clone(),
    };
    Ok(super::exec::run(t.hosts, command, o, t.redactor).await)
}

/// `provision ssh <env> [host] [-- command]`.
pub async fn ssh(
    cx: &Context,
    env: &str,
    host: Option<&str>,
    command: &[String],
) -> Result<i32, Error> {
    let t = target(cx, env).await?;
    let h = super::ssh::pick(&t.hosts, host, &t.project.file)?;
    Ok(super::ssh::run(h, command).await)
}

/// `provision logs <env>`.
pub async fn logs(cx: &Context, env: &str, o: super::logs::LogsOptions) -> Result<i32, Error> {
    let t = target(cx, env).await?;
    Ok(super::logs::run(t, o, cx.quiet()).await)
}

/// `provision status <env>`.
pub async fn status(cx: &Context, env: &str, container: Option<&str>) -> Result<i32, Error> {
    let t = target(cx, env).await?;
    let (forks, json, quiet) = (cx.forks, cx.json(), cx.quiet());
    Ok(super::status::run(t, container, forks, json, quiet).await)
}

/// `provision unlock <env>`: asks first, unless `--yes`; refused where no one can answer.
pub async fn unlock(cx: &Context, env: &str) -> Result<i32, Error> {
    if !cx.yes && !context::interactive() {
        let file = Project::locate(cx.config.as_deref())?;
        return Err(ConfigError::new(
            file,
            "removing a deploy lock needs confirmation, and no one can answer here (no terminal on stdin, or CI is set)",
        )
        .with_help("pass --yes")
        .into());
    }
    let t = target(cx, env).await?;
    let ask = |q: &str| context::confirm(q);
    let confirm: Option<&dyn Fn(&str) -> bool> = if cx.yes { None } else { Some(&ask) };
    Ok(super::unlock::run(t, confirm, cx.json()).await)
}
