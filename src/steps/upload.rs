//! The desired state shared by `file`, `template` and `env_file`: these bytes at this path with
//! this mode and owner. Probing compares a sha256; applying writes a temp file in the target
//! directory, checks its hash, sets mode and owner, then renames it over the target, so the
//! target is always either the old file or the new one, never half-written.

use super::directory::{attr_changes, attr_script, stat_probe};
use super::kind::Shared;
use super::{Action, Decision, Probe};
use crate::transport::script::quote;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Files up to this size are fetched in plan mode to show a diff.
const DIFF_LIMIT: usize = 256 * 1024;
const CONTENT_MARK: &str = "content:\n";
const KEYS_MARK: &str = "keys:\n";

/// How a change in content is shown in plan mode.
///
/// Whatever a probe prints is shown by `-vv`, and the redactor only knows the secret values
/// of this run: a file on the host may still hold old (rotated) ones. So a file whose content
/// has secrets is never fetched: `KeysOnly` fetches key names and salted line hashes, `Hidden`
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffStyle {
    /// A unified diff of the text.
    Text,
    /// dotenv lines: only key names are shown, values never.
    KeysOnly,
    /// The content depends on secret values: it is never fetched nor shown.
    Hidden,
}

/// The contents of a run's uploads by sha256, each held once.
#[derive(Default)]
struct ContentPool(Mutex<HashMap<String, Bytes>>);

#[derive(Debug, Clone)]
pub struct Upload {
    pub dest: String,
    /// Shared by every host whose step has the same content ([`Upload::shared_in`]).
    pub content: Bytes,
    pub sha256: String,
    pub mode: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub diff: DiffStyle,
    /// Random per run; `KeysOnly` probes hash each line with it, so the hashes printed match
    /// no precomputed table.
    salt: String,
}

impl Upload {
    pub fn new(
        dest: &str,
        content: impl Into<Bytes>,
        mode: &str,
        owner: Option<String>,
        group: Option<String>,
    ) -> Result<Upload, String> {
        if !dest.starts_with('/') || dest.ends_with('/') {
            return Err(format!("dest `{dest}` must be an absolute file path"));
        }
        let content: Bytes = content.into();
        Ok(Upload {
            dest: dest.to_string(),
            sha256: hex::encode(Sha256::digest(&content)),
            content,
            mode: super::normalize_mode(mode)?,
            owner,
            group,
            diff: DiffStyle::Text,
            salt: String::new(),
        })
    }

    /// The same content as another host's upload of this run, if there is one: one copy in
    /// memory for all hosts (a 1 MB file over 100 hosts is 1 MB, not 100).
    pub fn shared_in(mut self, shared: &Shared) -> Upload {
        let pool = shared.get::<ContentPool>("upload contents");
        let mut map = pool.0.lock().unwrap_or_else(|e| e.into_inner());
        self.content = map
            .entry(self.sha256.clone())
            .or_insert_with(|| self.content.clone())
            .clone();
        self
    }

    /// Show only which dotenv keys change (env_file).
    ///
    /// `-vv` prints the probe script (with the salt) and its output (the line hashes): with
    /// both, a guessed password could be confirmed offline, so the salt is masked like a
    /// secret. So is the content's plain sha256, which confirms a guess just as well.
    pub fn keys_only(mut self, redactor: &crate::secrets::Redactor) -> Upload {
        use rand::Rng;
        let salt: u128 = rand::rng().random();
        self.salt = format!("{salt:032x}");
        redactor.add(&self.salt);
        redactor.add(&self.sha256);
        self.diff = DiffStyle::KeysOnly;
        self
    }

    /// Never fetch nor diff content that has secret values (found in it by the redactor).
    pub fn hidden_if_secret(self, redactor: &crate::secrets::Redactor) -> Upload {
        self.hidden_if(false, redactor)
    }

    /// Never fetch nor diff content that was rendered from secrets (`read_secret`: whatever
    /// filters changed the values, so the redactor may not know them in this form) or has
    /// secret values. Its sha256 is masked: it would confirm a guessed value offline.
    pub fn hidden_if(mut self, read_secret: bool, redactor: &crate::secrets::Redactor) -> Upload {
        let text = String::from_utf8_lossy(&self.content);
        if read_secret || redactor.redact(&text) != text {
            self.diff = DiffStyle::Hidden;
            redactor.add(&self.sha256);
        }
        self
    }

    /// `key salted-sha256` of each `key=value` line, as the KeysOnly probe prints them.
    fn line_hashes(&self, text: &str) -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| {
                let (k, _) = l.split_once('=')?;
                let hash = hex::encode(Sha256::digest(format!("{}{l}", self.salt).as_bytes()));
                Some((k.to_string(), hash))
            })
            .collect()
    }

    pub fn probe(&self, check: bool) -> String {
        let p = quote(&self.dest);
        let mut s = stat_probe(&self.dest);
        s.push_str(&format!(
            "\nif [ -f {p} ] && [ ! -L {p} ]; then set -- $(sha256sum < {p}); printf 'sha256=%s\\n' \"$1\"; fi"
        ));
        // Never through a link: a link to /etc/shadow must not be read into a plan's diff.
        let fetch = format!(
            "\nif [ -f {p} ] && [ ! -L {p} ] && [ \"$(wc -c < {p})\" -le {DIFF_LIMIT} ]; then "
        );
        match self.diff {
            _ if !check => {}
            DiffStyle::Text => s.push_str(&format!("{fetch}printf '{}'; cat {p}; fi", CONTENT_MARK.replace('\n', "\\n"))),
            DiffStyle::KeysOnly => s.push_str(&format!(
                "{fetch}printf '{}'\n\
                 while IFS= read -r l || [ -n \"$l\" ]; do case $l in *=*) \
                 printf '%s %s\\n' \"${{l%%=*}}\" \"$(printf '%s%s' {salt} \"$l\" | sha256sum | cut -c1-64)\" ;; esac; done < {p}\nfi",
                KEYS_MARK.replace('\n', "\\n"),
                salt = self.salt
            )),
            DiffStyle::Hidden => {}
        }
        s
    }

    pub fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let attrs = || {
            attr_changes(
                &p,
                Some(&self.mode),
                self.owner.as_deref(),
                self.group.as_deref(),
            )
        };
        match p.field("state") {
            Some("missing") => Decision::Change {
                summary: format!("create {} ({} bytes)", self.dest, self.content.len()),
                diff: self.diff_against(Some(CONTENT_MARK)),
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
                Decision::Change {
                    summary,
                    diff: self.diff_against(Some(&p.out)),
                }
            }
            Some(other) => Decision::Fail(format!(
                "{} exists but is a {other}, not a regular file",
                self.dest
            )),
            None => Decision::Fail(format!("could not inspect {}", self.dest)),
        }
    }

    /// A diff from what the probe fetched (`out`; None: nothing was fetched) to the new content.
    fn diff_against(&self, out: Option<&str>) -> Option<String> {
        let out = out?;
        let new = std::str::from_utf8(&self.content).ok()?;
        let text_diff = |current: &str| {
            similar::TextDiff::from_lines(current, new)
                .unified_diff()
                .context_radius(3)
                .header(&self.dest, &self.dest)
                .to_string()
        };
        match self.diff {
            DiffStyle::Text => out.split_once(CONTENT_MARK).map(|(_, current)| text_diff(current)),
            // Not even for a new file: a value through `| replace(...)` or `| b64encode`-like
            // filters is in no form the redactor knows, and a line-prefixed diff of a
            // multi-line value is only masked line by line.
            DiffStyle::Hidden => Some("(content not shown: it depends on secret values, and the file on the host may hold old ones)\n".into()),
            DiffStyle::KeysOnly => {
                let old = match out.split_once(KEYS_MARK) {
                    Some((_, lines)) => lines.lines().filter_map(|l| l.split_once(' ')).map(|(k, h)| (k.to_string(), h.trim().to_string())).collect(),
                    None if out == CONTENT_MARK => Default::default(),
                    None => return None,
                };
                Some(keys_diff(&old, &self.line_hashes(new)))
            }
        }
    }

    /// Written through [`staged_write`]; stdin is the content's sha256 on a line, then the
    /// content, checked before the rename.
    pub fn apply(&self) -> Action {
        let fill = "read -r sum\n\
             cat > ./upload\n\
             set -- $(sha256sum < ./upload)\n\
             if [ \"$1\" != \"$sum\" ]; then echo \"upload of $dest arrived incomplete; the old file was left in place\" >&2; exit 1; fi\n";
        let attrs = attr_script(
            "./upload",
            Some(&self.mode),
            self.owner.as_deref(),
            self.group.as_deref(),
        );
        let script = staged_write(&self.dest, fill, &attrs);
        // The checksum rides on stdin in front of the content: on the command line, any
        // user of the host could read in the process list a sum that confirms a guessed
        // secret (the content may hold one).
        let sum = Bytes::from(format!("{}\n", self.sha256).into_bytes());
        Action {
            script,
            stdin_shared: vec![sum, self.content.clone()],
            ..Action::default()
        }
    }
}

/// A script that writes `dest` whole: `fill` (shell run inside the staging directory, with
/// `$dest` set) writes `./upload`, `attrs` sets its mode and owner, then it is renamed over
/// `dest`, so the target is always either the old file or the new one, never half-written.
///
/// The staging directory is a fresh root-owned 0700 directory beside the target and the
/// script works from inside it (`cd -P`): whoever owns the target directory can rename
/// entries in it, but cannot touch what is inside the staging directory, so no symlink can be
/// swapped in under the file that gets chowned and chmodded (issue 12, #6). In a setgid
/// directory it is 2700: the bit is inherited, and the file takes the group.
pub fn staged_write(dest: &str, fill: &str, attrs: &str) -> String {
    let (dir, _) = super::shell::dir_and_base(dest);
    format!(
        "set -e\n\
         dest={dest}\n\
         dir={dir}\n\
         [ -d \"$dir\" ] || mkdir -p -- \"$dir\"\n\
         stage=; staged=\n\
         cleanup() {{ if [ -n \"$staged\" ]; then rm -f ./upload; cd ..; rmdir -- \"${{stage##*/}}\" 2>/dev/null || true; elif [ -n \"$stage\" ]; then rmdir -- \"$stage\" 2>/dev/null || true; fi; }}\n\
         trap cleanup EXIT\n\
         trap 'cleanup; trap - EXIT; exit 1' HUP INT TERM PIPE\n\
         stage=$(mktemp -d \"$dir/.provision.XXXXXX\")\n\
         cd -P -- \"$stage\"; staged=1\n\
         [ -O . ] && case \"$(stat -c %a .)\" in 700|2700) ;; *) false ;; esac || {{ echo \"the staging directory for $dest was replaced while in use; nothing was written\" >&2; exit 1; }}\n\
         {fill}\
         {attrs}\
         mv -f -- ./upload \"$dest\"\n",
        dest = quote(dest),
        dir = quote(&dir),
    )
}

/// Which keys of a dotenv file were added, removed or changed, from key → line hash maps.
/// Values are never shown (nor known here).
fn keys_diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in new {
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
        Upload::new(
            "/etc/app.conf",
            content.as_bytes().to_vec(),
            "0644",
            None,
            None,
        )
        .unwrap()
    }

    #[test]
    fn same_hash_and_mode_is_ok() {
        let u = up("hello\n");
        let p = Probe {
            out: format!(
                "state=file\nmode=644\nowner=root\ngroup=root\nsha256={}\n",
                u.sha256
            ),
            rc: 0,
        };
        assert!(matches!(u.decide(Some(&p)), Decision::Ok(_)));
    }

    #[test]
    fn changed_content_shows_diff_when_fetched() {
        let u = up("a\nb\n");
        let p = Probe::with_out(
            "state=file\nmode=644\nowner=root\ngroup=root\nsha256=00\ncontent:\na\nc\n",
        );
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
        let p = Probe {
            out: format!(
                "state=file\nmode=600\nowner=root\ngroup=root\nsha256={}\n",
                u.sha256
            ),
            rc: 0,
        };
        assert_eq!(u.decide(Some(&p)), Decision::change("mode 600 → 644"));
    }

    /// Run a probe in a real shell, as the batch would.
    fn probe_in_sh(script: &str) -> Probe {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        Probe {
            out: String::from_utf8(out.stdout).unwrap(),
            rc: out.status.code().unwrap_or(-1),
        }
    }

    #[test]
    fn keys_only_diff_names_keys_and_never_fetches_values() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join(".env");
        std::fs::write(&dest, "A=1\nB=old-secret-value\nC=3").unwrap();
        let u = Upload::new(
            dest.to_str().unwrap(),
            b"A=1\nB=22\nD=4\n".to_vec(),
            "600",
            None,
            None,
        )
        .unwrap()
        .keys_only(&crate::secrets::Redactor::default());
        let p = probe_in_sh(&u.probe(true));
        assert!(
            !p.out.contains("old-secret-value") && !p.out.contains("=1"),
            "{}",
            p.out
        );
        match u.decide(Some(&p)) {
            Decision::Change { diff: Some(d), .. } => {
                assert_eq!(d, "~ B=<hidden> (value changed)\n+ D=<hidden>\n- C\n")
            }
            d => panic!("{d:?}"),
        }
        std::fs::remove_file(&dest).unwrap();
        match u.decide(Some(&probe_in_sh(&u.probe(true)))) {
            Decision::Change { diff: Some(d), .. } => {
                assert_eq!(d, "+ A=<hidden>\n+ B=<hidden>\n+ D=<hidden>\n")
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn content_with_secrets_is_not_fetched_nor_diffed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        std::fs::write(&dest, "token = rotated-away-secret\n").unwrap();
        let redactor = crate::secrets::Redactor::default();
        redactor.add("current-secret");
        let u = Upload::new(
            dest.to_str().unwrap(),
            b"token = current-secret\n".to_vec(),
            "600",
            None,
            None,
        )
        .unwrap()
        .hidden_if_secret(&redactor);
        assert_eq!(u.diff, DiffStyle::Hidden);
        let p = probe_in_sh(&u.probe(true));
        assert!(!p.out.contains("rotated-away-secret"), "{}", p.out);
        match u.decide(Some(&p)) {
            Decision::Change { diff: Some(d), .. } => assert!(
                d.contains("content not shown") && !d.contains("secret ="),
                "{d}"
            ),
            d => panic!("{d:?}"),
        }
        let plain = Upload::new("/x", b"no secret here".to_vec(), "600", None, None)
            .unwrap()
            .hidden_if_secret(&redactor);
        assert_eq!(plain.diff, DiffStyle::Text);
    }

    #[test]
    fn printed_scripts_never_show_the_salt_next_to_the_line_hashes() {
        let redactor = crate::secrets::Redactor::default();
        let u = Upload::new("/srv/.env", b"PW=guessable\n".to_vec(), "600", None, None)
            .unwrap()
            .keys_only(&redactor);
        // What -vv prints: the probe script and the apply script, through the redactor.
        let shown = redactor.redact(&format!("{}\n{}", u.probe(true), u.apply().script));
        assert!(!shown.contains(&u.salt), "{shown}");
        assert!(!shown.contains(&u.sha256), "{shown}");
    }

    #[test]
    fn content_rendered_from_secrets_is_never_diffed_even_when_new() {
        let redactor = crate::secrets::Redactor::default();
        redactor.add("current-secret");
        // `| upper` output: not a form the redactor masks in a diff line by line.
        let u = Upload::new("/x", b"+ pw = CURRENT_SECRET\n".to_vec(), "600", None, None)
            .unwrap()
            .hidden_if(true, &redactor);
        let missing = Probe::with_out("state=missing\n");
        match u.decide(Some(&missing)) {
            Decision::Change { diff: Some(d), .. } => {
                assert!(
                    d.contains("content not shown") && !d.contains("CURRENT"),
                    "{d}"
                )
            }
            d => panic!("{d:?}"),
        }
        let with_value = Upload::new("/x", b"pw = current-secret\n".to_vec(), "600", None, None)
            .unwrap()
            .hidden_if_secret(&redactor);
        match with_value.decide(Some(&missing)) {
            Decision::Change { diff: Some(d), .. } => {
                assert!(d.contains("content not shown"), "{d}")
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn apply_checks_hash_and_renames() {
        let u = up("x");
        let a = u.apply();
        assert!(a.script.contains("mktemp -d \"$dir/.provision.XXXXXX\""));
        assert!(a.script.contains("mv -f -- ./upload \"$dest\""));
        let stdin = format!("{}\nx", u.sha256);
        assert_eq!(a.stdin_shared.concat(), stdin.as_bytes());
        // The content part is the upload's own, not a copy.
        assert_eq!(a.stdin_shared[1].as_ptr(), u.content.as_ptr());
        // The script is a command line in the host's process list: no sum of the content.
        assert!(!a.script.contains(&u.sha256), "{}", a.script);
    }

    #[test]
    fn hosts_with_the_same_content_share_one_copy() {
        let shared = Shared::default();
        let a = up("same").shared_in(&shared);
        let b = up("same").shared_in(&shared);
        let other = up("other").shared_in(&shared);
        assert_eq!(a.content.as_ptr(), b.content.as_ptr());
        assert_ne!(a.content.as_ptr(), other.content.as_ptr());
        assert_eq!(&b.content[..], b"same");
    }

    /// The staged upload in a real `sh`: the file lands whole with its mode, and neither the
    /// staging directory nor its file is left behind; a wrong hash leaves the old file.
    #[test]
    fn apply_in_a_real_shell_leaves_no_staging_directory() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("conf/app.env");
        let run = |u: &Upload, content: &[u8]| {
            let stdin = [u.apply().stdin_shared[0].to_vec(), content.to_vec()].concat();
            let mut child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&u.apply().script)
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&stdin).unwrap();
            child.wait_with_output().unwrap()
        };
        let u = Upload::new(dest.to_str().unwrap(), b"A=1\n".to_vec(), "640", None, None).unwrap();
        let out = run(&u, b"A=1\n");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"A=1\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let u2 = Upload::new(dest.to_str().unwrap(), b"A=2\n".to_vec(), "640", None, None).unwrap();
        let out = run(&u2, b"A=3\n");
        assert!(!out.status.success());
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            b"A=1\n",
            "the old file stays"
        );
        let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("app.env")], "{left:?}");
    }

    #[test]
    fn relative_dest_rejected() {
        assert!(Upload::new("etc/x", vec![], "644", None, None).is_err());
        assert!(Upload::new("/etc/", vec![], "644", None, None).is_err());
    }
}
