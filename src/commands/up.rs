//! `provision up <env>`: converge the env's hosts (and its EC2 machines first).

use super::context::Context;
use super::converge::{self, Converge};
use super::load;
use super::report::RunReport;
use crate::config::ConfigError;
use crate::error::Error;
use crate::report::Mode;

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// `--allow-recreate`: stateful containers may be recreated.
    pub allow_recreate: bool,
    /// `--retry-failed`: only the hosts the last `up` of the env did not finish.
    pub retry_failed: bool,
    /// `--report FILE`, `--timings`.
    pub report: RunReport,
}

pub async fn run(cx: &Context, env: &str, o: UpOptions) -> Result<i32, Error> {
    let cx = &retry_limit(cx, env, o.retry_failed)?;
    let how = Converge {
        mode: Mode::Apply,
        detailed: false,
        allow_recreate: o.allow_recreate,
        report: o.report,
    };
    converge::run(cx, env, how).await
}

/// `--retry-failed`: the context with `--limit` set to the hosts the last `up` of `env` did
/// not finish (failed, unreachable or interrupted), as recorded in .provision/last-failed-<env>.
fn retry_limit(cx: &Context, env: &str, retry: bool) -> Result<Context, ConfigError> {
    let mut cx = cx.clone();
    if !retry {
        return Ok(cx);
    }
    let project = load::project(&cx)?;
    if cx.limit.is_some() {
        return Err(ConfigError::new(
            &project.file,
            "--retry-failed and --limit cannot be used together",
        )
        .with_help("--retry-failed limits the run to the hosts the last `up` did not finish"));
    }
    let hosts = crate::runner::read_unfinished(&project.root, env).map_err(|file| {
        ConfigError::new(file, format!("no unfinished hosts recorded for env `{env}`"))
            .with_help("the last `up` of this env finished on every host (or none ran here): run `provision up` without --retry-failed")
    })?;
    cx.limit = Some(hosts.join(","));
    Ok(cx)
}
