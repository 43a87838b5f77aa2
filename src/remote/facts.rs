//! Facts: what a host is (OS, architecture, CPUs, memory), read in the first probe round trip
//! and given to templates and `when` as `facts`:
//!
//! ```text
//! facts.os.id        "debian"   (os-release ID; "unknown" without os-release)
//! facts.os.version   "12"       (VERSION_ID; "unknown" when absent, e.g. Debian sid)
//! facts.os.family    "debian"   (debian, rhel, alpine, arch, suse, ... from ID and ID_LIKE)
//! facts.arch         "x86_64"   (uname -m)
//! facts.cpus         2          (nproc, else getconf, else /proc/cpuinfo; absent if none works)
//! facts.memory_mb    16000      (MemTotal of /proc/meminfo; absent without it)
//! ```
//!
//! The snippet is POSIX sh and uses only what busybox has; a missing file or tool leaves its
//! fact unknown, never fails the probe.

use serde_json::{Value, json};

/// The template name the facts are under.
pub const NAME: &str = "facts";

/// Prints the raw facts, one `KEY=value` a line: os-release's ID, ID_LIKE and VERSION_ID
/// (upper case, quoted as the file has them), then `arch=`, `cpus=` and the MemTotal line.
pub fn probe_sh() -> &'static str {
    r#"for f in /etc/os-release /usr/lib/os-release; do
  if [ -r "$f" ]; then grep -E '^(ID|ID_LIKE|VERSION_ID)=' "$f"; break; fi
done
printf 'arch=%s\n' "$(uname -m 2>/dev/null)"
printf 'cpus=%s\n' "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || grep -c '^processor' /proc/cpuinfo 2>/dev/null)"
grep '^MemTotal:' /proc/meminfo 2>/dev/null
exit 0
"#
}

/// The facts from what [`probe_sh`] printed. Unknown strings are `"unknown"`; unknown numbers
/// are left out (a template using one then fails with "undefined", rather than using a guess).
pub fn parse(out: &str) -> Value {
    let mut id = None;
    let mut like = None;
    let mut version = None;
    let mut arch = None;
    let mut cpus = None;
    let mut memory_mb = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("MemTotal:") {
            memory_mb = kb_to_mb(rest);
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = unquote(v.trim());
        match k.trim() {
            "ID" => id = Some(v.to_ascii_lowercase()),
            "ID_LIKE" => like = Some(v.to_ascii_lowercase()),
            "VERSION_ID" => version = Some(v),
            "arch" => arch = Some(v),
            "cpus" => cpus = v.parse::<u64>().ok().filter(|n| *n > 0),
            _ => {}
        }
    }
    let known = |v: Option<String>| v.filter(|s| !s.is_empty());
    let (id, like) = (known(id), known(like));
    let family = family(id.as_deref(), like.as_deref());
    let unknown = || "unknown".to_string();
    let mut facts = json!({
        "os": {
            "id": id.unwrap_or_else(unknown),
            "version": known(version).unwrap_or_else(unknown),
            "family": family,
        },
        "arch": known(arch).unwrap_or_else(unknown),
    });
    if let Some(n) = cpus {
        facts["cpus"] = json!(n);
    }
    if let Some(mb) = memory_mb {
        facts["memory_mb"] = json!(mb);
    }
    facts
}

/// The distribution family: the first of ID and the ID_LIKE words that names a known one
/// (Ubuntu is `debian`, Fedora and Amazon Linux `rhel`); else ID_LIKE's first word, else ID.
fn family(id: Option<&str>, like: Option<&str>) -> String {
    const FAMILIES: &[(&str, &str)] = &[
        ("debian", "debian"),
        ("ubuntu", "debian"),
        ("rhel", "rhel"),
        ("fedora", "rhel"),
        ("centos", "rhel"),
        ("alpine", "alpine"),
        ("arch", "arch"),
        ("suse", "suse"),
        ("opensuse", "suse"),
        ("gentoo", "gentoo"),
    ];
    let words: Vec<&str> = id
        .into_iter()
        .chain(like.into_iter().flat_map(str::split_whitespace))
        .collect();
    words
        .iter()
        .find_map(|w| FAMILIES.iter().find(|(k, _)| k == w).map(|(_, f)| *f))
        .or_else(|| like.and_then(|l| l.split_whitespace().next()))
        .or(id)
        .unwrap_or("unknown")
        .to_string()
}

/// `   16331012 kB` → 15948.
fn kb_to_mb(rest: &str) -> Option<u64> {
    let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
    Some(kb / 1024)
}

/// os-release values may be in double or single quotes.
fn unquote(v: &str) -> String {
    let q = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
    q.unwrap_or(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_with_quotes_and_meminfo() {
        let f = parse(
            "ID=debian\nVERSION_ID=\"12\"\narch=x86_64\ncpus=4\nMemTotal:       16331012 kB\n",
        );
        assert_eq!(f["os"]["id"], "debian");
        assert_eq!(f["os"]["version"], "12");
        assert_eq!(f["os"]["family"], "debian");
        assert_eq!(f["arch"], "x86_64");
        assert_eq!(f["cpus"], 4);
        assert_eq!(f["memory_mb"], 15948);
    }

    #[test]
    fn families_come_from_id_like() {
        let fam = |os: &str| parse(os)["os"]["family"].as_str().unwrap().to_string();
        assert_eq!(fam("ID=ubuntu\nID_LIKE=debian\n"), "debian");
        assert_eq!(fam("ID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\n"), "rhel");
        assert_eq!(fam("ID=fedora\n"), "rhel");
        assert_eq!(fam("ID=rocky\nID_LIKE='rhel centos fedora'\n"), "rhel");
        assert_eq!(fam("ID=alpine\n"), "alpine");
        assert_eq!(
            fam("ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n"),
            "suse"
        );
        assert_eq!(fam("ID=manjaro\nID_LIKE=arch\n"), "arch");
        assert_eq!(fam("ID=nixos\n"), "nixos");
        assert_eq!(fam("ID=pop\nID_LIKE=\"ubuntu debian\"\n"), "debian");
    }

    #[test]
    fn busybox_without_os_release_or_nproc() {
        // What a bare busybox prints: no os-release lines, `nproc` and `getconf` missing
        // (empty `cpus=`), but /proc/meminfo.
        let f = parse("arch=armv7l\ncpus=\nMemTotal:         506004 kB\n");
        assert_eq!(f["os"]["id"], "unknown");
        assert_eq!(f["os"]["version"], "unknown");
        assert_eq!(f["os"]["family"], "unknown");
        assert_eq!(f["arch"], "armv7l");
        assert!(f.get("cpus").is_none());
        assert_eq!(f["memory_mb"], 494);
    }

    #[test]
    fn nothing_at_all_is_all_unknown() {
        let f = parse("");
        assert_eq!(f["os"]["id"], "unknown");
        assert_eq!(f["arch"], "unknown");
        assert!(f.get("cpus").is_none() && f.get("memory_mb").is_none());
        assert_eq!(parse("cpus=0\narch=\n")["arch"], "unknown");
        assert!(parse("cpus=0\n").get("cpus").is_none());
    }

    #[test]
    fn debian_sid_has_no_version() {
        let f = parse("ID=debian\narch=aarch64\ncpus=8\n");
        assert_eq!(f["os"]["version"], "unknown");
        assert_eq!(f["cpus"], 8);
    }

    #[test]
    fn the_snippet_runs_here_and_reads_this_machine() {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(probe_sh())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(out.status.success());
        let f = parse(&String::from_utf8_lossy(&out.stdout));
        let uname = std::process::Command::new("uname")
            .arg("-m")
            .output()
            .unwrap();
        assert_eq!(f["arch"], String::from_utf8_lossy(&uname.stdout).trim());
        assert!(f["cpus"].as_u64().unwrap() >= 1, "{f}");
        assert!(f["memory_mb"].as_u64().unwrap() > 0, "{f}");
    }

    #[test]
    fn the_snippet_runs_under_busybox_with_only_its_applets() {
        // busybox sh with a PATH holding busybox's grep, uname and nproc only.
        let busybox = std::path::Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "busybox is needed (apt-get install busybox-static, scripts/deps.sh)"
        );
        let dir = tempfile::tempdir().unwrap();
        for applet in ["grep", "uname", "nproc"] {
            std::os::unix::fs::symlink(busybox, dir.path().join(applet)).unwrap();
        }
        let out = std::process::Command::new(busybox)
            .args(["sh", "-c", probe_sh()])
            .env_clear()
            .env("PATH", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        let f = parse(&String::from_utf8_lossy(&out.stdout));
        assert!(f["cpus"].as_u64().unwrap() >= 1, "{f}");
        assert_ne!(f["arch"], "unknown");
        assert!(f["memory_mb"].as_u64().unwrap() > 0, "{f}");
    }

    #[test]
    fn the_snippet_without_any_tool_still_exits_0() {
        // An empty PATH: no grep, uname, nproc or getconf (sh's own printf and `[` remain).
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(probe_sh())
            .env_clear()
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert!(out.status.success());
        let f = parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(f["arch"], "unknown");
        assert!(f.get("cpus").is_none());
    }
}
