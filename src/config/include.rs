//! Reading a playbook and the files it includes (`include = "<file>"`, relative to the
//! including file): depth first, in order, each step knowing the file it is written in and
//! the `vars` of the includes around it; a file including itself (through others too) and a
//! missing file are errors at the include.

use super::ConfigError;
use super::lang::{Include, Source};
use super::playbook::{self, Entry, Playbook, Step, Taken};
use serde_spanned::Spanned;
use std::path::{Component, Path, PathBuf};

impl Playbook {
    pub fn load(file: &Path, display: &str) -> Result<Playbook, ConfigError> {
        let text = crate::error::read(file, "the playbook").map_err(|e| {
            e.with_help("create it (see `provision init`) or choose another with --playbook")
        })?;
        Self::parse(file, display, &text)
    }

    /// The playbook in `text` (the content of `file`), with the files it includes read.
    pub fn parse(file: &Path, display: &str, text: &str) -> Result<Playbook, ConfigError> {
        let src = Source {
            shown: PathBuf::from(display),
            text,
        };
        let raw = playbook::read_file(&src)?;
        let (steps, handlers) = Walk::run(file, &src, raw.steps, raw.handlers)?;
        Ok(Playbook {
            release: raw.release,
            lock_stale: raw.lock_stale,
            file: file.to_path_buf(),
            display: display.to_string(),
            steps,
            handlers,
        })
    }
}

/// Reading a playbook and the files it includes, depth first, in order.
pub(super) struct Walk {
    /// The files being read, outermost first (canonical paths): an include of one is a cycle.
    stack: Vec<(PathBuf, String)>,
    taken: Taken,
    steps: Vec<Step>,
    handlers: Vec<Step>,
}

impl Walk {
    /// The steps and handlers of the playbook `file` (read as `src`) and its includes.
    pub fn run(
        file: &Path,
        src: &Source,
        steps: Vec<Spanned<playbook::StepDef>>,
        handlers: Vec<Spanned<playbook::StepDef>>,
    ) -> Result<(Vec<Step>, Vec<Step>), ConfigError> {
        let canon = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let mut w = Walk {
            stack: vec![(canon, src.shown.display().to_string())],
            taken: Taken::default(),
            steps: Vec::new(),
            handlers: Vec::new(),
        };
        w.file(file, src, steps, handlers, &[])?;
        w.check_notify()?;
        Ok((w.steps, w.handlers))
    }

    fn file(
        &mut self,
        file: &Path,
        src: &Source,
        steps: Vec<Spanned<playbook::StepDef>>,
        handlers: Vec<Spanned<playbook::StepDef>>,
        scopes: &[toml::Table],
    ) -> Result<(), ConfigError> {
        for (i, def) in steps.into_iter().enumerate() {
            let scoped_in = !scopes.is_empty();
            match playbook::entry(def, src, i, &mut self.taken, (false, scoped_in))? {
                Entry::Step(s) => {
                    let index = self.steps.len();
                    self.steps.push(scoped(*s, scopes, index));
                }
                Entry::Include(inc) => self.include(file, src, inc, scopes)?,
            }
        }
        for (i, def) in handlers.into_iter().enumerate() {
            let how = (true, !scopes.is_empty());
            if let Entry::Step(mut s) = playbook::entry(def, src, i, &mut self.taken, how)? {
                s.lang.handler = Some(s.name.clone());
                let index = self.handlers.len();
                self.handlers.push(scoped(*s, scopes, index));
            }
        }
        Ok(())
    }

    /// The steps of an included file, relative to the including `file`.
    fn include(
        &mut self,
        file: &Path,
        src: &Source,
        inc: Include,
        scopes: &[toml::Table],
    ) -> Result<(), ConfigError> {
        let base = file.parent().unwrap_or(Path::new("."));
        let shown = normalize(&src.shown.parent().unwrap_or(Path::new("")).join(&inc.path));
        let err = |m: String| src.err(inc.offset, m);
        let path = base.join(&inc.path);
        let canon = std::fs::canonicalize(&path).map_err(|e| {
            err(format!(
                "include `{}`: cannot read {}: {e}",
                inc.path,
                shown.display()
            ))
            .with_help("the path is relative to the file that includes it")
        })?;
        if let Some(at) = self.stack.iter().position(|(p, _)| *p == canon) {
            let mut cycle: Vec<&str> = self.stack[at..].iter().map(|(_, s)| s.as_str()).collect();
            let shown_text = shown.display().to_string();
            cycle.push(&shown_text);
            return Err(err(format!("include cycle: {}", cycle.join(" → ")))
                .with_help("a file cannot include itself, directly or through others"));
        }
        let text = std::fs::read_to_string(&canon).map_err(|e| {
            err(format!(
                "include `{}`: cannot read {}: {e}",
                inc.path,
                shown.display()
            ))
        })?;
        let isrc = Source {
            shown: shown.clone(),
            text: &text,
        };
        let raw = playbook::read_file(&isrc)?;
        if raw.release.is_some() || raw.lock_stale.is_some() {
            return Err(ConfigError::new(
                &shown,
                "an included file holds steps and handlers only: `release` and `lock_stale` belong in the playbook",
            )
            .with_help(format!("move them to {}", self.stack[0].1)));
        }
        let mut inner = scopes.to_vec();
        inner.extend(inc.vars);
        self.stack
            .push((canon.clone(), shown.display().to_string()));
        self.file(&canon, &isrc, raw.steps, raw.handlers, &inner)?;
        self.stack.pop();
        Ok(())
    }

    /// Every name in a `notify` is a handler; a handler notifies only handlers after it
    /// (they run in the order written).
    fn check_notify(&self) -> Result<(), ConfigError> {
        let names: Vec<&str> = self.handlers.iter().map(|h| h.name.as_str()).collect();
        for (pos, s) in self
            .steps
            .iter()
            .map(|s| (None, s))
            .chain(self.handlers.iter().enumerate().map(|(i, h)| (Some(i), h)))
        {
            for n in &s.lang.notify {
                let found = names.iter().position(|h| h == n);
                let at = |msg: String| {
                    let mut e = ConfigError::new(&s.file, msg).at_line(s.lang.notify_at.0);
                    e.col = Some(s.lang.notify_at.1);
                    e
                };
                match (found, pos) {
                    (None, _) => {
                        let help = match crate::error::suggest(n, names.iter().copied()) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None if names.is_empty() => format!(
                                "define it: [[handler]] with name = \"{n}\" and the step to run"
                            ),
                            None => format!("the handlers are: {}", names.join(", ")),
                        };
                        return Err(at(format!(
                            "step `{}` notifies `{n}`, which is no handler",
                            s.name
                        ))
                        .with_help(help));
                    }
                    (Some(h), Some(me)) if h <= me => {
                        return Err(at(format!(
                            "handler `{}` notifies `{n}`, which is not after it",
                            s.name
                        ))
                        .with_help("handlers run in the order written: a handler may notify only later ones"));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// A step of a file read inside includes: their `vars` come before its own.
fn scoped(mut s: Step, scopes: &[toml::Table], index: usize) -> Step {
    s.lang.scopes.splice(0..0, scopes.iter().cloned());
    s.index = index;
    s
}

/// `a/./b/../c` → `a/c`, so messages name an included file as the user would.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, Playbook};

    /// A playbook directory with `files` (path, text); the playbook is the first.
    fn load(files: &[(&str, &str)]) -> Result<Playbook, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Playbook::load(&dir.path().join(files[0].0), files[0].0)
    }

    #[test]
    fn an_include_reads_the_file_relative_to_the_including_one_with_its_vars() {
        let p = load(&[
            (
                "playbooks/deploy.toml",
                "[[step]]\ncommand = { run = \"a\" }\n[[step]]\ninclude = \"roles/web.toml\"\nvars = { port = 80 }\n[[step]]\ncommand = { run = \"z\" }\n",
            ),
            (
                "playbooks/roles/web.toml",
                "[[step]]\nname = \"web {{ port }}\"\ncommand = { run = \"w\" }\n[[handler]]\nname = \"reload\"\ncommand = { run = \"r\" }\n",
            ),
        ])
        .unwrap();
        let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["command a", "web {{ port }}", "command z"]);
        assert_eq!(p.steps[1].file, "playbooks/roles/web.toml");
        assert_eq!(p.steps[1].line, 1);
        assert_eq!(p.steps[1].lang.scopes[0]["port"].as_integer(), Some(80));
        assert!(p.steps[2].lang.scopes.is_empty());
        assert_eq!(p.handlers[0].lang.handler.as_deref(), Some("reload"));
        assert_eq!(p.handlers[0].file, "playbooks/roles/web.toml");
    }

    #[test]
    fn a_missing_include_and_a_cycle_are_errors_at_the_include() {
        let e = load(&[(
            "playbooks/deploy.toml",
            "[[step]]\ncommand = { run = \"a\" }\n\n[[step]]\ninclude = \"nope.toml\"\n",
        )])
        .unwrap_err();
        assert_eq!(
            (e.file.to_str(), e.line, e.col),
            (Some("playbooks/deploy.toml"), Some(5), Some(11)),
            "{e}"
        );
        assert!(e.message.contains("playbooks/nope.toml"), "{e}");
        let e = load(&[
            ("playbooks/a.toml", "[[step]]\ninclude = \"b.toml\"\n"),
            ("playbooks/b.toml", "\n[[step]]\ninclude = \"./a.toml\"\n"),
        ])
        .unwrap_err();
        assert_eq!(
            (e.file.to_str(), e.line),
            (Some("playbooks/b.toml"), Some(3))
        );
        assert!(
            e.message
                .ends_with("include cycle: playbooks/a.toml → playbooks/b.toml → playbooks/a.toml"),
            "{e}"
        );
    }

    #[test]
    fn errors_inside_an_included_file_name_that_file() {
        let e = load(&[
            ("playbooks/a.toml", "[[step]]\ninclude = \"b.toml\"\n"),
            (
                "playbooks/b.toml",
                "[[step]]\ncommand = { run = \"x\", nope = 1 }\n",
            ),
        ])
        .unwrap_err();
        assert_eq!(
            (e.file.to_str(), e.line),
            (Some("playbooks/b.toml"), Some(2)),
            "{e}"
        );
    }

    #[test]
    fn notify_names_a_handler_and_suggests_the_closest() {
        let e = load(&[(
            "p.toml",
            "[[step]]\ncommand = { run = \"a\" }\nnotify = [\"reload ngnix\"]\n[[handler]]\nname = \"reload nginx\"\ncommand = { run = \"r\" }\n",
        )])
        .unwrap_err();
        assert_eq!((e.line, e.col), (Some(3), Some(10)), "{e}");
        assert!(
            e.message
                .contains("notifies `reload ngnix`, which is no handler"),
            "{e}"
        );
        assert_eq!(e.help.as_deref(), Some("did you mean `reload nginx`?"));
        let e = load(&[("p.toml", "[[handler]]\ncommand = { run = \"r\" }\n")]).unwrap_err();
        assert!(e.message.contains("needs a `name`"), "{e}");
    }

    #[test]
    fn bad_loops_and_includes_are_errors_at_their_value() {
        let e = load(&[("p.toml", "[[step]]\ncommand = { run = \"a\" }\nloop = 3\n")]).unwrap_err();
        assert_eq!((e.line, e.col), (Some(3), Some(8)), "{e}");
        assert!(e.message.contains("(found: integer)"), "{e}");
        let e = load(&[(
            "p.toml",
            "[[step]]\ncommand = { run = \"a\" }\nloop = [1]\nregister = \"r\"\n",
        )])
        .unwrap_err();
        assert!(e.message.contains("cannot `register`"), "{e}");
        let e = load(&[
            ("p.toml", "[[step]]\ninclude = \"b.toml\"\nwhen = \"x\"\n"),
            ("b.toml", ""),
        ])
        .unwrap_err();
        assert!(e.message.contains("takes only `include` and `vars`"), "{e}");
    }
}
