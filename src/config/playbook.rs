//! Playbooks: `playbooks/<name>.toml`, an ordered list of `[[step]]` tables. Each step has
//! exactly one kind key (`command`, `directory`, `file`, `template`, `env_file`, `packages`,
//! `git`) plus optional `name`, `on`, `when`, `register`, `tags`, `timeout`.

use super::{ConfigError, Dur, OneOrMany};
use crate::steps::{self, Spec};
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybookFile {
    /// What a deploy is recorded as in the release log, e.g. "{{ src.sha }}".
    release: Option<String>,
    /// A deploy lock older than this is taken over (default 30m).
    lock_ttl: Option<Dur>,
    #[serde(default)]
    step: Vec<Spanned<StepDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDef {
    name: Option<String>,
    on: Option<OneOrMany>,
    when: Option<String>,
    register: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    timeout: Option<Dur>,
    command: Option<steps::command::Spec>,
    directory: Option<steps::directory::Spec>,
    file: Option<steps::file::Spec>,
    template: Option<steps::template::Spec>,
    env_file: Option<steps::env_file::Spec>,
    packages: Option<steps::packages::Spec>,
    git: Option<steps::git::Spec>,
    docker_install: Option<steps::docker_install::Spec>,
    docker_build: Option<steps::docker_build::Spec>,
    docker_run: Option<steps::docker_run::Spec>,
    wait: Option<steps::wait::Spec>,
    migrate: Option<steps::migrate::Spec>,
    healthcheck: Option<steps::healthcheck::Spec>,
    compose: Option<steps::compose::Spec>,
}

const KINDS: &str = "command, directory, file, template, env_file, packages, git, docker_install, docker_build, docker_run, wait, migrate, healthcheck, compose";

impl StepDef {
    fn into_kind(self) -> (Vec<Spec>, StepCommon) {
        let kinds: Vec<Spec> = [
            self.command.map(Spec::Command),
            self.directory.map(Spec::Directory),
            self.file.map(Spec::File),
            self.template.map(Spec::Template),
            self.env_file.map(Spec::EnvFile),
            self.packages.map(Spec::Packages),
            self.git.map(Spec::Git),
            self.docker_install.map(Spec::DockerInstall),
            self.docker_build.map(Spec::DockerBuild),
            self.docker_run.map(Spec::DockerRun),
            self.wait.map(Spec::Wait),
            self.migrate.map(Spec::Migrate),
            self.healthcheck.map(Spec::Healthcheck),
            self.compose.map(Spec::Compose),
        ]
        .into_iter()
        .flatten()
        .collect();
        let common = StepCommon {
            name: self.name,
            on: self.on.map(|o| o.to_vec()).unwrap_or_default(),
            when: self.when,
            register: self.register,
            tags: self.tags,
            timeout: self.timeout.map(|d| d.0),
        };
        (kinds, common)
    }
}

struct StepCommon {
    name: Option<String>,
    on: Vec<String>,
    when: Option<String>,
    register: Option<String>,
    tags: Vec<String>,
    timeout: Option<Duration>,
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
    /// Line of the `[[step]]` header, for errors.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    pub release: Option<String>,
    pub lock_ttl: Option<Duration>,
    pub file: PathBuf,
    /// Path as shown in messages (relative to the project root).
    pub display: String,
    pub steps: Vec<Step>,
}

impl Playbook {
    pub fn load(file: &Path, display: &str) -> Result<Playbook, ConfigError> {
        let text = crate::error::read(file, "the playbook").map_err(|e| {
            e.with_help("create it (see `provision init`) or choose another with --playbook")
        })?;
        Self::parse(file, display, &text)
    }

    pub fn parse(file: &Path, display: &str, text: &str) -> Result<Playbook, ConfigError> {
        let shown = PathBuf::from(display);
        let raw: PlaybookFile =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(&shown, text, &e))?;
        let mut steps = Vec::new();
        let mut names = BTreeSet::new();
        let mut registers = BTreeSet::new();
        for (index, spanned) in raw.step.into_iter().enumerate() {
            let offset = spanned.span().start;
            let err = |msg: String| ConfigError::at(&shown, text, offset, msg);
            let (mut kinds, c) = spanned.into_inner().into_kind();
            if kinds.len() != 1 {
                let what = if kinds.is_empty() {
                    "has no kind".to_string()
                } else {
                    format!(
                        "has {} kinds ({})",
                        kinds.len(),
                        kinds.iter().map(Spec::kind).collect::<Vec<_>>().join(", ")
                    )
                };
                return Err(err(format!("step {} {what}", index + 1))
                    .with_help(format!("give each [[step]] exactly one of: {KINDS}")));
            }
            let spec = kinds.remove(0);
            let name = c.name.unwrap_or_else(|| spec.default_name());
            if !names.insert(name.clone()) {
                return Err(err(format!("two steps are named `{name}`")).with_help(
                    "give each step a distinct `name` (names key the output and --limit of steps)",
                ));
            }
            if let Some(r) = &c.register {
                if !is_identifier(r) {
                    return Err(err(format!("register name `{r}` is not an identifier"))
                        .with_help("use letters, digits and `_`, starting with a letter"));
                }
                if !registers.insert(r.clone()) {
                    return Err(err(format!("`{r}` is registered by two steps")));
                }
            }
            let line = crate::error::line_col(text, offset).0;
            steps.push(Step {
                index,
                name,
                spec,
                on: c.on,
                when: c.when,
                register: c.register,
                tags: c.tags,
                timeout: c.timeout,
                line,
            });
        }
        Ok(Playbook {
            release: raw.release,
            lock_ttl: raw.lock_ttl.map(|d| d.0),
            file: file.to_path_buf(),
            display: display.to_string(),
            steps,
        })
    }

    /// Every role named in `on` must exist in the environment.
    pub fn check_roles(&self, env_roles: &[String], env_name: &str) -> Result<(), ConfigError> {
        for s in &self.steps {
            for r in &s.on {
                if !env_roles.iter().any(|e| e == r) {
                    return Err(ConfigError::new(
                        &self.display,
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

pub fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
