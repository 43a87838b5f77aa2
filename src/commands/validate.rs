//! `provision validate [env]`: everything `up` checks before its first connection, for one
//! env or all of them, with every error reported at once (each at its file:line:col with
//! its help). Nothing is contacted: the hosts of an env with `ec2` are the ones `up` would
//! launch.
//!
//! Each part is checked on its own so that one error does not hide the next: provision.toml
//! and every playbook through the loaders' collecting path (`config/collect.rs`), each
//! step's roles and `run_once` host, the inventory (host strings, keys, ssh settings), the
//! secrets file, and then every step of every host through the planner, which renders the
//! templates with the env's topology and vars and checks every variable and secret they use.

use super::context::Context;
use super::load;
use crate::config::{ConfigError, Env, Playbook, Project};
use crate::error::{Error, exit};
use crate::plan::Rollout;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub fn run(cx: &Context, env_name: Option<&str>) -> Result<i32, Error> {
    let file = Project::locate(cx.config.as_deref())?;
    let mut v = Validation::default();
    let project = v.take(Project::load_all(&file));
    let root = match &project {
        Some(p) => p.root.clone(),
        None => file.parent().map_or_else(|| ".".into(), Path::to_path_buf),
    };
    // Every playbook of the project, also those no env uses.
    for path in playbooks_in(&root) {
        v.playbook(&root, &path);
    }
    if let Some(project) = &project {
        let envs: Vec<&Env> = match env_name {
            Some(name) => v
                .take(project.env(name).map_err(|e| vec![e]))
                .into_iter()
                .collect(),
            None => project.envs.values().collect(),
        };
        for env in envs {
            v.env(cx, project, env);
        }
    }
    Ok(v.report(cx))
}

/// What was checked and every error found.
#[derive(Default)]
struct Validation {
    errors: Vec<ConfigError>,
    /// Each playbook file, parsed once (None: it has errors, already reported).
    playbooks: BTreeMap<PathBuf, Option<Playbook>>,
    /// `name (N hosts)` of each env checked.
    envs: Vec<String>,
    templates: BTreeSet<String>,
    steps: usize,
}

impl Validation {
    /// The value, or None with its errors noted.
    fn take<T>(&mut self, r: Result<T, Vec<ConfigError>>) -> Option<T> {
        r.map_err(|errors| self.errors.extend(errors)).ok()
    }

    fn take_one<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        self.take(r.map_err(|e| vec![e]))
    }

    /// A playbook, parsed on its first use.
    fn playbook(&mut self, root: &Path, path: &Path) -> Option<Playbook> {
        if let Some(parsed) = self.playbooks.get(path) {
            return parsed.clone();
        }
        let display = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        let parsed = self.take(Playbook::load_all(path, &display));
        if let Some(pb) = &parsed {
            self.steps += pb.steps.len();
        }
        self.playbooks.insert(path.to_path_buf(), parsed.clone());
        parsed
    }

    /// Everything `up <env>` checks before connecting, each part on its own.
    fn env(&mut self, cx: &Context, project: &Project, env: &Env) {
        let (path, _) = load::playbook_file(cx, project, env);
        let playbook = self.playbook(&project.root, &path);
        if let Some(pb) = &playbook {
            // Step by step, so that every step naming a role the env lacks is reported.
            for step in &pb.steps {
                let one = Playbook {
                    steps: vec![step.clone()],
                    ..pb.clone()
                };
                self.take_one(load::check_playbook(&one, env));
            }
            let templates = pb.steps.iter().filter_map(|s| s.spec.template_file());
            self.templates.extend(templates.map(str::to_string));
        }
        let hosts = self.take_one(load::offline_hosts(cx, project, env));
        let secrets = self.take_one(load::secrets(env, &cx.redactor));
        let n = hosts.as_ref().map_or(0, |(_, selected)| selected.len());
        self.envs
            .push(format!("{} ({})", env.name, super::hosts_n(n)));
        let (Some(pb), Some((all, selected)), Some(secrets)) = (playbook, hosts, secrets) else {
            return;
        };
        let planner = load::planner_with(cx, project, env, pb, secrets, false);
        let Some(mut planner) = self.take_one(planner) else {
            return;
        };
        planner.set_hosts(&all);
        let mut plans = Vec::new();
        for host in &selected {
            let (plan, errors) = planner.plan_host_all(host);
            if !errors.is_empty() {
                self.errors.extend(errors);
                continue;
            }
            plans.push(plan);
        }
        if plans.len() == selected.len() {
            let serial = cx.serial.as_ref();
            let limited = cx.limit.is_some();
            let rollout = Rollout::new(plans, &env.rollout, serial, &planner.playbook, limited);
            self.take_one(rollout);
        }
    }

    /// Every error (each once, in the order found) on stderr, then a summary; exit 1 when
    /// there was one. Otherwise one `valid:` line.
    fn report(self, cx: &Context) -> i32 {
        let out = cx.out();
        let mut seen = BTreeSet::new();
        let errors: Vec<ConfigError> = (self.errors.into_iter())
            .filter(|e| seen.insert(e.to_string()))
            .collect();
        let Some(first) = errors.first() else {
            let playbooks = self.playbooks.len();
            let line = format!(
                "valid: env {}; {}, {}, {} (nothing was contacted)",
                self.envs.join(", "),
                count(playbooks, "playbook"),
                count(self.steps, "step"),
                count(self.templates.len(), "template"),
            );
            if out.json() {
                out.err_line(&line);
            } else {
                out.line(&line);
            }
            return exit::OK;
        };
        let code = Error::Config(first.clone()).exit_code();
        for e in &errors {
            out.err_line(&format!("error: {e}"));
        }
        out.err_line(&format!(
            "{}; nothing was contacted",
            count(errors.len(), "error")
        ));
        code
    }
}

/// `playbooks/*.toml`, sorted.
fn playbooks_in(root: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(root.join("playbooks")) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    paths
}

/// "1 step" / "3 steps".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
