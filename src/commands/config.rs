//! `provision config <env>`: the configuration `up <env>` would run with, resolved: each
//! host (name, address, port, user, roles, vars) with its SSH settings as the inventory
//! resolved them (host string > ssh_config > env ssh > defaults), the vars after `-e`, and
//! the names of the secrets the playbook needs. Nothing is contacted, and no secret value is
//! printed: secrets appear by name only, an inline key by where it comes from, and a var
//! rendered from a secret is masked by the channel like every other secret value.

use super::context::Context;
use super::load;
use crate::error::{Error, exit};
use crate::inventory::Host;
use crate::report::Output;
use crate::transport::ConnectSpec;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub fn run(cx: &Context, env_name: &str, json: bool) -> Result<i32, Error> {
    let project = load::project(cx)?;
    let env = project.env(env_name)?;
    let (planner, _) = load::planner(cx, &project, env, false)?;
    let (_, hosts) = load::offline_hosts(cx, &project, env)?;
    let vars = vars(cx, &project, env, &planner)?;
    let mut secrets: Vec<String> = super::secrets::uses(&planner.playbook, &project.root)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    secrets.sort();
    secrets.dedup();
    let shown = Shown {
        env: env.name.clone(),
        app: project.app.clone(),
        playbook: planner.playbook.display.clone(),
        ec2: env.ec2.is_some(),
        hosts: hosts.iter().map(host_json).collect(),
        vars,
        secrets,
    };
    let out = cx.out();
    if json || cx.json() {
        let doc = serde_json::to_string_pretty(&shown).unwrap_or_default();
        out.write(&format!("{doc}\n"));
    } else {
        show(&out, &shown, &hosts);
    }
    Ok(exit::OK)
}

#[derive(Serialize)]
struct Shown {
    env: String,
    app: String,
    playbook: String,
    /// The hosts are the EC2 instances `up` would launch (their addresses are not known yet).
    ec2: bool,
    hosts: Vec<Value>,
    vars: BTreeMap<String, Var>,
    /// Names of the secrets the playbook and its templates use (values are never shown).
    secrets: Vec<String>,
}

#[derive(Serialize)]
struct Var {
    value: Value,
    /// `project`, `env` or `-e`: the last place that set it.
    from: &'static str,
}

/// Every var as the templates see it (rendered, project < env < `-e`).
fn vars(
    cx: &Context,
    project: &crate::config::Project,
    env: &crate::config::Env,
    planner: &crate::plan::Planner,
) -> Result<BTreeMap<String, Var>, Error> {
    let mut from: BTreeMap<String, &'static str> = BTreeMap::new();
    from.extend(project.vars.keys().map(|k| (k.clone(), "project")));
    from.extend(env.vars.keys().map(|k| (k.clone(), "env")));
    let given = load::expand_var_files(&cx.vars)?;
    from.extend(given.into_iter().map(|(k, _)| (k, "-e")));
    let ctx = planner.context(None, &BTreeMap::new());
    Ok(from
        .into_iter()
        .map(|(name, from)| {
            let value = ctx.get_attr(&name).ok();
            let value = value.and_then(|v| serde_json::to_value(&v).ok());
            let var = Var {
                value: value.unwrap_or(Value::Null),
                from,
            };
            (name, var)
        })
        .collect())
}

/// A host and how it is reached. An inline key is named by its source only.
fn host_json(h: &Host) -> Value {
    let vars = serde_json::to_value(&h.vars).unwrap_or_default();
    json!({
        "name": h.name,
        "address": h.connect.address,
        "port": h.connect.port,
        "user": h.connect.user,
        "roles": h.roles,
        "vars": vars,
        "ssh": ssh_json(&h.connect),
    })
}

fn ssh_json(c: &ConnectSpec) -> Value {
    let pins: Vec<Value> = (c.host_keys.iter())
        .map(|p| json!({ "hosts": p.hosts, "source": p.source }))
        .collect();
    let jump = c.jump.as_ref().map(|j| {
        json!({ "address": j.address, "port": j.port, "user": j.user, "identity_files": j.identity_files })
    });
    json!({
        "identity_files": c.identity_files,
        "identity_key": c.identity_key.as_ref().map(|k| k.source.clone()),
        "identity_env": c.identity_env,
        "known_hosts": c.known_hosts,
        "project_known_hosts": c.project_known_hosts,
        "user_known_hosts": c.user_known_hosts,
        "host_keys": pins,
        "jump": jump,
        "become_user": c.become_user,
        "become_password": c.become_password.is_some(),
        "connect_timeout_ms": c.connect_timeout.as_millis() as u64,
        "retries": c.retries,
        "keepalive_ms": c.keepalive.as_millis() as u64,
    })
}

fn show(out: &Output, s: &Shown, hosts: &[Host]) {
    out.line(&format!(
        "env {} of app {}, playbook {}",
        s.env, s.app, s.playbook
    ));
    let note = if s.ec2 {
        " (the EC2 instances `up` would launch)"
    } else {
        ""
    };
    out.line(&format!("hosts: {}{note}", hosts.len()));
    for h in hosts {
        show_host(out, h);
    }
    out.line(&format!("vars: {}", s.vars.len()));
    for (name, var) in &s.vars {
        out.line(&format!("  {name} = {} ({})", var.value, var.from));
    }
    let secrets = if s.secrets.is_empty() {
        "none".to_string()
    } else {
        s.secrets.join(", ")
    };
    out.line(&format!("secrets needed (names only): {secrets}"));
}

fn show_host(out: &Output, h: &Host) {
    let c = &h.connect;
    out.line(&format!("  {}", h.name));
    out.line(&format!("    address   {}@{}", c.user, c.target()));
    out.line(&format!("    roles     {}", h.roles.join(", ")));
    if !h.vars.is_empty() {
        let vars = serde_json::to_string(&h.vars).unwrap_or_default();
        out.line(&format!("    vars      {vars}"));
    }
    let mut keys: Vec<String> = c.identity_key.iter().map(|k| k.source.clone()).collect();
    keys.extend(c.identity_files.iter().map(|f| f.display().to_string()));
    if keys.is_empty() {
        keys.push("the agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa".into());
    }
    out.line(&format!("    identity  {}", keys.join(", ")));
    let mut files = vec![c.project_known_hosts.display().to_string()];
    files.extend(c.user_known_hosts.iter().map(|f| f.display().to_string()));
    let policy = serde_json::to_value(c.known_hosts).unwrap_or_default();
    let policy = policy.as_str().unwrap_or_default().to_string();
    out.line(&format!("    hostkeys  {policy}: {}", files.join(", ")));
    for p in &c.host_keys {
        let hosts = p.hosts.as_deref().unwrap_or("every host");
        out.line(&format!("              pinned for {hosts} ({})", p.source));
    }
    if let Some(j) = &c.jump {
        out.line(&format!("    jump      {}@{}", j.user, j.target()));
    }
    if let Some(u) = &c.become_user {
        out.line(&format!("    become    {u}"));
    }
    if c.become_password.is_some() {
        out.line("    sudo      with the password given (sent on stdin, masked)");
    }
    out.line(&format!(
        "    timeouts  connect {}s, {} retries, keepalive {}s",
        c.connect_timeout.as_secs(),
        c.retries,
        c.keepalive.as_secs()
    ));
}
