//! `provision rollback <env>`: read the release log on the first host (static or running EC2
//! instance), then `up` with the var `ref` set to the release picked.

use super::Target;
use super::context::Context;
use super::converge::{self, Converge};
use crate::config::ConfigError;
use crate::error::Error;
use crate::remote::releases;
use crate::report::Mode;

/// `to`: a prefix of a recorded release; None: the one before the current.
pub async fn run(cx: &Context, env: &str, to: Option<&str>) -> Result<i32, Error> {
    let t = Target::load(cx, env).await?;
    let target = pick(&t, to).await?;
    if !cx.quiet() {
        // Progress goes to stderr: stdout is the run's (NDJSON with `--output json`).
        cx.out()
            .err_line(&format!("rolling back {env} to {}", target.release));
    }
    let cx = with_release_vars(cx, target);
    let how = Converge {
        mode: Mode::Apply,
        detailed: false,
        allow_recreate: false,
        report: Default::default(),
    };
    converge::run(&cx, env, how).await
}

/// The vars of the run: the release's recorded vars (`version`...), then the command line's
/// (which win), then `ref` = the release id.
fn with_release_vars(cx: &Context, target: releases::Target) -> Context {
    let mut cx = cx.clone();
    let given = std::mem::take(&mut cx.vars);
    cx.vars = target.vars.into_iter().chain(given).collect();
    cx.vars.push(("ref".into(), target.release));
    cx
}

/// The release to go back to, from the first host's release log.
async fn pick(t: &Target, to: Option<&str>) -> Result<releases::Target, Error> {
    let file = &t.project.file;
    let first = t
        .hosts
        .first()
        .ok_or_else(|| ConfigError::new(file, "no host selected"))?;
    let records = releases::read(&first.name, &first.connect, &t.project.app, &t.env.name)
        .await
        .map_err(|e| Error::Unreachable(format!("cannot read the release log: {e}")))?;
    Ok(releases::rollback_target(&records, to).map_err(|m| ConfigError::new(file, m))?)
}
