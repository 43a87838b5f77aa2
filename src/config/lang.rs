//! The playbook language around steps, as written: `loop` (one step per item), `vars` (values
//! only this step sees), `include` entries (another file's steps, with their own `vars`),
//! `notify` and `[[handler]]`s (steps run at the end when a step notifying them changed).
//!
//! This module reads them and checks what needs no vars: the include tree (files relative to
//! the including one, no cycles), the shapes, and that every notified handler exists. The
//! planner expands loops and wires handlers once vars are known (`plan/expand.rs`).

use super::playbook::{self, Entry, Source, Step, Taken};
use super::{ConfigError, OneOrMany};
use serde::de::MapAccess;
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The keys of a `[[step]]` this module reads.
pub const KEYS: [&str; 4] = ["loop", "vars", "notify", "include"];

/// One of [`KEYS`].
#[derive(Debug, Clone, Copy)]
pub enum Key {
    Loop,
    Vars,
    Notify,
    Include,
}

impl Key {
    pub fn of(key: &str) -> Option<Key> {
        Some(match key {
            "loop" => Key::Loop,
            "vars" => Key::Vars,
            "notify" => Key::Notify,
            "include" => Key::Include,
            _ => return None,
        })
    }
}

/// The language keys of one `[[step]]` as written.
#[derive(Debug, Default)]
pub struct LangDef {
    loop_: Option<Spanned<toml::Value>>,
    vars: Option<Spanned<toml::Table>>,
    notify: Option<Spanned<OneOrMany>>,
    pub(super) include: Option<Spanned<String>>,
}

impl LangDef {
    /// Whether the step's values differ between its expansions (a loop, or its own vars).
    pub(super) fn varies(&self) -> bool {
        self.loop_.is_some() || self.vars.is_some()
    }

    /// Read the value of `key` (the entry the map is at).
    pub fn read<'de, A: MapAccess<'de>>(&mut self, key: Key, map: &mut A) -> Result<(), A::Error> {
        match key {
            Key::Loop => playbook::set(&mut self.loop_, "loop", map),
            Key::Vars => playbook::set(&mut self.vars, "vars", map),
            Key::Notify => playbook::set(&mut self.notify, "notify", map),
            Key::Include => playbook::set(&mut self.include, "include", map),
        }
    }
}

/// `loop` as written: a list of items, or a string naming a list (`"{{ users }}"`, `"users"`).
#[derive(Debug, Clone)]
pub struct Loop {
    pub value: toml::Value,
    /// Line and column of the value, for errors.
    pub at: (usize, usize),
}

/// The language of one validated step.
#[derive(Debug, Clone, Default)]
pub struct Lang {
    /// Expanded by the planner into one step per item.
    pub loop_: Option<Loop>,
    /// `vars` of the includes around the step, outermost first, then the step's own: each
    /// layer may use the ones before it and the project's vars (rendered by the planner).
    pub scopes: Vec<toml::Table>,
    /// The handlers this step notifies when it changes, and where `notify` is written.
    pub notify: Vec<String>,
    pub notify_at: (usize, usize),
    /// On a `[[handler]]`'s steps: the handler's name as written (what `notify` names).
    pub handler: Option<String>,
    /// Set by the planner: what only this step sees in templates (`item`, `loop_index`,
    /// the rendered `vars`), and for a handler, the steps notifying it (their indices).
    pub locals: BTreeMap<String, serde_json::Value>,
    pub notified_by: Vec<usize>,
}

impl Lang {
    /// Check the language keys of a step (not an include) at `offset` of `src`.
    pub(super) fn of(def: LangDef, registers: bool, src: &Source) -> Result<Lang, ConfigError> {
        let mut lang = Lang::default();
        if let Some(l) = def.loop_ {
            let at = src.line_col(l.span().start);
            let err = |m: &str| src.err(l.span().start, m.to_string());
            match l.get_ref() {
                toml::Value::Array(_) | toml::Value::String(_) => {}
                other => {
                    return Err(err(&format!(
                        "`loop` is a list or the name of a list var (found: {})",
                        other.type_str()
                    ))
                    .with_help("write loop = [\"a\", \"b\"] or loop = \"{{ users }}\""));
                }
            }
            if registers {
                return Err(err(
                    "a step with `loop` cannot `register`: every item would overwrite the value",
                )
                .with_help("remove `register`, or write one step per value"));
            }
            lang.loop_ = Some(Loop {
                value: l.into_inner(),
                at,
            });
        }
        if let Some(v) = def.vars {
            check_var_names(v.get_ref(), src, v.span().start)?;
            lang.scopes.push(v.into_inner());
        }
        if let Some(n) = def.notify {
            lang.notify_at = src.line_col(n.span().start);
            lang.notify = n.into_inner().to_vec();
        }
        Ok(lang)
    }
}

/// `include = "<file>"` with its `vars`, at `offset` of the including file.
#[derive(Debug)]
pub struct Include {
    path: String,
    offset: usize,
    vars: Option<toml::Table>,
}

/// An include entry: `include` and `vars` only.
pub(super) fn include_of(
    def: LangDef,
    step_keys: bool,
    src: &Source,
    offset: usize,
) -> Result<Include, ConfigError> {
    let path = def.include.expect("an include entry");
    let err = |m: &str| src.err(offset, m.to_string());
    if step_keys || def.notify.is_some() {
        return Err(err("an `include` entry takes only `include` and `vars`")
            .with_help("put `name`, `when`, `tags`, `notify` and the kind on the included steps"));
    }
    if let Some(l) = &def.loop_ {
        return Err(src.err(l.span().start, "`loop` on an `include` is not supported")
            .with_help("put the loop on the included steps, or include the file once per value with its own `vars`"));
    }
    let vars = match def.vars {
        Some(v) => {
            check_var_names(v.get_ref(), src, v.span().start)?;
            Some(v.into_inner())
        }
        None => None,
    };
    Ok(Include {
        offset: path.span().start,
        path: path.into_inner(),
        vars,
    })
}

/// Names provision sets itself, which `vars` must not hide.
const RESERVED: [&str; 6] = ["hosts", "facts", "host", "secrets", "app", "env"];

fn check_var_names(vars: &toml::Table, src: &Source, offset: usize) -> Result<(), ConfigError> {
    for k in vars.keys() {
        if !playbook::is_identifier(k) {
            return Err(src
                .err(offset, format!("`{k}` in `vars` is not a variable name"))
                .with_help("use letters, digits and `_`, starting with a letter"));
        }
        if RESERVED.contains(&k.as_str()) {
            return Err(src
                .err(
                    offset,
                    format!("`vars` sets `{k}`, which provision sets in every template"),
                )
                .with_help("rename the var"));
        }
    }
    Ok(())
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
