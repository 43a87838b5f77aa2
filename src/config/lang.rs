//! The playbook language around steps, as written: `loop` (one step per item), `vars` (values
//! only this step sees), `include` entries (another file's steps, with their own `vars`),
//! `notify` and `[[handler]]`s (steps run at the end when a step notifying them changed).
//!
//! This module reads the keys and checks their shapes; `include.rs` reads the include tree
//! and checks that every notified handler exists; the planner expands loops and wires
//! handlers once vars are known (`plan/expand.rs`).

use super::{ConfigError, OneOrMany};
use serde::Deserialize;
use serde::de::{self, MapAccess};
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
            Key::Loop => set(&mut self.loop_, "loop", map),
            Key::Vars => set(&mut self.vars, "vars", map),
            Key::Notify => set(&mut self.notify, "notify", map),
            Key::Include => set(&mut self.include, "include", map),
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
    pub(super) path: String,
    pub(super) offset: usize,
    pub(super) vars: Option<toml::Table>,
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
        if !is_identifier(k) {
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

/// One file of a playbook being read: the path shown in messages and its text.
pub(super) struct Source<'a> {
    pub shown: PathBuf,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn err(&self, offset: usize, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.shown, self.text, offset, msg)
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        crate::error::line_col(self.text, offset)
    }
}

/// Read the current entry's value into `slot`, which a key given twice would overwrite.
pub(super) fn set<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    key: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

pub fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
