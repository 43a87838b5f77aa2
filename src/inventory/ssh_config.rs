//! The few `~/.ssh/config` settings provision honours for a host alias: HostName, User, Port,
//! IdentityFile, ProxyJump, ProxyCommand and IdentityAgent (so `vagrant ssh-config >>
//! ~/.ssh/config` just works).
//!
//! Parsing is done by `ssh2-config` in a lenient mode: options we do not use (or that the
//! crate does not know) are ignored, as OpenSSH would apply them to its own client only.
//! `Match` blocks are not understood by the crate, which would attach their options to the
//! `Host` block before them: they are cut out first, each with a warning naming its line.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
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
    /// As written, tokens (`%h`, `%p`, `%r`) not yet expanded; `none` gives `None`.
    pub proxy_command: Option<String>,
    /// `IdentityAgent`: a socket path (`~` expanded), `SSH_AUTH_SOCK`, or `none`.
    pub identity_agent: Option<String>,
    /// What the file holds that provision does not apply (`Match` blocks), file:line each.
    pub warnings: Vec<String>,
}

/// Look `alias` up in the ssh_config-format file at `path`. A missing file means no
/// settings. The error is one sentence naming the file (the parser gives no line numbers).
pub fn lookup(path: &Path, alias: &str) -> Result<SshConfigHost, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(SshConfigHost::default()),
        Err(e) => return Err(format!("cannot read ssh config {}: {e}", path.display())),
    };
    let mut text = String::new();
    BufReader::new(file)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read ssh config {}: {e}", path.display()))?;
    let (kept, matches) = without_match_blocks(&text);
    let config = parse_reader(&mut kept.as_bytes())
        .map_err(|e| format!("cannot parse ssh config {}: {e}", path.display()))?;
    Ok(settings_for(
        &config,
        alias,
        &match_warnings(&path.display().to_string(), &matches),
    ))
}

/// [`lookup`] on ssh_config `text` instead of a file (for the fuzz targets and tests).
pub fn lookup_str(text: &str, alias: &str) -> Result<SshConfigHost, String> {
    let (kept, matches) = without_match_blocks(text);
    let config =
        parse_reader(&mut kept.as_bytes()).map_err(|e| format!("cannot parse ssh config: {e}"))?;
    Ok(settings_for(
        &config,
        alias,
        &match_warnings("ssh config", &matches),
    ))
}

/// A `Match` block cut out of the text: its line (1-based) and how many options it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MatchBlock {
    line: usize,
    options: usize,
}

/// The text with every `Match` block (its line up to the next `Host` or `Match`) blanked, so
/// line numbers stay and nothing of it reaches the previous `Host`; and where the blocks were.
fn without_match_blocks(text: &str) -> (String, Vec<MatchBlock>) {
    let mut kept = String::with_capacity(text.len());
    let mut blocks: Vec<MatchBlock> = Vec::new();
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let keyword = first_keyword(line);
        if keyword.eq_ignore_ascii_case("match") {
            inside = true;
            blocks.push(MatchBlock {
                line: i + 1,
                options: 0,
            });
        } else if keyword.eq_ignore_ascii_case("host") {
            inside = false;
        } else if inside
            && !keyword.is_empty()
            && let Some(b) = blocks.last_mut()
        {
            b.options += 1;
        }
        if !inside {
            kept.push_str(line);
        }
        kept.push('\n');
    }
    (kept, blocks)
}

/// The option name a line starts with (`Key value` or `Key=value`); empty for blank lines and
/// comments.
fn first_keyword(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with('#') {
        return "";
    }
    t.split(|c: char| c.is_whitespace() || c == '=')
        .next()
        .unwrap_or("")
}

fn match_warnings(file: &str, blocks: &[MatchBlock]) -> Vec<String> {
    blocks
        .iter()
        .map(|b| {
            format!(
                "{file}:{}: `Match` blocks are not supported: provision ignores this one and its {} option(s); write a `Host` block for the hosts it should apply to",
                b.line, b.options
            )
        })
        .collect()
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
fn settings_for(config: &SshConfig, alias: &str, warnings: &[String]) -> SshConfigHost {
    let params = config.query(alias);
    // The crate keeps options it does not apply itself as their words, first value winning.
    let unsupported = |key: &str| {
        (params.unsupported_fields.get(key))
            .map(|words| words.join(" "))
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"))
    };
    let identity_agent = params
        .unsupported_fields
        .get("identityagent")
        .map(|words| words.join(" "))
        .filter(|v| !v.is_empty());
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
        proxy_command: unsupported("proxycommand"),
        identity_agent,
        warnings: warnings.to_vec(),
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
                ..SshConfigHost::default()
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

    /// A `Match` block's options reach no host (the crate alone would give them to `Host a`),
    /// and each block is a warning naming its line.
    #[test]
    fn match_blocks_are_cut_out_with_a_warning() {
        let text = "Host a\n  User right\n\nMatch host a exec \"true\"\n  User wrong\n  Port 2222\n\nHost b\n  Port 2200\nmatch all\n  # a comment\n  User w2\n";
        let f = config_file(text);
        let a = lookup(f.path(), "a").unwrap();
        assert_eq!((a.user.as_deref(), a.port), (Some("right"), None));
        assert_eq!(lookup(f.path(), "b").unwrap().port, Some(2200));
        let file = f.path().display().to_string();
        assert_eq!(a.warnings.len(), 2, "{:?}", a.warnings);
        assert!(
            a.warnings[0].starts_with(&format!("{file}:4: `Match`")),
            "{:?}",
            a.warnings
        );
        assert!(
            a.warnings[0].contains("its 2 option(s)"),
            "{:?}",
            a.warnings
        );
        assert!(
            a.warnings[1].starts_with(&format!("{file}:10:")),
            "{:?}",
            a.warnings
        );
        assert!(
            lookup_str("Host a\n  User x\n", "a")
                .unwrap()
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn proxy_command_and_identity_agent_first_value_wins() {
        let text = "Host a\n  ProxyCommand nc -X connect %h %p\n  IdentityAgent ~/agent.sock\nHost *\n  ProxyCommand other %h\n  IdentityAgent none\n";
        let a = lookup_str(text, "a").unwrap();
        assert_eq!(a.proxy_command.as_deref(), Some("nc -X connect %h %p"));
        assert_eq!(a.identity_agent.as_deref(), Some("~/agent.sock"));
        let b = lookup_str(text, "b").unwrap();
        assert_eq!(b.proxy_command.as_deref(), Some("other %h"));
        assert_eq!(b.identity_agent.as_deref(), Some("none"));
        let none = lookup_str("Host c\n  ProxyCommand none\n", "c").unwrap();
        assert_eq!(none.proxy_command, None);
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
