//! `provision.toml` and playbooks: typed, validated, with every error pointing at file:line:col.
//!
//! Parsing is strict (unknown keys are errors) and happens before any host is contacted.

mod collect;
pub mod ec2;
pub mod hosts;
pub mod include;
pub mod lang;
pub mod playbook;
pub mod rollout;

pub use crate::error::ConfigError;
pub use crate::value::{Dur, OneOrMany};
pub use hosts::{HostAddr, HostDef, HostsDef};
pub use playbook::{Playbook, RunOnce, Step};
pub use rollout::{Rollout, Serial};

use crate::transport::KnownHostsPolicy;
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const PROJECT_FILE: &str = "provision.toml";

/// `[ssh]` at the top level or `ssh = {…}` in an environment. Every field is optional so an
/// environment overrides only what it sets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshDef {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<OneOrMany>,
    pub known_hosts: Option<KnownHostsPolicy>,
    /// Project-local known_hosts file (default `.provision/known_hosts`).
    pub known_hosts_file: Option<String>,
    pub connect_timeout: Option<Dur>,
    pub retries: Option<u32>,
    pub keepalive: Option<Dur>,
    /// ProxyJump host, `user@host:port`.
    pub jump: Option<String>,
    #[serde(rename = "become")]
    pub become_: Option<bool>,
    pub become_user: Option<String>,
    /// Environment variable holding the sudo password for `become` (sent on stdin, masked).
    pub become_password_env: Option<String>,
    /// Forward the local ssh-agent to the hosts (`ssh -A`), for git over ssh without a key.
    pub forward_agent: Option<bool>,
    /// ssh_config file to honour (default `~/.ssh/config`); `"none"` turns it off.
    pub config: Option<String>,
    /// Environment variable holding a private key as text (default `PROVISION_SSH_KEY`).
    pub identity_env: Option<String>,
    /// Pinned host keys: `SHA256:…` fingerprints, `<type> <base64>` keys or known_hosts lines.
    pub host_key: Option<OneOrMany>,
    /// Environment variable holding more pins, one per line (default `PROVISION_KNOWN_HOSTS`).
    pub host_key_env: Option<String>,
}

impl SshDef {
    /// `over`'s fields win where set.
    pub fn merged(&self, over: &SshDef) -> SshDef {
        SshDef {
            user: over.user.clone().or_else(|| self.user.clone()),
            port: over.port.or(self.port),
            identity_file: over
                .identity_file
                .clone()
                .or_else(|| self.identity_file.clone()),
            known_hosts: over.known_hosts.or(self.known_hosts),
            known_hosts_file: over
                .known_hosts_file
                .clone()
                .or_else(|| self.known_hosts_file.clone()),
            connect_timeout: over.connect_timeout.or(self.connect_timeout),
            retries: over.retries.or(self.retries),
            keepalive: over.keepalive.or(self.keepalive),
            jump: over.jump.clone().or_else(|| self.jump.clone()),
            become_: over.become_.or(self.become_),
            become_user: over
                .become_user
                .clone()
                .or_else(|| self.become_user.clone()),
            become_password_env: over
                .become_password_env
                .clone()
                .or_else(|| self.become_password_env.clone()),
            forward_agent: over.forward_agent.or(self.forward_agent),
            config: over.config.clone().or_else(|| self.config.clone()),
            identity_env: over
                .identity_env
                .clone()
                .or_else(|| self.identity_env.clone()),
            host_key: over.host_key.clone().or_else(|| self.host_key.clone()),
            host_key_env: over
                .host_key_env
                .clone()
                .or_else(|| self.host_key_env.clone()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    app: String,
    repo: Option<String>,
    playbook: Option<String>,
    #[serde(default)]
    vars: toml::Table,
    #[serde(default)]
    ssh: SshDef,
    #[serde(default)]
    remote_env: BTreeMap<String, String>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<EnvFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvFile {
    /// Optional when the env has `ec2`: its machines are then found or created on EC2.
    hosts: Option<HostsDef>,
    ec2: Option<Spanned<ec2::Ec2Def>>,
    #[serde(default)]
    vars: toml::Table,
    secrets: Option<String>,
    /// A local command printing the env's secrets (dotenv or a JSON object).
    secrets_command: Option<Spanned<String>>,
    #[serde(default)]
    ssh: SshDef,
    #[serde(default)]
    remote_env: BTreeMap<String, String>,
    playbook: Option<String>,
    /// A Vagrant project folder: its `vagrant ssh-config` output is the env's ssh_config.
    vagrant: Option<String>,
    /// An ssh_config-format file for this env (its `Host` entries are the hosts when `hosts`
    /// is not given).
    ssh_config: Option<String>,
    /// Rolling deploys (see `rollout.rs`).
    serial: Option<Serial>,
    max_fail_percentage: Option<Spanned<u32>>,
    max_failures: Option<usize>,
}

/// Where an env's hosts and their connection settings are read from, besides `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshSource {
    /// An ssh_config-format file (absolute).
    File(PathBuf),
    /// A Vagrant project folder (absolute): `vagrant ssh-config` run there.
    Vagrant(PathBuf),
}

/// One host of an environment, parsed, with the roles it is in.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEntry {
    pub addr: HostAddr,
    pub roles: Vec<String>,
    /// `name = "..."` of its table form (default: the address, `addr.name()`).
    pub name: Option<String>,
    /// `vars = { ... }` of its table form.
    pub vars: toml::Table,
}

impl HostEntry {
    /// A host from a string entry: no name of its own, no vars.
    pub fn new(addr: HostAddr, roles: Vec<String>) -> HostEntry {
        HostEntry {
            addr,
            roles,
            name: None,
            vars: toml::Table::new(),
        }
    }

    /// What events, `--limit` and templates call it.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.addr.name())
    }
}

#[derive(Debug, Clone)]
pub struct Env {
    pub name: String,
    pub hosts: Vec<HostEntry>,
    pub roles: Vec<String>,
    /// Role → its hosts' names in the order written (the order of `hosts.<role>` in
    /// templates).
    pub role_order: BTreeMap<String, Vec<String>>,
    pub vars: toml::Table,
    pub secrets: Option<PathBuf>,
    /// `secrets_command`: run locally when the secrets are loaded.
    pub secrets_command: Option<crate::secrets::SecretsCommand>,
    /// Top-level `[ssh]` merged with the environment's.
    pub ssh: SshDef,
    /// Environment variables set for every script on the hosts (top level, then the env's).
    pub remote_env: BTreeMap<String, String>,
    pub playbook: Option<String>,
    /// `[env.<name>.ec2]`: machines found or created on EC2 by tags (their roles are in `roles`).
    pub ec2: Option<ec2::Ec2Env>,
    /// `vagrant = "<dir>"` or `ssh_config = "<file>"`: read by the inventory.
    pub ssh_source: Option<SshSource>,
    /// `serial`, `max_fail_percentage`, `max_failures`.
    pub rollout: Rollout,
}

/// The loaded project: `provision.toml` plus where it lives.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub file: PathBuf,
    pub app: String,
    pub repo: Option<String>,
    pub playbook: Option<String>,
    pub vars: toml::Table,
    pub envs: BTreeMap<String, Env>,
}

impl Project {
    /// Find `provision.toml`: `explicit` may name the file or its folder; otherwise search the
    /// current directory and its parents, like git does.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(p) = explicit {
            let file = if p.is_dir() {
                p.join(PROJECT_FILE)
            } else {
                p.to_path_buf()
            };
            if !file.is_file() {
                return Err(ConfigError::new(&file, "no such config file")
                    .with_help("pass -C with a provision.toml or the folder holding it, or run `provision init`"));
            }
            return Ok(file);
        }
        let cwd = std::env::current_dir().map_err(|e| ConfigError::new(".", e.to_string()))?;
        for dir in cwd.ancestors() {
            let file = dir.join(PROJECT_FILE);
            if file.is_file() {
                return Ok(file);
            }
        }
        Err(ConfigError::new(
            cwd.join(PROJECT_FILE),
            "no provision.toml here or in any parent folder",
        )
        .with_help("run `provision init` to create one, or pass -C <path>"))
    }

    pub fn load(file: &Path) -> Result<Project, ConfigError> {
        let text = crate::error::read(file, "the project file")?;
        Self::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Project, ConfigError> {
        let mut raw: ProjectFile =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        let root = root_of(file);
        check_app(file, text, &raw.app)?;
        let tables = std::mem::take(&mut raw.env);
        let top = Top {
            file,
            text,
            root: &root,
            app: &raw.app,
            ssh: &raw.ssh,
            remote_env: &raw.remote_env,
        };
        let mut envs = BTreeMap::new();
        for (name, spanned) in tables {
            let env = top.env(&name, spanned)?;
            envs.insert(name, env);
        }
        Ok(Project {
            root,
            file: file.to_path_buf(),
            app: raw.app,
            repo: raw.repo,
            playbook: raw.playbook,
            vars: raw.vars,
            envs,
        })
    }

    pub fn env(&self, name: &str) -> Result<&Env, ConfigError> {
        self.envs.get(name).ok_or_else(|| {
            let known: Vec<_> = self.envs.keys().map(String::as_str).collect();
            ConfigError::new(&self.file, format!("no environment `{name}`")).with_help(
                if known.is_empty() {
                    "add an [env.<name>] table with hosts".to_string()
                } else {
                    format!("environments defined: {}", known.join(", "))
                },
            )
        })
    }

    /// The playbook file for an environment: `--playbook` wins, then the env's, then the
    /// project's, then `deploy`. A bare name means `playbooks/<name>.toml`.
    pub fn playbook_path(&self, env: &Env, cli: Option<&str>) -> PathBuf {
        let name = cli
            .or(env.playbook.as_deref())
            .or(self.playbook.as_deref())
            .unwrap_or("deploy");
        if name.contains('/') || name.ends_with(".toml") {
            self.root.join(name)
        } else {
            self.root.join("playbooks").join(format!("{name}.toml"))
        }
    }
}

/// The folder a project file's paths are relative to.
fn root_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn check_app(file: &Path, text: &str, app: &str) -> Result<(), ConfigError> {
    if app.trim().is_empty()
        || !app
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ConfigError::at(
            file,
            text,
            text.find("app").unwrap_or(0),
            format!("app name `{app}` is not valid"),
        )
        .with_help(
            "use letters, digits, `-`, `_` or `.`: it names folders and containers on the hosts",
        ));
    }
    Ok(())
}

/// The top level of a project file, which every `[env.<name>]` is built with.
struct Top<'a> {
    file: &'a Path,
    text: &'a str,
    root: &'a Path,
    app: &'a str,
    ssh: &'a SshDef,
    remote_env: &'a BTreeMap<String, String>,
}

impl Top<'_> {
    /// One env, as written under `[env.<name>]`, with the top level's ssh and remote_env.
    fn env(&self, name: &str, spanned: Spanned<EnvFile>) -> Result<Env, ConfigError> {
        let (file, text) = (self.file, self.text);
        let span = spanned.span();
        let at = EnvAt {
            file,
            text,
            name,
            offset: span.start,
            root: self.root,
        };
        let mut env = build_env(&at, self.app, spanned.into_inner(), self.ssh)?;
        for (k, v) in self.remote_env {
            env.remote_env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let Some(bad) = env
            .remote_env
            .keys()
            .find(|k| !playbook::is_identifier(k) && !k.starts_with('_'))
        {
            return Err(ConfigError::at(
                file,
                text,
                span.start,
                format!("env `{name}`: remote_env key `{bad}` is not a variable name"),
            ));
        }
        Ok(env)
    }
}

#[allow(clippy::too_many_arguments)]
/// Where an `[env.<name>]` table is, for its errors, and the folder its paths are relative to.
struct EnvAt<'a> {
    file: &'a Path,
    text: &'a str,
    name: &'a str,
    offset: usize,
    root: &'a Path,
}

impl EnvAt<'_> {
    fn error(&self, offset: usize, message: String) -> ConfigError {
        ConfigError::at(self.file, self.text, offset, message)
    }
}

fn build_env(at: &EnvAt, app: &str, raw: EnvFile, top_ssh: &SshDef) -> Result<Env, ConfigError> {
    let ssh_source = ssh_source(at, &raw)?;
    let rollout = rollout_of(at, &raw)?;
    let hosts_def = raw.hosts.unwrap_or_default();
    let mut roles: Vec<String> = hosts_def.0.keys().cloned().collect();
    let (hosts, role_order) = host_entries(at, &hosts_def)?;
    let ssh = top_ssh.merged(&raw.ssh);
    let ec2 = match raw.ec2 {
        Some(def) => {
            let ec2_at = ec2::At {
                file: at.file,
                text: at.text,
                offset: def.span().start,
                env: at.name,
            };
            let ec2 = def.into_inner().build(&ec2_at, app, &ssh, at.root)?;
            for role in ec2.roles.keys() {
                if !roles.contains(role) {
                    roles.push(role.clone());
                }
            }
            roles.sort();
            Some(ec2)
        }
        None => None,
    };
    if hosts.is_empty() && ssh_source.is_some() && roles.is_empty() {
        // The hosts are the file's `Host` entries, in role `all`.
        roles.push("all".to_string());
    }
    if hosts.is_empty() && ec2.is_none() && ssh_source.is_none() {
        return Err(at.error(at.offset, format!("env `{}` has no hosts", at.name))
            .with_help("add hosts = [\"user@host:port\"], an [env.<name>.ec2] table to create them on EC2, or vagrant = \"<dir>\" / ssh_config = \"<file>\""));
    }
    Ok(Env {
        rollout,
        name: at.name.to_string(),
        hosts,
        roles,
        role_order,
        vars: raw.vars,
        secrets_command: secrets_command(at, raw.secrets_command)?,
        secrets: raw.secrets.map(|s| at.root.join(s)),
        ssh,
        remote_env: raw.remote_env,
        playbook: raw.playbook,
        ec2,
        ssh_source,
    })
}

/// `secrets_command`, with where it is written (its errors point there); empty is an error.
fn secrets_command(
    at: &EnvAt,
    raw: Option<Spanned<String>>,
) -> Result<Option<crate::secrets::SecretsCommand>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let offset = raw.span().start;
    if raw.get_ref().trim().is_empty() {
        return Err(at
            .error(offset, "secrets_command is empty".into())
            .with_help("give the command that prints the secrets, e.g. secrets_command = \"op inject -i secrets.tpl\", or remove the key"));
    }
    let (line, col) = crate::error::line_col(at.text, offset);
    Ok(Some(crate::secrets::SecretsCommand {
        command: raw.into_inner(),
        dir: at.root.to_path_buf(),
        file: at.file.to_path_buf(),
        line,
        col,
    }))
}

/// The env's rollout settings; a percentage over 100 is an error at it.
fn rollout_of(at: &EnvAt, raw: &EnvFile) -> Result<Rollout, ConfigError> {
    if let Some(p) = raw
        .max_fail_percentage
        .as_ref()
        .filter(|p| *p.get_ref() > 100)
    {
        return Err(at
            .error(p.span().start, format!("env `{}`: max_fail_percentage {} is over 100", at.name, p.get_ref()))
            .with_help("write a percentage from 0 to 100 (the rollout stops after a batch in which more than that failed)"));
    }
    Ok(Rollout {
        serial: raw.serial.clone(),
        max_fail_percentage: raw.max_fail_percentage.as_ref().map(|p| *p.get_ref()),
        max_failures: raw.max_failures,
    })
}

/// One entry per host, with every role it is listed under, in the order each first appears
/// in the file; and each role's host names in the order written.
type Entries = (Vec<HostEntry>, BTreeMap<String, Vec<String>>);

fn host_entries(at: &EnvAt, hosts_def: &HostsDef) -> Result<Entries, ConfigError> {
    let name = at.name;
    // (first span start, entry): roles are a map, so file order comes from the spans.
    let mut hosts: Vec<(usize, HostEntry)> = Vec::new();
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (role, list) in &hosts_def.0 {
        for spanned in list {
            let def = spanned.get_ref();
            let h = &def.host;
            let addr = HostAddr::parse(h.get_ref()).map_err(|m| {
                at.error(h.span().start, format!("env `{name}`: {m}"))
                    .with_help("write hosts as \"host\", \"user@host\" or \"user@host:port\"")
            })?;
            let own_name = host_name(at, def)?;
            let entry = match hosts.iter_mut().find(|(_, e)| e.addr.name() == addr.name()) {
                Some((_, e)) if e.addr.user != addr.user => {
                    return Err(at.error(
                        h.span().start,
                        format!(
                            "env `{name}`: host {} is listed twice with different users",
                            addr.name()
                        ),
                    ));
                }
                Some((_, e)) => {
                    merge_listed_again(at, e, spanned, own_name)?;
                    e.roles.push(role.clone());
                    e
                }
                None => {
                    let mut e = HostEntry::new(addr, vec![role.clone()]);
                    e.name = own_name;
                    e.vars = def.vars.clone();
                    hosts.push((spanned.span().start, e));
                    &mut hosts.last_mut().expect("just pushed").1
                }
            };
            members
                .entry(role.clone())
                .or_default()
                .push(entry.addr.name());
        }
    }
    hosts.sort_by_key(|(at, _)| *at);
    let hosts: Vec<HostEntry> = hosts.into_iter().map(|(_, e)| e).collect();
    check_names_unique(at, &hosts, hosts_def)?;
    // Members were noted by address; a name given on a later entry applies to all of them.
    let by_addr: BTreeMap<String, String> =
        hosts.iter().map(|e| (e.addr.name(), e.name())).collect();
    for list in members.values_mut() {
        for m in list.iter_mut() {
            *m = by_addr[m.as_str()].clone();
        }
    }
    Ok((hosts, members))
}

/// The table form's `name`, checked like a role name (`--limit` takes either).
fn host_name(at: &EnvAt, def: &HostDef) -> Result<Option<String>, ConfigError> {
    let Some(n) = &def.name else {
        return Ok(None);
    };
    if !hosts::is_name(n.get_ref()) {
        return Err(at
            .error(
                n.span().start,
                format!(
                    "env `{}`: host name `{}` is not valid",
                    at.name,
                    n.get_ref()
                ),
            )
            .with_help(
                "a host name has no spaces or `,` (--limit takes a comma-separated list of names)",
            ));
    }
    Ok(Some(n.get_ref().clone()))
}

/// A host listed under several roles: its name and vars may be given on any one of its
/// entries, or repeated equal; two different ones are an error at the second.
fn merge_listed_again(
    at: &EnvAt,
    e: &mut HostEntry,
    spanned: &Spanned<HostDef>,
    own_name: Option<String>,
) -> Result<(), ConfigError> {
    let def = spanned.get_ref();
    let clash = |what: &str| {
        at.error(
            spanned.span().start,
            format!(
                "env `{}`: host {} is listed again with a different {what}",
                at.name,
                e.addr.name()
            ),
        )
        .with_help(format!(
            "give the {what} on one of its entries (it applies to the host in every role)"
        ))
    };
    match (&e.name, own_name) {
        (Some(a), Some(b)) if *a != b => return Err(clash("name")),
        (None, Some(b)) => e.name = Some(b),
        _ => {}
    }
    if !def.vars.is_empty() {
        if !e.vars.is_empty() && e.vars != def.vars {
            return Err(clash("vars"));
        }
        e.vars = def.vars.clone();
    }
    Ok(())
}

/// Two hosts cannot share a name: events, `--limit` and `hosts.<role>` would mix them up.
fn check_names_unique(
    at: &EnvAt,
    hosts: &[HostEntry],
    hosts_def: &HostsDef,
) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<String, &HostEntry> = BTreeMap::new();
    for e in hosts {
        if let Some(other) = seen.insert(e.name(), e) {
            let offset = name_span(hosts_def, &e.name()).unwrap_or(at.offset);
            return Err(at
                .error(
                    offset,
                    format!(
                        "env `{}`: hosts {} and {} are both named `{}`",
                        at.name,
                        other.addr.name(),
                        e.addr.name(),
                        e.name()
                    ),
                )
                .with_help("give each host its own name"));
        }
    }
    Ok(())
}

/// Where `name = "<n>"` is written, for the error about it.
fn name_span(hosts_def: &HostsDef, n: &str) -> Option<usize> {
    hosts_def
        .0
        .values()
        .flatten()
        .filter_map(|d| d.get_ref().name.as_ref())
        .filter(|s| s.get_ref() == n)
        .map(|s| s.span().start)
        .next_back()
}

/// `vagrant = "<dir>"` or `ssh_config = "<file>"`, never both.
fn ssh_source(at: &EnvAt, raw: &EnvFile) -> Result<Option<SshSource>, ConfigError> {
    Ok(match (&raw.vagrant, &raw.ssh_config) {
        (Some(_), Some(_)) => {
            return Err(at
                .error(
                    at.offset,
                    format!("env `{}` sets both `vagrant` and `ssh_config`", at.name),
                )
                .with_help(
                    "keep one: `vagrant` runs `vagrant ssh-config`, `ssh_config` reads a file",
                ));
        }
        (Some(dir), None) => Some(SshSource::Vagrant(at.root.join(dir))),
        (None, Some(f)) => Some(SshSource::File(at.root.join(f))),
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Project, ConfigError> {
        Project::parse(Path::new("provision.toml"), t)
    }

    #[test]
    fn parses_roles_and_lists() {
        let p = parse(
            r#"app = "demo"
[env.prod]
hosts = { web = ["deploy@10.0.0.1:2222", "10.0.0.2"], db = ["10.0.0.2"] }
secrets = "secrets/prod.env"
[env.stage]
hosts = ["a", "b:23"]
ssh = { user = "ops", become = true }
"#,
        )
        .unwrap();
        let prod = p.env("prod").unwrap();
        assert_eq!(prod.hosts.len(), 2);
        let h2 = prod
            .hosts
            .iter()
            .find(|h| h.addr.host == "10.0.0.2")
            .unwrap();
        assert_eq!(h2.roles, vec!["db", "web"]);
        let stage = p.env("stage").unwrap();
        assert_eq!(stage.ssh.user.as_deref(), Some("ops"));
        assert_eq!(stage.ssh.become_, Some(true));
        assert_eq!(stage.roles, vec!["all"]);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let e = parse("app = \"x\"\n[env.prod]\nhots = [\"a\"]\n").unwrap_err();
        assert_eq!((e.line, e.col), (Some(3), Some(1)));
        assert!(e.message.contains("unknown field `hots`"), "{e}");
    }

    #[test]
    fn bad_host_string_points_at_it() {
        let e = parse("app = \"x\"\n[env.prod]\nhosts = [\"ok\", \"bad host\"]\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("bad host"), "{e}");
    }

    #[test]
    fn host_tables_give_names_and_typed_vars_in_lists_and_roles() {
        let p = parse(
            r#"app = "demo"
[env.prod]
hosts = { web = ["10.0.0.9", { host = "deploy@10.0.0.5:22", name = "web1", vars = { weight = 2, tags = ["a"], tls = true } }], db = [{ host = "deploy@10.0.0.5:22", vars = { weight = 2, tags = ["a"], tls = true } }] }
[env.stage]
hosts = ["a", { host = "b:23", vars = { ratio = 0.5, t = { k = "v" } } }]
"#,
        )
        .unwrap();
        let prod = p.env("prod").unwrap();
        let web1 = prod.hosts.iter().find(|h| h.name() == "web1").unwrap();
        assert_eq!(web1.addr.user.as_deref(), Some("deploy"));
        assert_eq!(web1.roles, vec!["db", "web"]);
        assert_eq!(web1.vars["weight"].as_integer(), Some(2));
        assert_eq!(web1.vars["tls"].as_bool(), Some(true));
        // Written order per role, not name order; the name applies in every role.
        assert_eq!(prod.role_order["web"], vec!["10.0.0.9", "web1"]);
        assert_eq!(prod.role_order["db"], vec!["web1"]);
        let stage = p.env("stage").unwrap();
        let b = &stage.hosts[1];
        assert_eq!(
            (b.name(), b.vars["ratio"].as_float()),
            ("b:23".into(), Some(0.5))
        );
        assert_eq!(b.vars["t"]["k"].as_str(), Some("v"));
        assert!(stage.hosts[0].vars.is_empty());
    }

    #[test]
    fn bad_host_tables_point_at_line_and_column() {
        let at = |t: &str| {
            let e = parse(&format!("app = \"x\"\n[env.prod]\n{t}\n")).unwrap_err();
            (e.line, e.col, e.message)
        };
        let (line, col, m) = at(r#"hosts = ["a", { host = "b", wieght = 2 }]"#);
        assert_eq!((line, col), (Some(3), Some(29)), "{m}");
        assert!(m.contains("unknown field `wieght`"), "{m}");
        let (line, _, m) = at(r#"hosts = { web = [{ vars = { w = 1 } }] }"#);
        assert_eq!(line, Some(3));
        assert!(m.contains("missing field `host`"), "{m}");
        let (line, col, m) = at(r#"hosts = [{ host = "bad host" }]"#);
        assert_eq!((line, col), (Some(3), Some(19)), "{m}");
        assert!(m.contains("`bad host` is not a host"), "{m}");
        let (_, col, m) = at(r#"hosts = [{ host = "a", name = "web 1" }]"#);
        assert_eq!(col, Some(31), "{m}");
        assert!(m.contains("host name `web 1` is not valid"), "{m}");
        let (_, _, m) = at(r#"hosts = [{ host = "a", name = "w" }, { host = "b", name = "w" }]"#);
        assert!(m.contains("hosts a and b are both named `w`"), "{m}");
        let (_, _, m) = at(
            r#"hosts = { web = [{ host = "a", vars = { w = 1 } }], db = [{ host = "a", vars = { w = 2 } }] }"#,
        );
        assert!(
            m.contains("host a is listed again with a different vars"),
            "{m}"
        );
        let (_, _, m) = at(r#"hosts = [7]"#);
        assert!(m.contains("a host like"), "{m}");
    }

    #[test]
    fn missing_env_lists_known_ones() {
        let p = parse("app = \"x\"\n[env.prod]\nhosts = [\"a\"]\n").unwrap();
        let e = p.env("prd").unwrap_err();
        assert!(e.to_string().contains("environments defined: prod"));
    }

    #[test]
    fn rollout_settings_are_read_and_checked() {
        let p = parse(
            "app = \"x\"\n[env.prod]\nhosts = [\"a\"]\nserial = [1, \"50%\"]\nmax_failures = 2\n",
        )
        .unwrap();
        let r = &p.env("prod").unwrap().rollout;
        assert_eq!(r.serial, Some("1,50%".parse().unwrap()));
        assert_eq!(r.max_failures, Some(2));
        let e = parse("app = \"x\"\n[env.prod]\nhosts = [\"a\"]\nmax_fail_percentage = 150\n")
            .unwrap_err();
        assert_eq!((e.line, e.col), (Some(4), Some(23)), "{e}");
        assert!(e.message.contains("over 100"), "{e}");
        let e = parse("app = \"x\"\n[env.prod]\nhosts = [\"a\"]\nserial = \"lots\"\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }
}
