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
    let release = pick(&t, to).await?;
    if !cx.quiet() {
        // Progress goes to stderr: stdout is the run's (NDJSON with `--output json`).
        cx.out()
            .err_line(&format!("rolling back {env} to {release}"));
    }
    let mut cx = cx.clone();
    cx.vars.push(("ref".into(), release));
    let how = Converge {
        mode: Mode::Apply,
        detailed: false,
        allow_recreate: false,
    };
    converge::run(&cx, env, how).await
}

/// The release to go back to, from the first host's release log.
async fn pick(t: &Target, to: Option<&str>) -> Result<String, Error> {
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
