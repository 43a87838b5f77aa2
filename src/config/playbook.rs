//! Playbooks: `playbooks/<name>.toml`, an ordered list of `[[step]]` tables. Each step has
//! exactly one kind key (any of `steps::NAMES`: `command`, `directory`, `file`, …) plus
//! optional `name`, `on`, `when`, `register`, `tags`, `timeout`, `run_once`, `become`,
//! `become_user`; `loop`,
//! `vars`, `notify`, `include` entries and `[[handler]]`s are the language around steps
//! (see `lang.rs`).

use super::{ConfigError, Dur, OneOrMany, lang};
use crate::steps::{self, Spec};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_spanned::Spanned;
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlaybookFile {
    /// What a deploy is recorded as in the release log, e.g. "{{ src.sha }}".
    release: Option<String>,
    /// A deploy lock not refreshed for this long is taken over (default 2m). `lock_ttl` is
    /// its older name.
    #[serde(alias = "lock_ttl")]
    lock_stale: Option<Dur>,
    #[serde(default)]
    step: Vec<Spanned<StepDef>>,
    /// Steps run at the end of a host's run when a step notifying them changed.
    #[serde(default)]
    handler: Vec<Spanned<StepDef>>,
}

/// One `[[step]]` as written: the common keys and every kind key it has (exactly one is
/// valid; `Playbook::parse` says which are there when not).
#[derive(Debug, Default)]
pub(super) struct StepDef {
    name: Option<String>,
    on: Option<OneOrMany>,
    when: Option<String>,
    register: Option<String>,
    tags: Option<Vec<String>>,
    timeout: Option<Dur>,
    run_once: Option<Spanned<RunOnceDef>>,
    become_: Option<Spanned<bool>>,
    become_user: Option<String>,
    kinds: Vec<Spec>,
    lang: lang::LangDef,
}

/// `run_once` as written: `true`/`false`, or the host that runs the step.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "`run_once` is true, false or a host name (\"web1\")"
)]
enum RunOnceDef {
    Flag(bool),
    Host(String),
}

/// Which one host runs a `run_once` step; the others wait for its result and skip it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOnce {
    /// The first host (in run order) the step is selected for.
    First,
    /// This host (its name or address), which must be in the env.
    Host(String),
}

/// The keys every step may have besides its kind.
const COMMON: [&str; 9 + lang::KEYS.len()] = concat(
    &[
        "name",
        "on",
        "when",
        "register",
        "tags",
        "timeout",
        "run_once",
        "become",
        "become_user",
    ],
    &lang::KEYS,
);

/// Every key a `[[step]]` accepts, as an "unknown field" message lists them.
const FIELDS: [&str; COMMON.len() + steps::NAMES.len()] = concat(&COMMON, steps::NAMES);

const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

/// A key of a `[[step]]`. Checked while the key itself is read, so the toml deserializer
/// places an unknown key's error at the key, as it does for a derived struct.
enum StepKey {
    Name,
    On,
    When,
    Register,
    Tags,
    Timeout,
    RunOnce,
    Become,
    BecomeUser,
    Lang(lang::Key),
    Kind(&'static str),
}

impl<'de> Deserialize<'de> for StepKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(StepKeyVisitor)
    }
}

struct StepKeyVisitor;

impl Visitor<'_> for StepKeyVisitor {
    type Value = StepKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a step key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<StepKey, E> {
        Ok(match key {
            "name" => StepKey::Name,
            "on" => StepKey::On,
            "when" => StepKey::When,
            "register" => StepKey::Register,
            "tags" => StepKey::Tags,
            "timeout" => StepKey::Timeout,
            "run_once" => StepKey::RunOnce,
            "become" => StepKey::Become,
            "become_user" => StepKey::BecomeUser,
            _ => match (lang::Key::of(key), steps::NAMES.iter().find(|n| **n == key)) {
                (Some(k), _) => StepKey::Lang(k),
                (None, Some(kind)) => StepKey::Kind(kind),
                (None, None) => return Err(E::unknown_field(key, &FIELDS)),
            },
        })
    }
}

impl<'de> Deserialize<'de> for StepDef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("StepDef", &FIELDS, StepDefVisitor)
    }
}

struct StepDefVisitor;

impl<'de> Visitor<'de> for StepDefVisitor {
    type Value = StepDef;

    /// Worded like a derived struct's, which `ConfigError::from_toml` turns into what to write.
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct StepDef")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StepDef, A::Error> {
        let mut def = StepDef::default();
        while let Some(key) = map.next_key::<StepKey>()? {
            match key {
                StepKey::Name => lang::set(&mut def.name, "name", &mut map)?,
                StepKey::On => lang::set(&mut def.on, "on", &mut map)?,
                StepKey::When => lang::set(&mut def.when, "when", &mut map)?,
                StepKey::Register => lang::set(&mut def.register, "register", &mut map)?,
                StepKey::Tags => lang::set(&mut def.tags, "tags", &mut map)?,
                StepKey::Timeout => lang::set(&mut def.timeout, "timeout", &mut map)?,
                StepKey::RunOnce => lang::set(&mut def.run_once, "run_once", &mut map)?,
                StepKey::Become => lang::set(&mut def.become_, "become", &mut map)?,
                StepKey::BecomeUser => lang::set(&mut def.become_user, "become_user", &mut map)?,
                StepKey::Lang(k) => def.lang.read(k, &mut map)?,
                StepKey::Kind(kind) => def.kinds.push(steps::deserialize_kind(kind, &mut map)?),
            }
        }
        Ok(def)
    }
}

impl StepDef {
    fn into_kind(self) -> (Vec<Spec>, StepCommon, lang::LangDef) {
        let common = StepCommon {
            name: self.name,
            on: self.on.map(|o| o.to_vec()).unwrap_or_default(),
            when: self.when,
            register: self.register,
            tags: self.tags.unwrap_or_default(),
            timeout: self.timeout.map(|d| d.0),
            run_once: self.run_once,
            become_: self.become_,
            become_user: self.become_user,
        };
        (self.kinds, common, self.lang)
    }

    /// Whether any key but the language's (`include`, `vars`, ...) is set.
    fn has_step_keys(&self) -> bool {
        self.name.is_some()
            || self.on.is_some()
            || self.when.is_some()
            || self.register.is_some()
            || self.tags.is_some()
            || self.timeout.is_some()
            || self.run_once.is_some()
            || self.become_.is_some()
            || self.become_user.is_some()
            || !self.kinds.is_empty()
    }
}

struct StepCommon {
    name: Option<String>,
    on: Vec<String>,
    when: Option<String>,
    register: Option<String>,
    tags: Vec<String>,
    timeout: Option<Duration>,
    run_once: Option<Spanned<RunOnceDef>>,
    become_: Option<Spanned<bool>>,
    become_user: Option<String>,
}

/// One validated step.
#[derive(Debug, Clone)]
pub struct Step {
    pub index: usize,
    pub name: String,
    pub spec: Spec,
    /// Roles this step runs on; empty = every host.
    pub on: Vec<String>,
    pub when: Option<String>,
    pub register: Option<String>,
    pub tags: Vec<String>,
    pub timeout: Option<Duration>,
    /// `run_once`: None runs it on every host (a `migrate` step defaults to `First`).
    pub run_once: Option<RunOnce>,
    /// Line and column of `run_once` when written (else the header's), for errors.
    pub run_once_at: (usize, usize),
    /// Line of the `[[step]]` header, for errors.
    pub line: usize,
    /// Line and column of the kind's key (`git = { … }`), for errors in its fields.
    pub kind_at: (usize, usize),
    /// The playbook file the step is written in, as shown in messages (an included one's).
    pub file: String,
    /// `loop`, `vars`, `notify`, and whether it is a handler (see `lang.rs`).
    pub lang: lang::Lang,
    /// `become`/`become_user` on this step: its probe and change run through `sudo -n` as
    /// this user (`become = true` alone: root), the rest of the run as the env says.
    pub become_user: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    pub release: Option<String>,
    pub lock_stale: Option<Duration>,
    pub file: PathBuf,
    /// Path as shown in messages (relative to the project root).
    pub display: String,
    pub steps: Vec<Step>,
    /// `[[handler]]`s, in the order written (of this file and its includes); the planner
    /// puts them after the steps (`plan/expand.rs`).
    pub handlers: Vec<Step>,
}

/// What an entry of a `[[step]]` list is: a step, or an include of another file's steps.
pub(super) enum Entry {
    Step(Box<Step>),
    Include(lang::Include),
}

/// Names and registers taken so far in the whole playbook (includes too).
#[derive(Default)]
pub(super) struct Taken {
    names: BTreeSet<String>,
    registers: BTreeSet<String>,
}

/// A playbook file's top level as written.
pub(super) struct FileDef {
    pub release: Option<String>,
    pub lock_stale: Option<Duration>,
    pub steps: Vec<Spanned<StepDef>>,
    pub handlers: Vec<Spanned<StepDef>>,
}

pub(super) fn read_file(src: &lang::Source) -> Result<FileDef, ConfigError> {
    let raw: PlaybookFile =
        toml::from_str(src.text).map_err(|e| ConfigError::from_toml(&src.shown, src.text, &e))?;
    Ok(FileDef {
        release: raw.release,
        lock_stale: raw.lock_stale.map(|d| d.0),
        steps: raw.step,
        handlers: raw.handler,
    })
}

/// One `[[step]]` (or `[[handler]]`: `how.0`) entry, checked: exactly one kind, a distinct
/// name, a valid register; or an include. `how.1`: inside an include with `vars`.
pub(super) fn entry(
    spanned: Spanned<StepDef>,
    src: &lang::Source,
    index: usize,
    taken: &mut Taken,
    (handler, scoped): (bool, bool),
) -> Result<Entry, ConfigError> {
    let offset = spanned.span().start;
    let step_text = spanned.span();
    let err = |msg: String| src.err(offset, msg);
    let def = spanned.into_inner();
    if handler && def.name.is_none() {
        return Err(
            err("a [[handler]] needs a `name`: steps notify it by name".into())
                .with_help("add name = \"reload nginx\" (any name; `notify` uses it)"),
        );
    }
    if handler && def.lang.include.is_some() {
        return Err(err("a [[handler]] cannot `include`".into())
            .with_help("include the file as a step entry: its [[handler]]s are read too"));
    }
    if def.lang.include.is_some() {
        let step_keys = def.has_step_keys();
        return lang::include_of(def.lang, step_keys, src, offset).map(Entry::Include);
    }
    let (mut kinds, c, lang_def) = def.into_kind();
    if kinds.len() != 1 {
        let what = if kinds.is_empty() {
            "has no kind".to_string()
        } else {
            // Named in the order of the kinds list, whatever the order written.
            let given = steps::NAMES
                .iter()
                .filter(|n| kinds.iter().any(|k| k.kind() == **n));
            let given: Vec<&str> = given.copied().collect();
            format!("has {} kinds ({})", kinds.len(), given.join(", "))
        };
        return Err(err(format!("step {} {what}", index + 1)).with_help(format!(
            "give each [[step]] exactly one of: {}",
            steps::NAMES.join(", ")
        )));
    }
    let spec = kinds.remove(0);
    let name = c.name.unwrap_or_else(|| spec.default_name());
    // A templated name of a looped or scoped step is checked once rendered (plan/expand.rs):
    // the same file included twice with other vars names its steps apart.
    let varies = name.contains("{{") && (scoped || lang_def.varies());
    if !varies && !taken.names.insert(name.clone()) {
        return Err(err(format!("two steps are named `{name}`")).with_help(
            "give each step a distinct `name` (names key the output and --limit of steps)",
        ));
    }
    if let Some(r) = &c.register {
        if !is_identifier(r) {
            return Err(err(format!("register name `{r}` is not an identifier"))
                .with_help("use letters, digits and `_`, starting with a letter"));
        }
        if !taken.registers.insert(r.clone()) {
            return Err(err(format!("`{r}` is registered by two steps")));
        }
        // Provision's own values in every template: a register would hide them.
        if ["facts", "hosts"].contains(&r.as_str()) {
            return Err(err(format!(
                "register name `{r}` is taken: provision sets `{r}` in every template"
            ))
            .with_help("register under another name"));
        }
    }
    let lang = lang::Lang::of(lang_def, c.register.is_some(), src)?;
    let line = src.line_col(offset).0;
    let kind_at = kind_at(src, step_text, spec.kind()).unwrap_or((line, 1));
    let run_once_at = c
        .run_once
        .as_ref()
        .map_or((line, 1), |r| src.line_col(r.span().start));
    let run_once = run_once_of(&spec, c.run_once.map(Spanned::into_inner));
    let become_user = match (c.become_, c.become_user) {
        (Some(b), Some(_)) if !*b.get_ref() => {
            return Err(src
                .err(
                    b.span().start,
                    "`become = false` with `become_user`: the step would not become that user",
                )
                .with_help(
                    "remove `become = false`; `become_user` alone runs the step as that user",
                ));
        }
        (_, Some(user)) => Some(user),
        (Some(b), None) if *b.get_ref() => Some("root".to_string()),
        _ => None,
    };
    Ok(Entry::Step(Box::new(Step {
        become_user,
        run_once,
        run_once_at,
        index,
        name,
        spec,
        on: c.on,
        when: c.when,
        register: c.register,
        tags: c.tags,
        timeout: c.timeout,
        line,
        kind_at,
        file: src.shown.display().to_string(),
        lang,
    })))
}

/// Where `kind = …` is written in the step (from its start up to the next table header):
/// the line and column of the key, when it is written as a plain key at the start of a line.
fn kind_at(src: &lang::Source, span: std::ops::Range<usize>, kind: &str) -> Option<(usize, usize)> {
    let text = src.text.get(span.start..)?;
    let mut at = span.start;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let indent = line.len() - line.trim_start().len();
        if i > 0 && line.trim_start().starts_with('[') {
            return None;
        }
        let rest = line.trim_start().strip_prefix(kind);
        if rest.is_some_and(|r| r.trim_start().starts_with('=')) {
            return Some(src.line_col(at + indent));
        }
        at += line.len();
    }
    None
}

impl Playbook {
    /// Every host named by `run_once` must be one of the env's hosts (`names`: their names
    /// and addresses).
    pub fn check_run_once(&self, names: &[String], env_name: &str) -> Result<(), ConfigError> {
        for s in self.steps.iter().chain(&self.handlers) {
            let Some(RunOnce::Host(h)) = &s.run_once else {
                continue;
            };
            if !names.iter().any(|n| n == h) {
                let (line, col) = s.run_once_at;
                let mut e = ConfigError::new(
                    &s.file,
                    format!(
                        "step `{}` runs once on host `{h}`, which env `{env_name}` does not have",
                        s.name
                    ),
                )
                .at_line(line)
                .with_help(format!(
                    "name one of its hosts ({}), or write run_once = true for the first host the step runs on",
                    names.join(", ")
                ));
                e.col = Some(col);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Every role named in `on` must exist in the environment.
    pub fn check_roles(&self, env_roles: &[String], env_name: &str) -> Result<(), ConfigError> {
        for s in self.steps.iter().chain(&self.handlers) {
            for r in &s.on {
                if !env_roles.iter().any(|e| e == r) {
                    return Err(ConfigError::new(
                        &s.file,
                        format!(
                            "step `{}` runs on role `{r}`, which env `{env_name}` does not have",
                            s.name
                        ),
                    )
                    .at_line(s.line)
                    .with_help(format!("roles in `{env_name}`: {}", env_roles.join(", "))));
                }
            }
        }
        Ok(())
    }
}

/// What `run_once` means for a step: a `migrate` runs once per env and release unless
/// `run_once = false` says otherwise.
fn run_once_of(spec: &Spec, def: Option<RunOnceDef>) -> Option<RunOnce> {
    match def {
        Some(RunOnceDef::Flag(true)) => Some(RunOnce::First),
        Some(RunOnceDef::Flag(false)) => None,
        Some(RunOnceDef::Host(h)) => Some(RunOnce::Host(h)),
        None if spec.kind() == "migrate" => Some(RunOnce::First),
        None => None,
    }
}

pub use super::lang::is_identifier;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(t: &str) -> Result<Playbook, ConfigError> {
        Playbook::parse(Path::new("p.toml"), "playbooks/p.toml", t)
    }

    #[test]
    fn parses_steps_with_defaults() {
        let p = parse(
            r#"
[[step]]
directory = { path = "/srv/app", mode = "0755" }

[[step]]
name = "hello"
on = "web"
tags = ["x"]
timeout = "30s"
command = { run = "echo hi", creates = "/tmp/hi" }
"#,
        )
        .unwrap();
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[0].name, "directory /srv/app");
        assert_eq!(p.steps[0].line, 2);
        assert_eq!(p.steps[1].on, vec!["web"]);
        assert_eq!(p.steps[1].timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_step_with_each_kind_key_parses() {
        for (kind, table) in crate::steps::registry::SAMPLES {
            let p = parse(&format!("[[step]]\ntags = [\"t\"]\n{kind} = {table}\n"))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(p.steps[0].spec.kind(), *kind);
            assert_eq!(p.steps[0].tags, ["t"]);
        }
    }

    #[test]
    fn an_unknown_key_is_placed_at_the_key_and_every_key_is_listed() {
        let e = parse("[[step]]\ncommand = { run = \"x\" }\n  comand = 1\n").unwrap_err();
        assert_eq!((e.line, e.col), (Some(3), Some(3)), "{e}");
        let listed = format!("`{}`", FIELDS.join("`, `"));
        assert!(e.message.ends_with(&listed), "{e}");
        assert!(listed.starts_with("`name`, `on`, `when`") && listed.contains("`compose`"));
    }

    #[test]
    fn kinds_are_named_in_list_order_and_the_help_lists_them_all() {
        let e =
            parse("[[step]]\nwait = { tcp = \"a:1\" }\ncommand = { run = \"x\" }\n").unwrap_err();
        assert!(e.message.ends_with("has 2 kinds (command, wait)"), "{e}");
        let help = e.help.unwrap();
        assert!(help.ends_with(&steps::NAMES.join(", ")), "{help}");
    }

    #[test]
    fn two_kinds_is_an_error_at_the_step() {
        let e = parse("[[step]]\ncommand = { run = \"x\" }\ndirectory = { path = \"/x\" }\n")
            .unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("2 kinds"), "{e}");
    }

    #[test]
    fn unknown_field_in_kind_names_line() {
        let e = parse("[[step]]\n\ndirectory = { path = \"/x\", mdoe = \"0755\" }\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("mdoe"), "{e}");
        assert!(e.to_string().starts_with("playbooks/p.toml:3:"), "{e}");
    }

    #[test]
    fn bad_duration_and_duplicate_names() {
        let e =
            parse("[[step]]\ntimeout = \"5 parsecs\"\ncommand = { run = \"x\" }\n").unwrap_err();
        assert!(e.message.contains("invalid duration"), "{e}");
        let e = parse("[[step]]\ncommand = { run = \"x\" }\n[[step]]\ncommand = { run = \"x\" }\n")
            .unwrap_err();
        assert!(e.message.contains("two steps are named"), "{e}");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn unknown_role_is_reported() {
        let p = parse("[[step]]\non = \"db\"\ncommand = { run = \"x\" }\n").unwrap();
        let e = p.check_roles(&["web".into()], "prod").unwrap_err();
        assert!(e.to_string().contains("role `db`"), "{e}");
    }

    #[test]
    fn run_once_is_a_flag_or_a_host_and_migrate_defaults_to_it() {
        let p = parse(
            "[[step]]\nname = \"a\"\nrun_once = true\ncommand = { run = \"x\" }\n\
             [[step]]\nname = \"b\"\nrun_once = \"web2\"\ncommand = { run = \"x\" }\n\
             [[step]]\nname = \"c\"\nmigrate = { image = \"i\", command = \"m\" }\n\
             [[step]]\nname = \"d\"\nrun_once = false\nmigrate = { image = \"i\", command = \"m\" }\n\
             [[step]]\nname = \"e\"\ncommand = { run = \"x\" }\n",
        )
        .unwrap();
        let once: Vec<_> = p.steps.iter().map(|s| s.run_once.clone()).collect();
        assert_eq!(
            once,
            [
                Some(RunOnce::First),
                Some(RunOnce::Host("web2".into())),
                Some(RunOnce::First),
                None,
                None
            ]
        );
        let e = p.check_run_once(&["web1".into()], "prod").unwrap_err();
        assert_eq!((e.line, e.col), (Some(7), Some(12)), "{e}");
        assert!(
            e.message
                .contains("host `web2`, which env `prod` does not have"),
            "{e}"
        );
        assert!(
            p.check_run_once(&["web1".into(), "web2".into()], "prod")
                .is_ok()
        );
        let e = parse("[[step]]\nrun_once = 3\ncommand = { run = \"x\" }\n").unwrap_err();
        assert!(e.message.contains("true, false or a host name"), "{e}");
    }
}
