//! Host-key verification against OpenSSH `known_hosts` files.
//!
//! russh's own reader splits on single spaces and knows no wildcards or markers, so this is a
//! small reader of our own: whitespace-separated fields, `@revoked` / `@cert-authority`
//! markers, comma-separated patterns with `*`/`?` wildcards and `!` negation, `[host]:port`
//! forms and hashed `|1|salt|hash` names (HMAC-SHA1, as OpenSSH's `HashKnownHosts` writes them).
//! The user's file is only read; the project file is read and, under accept-new, appended to.
//!
//! A key pinned for a machine with an identity of its own (an EC2 instance id) carries it in
//! the line's comment, `[addr]:port ssh-ed25519 AAAA… provision:instance=i-0abc`, which
//! OpenSSH ignores. Wherever that machine shows up later, its own pin decides and moves to
//! the new address: a cloud changes addresses on stop/start, never instance ids.

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
    /// The machine's own id ([`ConnectSpec::instance_id`]), when it is one we can record.
    instance: Option<String>,
}

/// How a line's comment names the instance the key was pinned for.
const INSTANCE_MARK: &str = "provision:instance=";

/// One known_hosts line that names the host.
#[derive(Debug, Clone)]
struct Entry {
    revoked: bool,
    /// The host patterns field as written.
    hosts: String,
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
        // An id with blanks in it could not be written into one known_hosts field.
        let instance = (spec.instance_id.as_deref())
            .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
            .map(str::to_string);
        let display = display_name(spec, &lookup, instance.as_deref());
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
            instance,
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
        for entry in self.entries().into_iter().chain(self.own_entries()) {
            let algo = entry.key.algorithm();
            if !entry.revoked && !algos.contains(&algo) {
                algos.push(algo);
            }
        }
        algos
    }

    /// Accept or refuse `offered`. Under accept-new an unknown host is pinned in the project
    /// file; a changed or revoked key is refused whatever the policy. An instance's own pin
    /// of the offered key's type decides before its address does.
    pub(super) fn verify(&self, offered: &PublicKey) -> Result<(), ConnectError> {
        if !self.pins.is_empty() {
            return self.verify_pinned(offered);
        }
        let entries = self.entries();
        let own: Vec<Entry> = (self.own_entries().into_iter())
            .filter(|e| e.key.algorithm() == offered.algorithm())
            .collect();
        if !own.is_empty() {
            return self.verify_own(offered, &entries, &own);
        }
        match self.judge(offered, &entries)? {
            true => {
                self.adopt(offered);
                Ok(())
            }
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

    /// The instance's own pins (of the offered key's type) decide, whatever its address
    /// says: the address may have been another machine's. A revoked key is still refused.
    fn verify_own(
        &self,
        offered: &PublicKey,
        entries: &[Entry],
        own: &[Entry],
    ) -> Result<(), ConnectError> {
        self.refuse_revoked(offered, entries)?;
        if own.iter().any(|e| same_key(&e.key, offered)) {
            self.move_pin(offered, own);
            return Ok(());
        }
        Err(self.changed(&own[0], fingerprint(&own[0].key), offered))
    }

    fn refuse_revoked(&self, offered: &PublicKey, entries: &[Entry]) -> Result<(), ConnectError> {
        match entries
            .iter()
            .find(|e| e.revoked && same_key(&e.key, offered))
        {
            Some(e) => Err(self.changed(e, "a key marked @revoked".into(), offered)),
            None => Ok(()),
        }
    }

    /// `Ok(true)` known and matching, `Ok(false)` unknown, `Err` revoked or changed.
    /// Entries of another key type do not count as a change: the server may hold several
    /// keys and offered a type we have not recorded.
    fn judge(&self, offered: &PublicKey, entries: &[Entry]) -> Result<bool, ConnectError> {
        self.refuse_revoked(offered, entries)?;
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

    /// The project file's lines pinned for this instance, wherever they say it is.
    fn own_entries(&self) -> Vec<Entry> {
        match &self.instance {
            Some(id) => read_own(&self.project_file, id),
            None => Vec::new(),
        }
    }

    /// The verified key's pin follows the instance to its current address: its lines
    /// elsewhere go (that address is the cloud's to hand on), and so does a line of another
    /// key of this type left at the new address by the machine that had it before. Best
    /// effort: the key is verified either way, and an unmoved pin still decides next time.
    fn move_pin(&self, offered: &PublicKey, own: &[Entry]) {
        let here = &self.lookup[0];
        if own
            .iter()
            .any(|e| e.hosts == *here && same_key(&e.key, offered))
        {
            return;
        }
        let Some(id) = self.instance.as_deref() else {
            return;
        };
        let _guard = PIN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let stale = |l: &Fields<'_>| {
            l.instance == Some(id)
                || (l.patterns == here
                    && l.key().is_some_and(|k| {
                        k.algorithm() == offered.algorithm() && !same_key(&k, offered)
                    }))
        };
        let line = pin_line(here, offered, Some(id));
        let _ = rewrite(&self.project_file, |l| !stale(l), &line);
    }

    /// Accepted by its address: record the key for the instance too, so it is still known
    /// after the address changes. Best effort, as [`Self::move_pin`].
    fn adopt(&self, offered: &PublicKey) {
        let Some(id) = self.instance.as_deref() else {
            return;
        };
        let _guard = PIN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let own = read_own(&self.project_file, id);
        if !own.iter().any(|e| same_key(&e.key, offered)) {
            let _ = append_line(
                &self.project_file,
                &pin_line(&self.lookup[0], offered, Some(id)),
            );
        }
    }

    /// Append the offered key to the project file. Re-checks under a lock first: another task
    /// may have pinned (or seen a different key for) the host meanwhile.
    fn pin(&self, offered: &PublicKey) -> Result<(), ConnectError> {
        let guard = PIN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let project = read_entries(&self.project_file, &self.lookup);
        if self.judge(offered, &project)? {
            // Pinned meanwhile for the address (another instance behind it, say): this
            // instance still needs its own line.
            drop(guard);
            self.adopt(offered);
            return Ok(());
        }
        let line = pin_line(&self.lookup[0], offered, self.instance.as_deref());
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

/// `name ([addr]:port)`, or just the address; an instance's id is named too (unless it is
/// the name), so a refusal says which machine it was about.
fn display_name(spec: &ConnectSpec, lookup: &[String], instance: Option<&str>) -> String {
    let mut about: Vec<&str> = instance.filter(|id| *id != spec.name).into_iter().collect();
    if lookup.len() > 1 {
        about.push(&lookup[0]);
    }
    let base = if lookup.len() > 1 {
        &spec.name
    } else {
        &lookup[0]
    };
    match about.is_empty() {
        true => base.clone(),
        false => format!("{base} ({})", about.join(", ")),
    }
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

/// The line provision writes for `host`: `<host> <keytype> <base64>`, with the instance's
/// marker as the comment when the host is an instance.
fn pin_line(host: &str, key: &PublicKey, instance: Option<&str>) -> String {
    match instance {
        Some(id) => format!("{host} {} {INSTANCE_MARK}{id}\n", key_text(key)),
        None => format!("{host} {}\n", key_text(key)),
    }
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

/// Remove the keys provision pinned for these hosts (`(address, port)`) and these instances
/// (ids) from the project known_hosts file: the lines it wrote itself, whose host field is
/// exactly the host's `[addr]:port` (or `addr`) name and that name no other instance, and the
/// lines pinned for one of `instances` wherever they are. For `down`: a cloud address is
/// handed to another machine later, whose key would then be refused as "changed". Other lines
/// (hand-written patterns, hashed names, markers, comments) are kept as they are. Returns how
/// many lines went.
pub fn forget_pins(
    file: &Path,
    hosts: &[(String, u16)],
    instances: &[String],
) -> std::io::Result<usize> {
    let names: Vec<String> = hosts.iter().map(|(a, p)| host_token(a, *p)).collect();
    let gone = |l: &Fields<'_>| match l.instance {
        Some(id) => instances.iter().any(|i| i == id),
        None => !l.revoked && names.iter().any(|n| n == l.patterns),
    };
    rewrite(file, |l| !gone(l), "")
}

/// Replace `file` with its lines that `keep` (lines that are no entry are always kept) plus
/// `append`, by rename: never left half-written. Untouched when nothing goes and nothing is
/// added. Returns how many lines went; a missing file has none.
fn rewrite(
    file: &Path,
    keep: impl Fn(&Fields<'_>) -> bool,
    append: &str,
) -> std::io::Result<usize> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    let mut kept = String::with_capacity(text.len() + append.len());
    for line in text.split_inclusive('\n') {
        if fields(line).is_none_or(|f| keep(&f)) {
            kept.push_str(line);
        } else {
            removed += 1;
        }
    }
    if removed == 0 && append.is_empty() {
        return Ok(0);
    }
    if !append.is_empty() && !kept.is_empty() && !kept.ends_with('\n') {
        kept.push('\n');
    }
    kept.push_str(append);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("provision-tmp-{}", std::process::id()));
    std::fs::write(&tmp, kept)?;
    std::fs::rename(&tmp, file)?;
    Ok(removed)
}

/// The live lines of `file` pinned for instance `id`, whatever host they name.
fn read_own(file: &Path, id: &str) -> Vec<Entry> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let Some(f) = fields(raw).filter(|f| !f.revoked && f.instance == Some(id)) else {
            continue;
        };
        if let Some(key) = f.key() {
            entries.push(Entry {
                revoked: false,
                hosts: f.patterns.to_string(),
                key,
                file: file.to_path_buf(),
                line: i + 1,
            });
        }
    }
    entries
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
                hosts: fields(raw).map_or_else(String::new, |f| f.patterns.to_string()),
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

/// `Some((revoked, key))` when the line names one of `lookup`.
fn parse_line(raw: &str, lookup: &[String]) -> Option<(bool, PublicKey)> {
    let f = fields(raw)?;
    if !lookup.iter().any(|name| hosts_match(f.patterns, name)) {
        return None;
    }
    Some((f.revoked, f.key()?))
}

/// One known_hosts entry as written: `[@revoked] <patterns> <keytype> <base64> [comment]`.
struct Fields<'a> {
    revoked: bool,
    patterns: &'a str,
    key: &'a str,
    /// The instance the line was pinned for ([`INSTANCE_MARK`] in the comment).
    instance: Option<&'a str>,
}

impl Fields<'_> {
    fn key(&self) -> Option<PublicKey> {
        russh::keys::parse_public_key_base64(self.key).ok()
    }
}

/// The fields of an entry line; `None` for blanks, comments, short lines and
/// `@cert-authority` lines (host certificates are not negotiated).
fn fields(raw: &str) -> Option<Fields<'_>> {
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
    let instance = fields
        .find_map(|f| f.strip_prefix(INSTANCE_MARK))
        .filter(|id| !id.is_empty());
    Some(Fields {
        revoked,
        patterns,
        key,
        instance,
    })
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
        assert_eq!(forget_pins(&file, &hosts, &[]).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!(
                "# hand-written\n[10.0.0.*]:22022 ssh-ed25519 {KEY_A}\n[10.0.0.50]:22022 ssh-ed25519 {KEY_A}\n10.0.0.6,web ssh-ed25519 {KEY_A}"
            )
        );
        assert_eq!(forget_pins(&file, &hosts, &[]).unwrap(), 0);
        assert_eq!(
            forget_pins(&dir.path().join("none"), &hosts, &[]).unwrap(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAID2KOQZ35HV9pSWw6fvbt3MGzJqDJTcg4js6XAvjhYME";
    const KEY_ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPijsfyl00XoNqeXO0Th8WsP52j6MJU9D5yk5ew9ZT5fyFZKm9ONQVgyuI7CYne4cfaGgHe1sICXIM+yVaI59Aw=";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    /// A strict check of `address` (port 22) for `instance`, against `dir`'s files.
    fn check(dir: &Path, address: &str, instance: Option<&str>) -> HostKeyCheck {
        HostKeyCheck::new(&ConnectSpec {
            name: "shop-web-1".into(),
            address: address.into(),
            port: 22,
            user: "root".into(),
            identity_files: vec![],
            identity_key: None,
            identity_env: None,
            host_keys: vec![],
            known_hosts: KnownHostsPolicy::Strict,
            project_known_hosts: dir.join("known_hosts"),
            user_known_hosts: Some(dir.join("user_known_hosts")),
            instance_id: instance.map(str::to_string),
            connect_timeout: std::time::Duration::from_secs(1),
            retries: 0,
            keepalive: std::time::Duration::from_secs(1),
            jump: None,
            become_user: None,
            become_password: None,
            proxy_command: None,
            agent: Default::default(),
            forward_agent: false,
            allow_prompt: false,
        })
    }

    #[test]
    fn the_instance_marker_is_written_and_read_in_the_comment() {
        let line = pin_line("[10.0.0.5]:2222", &key(KEY_A), Some("i-0abc"));
        assert_eq!(
            line,
            format!("[10.0.0.5]:2222 ssh-ed25519 {KEY_A} provision:instance=i-0abc\n")
        );
        let f = fields(&line).unwrap();
        assert_eq!(
            (f.patterns, f.instance),
            ("[10.0.0.5]:2222", Some("i-0abc"))
        );
        assert!(same_key(&f.key().unwrap(), &key(KEY_A)));
        let names = vec!["[10.0.0.5]:2222".to_string()];
        assert!(
            parse_line(&line, &names).is_some(),
            "still a known_hosts entry"
        );
        let plain = pin_line("10.0.0.5", &key(KEY_A), None);
        assert_eq!(plain, format!("10.0.0.5 ssh-ed25519 {KEY_A}\n"));
        assert_eq!(fields(&plain).unwrap().instance, None);
        let other = format!("h ssh-ed25519 {KEY_A} me@laptop provision:instance=");
        assert_eq!(
            fields(&other).unwrap().instance,
            None,
            "an empty id is none"
        );
        let tabs = format!("h\tssh-ed25519\t{KEY_A}\tnote\tprovision:instance=i-9");
        assert_eq!(fields(&tabs).unwrap().instance, Some("i-9"));
        assert!(fields("# provision:instance=i-1").is_none());
    }

    #[test]
    fn an_instance_pin_follows_it_to_a_new_address() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(
            &file,
            format!("10.0.0.5 ssh-ed25519 {KEY_A} provision:instance=i-1\n# kept\n10.0.0.9 ssh-ed25519 {KEY_B}\n"),
        )
        .unwrap();
        // Strict, at an address with no pin of this key: the instance's own pin decides,
        // moves here, and the other machine's pin left at this address goes.
        check(dir.path(), "10.0.0.9", Some("i-1"))
            .verify(&key(KEY_A))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("# kept\n10.0.0.9 ssh-ed25519 {KEY_A} provision:instance=i-1\n")
        );
        // Once moved, nothing is rewritten.
        check(dir.path(), "10.0.0.9", Some("i-1"))
            .verify(&key(KEY_A))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);
        // Another key for the instance, at yet another address: refused, naming it.
        let err = check(dir.path(), "10.0.0.7", Some("i-1"))
            .verify(&key(KEY_B))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ConnectError::HostKeyChanged { line: 2, .. }),
            "{msg}"
        );
        assert!(msg.contains("shop-web-1 (i-1, 10.0.0.7)"), "{msg}");
        // The address alone, without the instance, knows nothing any more.
        let err = check(dir.path(), "10.0.0.5", None)
            .verify(&key(KEY_A))
            .unwrap_err();
        assert!(matches!(err, ConnectError::HostKeyUnknown { .. }), "{err}");
    }

    #[test]
    fn a_key_known_by_address_is_recorded_for_the_instance() {
        let dir = tempfile::tempdir().unwrap();
        let (file, user) = (
            dir.path().join("known_hosts"),
            dir.path().join("user_known_hosts"),
        );
        std::fs::write(&user, format!("10.0.0.5 ssh-ed25519 {KEY_A}\n")).unwrap();
        check(dir.path(), "10.0.0.5", None)
            .verify(&key(KEY_A))
            .unwrap();
        assert!(!file.exists(), "no instance: nothing written under strict");
        for _ in 0..2 {
            check(dir.path(), "10.0.0.5", Some("i-1"))
                .verify(&key(KEY_A))
                .unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("10.0.0.5 ssh-ed25519 {KEY_A} provision:instance=i-1\n")
        );
        // Its pin now follows it.
        check(dir.path(), "10.0.0.6", Some("i-1"))
            .verify(&key(KEY_A))
            .unwrap();
    }

    #[test]
    fn a_revoked_key_or_another_key_type_is_not_decided_by_the_instance_pin() {
        let dir = tempfile::tempdir().unwrap();
        let (file, user) = (
            dir.path().join("known_hosts"),
            dir.path().join("user_known_hosts"),
        );
        std::fs::write(
            &file,
            format!("10.0.0.5 ssh-ed25519 {KEY_A} provision:instance=i-1\n"),
        )
        .unwrap();
        // An ECDSA key was never pinned for it: the new address does not know it either.
        let err = check(dir.path(), "10.0.0.9", Some("i-1"))
            .verify(&key(KEY_ECDSA))
            .unwrap_err();
        assert!(matches!(err, ConnectError::HostKeyUnknown { .. }), "{err}");
        std::fs::write(&user, format!("@revoked * ssh-ed25519 {KEY_A}\n")).unwrap();
        let err = check(dir.path(), "10.0.0.9", Some("i-1"))
            .verify(&key(KEY_A))
            .unwrap_err();
        assert!(err.to_string().contains("@revoked"), "{err}");
    }

    #[test]
    fn forget_pins_removes_the_instances_lines_wherever_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let text = format!(
            "10.0.0.5 ssh-ed25519 {KEY_A} provision:instance=i-1\n10.0.0.5 ssh-ed25519 {KEY_A} provision:instance=i-2\n10.0.0.8 ssh-ed25519 {KEY_B} provision:instance=i-1\n10.0.0.6 ssh-ed25519 {KEY_A}\n@revoked 10.0.0.6 ssh-ed25519 {KEY_B}\n10.0.0.7 ssh-ed25519 {KEY_B} provision:instance=i-3\n"
        );
        std::fs::write(&file, &text).unwrap();
        let hosts = [("10.0.0.6".to_string(), 22), ("10.0.0.7".to_string(), 22)];
        // i-1 goes; i-2 stays behind the address they shared; at 10.0.0.7 the line is
        // another instance's (not terminated), so it is kept.
        assert_eq!(forget_pins(&file, &hosts, &["i-1".into()]).unwrap(), 3);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!(
                "10.0.0.5 ssh-ed25519 {KEY_A} provision:instance=i-2\n@revoked 10.0.0.6 ssh-ed25519 {KEY_B}\n10.0.0.7 ssh-ed25519 {KEY_B} provision:instance=i-3\n"
            )
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
