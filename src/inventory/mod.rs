//! From an environment to the hosts of a run: each host's roles and fully resolved
//! connection settings (host string, env `ssh` settings, then `~/.ssh/config`).

pub mod ssh_config;
pub mod vagrant;

use crate::config::{ConfigError, Env, HostAddr, Project, SshDef};
use crate::transport::{
    AgentSocket, BecomePassword, ConnectSpec, HostKeyPin, InlineKey, KnownHostsPolicy,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Environment variable read for a private key given as text (CI secrets), unless
/// `ssh.identity_env` names another.
pub const KEY_ENV: &str = "PROVISION_SSH_KEY";
/// Environment variable read for pinned host keys, one per line, unless `ssh.host_key_env`
/// names another.
pub const KNOWN_HOSTS_ENV: &str = "PROVISION_KNOWN_HOSTS";

/// What the command line adds to the config for connecting.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Ask for key passphrases on the terminal (a person is there: stdin is a TTY, no `CI`).
    pub allow_prompt: bool,
    /// A private key read from stdin (`--ssh-key-stdin`); wins over the environment.
    pub stdin_key: Option<Arc<str>>,
    /// The sudo password typed at `-K`'s prompt; wins over `ssh.become_password_env`.
    pub become_password: Option<Arc<str>>,
}

/// One host of the run.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub roles: Vec<String>,
    pub connect: ConnectSpec,
    /// The config's `vars = { ... }` for this host (`host.vars` in templates); empty for
    /// hosts from an ssh_config file or EC2.
    pub vars: toml::Table,
    /// What the ssh_config file read for this host holds that provision does not apply
    /// (`Match` blocks), file:line each: the commands print them as warnings.
    pub warnings: Vec<String>,
}

/// Resolve the env's hosts, keeping those that `limit` (comma-separated host names or roles)
/// selects.
pub fn resolve(
    project: &Project,
    env: &Env,
    limit: Option<&str>,
    allow_prompt: bool,
) -> Result<Vec<Host>, ConfigError> {
    let access = Access {
        allow_prompt,
        stdin_key: None,
        become_password: None,
    };
    resolve_with(project, env, limit, &access)
}

/// [`resolve`] with a key from stdin.
pub fn resolve_with(
    project: &Project,
    env: &Env,
    limit: Option<&str>,
    access: &Access,
) -> Result<Vec<Host>, ConfigError> {
    let allow_prompt = access.allow_prompt;
    let mut settings = Settings::new(project, &env.ssh, access)?;
    // `vagrant` / `ssh_config`: that file is the env's ssh_config, and its `Host` entries the
    // hosts when `hosts` is not given.
    let source = vagrant::config_file(project, env)?;
    let from_file = match &source {
        Some(path) if env.hosts.is_empty() => vagrant::hosts_from(project, path)?,
        _ => Vec::new(),
    };
    if source.is_some() {
        settings.ssh_config = source;
    }
    let mut hosts = Vec::new();
    for entry in env.hosts.iter().chain(&from_file) {
        let connect = settings.connect_spec(&entry.addr, allow_prompt, 0)?;
        hosts.push(Host {
            name: entry.name(),
            roles: entry.roles.clone(),
            connect,
            vars: entry.vars.clone(),
            warnings: settings.warnings.take().into_iter().collect(),
        });
    }
    // Roles are a map, so "as written" has no single order: sort by name for stable output.
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(limit) = limit {
        hosts = apply_limit(hosts, limit, &project.file)?;
    }
    Ok(hosts)
}

pub(crate) fn apply_limit(
    hosts: Vec<Host>,
    limit: &str,
    file: &Path,
) -> Result<Vec<Host>, ConfigError> {
    let wanted: Vec<&str> = limit
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for w in &wanted {
        let known = hosts.iter().any(|h| matches_limit(h, w));
        if !known {
            let names: Vec<_> = hosts.iter().map(|h| h.name.as_str()).collect();
            return Err(
                ConfigError::new(file, format!("--limit `{w}` matches no host or role"))
                    .with_help(format!("hosts: {}", names.join(", "))),
            );
        }
    }
    Ok(hosts
        .into_iter()
        .filter(|h| wanted.iter().any(|w| matches_limit(h, w)))
        .collect())
}

/// A host's name, its address (as resolved, or as written with its port) or one of its roles.
fn matches_limit(h: &Host, w: &str) -> bool {
    h.name == w || h.connect.name == w || h.connect.address == w || h.roles.iter().any(|r| r == w)
}

/// Whether `limit` (comma-separated host names, addresses or roles) selects `h`; unlike
/// [`resolve`], a word that matches no host is no error here.
pub fn in_limit(h: &Host, limit: &str) -> bool {
    limit
        .split(',')
        .map(str::trim)
        .any(|w| !w.is_empty() && matches_limit(h, w))
}

/// The env's `ssh` settings with defaults applied.
struct Settings<'a> {
    def: &'a SshDef,
    root: &'a Path,
    file: &'a Path,
    ssh_config: Option<PathBuf>,
    home: Option<PathBuf>,
    identity_key: Option<InlineKey>,
    pins: Vec<HostKeyPin>,
    become_password: Option<BecomePassword>,
    /// The ssh_config warnings of the host being resolved (and its jump hosts).
    warnings: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

/// The key given as text: stdin, else the environment variable (when set and not empty).
fn inline_key(
    file: &Path,
    def: &SshDef,
    access: &Access,
) -> Result<Option<InlineKey>, ConfigError> {
    let var = def.identity_env.as_deref().unwrap_or(KEY_ENV);
    let (source, text): (String, Arc<str>) = match &access.stdin_key {
        Some(text) => ("stdin (--ssh-key-stdin)".into(), text.clone()),
        None => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => (format!("${var}"), v.into()),
            _ => return Ok(None),
        },
    };
    crate::transport::ssh::check_inline_key(&text).map_err(|m| {
        ConfigError::new(file, format!("the SSH key from {source}: {m}"))
            .with_help("give the private key's whole text (`cat ~/.ssh/id_ed25519`), or that text base64-encoded")
    })?;
    Ok(Some(InlineKey { source, text }))
}

/// The sudo password: typed at `-K`'s prompt, else the variable `ssh.become_password_env`
/// names, which must then be set (a deploy that needs it would fail at its first sudo).
fn become_password(
    file: &Path,
    def: &SshDef,
    access: &Access,
) -> Result<Option<BecomePassword>, ConfigError> {
    if let Some(typed) = &access.become_password {
        return Ok(Some(BecomePassword(typed.clone())));
    }
    let Some(var) = def.become_password_env.as_deref() else {
        return Ok(None);
    };
    match std::env::var(var) {
        Ok(v) if v.contains('\n') => Err(ConfigError::new(
            file,
            format!("ssh.become_password_env: ${var} holds more than one line"),
        )
        .with_help("a sudo password is one line: set the variable to the password alone")),
        Ok(v) if !v.is_empty() => Ok(Some(BecomePassword(v.into()))),
        _ => Err(ConfigError::new(
            file,
            format!("ssh.become_password_env names ${var}, which is not set"),
        )
        .with_help(format!(
            "export {var} with the sudo password (in CI, a masked secret variable), or pass -K to type it"
        ))),
    }
}

/// Pins from `ssh.host_key` and the environment variable.
fn host_key_pins(file: &Path, def: &SshDef) -> Result<Vec<HostKeyPin>, ConfigError> {
    let help = "a pin is `SHA256:<fingerprint>` (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), `<key type> <base64 key>`, or a known_hosts line (ssh-keyscan)";
    let mut pins = Vec::new();
    for text in def.host_key.iter().flat_map(|h| h.to_vec()) {
        let pin = crate::transport::ssh::parse_pin(&text, "ssh.host_key")
            .map_err(|m| ConfigError::new(file, format!("ssh.host_key: {m}")).with_help(help))?;
        pins.extend(pin);
    }
    let var = def.host_key_env.as_deref().unwrap_or(KNOWN_HOSTS_ENV);
    if let Ok(text) = std::env::var(var) {
        let text = text.replace("\\n", "\n");
        for (i, line) in text.lines().enumerate() {
            let source = format!("${var}");
            let pin = crate::transport::ssh::parse_pin(line, &source).map_err(|m| {
                ConfigError::new(file, format!("${var} line {}: {m}", i + 1)).with_help(help)
            })?;
            pins.extend(pin);
        }
    }
    Ok(pins)
}

impl<'a> Settings<'a> {
    fn new(
        project: &'a Project,
        def: &'a SshDef,
        access: &Access,
    ) -> Result<Settings<'a>, ConfigError> {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| !h.as_os_str().is_empty());
        let ssh_config = match def.config.as_deref() {
            Some("none") => None,
            Some(p) => Some(expand(p, &project.root, home.as_deref())),
            None => home.as_ref().map(|h| h.join(".ssh/config")),
        };
        Ok(Settings {
            def,
            root: &project.root,
            file: &project.file,
            ssh_config,
            home,
            identity_key: inline_key(&project.file, def, access)?,
            pins: host_key_pins(&project.file, def)?,
            become_password: become_password(&project.file, def, access)?,
            warnings: Default::default(),
        })
    }

    /// Build the ConnectSpec for `addr`; `depth` guards against ProxyJump loops.
    fn connect_spec(
        &self,
        addr: &HostAddr,
        allow_prompt: bool,
        depth: usize,
    ) -> Result<ConnectSpec, ConfigError> {
        if depth > 3 {
            return Err(ConfigError::new(
                self.file,
                format!("jump hosts nest too deep at {}", addr.host),
            )
            .with_help("check ProxyJump in your ssh config for a loop"));
        }
        let cfg = match &self.ssh_config {
            Some(path) => {
                ssh_config::lookup(path, &addr.host).map_err(|m| ConfigError::new(path, m))?
            }
            None => ssh_config::SshConfigHost::default(),
        };
        self.warnings
            .borrow_mut()
            .extend(cfg.warnings.iter().cloned());
        let identity_files = self.identity_files(&cfg)?;
        // provision.toml's `jump` wins; from ssh_config, a ProxyCommand over its ProxyJump.
        let proxy_command = cfg
            .proxy_command
            .clone()
            .filter(|_| self.def.jump.is_none());
        let jump = match proxy_command {
            Some(_) => None,
            None => self.jump(&cfg, allow_prompt, depth)?,
        };
        let address = cfg.host_name.clone().unwrap_or_else(|| addr.host.clone());
        let port = addr.port.or(cfg.port).or(self.def.port).unwrap_or(22);
        let user = self.user(addr, &cfg);
        let proxy_command = proxy_command
            .map(|c| crate::transport::ssh::proxy::expand(&c, &address, port, &user, &addr.host));
        Ok(ConnectSpec {
            name: addr.name(),
            address,
            port,
            user,
            identity_files,
            identity_key: self.identity_key.clone(),
            identity_env: self.def.identity_env.clone(),
            host_keys: self.pins.clone(),
            known_hosts: self.def.known_hosts.unwrap_or(KnownHostsPolicy::Strict),
            project_known_hosts: self.project_known_hosts(),
            user_known_hosts: self.home.as_ref().map(|h| h.join(".ssh/known_hosts")),
            instance_id: None,
            connect_timeout: self
                .def
                .connect_timeout
                .map_or(Duration::from_secs(10), |d| d.0),
            retries: self.def.retries.unwrap_or(2),
            keepalive: self.def.keepalive.map_or(Duration::from_secs(15), |d| d.0),
            jump,
            proxy_command,
            forward_agent: self.forward_agent(&cfg)?,
            agent: self.agent(&cfg),
            become_user: self.become_user(),
            become_password: self.become_password.clone(),
            allow_prompt,
        })
    }

    /// The host string's user, then ssh_config's, the env's, `$USER`, root.
    fn user(&self, addr: &HostAddr, cfg: &ssh_config::SshConfigHost) -> String {
        addr.user
            .clone()
            .or(cfg.user.clone())
            .or(self.def.user.clone())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into())
    }

    /// The configured key files (or ssh_config's), each checked now: a key that cannot be
    /// read is a config error, found before any host is contacted.
    fn identity_files(&self, cfg: &ssh_config::SshConfigHost) -> Result<Vec<PathBuf>, ConfigError> {
        let files: Vec<PathBuf> = match &self.def.identity_file {
            Some(f) => f
                .to_vec()
                .iter()
                .map(|p| expand(p, self.root, self.home.as_deref()))
                .collect(),
            None => cfg.identity_files.clone(),
        };
        for key in &files {
            if let Err(e) = std::fs::File::open(key) {
                return Err(ConfigError::new(self.file, format!("identity file {} cannot be read: {e}", key.display()))
                    .with_help("fix ssh.identity_file (relative paths are from the folder of provision.toml) or its permissions"));
            }
            if let Err(why) = crate::transport::ssh::check_key_file(key) {
                return Err(ConfigError::new(
                    self.file,
                    format!("identity file {}: {why}", key.display()),
                )
                .with_help(format!(
                    "fix ssh.identity_file (an encrypted key's passphrase is read from {})",
                    crate::transport::ssh::PASSPHRASE_ENV
                )));
            }
        }
        Ok(files)
    }

    /// The jump host, resolved like a target. It applies to the targets, not to itself.
    fn jump(
        &self,
        cfg: &ssh_config::SshConfigHost,
        allow_prompt: bool,
        depth: usize,
    ) -> Result<Option<Box<ConnectSpec>>, ConfigError> {
        let jump = self
            .def
            .jump
            .clone()
            .or(cfg.proxy_jump.clone())
            .filter(|j| j != "none");
        let Some(j) = jump.filter(|_| depth == 0) else {
            return Ok(None);
        };
        let jaddr = HostAddr::parse(&j).map_err(|m| {
            ConfigError::new(self.file, format!("jump host: {m}"))
                .with_help("write ssh.jump as \"user@host:port\"")
        })?;
        Ok(Some(Box::new(self.connect_spec(
            &jaddr,
            allow_prompt,
            depth + 1,
        )?)))
    }

    /// ssh_config's `IdentityAgent`: `none`, `SSH_AUTH_SOCK` (the default), another
    /// `$VARIABLE` naming the socket, or a path (`~` expanded).
    fn agent(&self, cfg: &ssh_config::SshConfigHost) -> AgentSocket {
        let Some(v) = cfg.identity_agent.as_deref() else {
            return AgentSocket::Env;
        };
        if v.eq_ignore_ascii_case("none") {
            return AgentSocket::None;
        }
        match v.strip_prefix('$') {
            Some("SSH_AUTH_SOCK") => AgentSocket::Env,
            Some(var) => {
                std::env::var_os(var).map_or(AgentSocket::None, |p| AgentSocket::Path(p.into()))
            }
            None if v == "SSH_AUTH_SOCK" => AgentSocket::Env,
            None => AgentSocket::Path(expand(v, self.root, self.home.as_deref())),
        }
    }

    /// `ssh.forward_agent`: there must be an agent to forward, or the git clone that needs it
    /// would fail later with a less helpful "Permission denied".
    fn forward_agent(&self, cfg: &ssh_config::SshConfigHost) -> Result<bool, ConfigError> {
        if !self.def.forward_agent.unwrap_or(false) {
            return Ok(false);
        }
        if self.agent(cfg).path().is_none() {
            return Err(ConfigError::new(self.file, "ssh.forward_agent = true, but there is no agent to forward: SSH_AUTH_SOCK is not set (or IdentityAgent is none)")
                .with_help("start one (`eval $(ssh-agent)`) and add the key (`ssh-add`), or give the git step a key_secret instead"));
        }
        Ok(true)
    }

    fn project_known_hosts(&self) -> PathBuf {
        match &self.def.known_hosts_file {
            Some(p) => expand(p, self.root, self.home.as_deref()),
            None => self.root.join(".provision/known_hosts"),
        }
    }

    /// `sudo -n` to this user for every script, with `ssh.become`.
    fn become_user(&self) -> Option<String> {
        self.def.become_.unwrap_or(false).then(|| {
            self.def
                .become_user
                .clone()
                .unwrap_or_else(|| "root".into())
        })
    }
}

/// `~/x` → home/x; relative paths are relative to the project root.
fn expand(p: &str, root: &Path, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => root.join(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(extra: &str) -> Project {
        let text = format!(
            "app = \"demo\"\n[ssh]\nconfig = \"none\"\nuser = \"deploy\"\n{extra}\n[env.prod]\nhosts = {{ web = [\"10.0.0.1\", \"root@10.0.0.2:2222\"], db = [\"10.0.0.3\"] }}\n"
        );
        Project::parse(Path::new("/p/provision.toml"), &text).unwrap()
    }

    #[test]
    fn host_string_wins_over_env_settings() {
        let p = project("port = 2200");
        let hosts = resolve(&p, p.env("prod").unwrap(), None, false).unwrap();
        let h1 = &hosts[0].connect;
        assert_eq!((h1.user.as_str(), h1.port), ("deploy", 2200));
        let h2 = &hosts[1].connect;
        assert_eq!((h2.user.as_str(), h2.port), ("root", 2222));
        assert_eq!(
            h2.project_known_hosts,
            PathBuf::from("/p/.provision/known_hosts")
        );
        assert_eq!(h2.known_hosts, KnownHostsPolicy::Strict);
    }

    #[test]
    fn limit_by_role_and_name() {
        let p = project("");
        let env = p.env("prod").unwrap();
        let web = resolve(&p, env, Some("web"), false).unwrap();
        assert_eq!(web.len(), 2);
        let one = resolve(&p, env, Some("10.0.0.3"), false).unwrap();
        assert_eq!(one[0].roles, vec!["db"]);
        assert!(resolve(&p, env, Some("nope"), false).is_err());
    }

    #[test]
    fn named_hosts_keep_their_vars_and_are_limited_by_name_or_address() {
        let text = "app = \"demo\"\n[ssh]\nconfig = \"none\"\n[env.prod]\nhosts = [{ host = \"10.0.0.1:2222\", name = \"web1\", vars = { weight = 2 } }, \"10.0.0.2\"]\n";
        let p = Project::parse(Path::new("/p/provision.toml"), text).unwrap();
        let env = p.env("prod").unwrap();
        let hosts = resolve(&p, env, None, false).unwrap();
        assert_eq!(hosts[1].name, "web1");
        assert_eq!(hosts[1].connect.address, "10.0.0.1");
        assert_eq!(hosts[1].vars["weight"].as_integer(), Some(2));
        assert!(hosts[0].vars.is_empty());
        for limit in ["web1", "10.0.0.1:2222", "10.0.0.1"] {
            let one = resolve(&p, env, Some(limit), false).unwrap();
            assert_eq!(one.len(), 1, "{limit}");
            assert_eq!(one[0].name, "web1", "{limit}");
        }
    }

    #[test]
    fn jump_and_become() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let p = project(&format!(
            "jump = \"ops@bastion:2022\"\nbecome = true\nidentity_file = \"{}\"",
            key.display()
        ));
        let hosts = resolve(&p, p.env("prod").unwrap(), None, false).unwrap();
        let j = hosts[0].connect.jump.as_ref().unwrap();
        assert_eq!(
            (j.address.as_str(), j.port, j.user.as_str()),
            ("bastion", 2022, "ops")
        );
        assert!(j.jump.is_none());
        assert_eq!(hosts[0].connect.become_user.as_deref(), Some("root"));
        assert_eq!(hosts[0].connect.identity_files, vec![key.clone()]);
        let missing = project("identity_file = \"keys/nope\"");
        let e = resolve(&missing, missing.env("prod").unwrap(), None, false).unwrap_err();
        assert!(e.to_string().contains("/p/keys/nope cannot be read"), "{e}");
    }
}
