//! `provision secrets <env>`: which secrets the env's source holds (its secrets file, and
//! provision's environment for a name the file lacks), which steps and templates use each
//! (file:line), and which used ones are missing (exit 1). Values are never printed: only
//! names and where they come from; the values are loaded, so the channel masks them anyway.

use super::context::Context;
use super::load;
use crate::config::Playbook;
use crate::error::{Error, exit};
use crate::secrets::{Secrets, secret_names};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One place a secret is named.
#[derive(Debug, Clone, Serialize)]
pub struct Use {
    /// The playbook or template file, relative to the project.
    pub file: String,
    /// Its line, when known (a step's `[[step]]` header, a template's line).
    pub line: Option<usize>,
    /// The step that uses it (None: the playbook's `release`).
    pub step: Option<String>,
}

/// Where a key's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Source {
    File,
    /// Printed by the env's `secrets_command`.
    Command,
    Environment,
    /// In the file, with an empty value (which counts as missing).
    Empty,
    Missing,
}

#[derive(Serialize)]
struct Key {
    name: String,
    source: Source,
    used_by: Vec<Use>,
}

#[derive(Serialize)]
struct Listing {
    env: String,
    /// The env's secrets file, relative to the project (None: the env has none).
    file: Option<String>,
    file_exists: bool,
    /// The env's `secrets_command`, as written (its keys have source `command`).
    command: Option<String>,
    keys: Vec<Key>,
    /// Used somewhere, and neither in the file nor in provision's environment.
    missing: Vec<String>,
}

pub fn run(cx: &Context, env_name: &str, json: bool) -> Result<i32, Error> {
    let project = load::project(cx)?;
    let env = project.env(env_name)?;
    let secrets = load::secrets(env, &cx.redactor)?;
    let (path, display) = load::playbook_file(cx, &project, env);
    let playbook = Playbook::load(&path, &display)?;
    let mut used: BTreeMap<String, Vec<Use>> = BTreeMap::new();
    for (name, at) in uses(&playbook, &project.root) {
        used.entry(name).or_default().push(at);
    }
    let in_file: BTreeSet<String> = secrets.file_keys().into_iter().collect();
    let names: BTreeSet<&String> = in_file.iter().chain(used.keys()).collect();
    let keys: Vec<Key> = names
        .into_iter()
        .map(|name| Key {
            name: name.clone(),
            source: source_of(&secrets, &in_file, name),
            used_by: used.get(name).cloned().unwrap_or_default(),
        })
        .collect();
    let missing = (keys.iter())
        .filter(|k| matches!(k.source, Source::Missing | Source::Empty) && !k.used_by.is_empty())
        .map(|k| k.name.clone())
        .collect();
    let relative = |p: &Path| {
        p.strip_prefix(&project.root)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let listing = Listing {
        env: env.name.clone(),
        file: env.secrets.as_deref().map(relative),
        file_exists: env.secrets.as_deref().is_some_and(Path::exists),
        command: env.secrets_command.as_ref().map(|c| c.command.clone()),
        keys,
        missing,
    };
    let out = cx.out();
    if json || cx.json() {
        let doc = serde_json::to_string_pretty(&listing).unwrap_or_default();
        out.write(&format!("{doc}\n"));
    } else {
        show(&out, &listing);
    }
    Ok(if listing.missing.is_empty() {
        exit::OK
    } else {
        exit::CONFIG
    })
}

/// The key's source, as [`Secrets::get`] looks it up (the file, then the environment).
fn source_of(secrets: &Secrets, in_file: &BTreeSet<String>, name: &str) -> Source {
    // `get` registers the value with the redactor: it is masked should anything print it.
    match (in_file.contains(name), secrets.get(name).is_some()) {
        (true, true) if secrets.from_command(name) => Source::Command,
        (true, true) => Source::File,
        (true, false) => Source::Empty,
        (false, true) => Source::Environment,
        (false, false) => Source::Missing,
    }
}

fn show(out: &crate::report::Output, l: &Listing) {
    let file = match (&l.file, l.file_exists) {
        (Some(f), true) => f.clone(),
        (Some(f), false) => format!("{f} (does not exist)"),
        (None, _) => "none".into(),
    };
    let command = match &l.command {
        Some(c) => format!(", secrets_command `{c}`"),
        None => String::new(),
    };
    out.line(&format!(
        "env {}: secrets file {file}{command}, then provision's environment (values not shown)",
        l.env
    ));
    let width = l
        .keys
        .iter()
        .map(|k| k.name.len())
        .max()
        .unwrap_or(3)
        .max(3);
    out.line(&format!("{:width$}  {:<11}  USED BY", "KEY", "SOURCE"));
    for k in &l.keys {
        let source = match k.source {
            Source::File => "file",
            Source::Command => "command",
            Source::Environment => "environment",
            Source::Empty => "empty",
            Source::Missing => "MISSING",
        };
        let used = if k.used_by.is_empty() {
            "(not used)".to_string()
        } else {
            k.used_by
                .iter()
                .map(use_text)
                .collect::<Vec<_>>()
                .join("; ")
        };
        out.line(&format!("{:width$}  {source:<11}  {used}", k.name));
    }
    if l.missing.is_empty() {
        out.line(&format!(
            "{} used, none missing",
            l.keys.iter().filter(|k| !k.used_by.is_empty()).count()
        ));
    } else {
        out.err_line(&format!(
            "error: missing secrets: {} (add them to the secrets file or provision's environment)",
            l.missing.join(", ")
        ));
    }
}

/// `templates/app.conf.j2:3 (step `config`)`.
fn use_text(u: &Use) -> String {
    let at = match u.line {
        Some(line) => format!("{}:{line}", u.file),
        None => u.file.clone(),
    };
    match &u.step {
        Some(step) => format!("{at} (step `{step}`)"),
        None => format!("{at} (release)"),
    }
}

/// Every secret the playbook names and where: `release`, each step's `when` and fields
/// (at the step's line), an `env_file` step's keys, and each step's template file (at the
/// template's line). The same places the planner registers secrets from.
pub fn uses(playbook: &Playbook, root: &Path) -> Vec<(String, Use)> {
    let mut out = Vec::new();
    let file = &playbook.display;
    let at = |line: Option<usize>, step: Option<&str>| Use {
        file: file.clone(),
        line,
        step: step.map(str::to_string),
    };
    for name in playbook.release.iter().flat_map(|r| secret_names(r)) {
        out.push((name, at(None, None)));
    }
    for step in &playbook.steps {
        let mut names = BTreeSet::new();
        names.extend(step.when.iter().flat_map(|w| secret_names(w)));
        let json = serde_json::to_value(&step.spec).unwrap_or_default();
        let env_file = step.spec.kind() == "env_file";
        walk_strings(&json, "", &mut |path, s| {
            names.extend(secret_names(s));
            if env_file && path.contains(".keys[") {
                names.insert(s.to_string());
            }
        });
        for name in names {
            out.push((name, at(Some(step.line), Some(&step.name))));
        }
        if let Some(src) = step.spec.template_file() {
            out.extend(template_uses(root, src, &step.name));
        }
    }
    out
}

/// The secrets a template file names, each at the first line naming it.
fn template_uses(root: &Path, src: &str, step: &str) -> Vec<(String, Use)> {
    let Ok(text) = std::fs::read_to_string(root.join(src)) else {
        return Vec::new();
    };
    secret_names(&text)
        .into_iter()
        .map(|name| {
            let line = text
                .lines()
                .position(|l| secret_names(l).contains(&name))
                .map(|i| i + 1);
            let at = Use {
                file: src.to_string(),
                line,
                step: Some(step.to_string()),
            };
            (name, at)
        })
        .collect()
}

/// Every string in `v` with its path (`env_file.keys[0]`).
fn walk_strings(v: &serde_json::Value, path: &str, f: &mut dyn FnMut(&str, &str)) {
    match v {
        serde_json::Value::String(s) => f(path, s),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk_strings(x, &format!("{path}[{i}]"), f);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk_strings(x, &p, f);
            }
        }
        _ => {}
    }
}
