//! Loading what a command works on, in the order errors should surface: the project file,
//! the env, then (for a run) the playbook, the secrets and the planner.

use super::context::Context;
use crate::config::{ConfigError, Env, Playbook, Project};
use crate::inventory::Host;
use crate::plan::{PlanOptions, Planner};
use crate::secrets::{Redactor, Secrets};

/// The project `-C` names (or the one found upward from here).
pub fn project(cx: &Context) -> Result<Project, ConfigError> {
    Project::load(&Project::locate(cx.config.as_deref())?)
}

/// The inventory's resolution of an env (without `--limit`), as the EC2 entry points take it.
pub fn resolver<'a>(
    project: &'a Project,
    cx: &'a Context,
) -> impl Fn(&Env) -> Result<Vec<Host>, ConfigError> + 'a {
    move |e: &Env| crate::inventory::resolve_with(project, e, None, &cx.access)
}

/// A run's planner: the env's playbook (checked against its roles) and secrets, with the
/// command line's tags and vars. Every reference is checked when hosts are planned.
pub fn planner(
    cx: &Context,
    project: &Project,
    env: &Env,
    allow_recreate: bool,
) -> Result<(Planner, Redactor), ConfigError> {
    let pb_path = project.playbook_path(env, cx.playbook.as_deref());
    let display = pb_path
        .strip_prefix(&project.root)
        .unwrap_or(&pb_path)
        .display()
        .to_string();
    let playbook = Playbook::load(&pb_path, &display)?;
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
    let redactor = cx.redactor.clone();
    let secrets = Secrets::load(env.secrets.as_deref(), redactor.clone())?;
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
    let planner = Planner::new(project, &env.name, playbook, secrets, opts)?;
    Ok((planner, redactor))
}

/// The key `-e @file` is carried under until the file is read.
pub const VAR_FILE: &str = "@";

/// `-e` pairs with each `@file` replaced by its `key = value` lines, in command-line order (a
/// later `-e` wins). Values are strings, numbers or booleans, kept as the text `-e` would take
/// (typed the same way), so the release log records them and `rollback` restores them.
fn expand_var_files(given: &[(String, String)]) -> Result<Vec<(String, String)>, ConfigError> {
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
