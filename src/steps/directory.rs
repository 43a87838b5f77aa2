//! `directory`: a directory exists with the given mode and owner, or with `state = "absent"`
//! the directory and everything in it is removed.

use super::absent::{AbsentPath, PathType};
use super::state::State;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind, normalize_mode};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub path: String,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    #[serde(default)]
    pub state: State,
}

impl Kind for Spec {
    const NAME: &'static str = "directory";

    fn target(&self) -> String {
        self.path.clone()
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        if self.state.is_absent() {
            return Ok(Box::new(AbsentPath::new(&self.path, PathType::Dir)?));
        }
        Ok(Box::new(Desired::prepare(self)?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    path: String,
    mode: Option<String>,
    owner: Option<String>,
    group: Option<String>,
}

impl Desired {
    pub fn prepare(spec: &Spec) -> Result<Desired, String> {
        if !spec.path.starts_with('/') {
            return Err(format!("path `{}` must be absolute", spec.path));
        }
        Ok(Desired {
            path: trim_trailing_slash(&spec.path),
            mode: spec.mode.as_deref().map(normalize_mode).transpose()?,
            owner: spec.owner.clone(),
            group: spec.group.clone(),
        })
    }
}

/// "/srv/app/" → "/srv/app", but "/" stays "/".
fn trim_trailing_slash(path: &str) -> String {
    match path.trim_end_matches('/') {
        "" => "/".to_string(),
        p => p.to_string(),
    }
}

/// Probe shared with the file kinds: prints `state=missing|dir|file|other` and, when the path
/// exists, `mode=`, `owner=`, `group=`.
pub fn stat_probe(path: &str) -> String {
    let p = quote(path);
    format!(
        "{}\n\
         if [ -e {p} ] && [ ! -L {p} ]; then stat -c 'mode=%a\nowner=%U\ngroup=%G' {p}; fi",
        super::shell::type_probe(path)
    )
}

/// What differs in mode/owner/group, as words for the summary.
pub fn attr_changes(
    p: &Probe,
    mode: Option<&str>,
    owner: Option<&str>,
    group: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = mode
        && p.field("mode") != Some(m)
    {
        out.push(format!("mode {} → {m}", p.field("mode").unwrap_or("?")));
    }
    if let Some(o) = owner
        && p.field("owner") != Some(o)
    {
        out.push(format!("owner {} → {o}", p.field("owner").unwrap_or("?")));
    }
    if let Some(g) = group
        && p.field("group") != Some(g)
    {
        out.push(format!("group {} → {g}", p.field("group").unwrap_or("?")));
    }
    out
}

/// `chown`/`chmod` lines for a path. Ownership first: chown clears setuid/setgid bits, so a
/// mode like 2775 set before it would never converge. `-h`: a link is never followed.
pub fn attr_script(
    target: &str,
    mode: Option<&str>,
    owner: Option<&str>,
    group: Option<&str>,
) -> String {
    let mut s = String::new();
    match (owner, group) {
        (Some(o), Some(g)) => s.push_str(&format!("chown -h {}:{} {target}\n", quote(o), quote(g))),
        (Some(o), None) => s.push_str(&format!("chown -h {} {target}\n", quote(o))),
        (None, Some(g)) => s.push_str(&format!("chgrp -h {} {target}\n", quote(g))),
        (None, None) => {}
    }
    if let Some(m) = mode {
        s.push_str(&format!("chmod {m} {target}\n"));
    }
    s
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        Some(stat_probe(&self.path))
    }

    /// The stat of `path`; `mkdir -p` and the mode and owner of `path` itself.
    fn footprint(&self) -> Option<Vec<String>> {
        Some(vec![self.path.clone()])
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        match p.field("state") {
            Some("missing") => Decision::change(format!("create {}", self.path)),
            Some("dir") => {
                let changes = attr_changes(
                    &p,
                    self.mode.as_deref(),
                    self.owner.as_deref(),
                    self.group.as_deref(),
                );
                if changes.is_empty() {
                    Decision::Ok(format!("{} exists", self.path))
                } else {
                    Decision::change(changes.join(", "))
                }
            }
            Some(other) => Decision::Fail(format!(
                "{} exists but is a {other}, not a directory",
                self.path
            )),
            None => Decision::Fail(format!("could not inspect {}", self.path)),
        }
    }

    /// Mode and owner are set from inside the directory (`.`), after checking that the path
    /// led to it without a link: a user who owns the parent can swap the directory for a link
    /// at any moment, but not change which directory this shell is in (issue 12, #6).
    fn apply(&self) -> Action {
        let p = quote(&self.path).into_owned();
        let attrs = attr_script(
            ".",
            self.mode.as_deref(),
            self.owner.as_deref(),
            self.group.as_deref(),
        );
        if attrs.is_empty() {
            return Action::script(format!("set -e\nmkdir -p -- {p}\n"));
        }
        // After `cd -P`, $PWD is the physical path (POSIX): no `pwd -P` process needed.
        let (parent, base) = super::shell::dir_and_base(&self.path);
        let script = format!(
            "set -e\npath={p}\n[ -d \"$path\" ] || mkdir -p -- \"$path\"\n\
             parent={parent}; base={base}\n\
             cd -P -- \"$parent\"\n\
             case $PWD in /) expect=/$base;; *) expect=$PWD/$base;; esac\n\
             [ \"$path\" = / ] && expect=/\n\
             if [ \"$path\" != / ] && [ -L \"$base\" ]; then echo \"$path is a symbolic link: provision does not chown or chmod through links\" >&2; exit 1; fi\n\
             cd -P -- \"$base\"\n\
             if [ \"$PWD\" != \"$expect\" ]; then echo \"$path was replaced by a link while it was being set up; its mode and owner were not changed\" >&2; exit 1; fi\n\
             {attrs}",
            parent = quote(&parent),
            base = quote(&base),
        );
        Action::script(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Desired {
        Desired::prepare(&Spec {
            path: "/srv/app/".into(),
            mode: Some("0750".into()),
            owner: Some("app".into()),
            group: None,
            state: State::Present,
        })
        .unwrap()
    }

    #[test]
    fn decides_from_stat() {
        let missing = Probe::with_out("state=missing\n");
        assert_eq!(
            d().decide(Some(&missing)),
            Decision::change("create /srv/app")
        );
        let same = Probe::with_out("state=dir\nmode=750\nowner=app\ngroup=app\n");
        assert!(matches!(d().decide(Some(&same)), Decision::Ok(_)));
        let other = Probe::with_out("state=dir\nmode=755\nowner=root\ngroup=root\n");
        assert_eq!(
            d().decide(Some(&other)),
            Decision::change("mode 755 → 750, owner root → app")
        );
        let file = Probe::with_out("state=file\n");
        assert!(matches!(d().decide(Some(&file)), Decision::Fail(_)));
    }

    #[test]
    fn apply_script_is_quoted() {
        let a = d().apply();
        assert!(
            a.script
                .starts_with("set -e\npath=/srv/app\n[ -d \"$path\" ] || mkdir -p -- \"$path\"\nparent=/srv; base=app\n")
        );
        assert!(
            a.script.ends_with("chown -h app .\nchmod 750 .\n"),
            "{}",
            a.script
        );
    }

    #[test]
    fn stat_probe_prints_one_field_per_line_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        std::fs::create_dir(&path).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(stat_probe(path.to_str().unwrap()))
            .output()
            .unwrap();
        let p = Probe {
            out: String::from_utf8(out.stdout).unwrap(),
            rc: 0,
        };
        assert_eq!(p.field("state"), Some("dir"));
        assert!(
            p.field("mode")
                .is_some_and(|m| m.chars().all(|c| c.is_ascii_digit())),
            "{}",
            p.out
        );
        assert!(
            p.field("owner").is_some_and(|o| !o.contains('/')),
            "{}",
            p.out
        );
    }

    #[test]
    fn relative_path_rejected() {
        assert!(
            Desired::prepare(&Spec {
                path: "srv".into(),
                mode: None,
                owner: None,
                group: None,
                state: State::Present,
            })
            .is_err()
        );
    }
}
