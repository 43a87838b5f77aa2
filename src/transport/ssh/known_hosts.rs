//! Host-key verification against OpenSSH `known_hosts` files.
//!
//! russh's own reader splits on single spaces and knows no wildcards or markers, so this is a
//! small reader of our own: whitespace-separated fields, `@revoked` / `@cert-authority`
//! markers, comma-separated patterns with `*`/`?` wildcards and `!` negation, `[host]:port`
//! forms and hashed `|1|salt|hash` names (HMAC-SHA1, as OpenSSH's `HashKnownHosts` writes them).
//! The user's file is only read; the project file is read and, under accept-new, appended to.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_encoding::base64::{Base64, Encoding};
use russh::keys::{Algorithm, HashAlg, PublicKey};
use sha1::Sha1;

use super::HostKey;
use crate::transport::{ConnectError, ConnectSpec, HostKeyPin, KnownHostsPolicy, PinnedKey};

/// Everything needed to judge the key a server offers, taken from a [`ConnectSpec`].
#[derive(Debug, Clone)]
pub(super) struct HostKeyCheck {
    /// Names looked up in the files, most specific first: `[addr]:port` (or `addr` on port 22),
    /// then the same for the inventory name when it differs from the address.
    lookup: Vec<String>,
    /// How the host is named in error messages.
    display: String,
    policy: KnownHostsPolicy,
    user_file: Option<PathBuf>,
    project_file: PathBuf,
    /// The pins that apply to this host; when any does, they alone decide.
    pins: Vec<HostKeyPin>,
}

/// One known_hosts line that names the host.
#[derive(Debug, Clone)]
struct Entry {
    revoked: bool,
    key: PublicKey,
    file: PathBuf,
    line: usize,
}

/// Serialises "check again, then append" on the project file so parallel connects to one new
/// host (a shared jump host, say) pin it once.
static PIN_LOCK: Mutex<()> = Mutex::new(());

impl HostKeyCheck {
    pub(super) fn new(spec: &ConnectSpec) -> Self {
        let mut lookup = vec![host_token(&spec.address, spec.port)];
        if !spec.name.is_empty() && spec.name != spec.address {
            lookup.push(host_token(&spec.name, spec.port));
        }
        let display = if lookup.len() > 1 {
            format!("{} ({})", spec.name, lookup[0])
        } else {
            lookup[0].clone()
        };
        let pins = spec
            .host_keys
            .iter()
            .filter(|p| {
                p.hosts
                    .as_deref()
                    .is_none_or(|pat| lookup.iter().any(|n| hosts_match(pat, n)))
            })
            .cloned()
            .collect();
        HostKeyCheck {
            lookup,
            display,
            policy: spec.known_hosts,
            user_file: spec.user_known_hosts.clone(),
            project_file: spec.project_known_hosts.clone(),
            pins,
        }
    }

    /// Key algorithms already recorded for this host, so the connection can ask the server
    /// for one of those first (as OpenSSH does) instead of tripping over a key type we
    /// have never seen.
    pub(super) fn known_algorithms(&self) -> Vec<Algorithm> {
        let mut algos: Vec<Algorithm> = Vec::new();
        if !self.pins.is_empty() {
            for pin in &self.pins {
                if let PinnedKey::Key(HostKey(key)) = &pin.key
                    && !algos.contains(&key.algorithm())
                {
                    algos.push(key.algorithm());
                }
            }
            return algos;
        }
        for entry in self.entries() {
            let algo = entry.key.algorithm();
            if !entry.revoked && !algos.contains(&algo) {
                algos.push(algo);
            }
        }
        algos
    }

    /// Accept or refuse `offered`. Under accept-new an unknown host is pinned in the project
    /// file; a changed or revoked key is refused whatever the policy.
    pub(super) fn verify(&self, offered: &PublicKey) -> Result<(), ConnectError> {
        if !self.pins.is_empty() {
            return self.verify_pinned(offered);
        }
        match self.judge(offered, &self.entries())? {
            true => Ok(()),
            false if self.policy == KnownHostsPolicy::AcceptNew => self.pin(offered),
            false => Err(ConnectError::HostKeyUnknown {
                host: self.display.clone(),
                fingerprint: fingerprint(offered),
                known_hosts: self.project_file.display().to_string(),
            }),
        }
    }

    /// Pinned: one of the pins must name exactly this key; the files are not read.
    fn verify_pinned(&self, offered: &PublicKey) -> Result<(), ConnectError> {
        let fp = fingerprint(offered);
        let matches = |pin: &HostKeyPin| match &pin.key {
            PinnedKey::Fingerprint(f) => *f == fp,
            PinnedKey::Key(HostKey(k)) => same_key(k, offered),
        };
        if self.pins.iter().any(matches) {
            return Ok(());
        }
        let shown = |pin: &HostKeyPin| match &pin.key {
            PinnedKey::Fingerprint(f) => f.clone(),
            PinnedKey::Key(HostKey(k)) => format!("{} {}", k.algorithm(), fingerprint(k)),
        };
        let mut origins: Vec<&str> = self.pins.iter().map(|p| p.source.as_str()).collect();
        origins.dedup();
        Err(ConnectError::HostKeyNotPinned {
            host: self.display.clone(),
            offered: format!("{} {fp}", offered.algorithm()),
            pinned: self.pins.iter().map(shown).collect::<Vec<_>>().join(", "),
            origin: origins.join(", "),
        })
    }

    /// `Ok(true)` known and matching, `Ok(false)` unknown, `Err` revoked or changed.
    /// Entries of another key type do not count as a change: the server may hold several
    /// keys and offered a type we have not recorded.
    fn judge(&self, offered: &PublicKey, entries: &[Entry]) -> Result<bool, ConnectError> {
        if let Some(e) = entries
            .iter()
            .find(|e| e.revoked && same_key(&e.key, offered))
        {
            return Err(self.changed(e, "a key marked @revoked".into(), offered));
        }
        let live = || entries.iter().filter(|e| !e.revoked);
        if live().any(|e| same_key(&e.key, offered)) {
            return Ok(true);
        }
        match live().find(|e| e.key.algorithm() == offered.algorithm()) {
            Some(e) => Err(self.changed(e, fingerprint(&e.key), offered)),
            None => Ok(false),
        }
    }

    fn changed(&self, e: &Entry, expected: String, offered: &PublicKey) -> ConnectError {
        ConnectError::HostKeyChanged {
            host: self.display.clone(),
            expected,
            offered: fingerprint(offered),
            file: e.file.display().to_string(),
            line: e.line,
        }
    }

    /// All entries naming this host, user file first.
    fn entries(&self) -> Vec<Entry> {
        let mut entries = Vec::new();
        for file in self.user_file.iter().chain([&self.project_file]) {
            entries.extend(read_entries(file, &self.lookup));
        }
        entries
    }

    /// Append the offered key to the project file. Re-checks under a lock first: another task
    /// may have pinned (or seen a different key for) the host meanwhile.
    fn pin(&self, offered: &PublicKey) -> Result<(), ConnectError> {
        let _guard = PIN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let project = read_entries(&self.project_file, &self.lookup);
        if self.judge(offered, &project)? {
            return Ok(());
        }
        let line = format!("{} {}\n", self.lookup[0], key_text(offered));
        append_line(&self.project_file, &line).map_err(|e| ConnectError::KeyFile {
            path: self.project_file.display().to_string(),
            reason: format!("cannot record the host key of {}: {e}", self.display),
        })
    }
}

/// Parse one pin: `SHA256:<fingerprint>`, `<key type> <base64>` (both for every host), or a
/// known_hosts line `<host patterns> <key type> <base64>` / `<host patterns> SHA256:<fp>`.
/// `Ok(None)` for blank lines and `#` comments.
pub fn parse_pin(line: &str, source: &str) -> Result<Option<HostKeyPin>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields[0].starts_with('@') {
        return Err(format!(
            "`{}` lines are not supported as a pin; give the host's own key",
            fields[0]
        ));
    }
    let is_fp = |f: &str| f.starts_with("SHA256:") || f.starts_with("MD5:");
    let is_type = |f: &str| {
        ["ssh-", "ecdsa-", "sk-", "rsa-"]
            .iter()
            .any(|p| f.starts_with(p))
    };
    let (hosts, rest) = if is_type(fields[0]) || is_fp(fields[0]) {
        (None, &fields[..])
    } else {
        (Some(fields[0].to_string()), &fields[1..])
    };
    let key = match rest {
        [fp, ..] if fp.starts_with("SHA256:") => {
            let b64 = fp["SHA256:".len()..].trim_end_matches('=');
            let ok = Base64::decode_vec(&format!("{b64}=")).is_ok_and(|bytes| bytes.len() == 32);
            if !ok {
                return Err(format!(
                    "`{fp}` is not a SHA256 fingerprint as `ssh-keygen -lf` prints it"
                ));
            }
            PinnedKey::Fingerprint(format!("SHA256:{b64}"))
        }
        [fp, ..] if is_fp(fp) => {
            return Err(format!(
                "`{fp}`: only SHA256 fingerprints are accepted (`ssh-keygen -l -E sha256 -f <key>.pub`)"
            ));
        }
        [kt, b64, ..] if is_type(kt) => {
            let key = russh::keys::parse_public_key_base64(b64)
                .map_err(|e| format!("the {kt} key is not valid base64 key data ({e})"))?;
            PinnedKey::Key(HostKey(key))
        }
        _ => {
            return Err("expected `SHA256:<fingerprint>`, `<key type> <base64 key>` or a known_hosts line `<hosts> <key type> <base64 key>`".into());
        }
    };
    Ok(Some(HostKeyPin {
        hosts,
        key,
        source: source.to_string(),
    }))
}

/// `host` on port 22, `[host]:port` otherwise: how OpenSSH names a host in known_hosts.
fn host_token(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub(super) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Comments are not part of a key's identity.
fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// `keytype base64`, without a comment.
fn key_text(key: &PublicKey) -> String {
    let text = key.to_openssh().unwrap_or_default();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One `write` of the whole line on an O_APPEND file, so concurrent appenders (other tasks or
/// other provision processes) never interleave within a line.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let needs_newline = std::fs::read(path)
        .map(|b| b.last().is_some_and(|&c| c != b'\n'))
        .unwrap_or(false);
    let text = if needs_newline {
        format!("\n{line}")
    } else {
        line.to_string()
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Remove the keys provision pinned for these hosts (`(address, port)`) from the project
/// known_hosts file: the lines it wrote itself, whose host field is exactly the host's
/// `[addr]:port` (or `addr`) name. For `down`: a cloud address is handed to another machine
/// later, whose key would then be refused as "changed". Other lines (hand-written patterns,
/// hashed names, comments) are kept as they are. The file is replaced by rename, never left
/// half-written. Returns how many lines went.
pub fn forget_pins(file: &Path, hosts: &[(String, u16)]) -> std::io::Result<usize> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let names: Vec<String> = hosts.iter().map(|(a, p)| host_token(a, *p)).collect();
    let mut removed = 0;
    let mut kept = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let first = line.split_whitespace().next().unwrap_or("");
        if names.iter().any(|n| n == first) {
            removed += 1;
        } else {
            kept.push_str(line);
        }
    }
    if removed > 0 {
        let tmp = file.with_extension(format!("provision-tmp-{}", std::process::id()));
        std::fs::write(&tmp, kept)?;
        std::fs::rename(&tmp, file)?;
    }
    Ok(removed)
}

/// Entries of `file` matching any of `lookup`. A missing or unreadable file has no entries;
/// malformed lines are skipped, as OpenSSH does.
fn read_entries(file: &Path, lookup: &[String]) -> Vec<Entry> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if let Some((revoked, key)) = parse_line(raw, lookup) {
            entries.push(Entry {
                revoked,
                key,
                file: file.to_path_buf(),
                line: i + 1,
            });
        }
    }
    entries
}

/// The entries of known_hosts `text` that name one of `lookup`, as `(line, revoked, key
/// fingerprint)`: the reader used for host-key checks, exposed for the fuzz targets.
pub fn entries_in(text: &str, lookup: &[String]) -> Vec<(usize, bool, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            parse_line(raw, lookup).map(|(revoked, key)| (i + 1, revoked, fingerprint(&key)))
        })
        .collect()
}

/// `Some((revoked, key))` when the line names one of `lookup`. `@cert-authority` lines are
/// skipped: host certificates are not negotiated.
fn parse_line(raw: &str, lookup: &[String]) -> Option<(bool, PublicKey)> {
    let mut fields = raw.split_whitespace().peekable();
    if fields.peek()?.starts_with('#') {
        return None;
    }
    let mut revoked = false;
    if let Some(marker) = fields.next_if(|f| f.starts_with('@')) {
        match marker {
            "@revoked" => revoked = true,
            _ => return None,
        }
    }
    let patterns = fields.next()?;
    let _keytype = fields.next()?;
    let key = fields.next()?;
    if !lookup.iter().any(|name| hosts_match(patterns, name)) {
        return None;
    }
    let key = russh::keys::parse_public_key_base64(key).ok()?;
    Some((revoked, key))
}

/// OpenSSH pattern-list semantics: some positive pattern matches and no negated one does.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pat in patterns.split(',') {
        if let Some(neg) = pat.strip_prefix('!') {
            if glob_match(&neg.to_ascii_lowercase(), name) {
                return false;
            }
        } else if pat.starts_with("|1|") {
            matched |= hashed_match(pat, name);
        } else {
            matched |= glob_match(&pat.to_ascii_lowercase(), name);
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
fn hashed_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.trim_start_matches("|1|").splitn(2, '|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (Base64::decode_vec(salt), Base64::decode_vec(hash)) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` (any run) and `?` (one char) wildcards over the whole string.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";

    #[test]
    fn forget_pins_removes_only_the_exact_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let text = format!(
            "# hand-written\n[10.0.0.5]:22022 ssh-ed25519 {KEY_A}\n10.0.0.6 ssh-ed25519 {KEY_A}\n[10.0.0.*]:22022 ssh-ed25519 {KEY_A}\n[10.0.0.50]:22022 ssh-ed25519 {KEY_A}\n10.0.0.6,web ssh-ed25519 {KEY_A}"
        );
        std::fs::write(&file, &text).unwrap();
        let hosts = [
            ("10.0.0.5".to_string(), 22022),
            ("10.0.0.6".to_string(), 22),
        ];
        assert_eq!(forget_pins(&file, &hosts).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!(
                "# hand-written\n[10.0.0.*]:22022 ssh-ed25519 {KEY_A}\n[10.0.0.50]:22022 ssh-ed25519 {KEY_A}\n10.0.0.6,web ssh-ed25519 {KEY_A}"
            )
        );
        assert_eq!(forget_pins(&file, &hosts).unwrap(), 0);
        assert_eq!(forget_pins(&dir.path().join("none"), &hosts).unwrap(), 0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn glob_and_negation() {
        assert!(glob_match("[127.0.0.*]:2222", "[127.0.0.1]:2222"));
        assert!(glob_match("*.example.com", "a.b.example.com"));
        assert!(glob_match("web-?", "web-1"));
        assert!(!glob_match("web-?", "web-10"));
        assert!(!glob_match("*.example.com", "example.com"));
        assert!(hosts_match(
            "*.example.com,!bad.example.com",
            "ok.example.com"
        ));
        assert!(!hosts_match(
            "*.example.com,!bad.example.com",
            "bad.example.com"
        ));
        assert!(hosts_match("Alias,10.0.0.1", "10.0.0.1"));
    }

    #[test]
    fn parses_tabs_markers_and_comments() {
        let names = vec!["[10.0.0.1]:2222".to_string()];
        let line = format!("[10.0.0.1]:2222\tssh-ed25519\t{KEY_A}\tcomment");
        assert!(matches!(parse_line(&line, &names), Some((false, _))));
        let line = format!("@revoked [10.0.0.*]:2222 ssh-ed25519 {KEY_A}");
        assert!(matches!(parse_line(&line, &names), Some((true, _))));
        let line = format!("@cert-authority * ssh-ed25519 {KEY_A}");
        assert!(parse_line(&line, &names).is_none());
        assert!(parse_line(&format!("# [10.0.0.1]:2222 ssh-ed25519 {KEY_A}"), &names).is_none());
        assert!(parse_line(&format!("10.0.0.1 ssh-ed25519 {KEY_A}"), &names).is_none());
    }

    #[test]
    fn hashed_names_match_their_host_only() {
        // Built like OpenSSH does: HMAC-SHA1 keyed with the salt over the host token.
        let salt = [7u8; 20];
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt).unwrap();
        mac.update(b"[10.0.0.1]:2222");
        let hash = mac.finalize().into_bytes();
        let pat = format!(
            "|1|{}|{}",
            Base64::encode_string(&salt),
            Base64::encode_string(&hash)
        );
        assert!(hosts_match(&pat, "[10.0.0.1]:2222"));
        assert!(!hosts_match(&pat, "[10.0.0.2]:2222"));
    }

    #[test]
    fn pins_parse_in_every_form() {
        let fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        let p = parse_pin(fp, "x").unwrap().unwrap();
        assert_eq!(p.hosts, None);
        assert_eq!(p.key, PinnedKey::Fingerprint(fp.into()));
        let p = parse_pin(&format!("ssh-ed25519 {KEY_A} comment"), "x")
            .unwrap()
            .unwrap();
        assert!(matches!(p.key, PinnedKey::Key(_)) && p.hosts.is_none());
        let p = parse_pin(&format!("[10.0.0.1]:2222,web ssh-ed25519 {KEY_A}"), "x")
            .unwrap()
            .unwrap();
        assert_eq!(p.hosts.as_deref(), Some("[10.0.0.1]:2222,web"));
        let p = parse_pin(&format!("web {fp}="), "x").unwrap().unwrap();
        assert_eq!(p.key, PinnedKey::Fingerprint(fp.into()));
        assert!(parse_pin("  # comment", "x").unwrap().is_none());
        assert!(parse_pin("", "x").unwrap().is_none());
        assert!(parse_pin("MD5:aa:bb", "x").unwrap_err().contains("SHA256"));
        assert!(parse_pin("SHA256:short", "x").is_err());
        assert!(parse_pin("ssh-ed25519 notbase64!", "x").is_err());
        assert!(parse_pin(&format!("@revoked * ssh-ed25519 {KEY_A}"), "x").is_err());
        assert!(parse_pin("justonefield", "x").is_err());
    }

    #[test]
    fn host_token_uses_brackets_off_port_22() {
        assert_eq!(host_token("Example.COM", 22), "example.com");
        assert_eq!(host_token("10.0.0.1", 2200), "[10.0.0.1]:2200");
    }
}
