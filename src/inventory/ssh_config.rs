//! The few `~/.ssh/config` settings provision honours for a host alias: HostName, User, Port,
//! IdentityFile and ProxyJump (so `vagrant ssh-config >> ~/.ssh/config` just works).
//!
//! Parsing is done by `ssh2-config` in a lenient mode: options we do not use (or that the
//! crate does not know) are ignored, as OpenSSH would apply them to its own client only.

use std::fs::File;
use std::io::{BufReader, ErrorKind};
use std::path::{Path, PathBuf};

use ssh2_config::{ParseRule, SshConfig};

/// Settings found for one alias; `None`/empty when the file does not set them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SshConfigHost {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// In file order, across all matching `Host` blocks (IdentityFile accumulates); `~`
    /// expanded to `$HOME`.
    pub identity_files: Vec<PathBuf>,
    /// As written (`[user@]host[:port]`, comma-separated for a chain); `none` gives `None`.
    pub proxy_jump: Option<String>,
}

/// Look `alias` up in the ssh_config-format file at `path`. A missing file means no
/// settings. The error is one sentence naming the file (the parser gives no line numbers).
pub fn lookup(path: &Path, alias: &str) -> Result<SshConfigHost, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(SshConfigHost::default()),
        Err(e) => return Err(format!("cannot read ssh config {}: {e}", path.display())),
    };
    let config =
        parse(file).map_err(|e| format!("cannot parse ssh config {}: {e}", path.display()))?;
    Ok(settings_for(&config, alias))
}

/// [`lookup`] on ssh_config `text` instead of a file (for the fuzz targets and tests).
pub fn lookup_str(text: &str, alias: &str) -> Result<SshConfigHost, String> {
    let config =
        parse_reader(&mut text.as_bytes()).map_err(|e| format!("cannot parse ssh config: {e}"))?;
    Ok(settings_for(&config, alias))
}

/// Lenient: unknown and unsupported options are skipped, never an error.
fn parse(file: File) -> Result<SshConfig, ssh2_config::SshParserError> {
    parse_reader(&mut BufReader::new(file))
}

fn parse_reader(
    reader: &mut impl std::io::BufRead,
) -> Result<SshConfig, ssh2_config::SshParserError> {
    let mut config = SshConfig::default();
    // `~` in IdentityFile / Include expands to $HOME, like OpenSSH.
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        config = config.home_dir(home);
    }
    let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
    config.parse(reader, rules)
}

/// First value wins per option, as in OpenSSH; `%h` in HostName is the alias.
fn settings_for(config: &SshConfig, alias: &str) -> SshConfigHost {
    let params = config.query(alias);
    let proxy_jump = params
        .proxy_jump
        .map(|hops| hops.join(","))
        .filter(|j| !j.is_empty() && !j.eq_ignore_ascii_case("none"));
    SshConfigHost {
        host_name: params.host_name.map(|h| expand_host_tokens(&h, alias)),
        user: params.user,
        port: params.port,
        identity_files: params.identity_file.unwrap_or_default(),
        proxy_jump,
    }
}

/// `%h` (the alias) and `%%`: the only tokens commonly used in HostName.
fn expand_host_tokens(value: &str, alias: &str) -> String {
    value
        .replace("%%", "\0")
        .replace("%h", alias)
        .replace('\0', "%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    /// What `vagrant ssh-config` prints, plus a wildcard block and an option the parser
    /// does not know.
    const VAGRANT: &str = "\
Host default
  HostName 127.0.0.1
  User admin
  Port 2200
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /x/id_ed25519
  IdentitiesOnly yes
  LogLevel FATAL
  PubkeyAcceptedKeyTypes +ssh-rsa
  HostKeyAlgorithms +ssh-rsa
  SomeFutureOption yes

Host *.internal
  HostName %h.example.com
  ProxyJump admin@bastion:2222

Host *
  User fallback
  IdentityFile ~/.ssh/id_shared
  ServerAliveInterval 30
";

    #[test]
    fn vagrant_block_and_wildcard_merge() {
        let f = config_file(VAGRANT);
        let host = lookup(f.path(), "default").unwrap();
        let home = PathBuf::from(std::env::var("HOME").unwrap());
        assert_eq!(
            host,
            SshConfigHost {
                host_name: Some("127.0.0.1".into()),
                user: Some("admin".into()),
                port: Some(2200),
                identity_files: vec!["/x/id_ed25519".into(), home.join(".ssh/id_shared")],
                proxy_jump: None,
            }
        );
    }

    #[test]
    fn wildcard_only_hosts_get_the_star_block() {
        let f = config_file(VAGRANT);
        let host = lookup(f.path(), "web-1").unwrap();
        assert_eq!(host.user.as_deref(), Some("fallback"));
        assert_eq!(host.host_name, None);
        assert_eq!(host.port, None);
        let db = lookup(f.path(), "db.internal").unwrap();
        assert_eq!(db.host_name.as_deref(), Some("db.internal.example.com"));
        assert_eq!(db.proxy_jump.as_deref(), Some("admin@bastion:2222"));
    }

    #[test]
    fn proxy_jump_none_means_no_jump() {
        let f = config_file("Host a\n  ProxyJump none\nHost *\n  ProxyJump j1,j2\n");
        assert_eq!(lookup(f.path(), "a").unwrap().proxy_jump, None);
        assert_eq!(
            lookup(f.path(), "b").unwrap().proxy_jump.as_deref(),
            Some("j1,j2")
        );
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let host = lookup(&dir.path().join("nope"), "x").unwrap();
        assert_eq!(host, SshConfigHost::default());
    }

    #[test]
    fn bad_value_names_the_file() {
        let f = config_file("Host a\n  Port notanumber\n");
        let err = lookup(f.path(), "a").unwrap_err();
        assert!(err.contains(&f.path().display().to_string()), "{err}");
        assert!(err.starts_with("cannot parse ssh config"), "{err}");
    }
}
