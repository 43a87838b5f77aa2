//! `up`, `plan` and `rollback` converge an env: load everything and plan every host before
//! the first connection (and, for an env with `ec2`, before EC2 is asked to create or start
//! anything), then run the playbook.

use super::context::Context;
use super::load;
use super::report::RunReport;
use crate::config::{ConfigError, Env, Project};
use crate::error::{Error, exit};
use crate::inventory::Host;
use crate::plan::{Planner, Rollout};
use crate::report::{Mode, Sink};
use crate::runner::{self, RunOptions};
use std::sync::Arc;

/// How a converge runs.
#[derive(Debug, Clone)]
pub struct Converge {
    pub mode: Mode,
    /// `plan --detailed-exitcode`: exit 2 when changes are pending.
    pub detailed: bool,
    /// `up --allow-recreate`.
    pub allow_recreate: bool,
    /// `--report FILE`, `--timings`: made of the run's events at its end.
    pub report: RunReport,
}

/// Any config, template or secret error stops the run before a host or EC2 is touched.
pub async fn run(cx: &Context, env_name: &str, how: Converge) -> Result<i32, Error> {
    let project = load::project(cx)?;
    let env = project.env(env_name)?;
    let (mut planner, redactor) = load::planner(cx, &project, env, how.allow_recreate)?;
    plan_expected(cx, &mut planner, &project, env)?;
    // EC2 machines are found or created (up) or planned (plan) here, after every local check.
    // One channel for the EC2 lines and the run's events.
    let sink = Sink::with_options(cx.output, cx.report, redactor);
    let report_file = how.report.start(&sink)?;
    let resolve = load::resolver(&project, cx);
    let limit = cx.limit.as_deref();
    let opts = cx.cloud(&sink);
    let cloud = crate::cloud::hosts_for_run(&project, env, limit, how.mode, opts, resolve).await?;
    // Templates see every host of the env, also those `--limit` leaves out.
    planner.set_hosts(&cloud.all);
    let mut plans = cloud
        .hosts
        .iter()
        .map(|h| planner.plan_host(h))
        .collect::<Result<Vec<_>, _>>()?;
    runner::fill_guesses(&project.root, env_name, &mut plans);
    let serial = cx.serial.as_ref();
    let rollout = Rollout::new(
        plans,
        &env.rollout,
        serial,
        &planner.playbook,
        limit.is_some(),
    )?;
    let options = RunOptions {
        mode: how.mode,
        forks: cx.forks,
    };
    let summary = runner::run(
        Arc::new(planner),
        rollout,
        options,
        sink.clone(),
        how.detailed,
    )
    .await;
    if how.mode == Mode::Apply {
        runner::record_unfinished(&project.root, env_name, &summary);
        runner::record_guesses(&project.root, env_name, &summary);
    }
    // After the record: a report that cannot be written must not lose `--retry-failed`'s list.
    how.report.finish(&sink, report_file)?;
    if cloud.ec2_pending && how.detailed && summary.exit_code == exit::OK {
        return Ok(exit::PENDING);
    }
    Ok(summary.exit_code)
}

/// For an env with `ec2`: plan the playbook on the hosts the run will have, the instances
/// under the names `up` launches them with (their addresses are not known yet), so that a
/// template, variable, file or secret error is found before any machine exists. The hosts
/// are planned again once they are known; without `ec2` they are known now.
fn plan_expected(
    cx: &Context,
    planner: &mut Planner,
    project: &Project,
    env: &Env,
) -> Result<(), ConfigError> {
    let Some(ec2) = &env.ec2 else {
        return Ok(());
    };
    let resolve = load::resolver(project, cx);
    let expected = crate::cloud::hosts::expected(env, ec2, &project.file, &resolve)?;
    planner.set_hosts(&expected);
    for host in selected(expected, cx.limit.as_deref()) {
        planner.plan_host(&host)?;
    }
    Ok(())
}

/// The expected hosts `--limit` selects. A limit may name what only exists later (an
/// instance's address or ID): when it selects none of them, one host without roles stands
/// for it, since the steps without `on` run on whatever host it selects.
fn selected(expected: Vec<Host>, limit: Option<&str>) -> Vec<Host> {
    let Some(limit) = limit else {
        return expected;
    };
    let first = expected.first().cloned();
    let chosen: Vec<Host> = expected
        .into_iter()
        .filter(|h| crate::inventory::in_limit(h, limit))
        .collect();
    match first {
        Some(mut any) if chosen.is_empty() => {
            any.roles.clear();
            vec![any]
        }
        _ => chosen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<Host> {
        let text = "app = \"a\"\n[ssh]\nconfig = \"none\"\n[env.prod]\nhosts = { web = [\"10.0.0.1\", \"10.0.0.2\"], db = [\"10.0.0.3\"] }\n";
        let project = Project::parse(std::path::Path::new("/p/provision.toml"), text).unwrap();
        crate::inventory::resolve(&project, project.env("prod").unwrap(), None, false).unwrap()
    }

    fn names(hosts: &[Host]) -> Vec<&str> {
        hosts.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn the_limit_selects_expected_hosts_and_unknown_words_stand_for_a_host_without_roles() {
        assert_eq!(names(&selected(hosts(), None)).len(), 3);
        assert_eq!(
            names(&selected(hosts(), Some("web"))),
            ["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(
            names(&selected(hosts(), Some("10.0.0.3, i-0abc"))),
            ["10.0.0.3"]
        );
        let stand_in = selected(hosts(), Some("i-0abc"));
        assert_eq!(stand_in.len(), 1);
        assert!(stand_in[0].roles.is_empty());
        assert!(selected(Vec::new(), Some("web")).is_empty());
    }
}
