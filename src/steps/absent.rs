//! What `state = "absent"` (see `state.rs`) means for `file` and `directory`: nothing at this
//! path; and for `docker_run`: no such container. Absent already is ok; a path of
//! the other type (a directory where a file should be gone) fails rather than being removed,
//! so a typo'd `dest` never deletes a tree.

use super::shell::type_probe;
use super::{Action, Decision, Probe, StepKind};
use crate::transport::script::quote;

/// What kind of path is to be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathType {
    /// A regular file (or a link, which is removed itself, never its target).
    File,
    /// A directory and everything under it.
    Dir,
}

/// The path must not exist.
#[derive(Debug, Clone)]
pub struct AbsentPath {
    pub path: String,
    pub kind: PathType,
}

impl AbsentPath {
    pub fn new(path: &str, kind: PathType) -> Result<AbsentPath, String> {
        let trimmed = path.trim_end_matches('/');
        if !path.starts_with('/') || trimmed.is_empty() {
            return Err(format!(
                "path `{path}` must be absolute and not `/` to be removed"
            ));
        }
        Ok(AbsentPath {
            path: trimmed.to_string(),
            kind,
        })
    }
}

impl StepKind for AbsentPath {
    fn probe(&self, _check: bool) -> Option<String> {
        Some(type_probe(&self.path))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let path = &self.path;
        match (p.field("state"), self.kind) {
            (Some("missing"), _) => Decision::Ok(format!("{path} absent")),
            (Some("file" | "link"), PathType::File) => Decision::change(format!("remove {path}")),
            (Some("dir"), PathType::Dir) => {
                Decision::change(format!("remove {path} and all it holds"))
            }
            (Some("link"), PathType::Dir) => Decision::change(format!("remove {path} (a link)")),
            (Some(other), _) => Decision::Fail(format!(
                "{path} is a {other}, not a {}: not removed",
                if self.kind == PathType::File {
                    "file"
                } else {
                    "directory"
                }
            )),
            (None, _) => Decision::Fail(format!("could not inspect {path}")),
        }
    }

    /// `rm` never follows a link given as its operand, so a link is removed, not its target.
    fn apply(&self) -> Action {
        let flags = match self.kind {
            PathType::File => "-f",
            PathType::Dir => "-rf",
        };
        Action::script(format!("set -e\nrm {flags} -- {}\n", quote(&self.path)))
    }
}

/// No container of this name (nor its `<name>--previous`, kept by a stop-first swap). Named
/// volumes are kept: a database's data outlives its container.
#[derive(Debug, Clone)]
pub struct AbsentContainer {
    name: String,
    /// A stateful container (a database) is only removed with `--allow-recreate`.
    stateful: bool,
    allow_recreate: bool,
}

impl AbsentContainer {
    pub fn new(name: &str, stateful: bool, allow_recreate: bool) -> Result<Self, String> {
        if !super::docker_swap::valid_name(name) {
            return Err(format!(
                "container name `{name}` may only hold letters, digits, `_`, `.` and `-`"
            ));
        }
        Ok(AbsentContainer {
            name: name.to_string(),
            stateful,
            allow_recreate,
        })
    }
}

impl StepKind for AbsentContainer {
    /// `docker=none`: no docker binary, so no container either. A docker that is there but
    /// does not answer is not taken as "nothing to remove".
    fn probe(&self, _check: bool) -> Option<String> {
        Some(format!(
            "if command -v docker >/dev/null 2>&1; then\n{ok}\
             for c in {n} {n}--previous; do docker inspect -f \"exists=$c\" \"$c\" 2>/dev/null || true; done\n\
             else echo docker=none; fi\n",
            ok = super::docker_install::docker_ok_probe(),
            n = self.name,
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let name = &self.name;
        match p.field("docker") {
            Some("none") => return Decision::Ok(format!("{name} absent (no docker on the host)")),
            Some("ok") => {}
            _ => {
                return Decision::Fail(format!(
                    "docker does not answer: cannot check that {name} is gone"
                ));
            }
        }
        let found: Vec<&str> = p
            .out
            .lines()
            .filter_map(|l| l.strip_prefix("exists="))
            .collect();
        if found.is_empty() {
            Decision::Ok(format!("{name} absent"))
        } else if self.stateful && !self.allow_recreate {
            Decision::Fail(format!(
                "{name} is stateful: it is only removed with --allow-recreate (its named volumes are kept)"
            ))
        } else {
            Decision::change(format!("remove container {}", found.join(", ")))
        }
    }

    fn apply(&self) -> Action {
        Action::script(format!(
            "set -e\nfor c in {n} {n}--previous; do\n\
             if docker inspect \"$c\" >/dev/null 2>&1; then docker rm -f \"$c\" >/dev/null; fi\n\
             done\n",
            n = self.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_decisions() {
        let c = AbsentContainer::new("web", false, false).unwrap();
        let none = Probe::with_out("docker=none\n");
        assert!(matches!(c.decide(Some(&none)), Decision::Ok(_)));
        let gone = Probe::with_out("docker=ok\n");
        assert!(matches!(c.decide(Some(&gone)), Decision::Ok(_)));
        let down = Probe::with_out("");
        assert!(matches!(c.decide(Some(&down)), Decision::Fail(_)));
        let both = Probe::with_out("docker=ok\nexists=web\nexists=web--previous\n");
        assert_eq!(
            c.decide(Some(&both)),
            Decision::change("remove container web, web--previous")
        );
        let db = AbsentContainer::new("db", true, false).unwrap();
        assert!(matches!(db.decide(Some(&both)), Decision::Fail(_)));
        let db = AbsentContainer::new("db", true, true).unwrap();
        assert!(matches!(db.decide(Some(&both)), Decision::Change { .. }));
        assert!(AbsentContainer::new("a b", false, false).is_err());
    }

    #[test]
    fn decides_from_stat() {
        let f = AbsentPath::new("/srv/a.conf", PathType::File).unwrap();
        let missing = Probe::with_out("state=missing\n");
        assert!(matches!(f.decide(Some(&missing)), Decision::Ok(_)));
        let file = Probe::with_out("state=file\nmode=644\n");
        assert_eq!(
            f.decide(Some(&file)),
            Decision::change("remove /srv/a.conf")
        );
        let dir = Probe::with_out("state=dir\n");
        assert!(matches!(f.decide(Some(&dir)), Decision::Fail(_)));
        let d = AbsentPath::new("/srv/d/", PathType::Dir).unwrap();
        assert_eq!(
            d.decide(Some(&dir)),
            Decision::change("remove /srv/d and all it holds")
        );
        assert!(matches!(d.decide(Some(&file)), Decision::Fail(_)));
    }

    #[test]
    fn root_and_relative_paths_are_refused() {
        assert!(AbsentPath::new("/", PathType::Dir).is_err());
        assert!(AbsentPath::new("//", PathType::Dir).is_err());
        assert!(AbsentPath::new("srv", PathType::File).is_err());
    }

    #[test]
    fn apply_is_quoted() {
        let d = AbsentPath::new("/srv/my dir", PathType::Dir).unwrap();
        assert_eq!(d.apply().script, "set -e\nrm -rf -- '/srv/my dir'\n");
    }
}
