//! `vagrant = "<dir>"` and `ssh_config = "<file>"` in an env: the connection settings (and,
//! without `hosts`, the hosts themselves) come from an ssh_config-format file. For Vagrant that
//! file is what `vagrant ssh-config` prints in the folder of the Vagrantfile, one `Host <machine>`
//! block per machine; provision saves it under `.provision/vagrant/<env>.ssh_config`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::{ConfigError, Env, HostAddr, HostEntry, Project, SshSource};

/// The ssh_config file for the env's source (running `vagrant ssh-config` for Vagrant).
pub fn config_file(project: &Project, env: &Env) -> Result<Option<PathBuf>, ConfigError> {
    match &env.ssh_source {
        None => Ok(None),
        Some(SshSource::File(path)) => {
            if !path.is_file() {
                return Err(ConfigError::new(
                    &project.file,
                    format!("env `{}`: ssh_config file {} cannot be read", env.name, path.display()),
                )
                .with_help("ssh_config is relative to the folder of provision.toml (e.g. the output of `vagrant ssh-config`)"));
            }
            Ok(Some(path.clone()))
        }
        Some(SshSource::Vagrant(dir)) => {
            let text = vagrant_ssh_config(dir).map_err(|m| {
                ConfigError::new(&project.file, format!("env `{}`: {m}", env.name)).with_help(
                    format!(
                        "run `vagrant up` in {} first (vagrant = \"<folder of the Vagrantfile>\")",
                        dir.display()
                    ),
                )
            })?;
            let cache = project.root.join(".provision/vagrant");
            let path = cache.join(format!("{}.ssh_config", env.name));
            std::fs::create_dir_all(&cache)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|e| {
                    ConfigError::new(
                        &project.file,
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?;
            Ok(Some(path))
        }
    }
}

/// `vagrant ssh-config` in `dir`: its output.
fn vagrant_ssh_config(dir: &Path) -> Result<String, String> {
    if !dir.join("Vagrantfile").is_file() {
        return Err(format!("no Vagrantfile in {}", dir.display()));
    }
    let out = Command::new("vagrant")
        .arg("ssh-config")
        .current_dir(dir)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `vagrant ssh-config` in {}: {e}", dir.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!(
            "`vagrant ssh-config` in {} failed ({}): {}",
            dir.display(),
            out.status,
            last.trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The hosts of an env without `hosts`: the file's `Host` entries (patterns with `*`, `?` or
/// `!` are settings for others, not hosts), in role `all`.
pub fn hosts_from(project: &Project, path: &Path) -> Result<Vec<HostEntry>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            &project.file,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mut hosts: Vec<HostEntry> = Vec::new();
    for name in host_names(&text) {
        let addr = HostAddr::parse(&name)
            .map_err(|m| ConfigError::new(path, format!("Host {name}: {m}")))?;
        if !hosts.iter().any(|h| h.addr == addr) {
            hosts.push(HostEntry::new(addr, vec!["all".to_string()]));
        }
    }
    if hosts.is_empty() {
        return Err(
            ConfigError::new(path, "no `Host` entries (other than patterns)").with_help(
                "list the machines as `Host <name>` blocks, or give hosts = [...] in the env",
            ),
        );
    }
    Ok(hosts)
}

/// Names on `Host` lines that are not patterns, in file order.
pub fn host_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let (key, rest) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some(kv) => kv,
            None => continue,
        };
        if !key.eq_ignore_ascii_case("host") {
            continue;
        }
        for word in rest.trim_start_matches([' ', '\t', '=']).split_whitespace() {
            let word = word.trim_matches('"');
            if !word.is_empty()
                && !word.contains(['*', '?', '!'])
                && !names.iter().any(|n| n == word)
            {
                names.push(word.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_skip_patterns_and_comments() {
        let text = "# Host commented\nHost app\n  HostName 127.0.0.1\n  Port 2200\n\nHost db web-* !x\nHost=\"quoted\"\nHost *\n  User vagrant\nMatch host foo\n";
        assert_eq!(host_names(text), vec!["app", "db", "quoted"]);
    }
}
