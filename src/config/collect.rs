//! The loaders' collecting path, for `provision validate`: every error of a file, not only
//! the first. The normal path (`Project::parse`, `Playbook::parse`) runs first, so its error
//! is always the first one reported. When it fails, the file is parsed again into toml's
//! spanned tree (every syntax error, with recovery), and each part that stands alone (the
//! top level, each `[env.<name>]`, each `[[step]]`) goes through the same serde types and
//! checks as the normal path, keeping the offsets of the whole file: the same errors at the
//! same file:line:col.

use super::lang::Source;
use super::playbook::{self, PlaybookFile, StepDef, Taken};
use super::{ConfigError, EnvFile, Playbook, Project, ProjectFile, SshDef, Top};
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue, Deserializer, ValueDeserializer};

impl Project {
    /// [`Project::load`], with every error of the file when it has any.
    pub fn load_all(file: &Path) -> Result<Project, Vec<ConfigError>> {
        let text = crate::error::read(file, "the project file").map_err(|e| vec![e])?;
        Project::parse_all(file, &text)
    }

    /// [`Project::parse`], with every error of the text when it has any (the first one is
    /// `parse`'s).
    pub fn parse_all(file: &Path, text: &str) -> Result<Project, Vec<ConfigError>> {
        Project::parse(file, text).map_err(|first| project_errors(file, text, first))
    }
}

impl Playbook {
    /// [`Playbook::load`], with every error of the file when it has any.
    pub fn load_all(file: &Path, display: &str) -> Result<Playbook, Vec<ConfigError>> {
        let text = crate::error::read(file, "the playbook").map_err(|e| {
            vec![e.with_help("create it (see `provision init`) or choose another with --playbook")]
        })?;
        Playbook::parse_all(file, display, &text)
    }

    /// [`Playbook::parse`], with every error of the text when it has any (the first one is
    /// `parse`'s).
    pub fn parse_all(file: &Path, display: &str, text: &str) -> Result<Playbook, Vec<ConfigError>> {
        Playbook::parse(file, display, text)
            .map_err(|first| playbook_errors(Path::new(display), text, first))
    }
}

/// `first` (the normal path's error) and those of every other part of provision.toml.
fn project_errors(file: &Path, text: &str, first: ConfigError) -> Vec<ConfigError> {
    let mut errors = vec![first];
    let Some(mut doc) = parsed(file, text, &mut errors) else {
        return dedup(errors);
    };
    let envs = doc.get_mut().remove("env");
    let top = ProjectFile::deserialize(Deserializer::from(doc));
    let raw = match top {
        Ok(raw) => {
            if let Err(e) = super::check_app(file, text, &raw.app) {
                errors.push(e);
            }
            Some(raw)
        }
        Err(e) => {
            errors.push(ConfigError::from_toml(file, text, &e));
            None
        }
    };
    let root = super::root_of(file);
    let (no_ssh, no_env) = (SshDef::default(), BTreeMap::new());
    let top = Top {
        file,
        text,
        root: &root,
        app: raw.as_ref().map_or("app", |r| r.app.as_str()),
        ssh: raw.as_ref().map_or(&no_ssh, |r| &r.ssh),
        remote_env: raw.as_ref().map_or(&no_env, |r| &r.remote_env),
    };
    // `env = 3` is not a table: the normal path said what is wrong with it.
    if let Some(DeValue::Table(tables)) = envs.map(Spanned::into_inner) {
        for (name, value) in tables {
            let name = name.into_inner();
            match Spanned::<EnvFile>::deserialize(ValueDeserializer::from(value)) {
                Ok(def) => errors.extend(top.env(&name, def).err()),
                Err(e) => errors.push(ConfigError::from_toml(file, text, &e)),
            }
        }
    }
    dedup(errors)
}

/// `first` and those of every other part of a playbook (`shown`: its path as messages show it).
fn playbook_errors(shown: &Path, text: &str, first: ConfigError) -> Vec<ConfigError> {
    let mut errors = vec![first];
    let Some(mut doc) = parsed(shown, text, &mut errors) else {
        return dedup(errors);
    };
    let steps = doc.get_mut().remove("step");
    if let Err(e) = PlaybookFile::deserialize(Deserializer::from(doc)) {
        errors.push(ConfigError::from_toml(shown, text, &e));
    }
    if let Some(DeValue::Array(items)) = steps.map(Spanned::into_inner) {
        let mut taken = Taken::default();
        let src = Source {
            shown: shown.to_path_buf(),
            text,
        };
        for (index, item) in items.into_iter().enumerate() {
            match Spanned::<StepDef>::deserialize(ValueDeserializer::from(item)) {
                Ok(def) => errors
                    .extend(playbook::entry(def, &src, index, &mut taken, (false, false)).err()),
                Err(e) => errors.push(ConfigError::from_toml(shown, text, &e)),
            }
        }
    }
    dedup(errors)
}

/// The file's spanned tree; None (and its syntax errors added) when it does not parse.
fn parsed<'t>(
    file: &Path,
    text: &'t str,
    errors: &mut Vec<ConfigError>,
) -> Option<Spanned<DeTable<'t>>> {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if syntax.is_empty() {
        return Some(doc);
    }
    errors.extend(syntax.iter().map(|e| ConfigError::from_toml(file, text, e)));
    None
}

/// One error per place (the normal path's and the collecting path's error for the same part
/// are the same one), in the order found.
fn dedup(errors: Vec<ConfigError>) -> Vec<ConfigError> {
    let mut seen: BTreeSet<(PathBuf, Option<usize>, Option<usize>, String)> = BTreeSet::new();
    errors
        .into_iter()
        .filter(|e| {
            // Without a line, the message tells two errors of one file apart.
            let what = if e.line.is_some() {
                String::new()
            } else {
                e.message.clone()
            };
            seen.insert((e.file.clone(), e.line, e.col, what))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Vec<String> {
        let file = Path::new("provision.toml");
        let first = Project::parse(file, text).expect_err("an invalid project");
        project_errors(file, text, first)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn playbook(text: &str) -> Vec<String> {
        let shown = Path::new("playbooks/p.toml");
        let first = Playbook::parse(shown, "playbooks/p.toml", text).expect_err("invalid");
        playbook_errors(shown, text, first)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_env_and_the_top_level_are_checked_on_their_own() {
        let errors = project(
            "app = \"x\"\ncolour = 1\n[env.a]\nhosts = [\"bad host\"]\n[env.b]\nhosts = [\"h\"]\nsecret = \"s\"\n[env.c]\nhosts = [\"ok\"]\n",
        );
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].starts_with("provision.toml:2:1: unknown field `colour`"),
            "{errors:#?}"
        );
        assert!(errors[1].starts_with("provision.toml:4:"), "{errors:#?}");
        assert!(
            errors[1].contains("`bad host` is not a host"),
            "{errors:#?}"
        );
        assert!(
            errors[2].starts_with("provision.toml:7:1: unknown field `secret`"),
            "{errors:#?}"
        );
    }

    #[test]
    fn every_syntax_error_is_reported() {
        let errors = project("app = \"x\n[env.a]\nhosts = [\"a\"\nb = = 2\n");
        assert!(errors.len() >= 2, "{errors:#?}");
        assert!(errors.iter().all(|e| e.starts_with("provision.toml:")));
    }

    #[test]
    fn every_step_is_checked_and_numbered_as_in_the_file() {
        let errors = playbook(
            "[[step]]\ncomand = { run = \"x\" }\n\n[[step]]\ncommand = { run = \"a\" }\n\n[[step]]\ncommand = { run = \"a\" }\n\n[[step]]\nname = \"n\"\n\n[[step]]\ndirectory = { path = \"/x\", mdoe = \"0755\" }\n",
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("playbooks/p.toml:2:1: unknown field `comand`"));
        assert!(errors[1].starts_with("playbooks/p.toml:7:1: two steps are named `command a`"));
        assert!(errors[2].starts_with("playbooks/p.toml:10:1: step 4 has no kind"));
        assert!(errors[3].starts_with("playbooks/p.toml:14:"), "{errors:#?}");
        assert!(errors[3].contains("mdoe"));
    }

    #[test]
    fn a_valid_part_is_not_reported() {
        let errors = playbook("release = 3\n[[step]]\ncommand = { run = \"a\" }\n");
        assert_eq!(errors.len(), 1, "{errors:#?}");
    }
}
