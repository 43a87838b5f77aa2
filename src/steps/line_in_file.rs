//! `line_in_file`: one line of a file on the host is present (replacing the last line that
//! matches `regexp`, else appended when no identical line is there) or absent (every line
//! equal to `line`, or matching `regexp`, removed).
//!
//! The new content is made on the host by one awk program (so the rest of the file, which may
//! hold anything, never travels nor is printed): the probe compares the sha256 of the file
//! with the sha256 of the program's output, and the apply writes that output through
//! [`staged_write`], so the file is never half-written. The line and the regexp reach awk
//! through its environment (`ENVIRON`), which awk does not unescape, unlike `-v`.

use super::directory::{attr_changes, attr_script, stat_probe};
use super::state::State;
use super::upload::staged_write;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind, normalize_mode};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub path: String,
    /// The whole line (no newline). Required when present; when absent, `line` or `regexp`.
    pub line: Option<String>,
    /// A POSIX extended regular expression (as awk reads it) for the line to replace/remove.
    pub regexp: Option<String>,
    #[serde(default)]
    pub state: State,
    /// Create the file (holding only the line) when it is missing; else a missing file fails.
    #[serde(default)]
    pub create: bool,
    /// Set on the file when given; otherwise an existing file keeps its own (default 0644).
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "line_in_file";

    fn target(&self) -> String {
        self.path.clone()
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(Desired::prepare(self)?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    spec: Spec,
    mode: Option<String>,
}

/// Keeps every line, replaces the last one matching `re` with `line`, appends `line` when
/// none matched and no line equals it.
const PRESENT_AWK: &str = r#"BEGIN { line = ENVIRON["PROVISION_LINE"]; re = ENVIRON["PROVISION_RE"]; n = 0; last = 0; same = 0 }
{ l[++n] = $0; if (re != "" && $0 ~ re) last = n; if ($0 == line) same = 1 }
END { if (last) l[last] = line; for (i = 1; i <= n; i++) print l[i]; if (!last && !same) print line }"#;

/// Drops every line matching `re` (or, without one, equal to `line`).
const ABSENT_AWK: &str = r#"BEGIN { line = ENVIRON["PROVISION_LINE"]; re = ENVIRON["PROVISION_RE"] }
{ if (re != "" ? $0 ~ re : $0 == line) next; print }"#;

impl Desired {
    pub fn prepare(spec: &Spec) -> Result<Desired, String> {
        if !spec.path.starts_with('/') || spec.path.ends_with('/') {
            return Err(format!(
                "path `{}` must be an absolute file path",
                spec.path
            ));
        }
        if spec.regexp.as_deref() == Some("") {
            return Err("regexp is empty: leave it out to match the exact line".into());
        }
        if let Some(line) = &spec.line
            && line.contains('\n')
        {
            return Err("line holds a newline: a line_in_file step manages one line".into());
        }
        match (spec.state, &spec.line, &spec.regexp) {
            (State::Present, None, _) => {
                return Err(format!("line_in_file `{}` needs `line`", spec.path));
            }
            (State::Absent, None, None) => {
                return Err(format!(
                    "line_in_file `{}` with state = \"absent\" needs `line` or `regexp`",
                    spec.path
                ));
            }
            _ => {}
        }
        Ok(Desired {
            spec: spec.clone(),
            mode: spec.mode.as_deref().map(normalize_mode).transpose()?,
        })
    }

    /// `awk` over stdin with the line and regexp in its environment.
    fn awk(&self) -> String {
        let program = match self.spec.state {
            State::Present => PRESENT_AWK,
            State::Absent => ABSENT_AWK,
        };
        format!(
            "PROVISION_LINE={} PROVISION_RE={} awk {}",
            quote(self.spec.line.as_deref().unwrap_or_default()),
            quote(self.spec.regexp.as_deref().unwrap_or_default()),
            quote(program)
        )
    }

    fn attrs(&self, p: &Probe) -> Vec<String> {
        attr_changes(
            p,
            self.mode.as_deref(),
            self.spec.owner.as_deref(),
            self.spec.group.as_deref(),
        )
    }

    /// What the apply does when the file is not there (it may have gone since the probe).
    fn when_missing(&self) -> String {
        match (self.spec.state, self.spec.create) {
            (State::Absent, _) => "exit 0".into(),
            (State::Present, true) => format!(
                "printf '%s\\n' {} > ./upload; chmod 644 ./upload",
                quote(self.spec.line.as_deref().unwrap_or_default())
            ),
            (State::Present, false) => {
                "echo \"$dest does not exist: set create = true to make it\" >&2; exit 1".into()
            }
        }
    }

    fn what(&self) -> String {
        let path = &self.spec.path;
        match (self.spec.state, &self.spec.regexp) {
            (State::Present, Some(re)) => format!("set the line matching /{re}/ in {path}"),
            (State::Present, None) => format!("add the line to {path}"),
            (State::Absent, Some(re)) => format!("remove lines matching /{re}/ from {path}"),
            (State::Absent, None) => format!("remove the line from {path}"),
        }
    }
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        let p = quote(&self.spec.path);
        Some(format!(
            "{stat}\nif [ -f {p} ] && [ ! -L {p} ]; then\n\
             printf 'sha256=%s\\n' \"$(sha256sum < {p} | cut -c1-64)\"\n\
             printf 'new_sha256=%s\\n' \"$({awk} < {p} | sha256sum | cut -c1-64)\"\nfi",
            stat = stat_probe(&self.spec.path),
            awk = self.awk(),
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let path = &self.spec.path;
        match p.field("state") {
            Some("missing") if self.spec.state.is_absent() => {
                Decision::Ok(format!("{path} does not exist"))
            }
            Some("missing") if self.spec.create => {
                Decision::change(format!("create {path} with the line"))
            }
            Some("missing") => Decision::Fail(format!(
                "{path} does not exist: set `create = true` to make it"
            )),
            Some("file") => {
                let mut changes = self.attrs(&p);
                match (p.field("sha256"), p.field("new_sha256")) {
                    (Some(old), Some(new)) if old == new => {}
                    (Some(_), Some(_)) => changes.insert(0, self.what()),
                    _ => return Decision::Fail(format!("could not read {path}")),
                }
                if changes.is_empty() {
                    Decision::Ok(format!("{path} up to date"))
                } else {
                    Decision::change(changes.join(", "))
                }
            }
            Some(other) => Decision::Fail(format!(
                "{path} exists but is a {other}, not a regular file"
            )),
            None => Decision::Fail(format!("could not inspect {path}")),
        }
    }

    /// The new content is made from the file as it is when the change runs. A new file gets
    /// 0644 unless `mode` says otherwise; an existing one keeps its mode and owner.
    fn apply(&self) -> Action {
        let fill = format!(
            "if [ -L \"$dest\" ]; then echo \"$dest is a symbolic link: not edited\" >&2; exit 1; fi\n\
             if [ -f \"$dest\" ]; then\n\
             {awk} < \"$dest\" > ./upload\n\
             chown \"$(stat -c %u:%g -- \"$dest\")\" ./upload\n\
             chmod \"$(stat -c %a -- \"$dest\")\" ./upload\n\
             else {missing}; fi\n",
            awk = self.awk(),
            missing = self.when_missing(),
        );
        let attrs = attr_script(
            "./upload",
            self.mode.as_deref(),
            self.spec.owner.as_deref(),
            self.spec.group.as_deref(),
        );
        Action::script(staged_write(&self.spec.path, &fill, &attrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(line: Option<&str>, regexp: Option<&str>, state: State) -> Spec {
        Spec {
            path: "/etc/app.conf".into(),
            line: line.map(Into::into),
            regexp: regexp.map(Into::into),
            state,
            create: false,
            mode: None,
            owner: None,
            group: None,
        }
    }

    /// The awk program of `d` over `input`, in a real shell.
    fn run_awk(d: &Desired, input: &str) -> String {
        let out = crate::transport::script::run_in_sh(&d.awk(), input.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn present_replaces_the_last_match_or_appends() {
        let d =
            Desired::prepare(&spec(Some("port = 8080"), Some("^port *="), State::Present)).unwrap();
        assert_eq!(
            run_awk(&d, "a\nport = 1\nport = 2\nb\n"),
            "a\nport = 1\nport = 8080\nb\n"
        );
        assert_eq!(run_awk(&d, "a\n"), "a\nport = 8080\n");
        let exact = Desired::prepare(&spec(Some("x \\t $y"), None, State::Present)).unwrap();
        assert_eq!(run_awk(&exact, "x \\t $y\n"), "x \\t $y\n");
        assert_eq!(run_awk(&exact, "a"), "a\nx \\t $y\n");
    }

    #[test]
    fn absent_drops_matching_or_equal_lines() {
        let d = Desired::prepare(&spec(None, Some("^#"), State::Absent)).unwrap();
        assert_eq!(run_awk(&d, "#a\nb\n#c\n"), "b\n");
        let exact = Desired::prepare(&spec(Some("b"), None, State::Absent)).unwrap();
        assert_eq!(run_awk(&exact, "b\nbb\nb\n"), "bb\n");
    }

    #[test]
    fn decides_from_hashes() {
        let d = Desired::prepare(&spec(Some("l"), None, State::Present)).unwrap();
        let same = Probe::with_out("state=file\nmode=644\nsha256=a\nnew_sha256=a\n");
        assert!(matches!(d.decide(Some(&same)), Decision::Ok(_)));
        let differs = Probe::with_out("state=file\nmode=644\nsha256=a\nnew_sha256=b\n");
        assert_eq!(
            d.decide(Some(&differs)),
            Decision::change("add the line to /etc/app.conf")
        );
        let missing = Probe::with_out("state=missing\n");
        assert!(matches!(d.decide(Some(&missing)), Decision::Fail(_)));
        let gone = Desired::prepare(&spec(Some("l"), None, State::Absent)).unwrap();
        assert!(matches!(gone.decide(Some(&missing)), Decision::Ok(_)));
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(Desired::prepare(&spec(None, None, State::Present)).is_err());
        assert!(Desired::prepare(&spec(None, None, State::Absent)).is_err());
        assert!(Desired::prepare(&spec(Some("a\nb"), None, State::Present)).is_err());
        assert!(Desired::prepare(&spec(Some("a"), Some(""), State::Present)).is_err());
    }

    #[test]
    fn apply_writes_through_the_staging_directory() {
        let d = Desired::prepare(&spec(Some("l"), None, State::Present)).unwrap();
        let script = d.apply().script;
        assert!(script.contains("mktemp -d"), "{script}");
        assert!(
            script.ends_with("mv -f -- ./upload \"$dest\"\n"),
            "{script}"
        );
    }
}
