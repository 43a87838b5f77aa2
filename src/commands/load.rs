//! Loading what a command works on, in the order errors should surface: the project file,
//! the env, then (for a run) the playbook, the secrets and the planner.

use super::context::Context;
use crate::config::{ConfigError, Env, Playbook, Project};
use crate::inventory::Host;
use crate::plan::{PlanOptions, Planner};
use crate::secrets::{Redactor, Secrets};
use std::path::PathBuf;

/// The project `-C` names (or the one found upward from here).
pub fn project(cx: &Context) -> Result<Project, ConfigError> {
    Project::load(&Project::locate(cx.config.as_deref())?)
}

/// The inventory's resolution of an env (without `--limit`), as the EC2 entry points take it.
/// A sudo password from the environment is masked from here on; what the ssh_config file
/// holds that provision does not apply is printed as warnings, once each.
pub fn resolver<'a>(
    project: &'a Project,
    cx: &'a Context,
) -> impl Fn(&Env) -> Result<Vec<Host>, ConfigError> + 'a {
    move |e: &Env| {
        let hosts = crate::inventory::resolve_with(project, e, None, &cx.access)?;
        for p in hosts
            .iter()
            .filter_map(|h| h.connect.become_password.as_ref())
        {
            cx.redactor.add(&p.0);
        }
        let warnings: std::collections::BTreeSet<&String> =
            hosts.iter().flat_map(|h| &h.warnings).collect();
        for w in warnings {
            cx.out().note(&format!("warning: {w}"));
        }
        Ok(hosts)
    }
}

/// The env's hosts (all of them, as templates see them) and those `--limit` selects: for an
/// env with `ec2`, the instances `up` would launch, without asking EC2.
pub fn offline_hosts(
    cx: &Context,
    project: &Project,
    env: &Env,
) -> Result<(Vec<Host>, Vec<Host>), ConfigError> {
    let resolve = resolver(project, cx);
    let limit = cx.limit.as_deref();
    match &env.ec2 {
        Some(ec2) => {
            let all = crate::cloud::hosts::expected(env, ec2, &project.file, &resolve)?;
            let selected = (all.iter())
                .filter(|h| limit.is_none_or(|l| crate::inventory::in_limit(h, l)))
                .cloned()
                .collect();
            Ok((all, selected))
        }
        None => {
            let all = resolve(env)?;
            let selected = crate::cloud::hosts::select(all.clone(), limit, &project.file)?;
            Ok((all, selected))
        }
    }
}

/// A run's planner: the env's playbook (checked against its roles) and secrets, with the
/// command line's tags and vars. Every reference is checked when hosts are planned.
pub fn planner(
    cx: &Context,
    project: &Project,
    env: &Env,
    allow_recreate: bool,
) -> Result<(Planner, Redactor), ConfigError> {
    let (pb_path, display) = playbook_file(cx, project, env);
    let playbook = Playbook::load(&pb_path, &display)?;
    check_playbook(&playbook, env)?;
    let redactor = cx.redactor.clone();
    let secrets = secrets(env, &redactor)?;
    let planner = planner_with(cx, project, env, playbook, secrets, allow_recreate)?;
    Ok((planner, redactor))
}

/// The env's playbook (`--playbook` wins) and its path as messages show it.
pub fn playbook_file(cx: &Context, project: &Project, env: &Env) -> (PathBuf, String) {
    let pb_path = project.playbook_path(env, cx.playbook.as_deref());
    let display = pb_path
        .strip_prefix(&project.root)
        .unwrap_or(&pb_path)
        .display()
        .to_string();
    (pb_path, display)
}

/// The roles and `run_once` hosts the playbook names are the env's.
pub fn check_playbook(playbook: &Playbook, env: &Env) -> Result<(), ConfigError> {
    playbook.check_roles(&env.roles, &env.name)?;
    // Hosts found elsewhere (EC2, ssh_config, Vagrant) are checked once the run has them.
    if env.ec2.is_none() && env.ssh_source.is_none() {
        let mut names: Vec<String> = (env.hosts.iter())
            .flat_map(|h| [h.name(), h.addr.name(), h.addr.host.clone()])
            .collect();
        names.sort();
        names.dedup();
        playbook.check_run_once(&names, &env.name)?;
    }
    Ok(())
}

/// The env's secrets: its file, then its `secrets_command` (run here), every value
/// registered with `redactor`.
pub fn secrets(env: &Env, redactor: &Redactor) -> Result<Secrets, ConfigError> {
    Secrets::load_with(
        env.secrets.as_deref(),
        env.secrets_command.as_ref(),
        redactor.clone(),
    )
}

/// The planner of a loaded playbook and secrets, with the command line's tags and vars.
pub fn planner_with(
    cx: &Context,
    project: &Project,
    env: &Env,
    playbook: Playbook,
    secrets: Secrets,
    allow_recreate: bool,
) -> Result<Planner, ConfigError> {
    let trimmed = |tags: &[String]| -> Vec<String> {
        tags.iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    };
    let vars = expand_var_files(&cx.vars)?;
    let opts = PlanOptions {
        tags: trimmed(&cx.tags),
        skip_tags: trimmed(&cx.skip_tags),
        vars,
        allow_recreate,
    };
    Planner::new(project, &env.name, playbook, secrets, opts)
}

/// The key `-e @file` is carried under until the file is read.
pub const VAR_FILE: &str = "@";

/// `-e` pairs with each `@file` replaced by its `key = value` lines, in command-line order (a
/// later `-e` wins). Values are strings, numbers or booleans, kept as the text `-e` would take
/// (typed the same way), so the release log records them and `rollback` restores them.
pub fn expand_var_files(given: &[(String, String)]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (k, v) in given {
        if k == VAR_FILE {
            out.extend(read_var_file(std::path::Path::new(v))?);
        } else {
            out.push((k.clone(), v.clone()));
        }
    }
    Ok(out)
}

fn read_var_file(path: &std::path::Path) -> Result<Vec<(String, String)>, ConfigError> {
    use serde_spanned::Spanned;
    let text = crate::error::read(path, "the vars file given with -e @")?;
    let table: std::collections::BTreeMap<String, Spanned<toml::Value>> =
        toml::from_str(&text).map_err(|e| ConfigError::from_toml(path, &text, &e))?;
    let mut vars = Vec::new();
    for (k, v) in table {
        let value = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                v.get_ref().to_string()
            }
            _ => {
                return Err(ConfigError::at(
                    path,
                    &text,
                    v.span().start,
                    format!("var `{k}`: a vars file holds strings, numbers and booleans"),
                )
                .with_help("put lists and tables under [vars] in provision.toml"));
            }
        };
        if !crate::config::playbook::is_identifier(&k) {
            return Err(
                ConfigError::new(path, format!("`{k}` is not a variable name"))
                    .with_help("use letters, digits and `_`"),
            );
        }
        vars.push((k, value));
    }
    Ok(vars)
}
