//! The desired state shared by `file`, `template` and `env_file`: these bytes at this path with
//! this mode and owner. Probing compares a sha256; applying writes a temp file in the target
//! directory, checks its hash, sets mode and owner, then renames it over the target, so the
//! target is always either the old file or the new one, never half-written.

use super::directory::{attr_changes, attr_script, stat_probe};
use super::{Action, Decision, Probe};
use crate::transport::script::quote;
use sha2::{Digest, Sha256};

/// Files up to this size are fetched in plan mode to show a diff.
const DIFF_LIMIT: usize = 256 * 1024;
const CONTENT_MARK: &str = "content:\n";

/// How a change in content is shown in plan mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffStyle {
    /// A unified diff of the text.
    Text,
    /// dotenv lines: only key names are shown, values never.
    KeysOnly,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub dest: String,
    pub content: Vec<u8>,
    pub sha256: String,
    pub mode: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub diff: DiffStyle,
}

impl Upload {
    pub fn new(dest: &str, content: Vec<u8>, mode: &str, owner: Option<String>, group: Option<String>) -> Result<Upload, String> {
        if !dest.starts_with('/') || dest.ends_with('/') {
            return Err(format!("dest `{dest}` must be an absolute file path"));
        }
        Ok(Upload {
            dest: dest.to_string(),
            sha256: hex::encode(Sha256::digest(&content)),
            content,
            mode: super::normalize_mode(mode)?,
            owner,
            group,
            diff: DiffStyle::Text,
        })
    }

    pub fn probe(&self, check: bool) -> String {
        let p = quote(&self.dest);
        let mut s = stat_probe(&self.dest);
        s.push_str(&format!("\nif [ -f {p} ]; then printf 'sha256=%s\\n' \"$(sha256sum < {p} | cut -c1-64)\"; fi"));
        if check {
            s.push_str(&format!(
                "\nif [ -f {p} ] && [ \"$(wc -c < {p})\" -le {DIFF_LIMIT} ]; then printf '{}'; cat {p}; fi",
                CONTENT_MARK.replace('\n', "\\n")
            ));
        }
        s
    }

    pub fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let attrs = || attr_changes(&p, Some(&self.mode), self.owner.as_deref(), self.group.as_deref());
        match p.field("state") {
            Some("missing") => Decision::Change {
                summary: format!("create {} ({} bytes)", self.dest, self.content.len()),
                diff: self.diff_against(Some("")),
            },
            Some("file") if p.field("sha256") == Some(self.sha256.as_str()) => {
                let changes = attrs();
                if changes.is_empty() {
                    Decision::Ok(format!("{} up to date", self.dest))
                } else {
                    Decision::change(changes.join(", "))
                }
            }
            Some("file") => {
                let mut summary = format!("update {}", self.dest);
                let changes = attrs();
                if !changes.is_empty() {
                    summary = format!("{summary}; {}", changes.join(", "));
                }
                let current = p.out.split_once(CONTENT_MARK).map(|(_, c)| c);
                Decision::Change { summary, diff: self.diff_against(current) }
            }
            Some(other) => Decision::Fail(format!("{} exists but is a {other}, not a regular file", self.dest)),
            None => Decision::Fail(format!("could not inspect {}", self.dest)),
        }
    }

    /// A diff from `current` (None: not fetched) to the new content.
    fn diff_against(&self, current: Option<&str>) -> Option<String> {
        let current = current?;
        let new = std::str::from_utf8(&self.content).ok()?;
        Some(match self.diff {
            DiffStyle::Text => similar::TextDiff::from_lines(current, new)
                .unified_diff()
                .context_radius(3)
                .header(&self.dest, &self.dest)
                .to_string(),
            DiffStyle::KeysOnly => keys_diff(current, new),
        })
    }

    pub fn apply(&self) -> Action {
        let dest = quote(&self.dest);
        let script = format!(
            "set -e\n\
             dest={dest}\n\
             dir=$(dirname -- \"$dest\")\n\
             mkdir -p -- \"$dir\"\n\
             tmp=$(mktemp \"$dir/.provision.XXXXXX\")\n\
             trap 'rm -f -- \"$tmp\"' EXIT\n\
             cat > \"$tmp\"\n\
             if [ \"$(sha256sum < \"$tmp\" | cut -c1-64)\" != {sum} ]; then echo \"upload of $dest arrived incomplete; the old file was left in place\" >&2; exit 1; fi\n\
             {attrs}\
             mv -f -- \"$tmp\" \"$dest\"\n\
             trap - EXIT\n",
            sum = self.sha256,
            attrs = attr_script("\"$tmp\"", Some(&self.mode), self.owner.as_deref(), self.group.as_deref()),
        );
        Action { script, stdin: Some(self.content.clone()) }
    }
}

/// Which keys of a dotenv file were added, removed or changed. Values are never shown.
fn keys_diff(current: &str, new: &str) -> String {
    let parse = |t: &str| -> std::collections::BTreeMap<String, String> {
        t.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.to_string()))
            .collect()
    };
    let (old, new) = (parse(current), parse(new));
    let mut out = String::new();
    for (k, v) in &new {
        match old.get(k) {
            None => out.push_str(&format!("+ {k}=<hidden>\n")),
            Some(o) if o != v => out.push_str(&format!("~ {k}=<hidden> (value changed)\n")),
            _ => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push_str(&format!("- {k}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(content: &str) -> Upload {
        Upload::new("/etc/app.conf", content.as_bytes().to_vec(), "0644", None, None).unwrap()
    }

    #[test]
    fn same_hash_and_mode_is_ok() {
        let u = up("hello\n");
        let p = Probe { out: format!("state=file\nmode=644\nowner=root\ngroup=root\nsha256={}\n", u.sha256), rc: 0 };
        assert!(matches!(u.decide(Some(&p)), Decision::Ok(_)));
    }

    #[test]
    fn changed_content_shows_diff_when_fetched() {
        let u = up("a\nb\n");
        let p = Probe { out: "state=file\nmode=644\nowner=root\ngroup=root\nsha256=00\ncontent:\na\nc\n".into(), rc: 0 };
        match u.decide(Some(&p)) {
            Decision::Change { summary, diff } => {
                assert_eq!(summary, "update /etc/app.conf");
                let diff = diff.unwrap();
                assert!(diff.contains("-c\n") && diff.contains("+b\n"), "{diff}");
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn mode_only_change() {
        let u = up("x");
        let p = Probe { out: format!("state=file\nmode=600\nowner=root\ngroup=root\nsha256={}\n", u.sha256), rc: 0 };
        assert_eq!(u.decide(Some(&p)), Decision::change("mode 600 → 644"));
    }

    #[test]
    fn keys_diff_hides_values() {
        let d = keys_diff("A=1\nB=2\nC=3\n", "A=1\nB=22\nD=4\n");
        assert_eq!(d, "~ B=<hidden> (value changed)\n+ D=<hidden>\n- C\n");
        assert!(!d.contains("22") && !d.contains('4'));
    }

    #[test]
    fn apply_checks_hash_and_renames() {
        let a = up("x").apply();
        assert!(a.script.contains("mktemp \"$dir/.provision.XXXXXX\""));
        assert!(a.script.contains("mv -f -- \"$tmp\" \"$dest\""));
        assert_eq!(a.stdin.as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn relative_dest_rejected() {
        assert!(Upload::new("etc/x", vec![], "644", None, None).is_err());
        assert!(Upload::new("/etc/", vec![], "644", None, None).is_err());
    }
}
