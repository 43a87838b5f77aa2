//! The planner: pure functions from (project, env, playbook, host) to the steps a host runs,
//! rendered and prepared before any connection is made. A step that uses a value registered
//! by an earlier step (e.g. `{{ src.sha }}`) cannot be rendered yet: its references are
//! checked now and it is rendered on the host's turn ("deferred").
//!
//! Nothing here touches the network: the runner feeds probe results in and gets decisions out.

pub mod batch;
pub mod chain;
mod expand;
pub mod rollout;

pub use rollout::Rollout;

use crate::config::{ConfigError, Playbook, Project, Step};
use crate::inventory::Host;
use crate::remote::facts::NAME as FACTS;
use crate::secrets::{Secrets, SecretsObject};
use crate::steps::{PrepareCx, Shared, Spec, StepKind};
use crate::template::Templates;
use minijinja::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Names a template may use besides vars and registers (minijinja's own globals).
const BUILTINS: &[&str] = &[
    "range",
    "dict",
    "debug",
    "namespace",
    "loop",
    "self",
    "super",
    "varargs",
    "kwargs",
    "caller",
];

/// Everything needed to render steps, shared by all hosts of a run.
pub struct Planner {
    pub root: PathBuf,
    pub app: String,
    pub repo: Option<String>,
    pub env: String,
    pub playbook: Playbook,
    pub templates: Templates,
    pub secrets: Secrets,
    vars: BTreeMap<String, Value>,
    opts: PlanOptions,
    /// `export K=V` lines from the env's `remote_env`, put before every script.
    pub prelude: String,
    /// `hosts` in templates: role → every host of the env in it (see [`Planner::set_hosts`]).
    topology: Option<Value>,
    /// The env's host names in file order, and each role's as written: the order of
    /// `hosts.all` and `hosts.<role>`.
    host_order: Vec<String>,
    role_order: BTreeMap<String, Vec<String>>,
    /// What the steps of all hosts share, made once per run (an image built on the controller).
    shared: Shared,
}

/// A `-e key=value` value: a number or boolean when it reads as exactly one in TOML
/// (`3`, `-1`, `0.5`, `true`), so `when = "workers > 2"` and `{{ n + 1 }}` work; anything
/// else, or text TOML would change (`1.10`, `007`, `1_000`), stays the string written.
fn typed_var(v: &str) -> toml::Value {
    let parsed = toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|p| {
            matches!(
                p,
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)
            )
        })
        .filter(|p| p.to_string() == v);
    parsed.unwrap_or_else(|| toml::Value::String(v.to_string()))
}

/// Names provision sets in every template context: a var of that name would be hidden.
const RESERVED_VARS: &[&str] = &["hosts", crate::remote::facts::NAME];

/// Command-line choices that shape the plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--tags`: only steps with one of these tags (empty: all).
    pub tags: Vec<String>,
    /// `--skip-tags`: never steps with one of these tags (wins over `tags`).
    pub skip_tags: Vec<String>,
    /// `--var key=value`: override vars (strings), after the env's vars.
    pub vars: Vec<(String, String)>,
    /// `--allow-recreate`: stateful containers may be recreated.
    pub allow_recreate: bool,
}

/// One step as planned for one host.
#[derive(Debug)]
pub struct PlannedStep {
    pub step: Step,
    /// Rendered and prepared now; None when it depends on registered values.
    pub prepared: Option<Arc<dyn StepKind>>,
    /// Registered names it needs before it can be rendered (`facts` when its fields use
    /// them: they are known after the host's first probe round trip).
    pub deps: BTreeSet<String>,
    /// Whether it uses `facts` anywhere (fields, `when`, template): they must be gathered
    /// before its turn.
    pub facts: bool,
}

#[derive(Debug)]
pub struct HostPlan {
    pub host: Host,
    pub steps: Vec<PlannedStep>,
    /// Registers as the host's last `up` left them, which the runner may render deferred
    /// steps with to probe them ahead, checked against the real values (`runner/guess.rs`).
    pub guesses: BTreeMap<String, serde_json::Value>,
}

/// The names a step's references are checked against while a host is planned.
struct Names {
    /// Vars, provision's own names (app, env, host, hosts, secrets) and `facts`.
    known: BTreeSet<String>,
    /// Registered by some step of the playbook.
    all_registers: BTreeSet<String>,
    /// Registered by the steps before this one.
    registered_before: BTreeSet<String>,
}

/// Where a step refers to variables.
enum Origin {
    /// A step field, by its path (e.g. `command.run`).
    Field(String),
    When,
    /// The step's template file, relative to the project root.
    Template(String),
}

impl Planner {
    pub fn new(
        project: &Project,
        env_name: &str,
        playbook: Playbook,
        secrets: Secrets,
        opts: PlanOptions,
    ) -> Result<Planner, ConfigError> {
        let env = project.env(env_name)?;
        let templates = Templates::new(&project.root);
        templates.on_derived(secrets.redactor().derived_hook());
        let mut raw = project.vars.clone();
        for (k, v) in &env.vars {
            raw.insert(k.clone(), v.clone());
        }
        for (k, v) in &opts.vars {
            raw.insert(k.clone(), typed_var(v));
        }
        if let Some(k) = raw.keys().find(|k| RESERVED_VARS.contains(&k.as_str())) {
            return Err(ConfigError::new(
                &project.file,
                format!("var `{k}`: provision sets `{k}` in every template"),
            )
            .with_help("rename the var"));
        }
        let prelude = env
            .remote_env
            .iter()
            .map(|(k, v)| format!("export {k}={}\n", crate::transport::script::quote(v)))
            .collect();
        let mut planner = Planner {
            root: project.root.clone(),
            app: project.app.clone(),
            repo: project.repo.clone(),
            env: env_name.to_string(),
            playbook,
            templates,
            secrets,
            vars: BTreeMap::new(),
            opts,
            prelude,
            topology: None,
            host_order: env.hosts.iter().map(|h| h.name()).collect(),
            role_order: env.role_order.clone(),
            shared: Shared::default(),
        };
        planner.register_named_secrets();
        // Vars may use other vars, at any depth: render each string after the vars it uses.
        planner.vars = raw
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(minijinja::value::Serde(v))))
            .collect();
        let var_err = |k: &str, m: &str| ConfigError::new(&project.file, format!("var `{k}`: {m}"));
        let mut uses: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (k, v) in &raw {
            if let toml::Value::String(s) = v {
                let refs = planner
                    .templates
                    .referenced_in_str(&format!("var {k}"), s)
                    .map_err(|e| var_err(k, &e.message))?;
                let refs = refs
                    .into_iter()
                    .filter(|r| matches!(raw.get(r), Some(toml::Value::String(_))));
                uses.insert(k, refs.collect());
            }
        }
        for k in var_order(&uses).map_err(|cycle| {
            var_err(
                &cycle[0],
                &format!(
                    "the vars refer to each other in a cycle: {}",
                    cycle.join(" → ")
                ),
            )
            .with_help("make one of them a plain value")
        })? {
            let ctx = planner.context(None, &BTreeMap::new());
            let Some(toml::Value::String(s)) = raw.get(&k) else {
                continue;
            };
            let (rendered, read_secret) = planner.secrets.track(&ctx, |ctx| {
                planner.templates.render_str(&format!("var {k}"), s, ctx)
            });
            let rendered = rendered.map_err(|e| var_err(&k, &e.message))?;
            // A var built from a secret is a secret: masked, and refused where secrets are.
            if read_secret {
                planner.secrets.mark_derived(&k, &rendered);
            }
            planner.vars.insert(k, Value::from(rendered));
        }
        // Loops, includes' vars and handlers, now that the vars are known.
        planner.expand()?;
        planner.register_named_secrets();
        // remote_env is exported in every script, which the host's process list shows.
        let redactor = planner.secrets.redactor();
        if let Some(k) = env
            .remote_env
            .iter()
            .find(|(_, v)| redactor.redact(v) != **v)
            .map(|(k, _)| k)
        {
            return Err(ConfigError::new(&project.file, format!("env `{env_name}`: remote_env {k} holds a secret value"))
                .with_help("remote_env is visible in the hosts' process lists; write secrets with env_file instead"));
        }
        Ok(planner)
    }

    /// Register every secret the playbook names (in any step, selected or not, deferred or
    /// not, and in its template files) and every env_file key, before anything is rendered
    /// or run: a value from provision's environment is known as a secret only by its name,
    /// and `exec`, `logs` and the first `-v` lines must mask it already.
    fn register_named_secrets(&self) {
        let secrets = &self.secrets;
        for text in self
            .playbook
            .release
            .iter()
            .chain(self.playbook.steps.iter().filter_map(|s| s.when.as_ref()))
        {
            secrets.register_named_in(text);
        }
        for step in &self.playbook.steps {
            let mut json = serde_json::to_value(&step.spec).unwrap_or_default();
            let _ = render_strings(&mut json, String::new(), &mut |path, s| {
                secrets.register_named_in(s);
                if step.spec.kind() == "env_file" && path.contains(".keys[") {
                    secrets.get(s);
                }
                Ok(s.to_string())
            });
            let template = step.spec.template_file().map(|src| self.root.join(src));
            if let Some(Ok(text)) = template.map(std::fs::read_to_string) {
                secrets.register_named_in(&text);
            }
        }
    }

    /// `hosts` in templates: every host of the env (all of them, whatever `--limit` selects:
    /// an upstream list names every web host), by role, each `{ name, address, port, user,
    /// roles, vars }`; `hosts.all` lists every host. Hosts are in the order the config
    /// writes them; those it does not (EC2 instances, ssh_config entries) after, by name.
    pub fn set_hosts(&mut self, all: &[Host]) {
        let rank = |order: Option<&Vec<String>>, h: &Host| {
            order
                .and_then(|o| o.iter().position(|n| *n == h.name))
                .unwrap_or(usize::MAX)
        };
        let mut everyone: Vec<&Host> = all.iter().collect();
        everyone.sort_by_key(|h| rank(Some(&self.host_order), h));
        let mut by_role: BTreeMap<String, Vec<&Host>> = BTreeMap::new();
        for h in &everyone {
            for r in &h.roles {
                by_role.entry(r.clone()).or_default().push(h);
            }
        }
        for (role, list) in by_role.iter_mut() {
            list.sort_by_key(|h| rank(self.role_order.get(role), h));
        }
        by_role.insert("all".into(), everyone);
        let m: BTreeMap<String, Vec<serde_json::Value>> = by_role
            .into_iter()
            .map(|(role, list)| (role, list.into_iter().map(host_value).collect()))
            .collect();
        self.topology = Some(Value::from(minijinja::value::Serde(m)));
    }

    /// The template context for a host (None: before hosts are known) and registered values.
    pub fn context(
        &self,
        host: Option<&Host>,
        registers: &BTreeMap<String, serde_json::Value>,
    ) -> Value {
        let mut m = self.vars.clone();
        m.insert("app".into(), Value::from(self.app.clone()));
        m.insert("env".into(), Value::from(self.env.clone()));
        if let Some(repo) = &self.repo {
            m.insert("repo".into(), Value::from(repo.clone()));
        }
        if let Some(h) = host {
            m.insert(
                "host".into(),
                Value::from(minijinja::value::Serde(host_value(h))),
            );
        }
        if let Some(t) = &self.topology {
            m.insert("hosts".into(), t.clone());
        }
        m.insert(
            "secrets".into(),
            Value::from_object(SecretsObject(self.secrets.clone())),
        );
        for (k, v) in registers {
            m.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
        }
        Value::from(m)
    }

    fn selected(&self, step: &Step, host: &Host) -> bool {
        let role_ok = step.on.is_empty() || step.on.iter().any(|r| host.roles.contains(r));
        // A handler goes wherever a step notifying it does, whatever the tags.
        if step.lang.handler.is_some() {
            let notifiers = &step.lang.notified_by;
            return role_ok
                && notifiers
                    .iter()
                    .any(|i| self.selected(&self.playbook.steps[*i], host));
        }
        let tags = &self.opts.tags;
        let tag_ok = tags.is_empty() || step.tags.iter().any(|t| tags.contains(t));
        let skipped = step.tags.iter().any(|t| self.opts.skip_tags.contains(t));
        role_ok && tag_ok && !skipped
    }

    /// An error in the step as a whole (its `when`): at its `[[step]]` line.
    fn err_at_header(&self, step: &Step, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(&step.file, format!("step `{}`: {}", step.name, msg.into()))
            .at_line(step.line)
    }

    /// An error in the step's kind (its fields, its template, what preparing it found): at
    /// the kind's key, line and column.
    fn err(&self, step: &Step, msg: impl Into<String>) -> ConfigError {
        let (line, col) = step.kind_at;
        let mut e = ConfigError::new(&step.file, format!("step `{}`: {}", step.name, msg.into()));
        e.line = Some(line);
        e.col = Some(col);
        e
    }

    /// Plan one host: select its steps, check every reference, render what can be rendered.
    pub fn plan_host(&self, host: &Host) -> Result<HostPlan, ConfigError> {
        let (plan, mut errors) = self.plan_host_all(host);
        match errors.is_empty() {
            true => Ok(plan),
            false => Err(errors.swap_remove(0)),
        }
    }

    /// [`Planner::plan_host`] going on after a step's error (`provision validate`): the
    /// steps planned, and every step's error in playbook order. A step with an error still
    /// counts as registering its value, so the steps using it are not reported too.
    pub fn plan_host_all(&self, host: &Host) -> (HostPlan, Vec<ConfigError>) {
        let all_registers: BTreeSet<String> = self
            .playbook
            .steps
            .iter()
            .filter_map(|s| s.register.clone())
            .collect();
        let ctx = self.context(Some(host), &BTreeMap::new());
        let mut known: BTreeSet<String> = ctx
            .try_iter()
            .map(|it| it.filter_map(|k| k.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        // Known on the host's turn: gathered in its first probe round trip.
        known.insert(FACTS.to_string());
        let mut names = Names {
            known,
            all_registers,
            registered_before: BTreeSet::new(),
        };
        let (mut steps, mut errors) = (Vec::new(), Vec::new());
        for step in &self.playbook.steps {
            match self.plan_step(step, host, &ctx, &names) {
                Ok(Some(planned)) => steps.push(planned),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
            if let Some(r) = &step.register {
                names.registered_before.insert(r.clone());
            }
        }
        let plan = HostPlan {
            host: host.clone(),
            steps,
            guesses: BTreeMap::new(),
        };
        (plan, errors)
    }

    /// One step of [`Planner::plan_host_all`]: None when the host does not run it.
    fn plan_step(
        &self,
        step: &Step,
        host: &Host,
        ctx: &Value,
        names: &Names,
    ) -> Result<Option<PlannedStep>, ConfigError> {
        let Names {
            known,
            all_registers,
            registered_before,
        } = names;
        let refs = self.references(step)?;
        let all_refs: BTreeSet<String> = refs
            .iter()
            .flat_map(|(_, names)| names.iter().cloned())
            .collect();
        let mut deps: BTreeSet<String> = all_refs.intersection(all_registers).cloned().collect();
        // Fields using facts wait for them; a `when` alone does not (it is evaluated on
        // the step's turn, after they are gathered), so the step is still probed ahead.
        let fields_use_facts = refs
            .iter()
            .any(|(o, names)| !matches!(o, Origin::When) && names.contains(FACTS));
        if fields_use_facts {
            deps.insert(FACTS.to_string());
        }
        for (origin, names) in &refs {
            for r in names {
                if known.contains(r)
                    || step.lang.locals.contains_key(r)
                    || BUILTINS.contains(&r.as_str())
                    || registered_before.contains(r)
                {
                    continue;
                }
                let why = if all_registers.contains(r) {
                    format!("uses `{r}`, which is registered by a later step")
                } else {
                    let near = (known.iter().chain(all_registers))
                        .chain(step.lang.locals.keys())
                        .map(String::as_str);
                    match crate::error::suggest(r, near) {
                        Some(n) => format!("undefined variable `{r}`; did you mean `{n}`?"),
                        None => format!(
                            "undefined variable `{r}`; define it under [vars] or the env's vars"
                        ),
                    }
                };
                let msg = format!("{}: {why}", self.origin_text(origin, r));
                return Err(match origin {
                    Origin::When => self.err_at_header(step, msg),
                    _ => self.err(step, msg),
                });
            }
        }
        if !self.selected(step, host) {
            return Ok(None);
        }
        let prepared = if deps.is_empty() {
            Some(self.prepare(step, ctx).map_err(|m| self.err(step, m))?)
        } else {
            None
        };
        Ok(Some(PlannedStep {
            step: step.clone(),
            prepared,
            deps,
            facts: all_refs.contains(FACTS),
        }))
    }

    /// Root variable names used by a step, grouped by where they are used: each field, `when`
    /// and the template file.
    fn references(&self, step: &Step) -> Result<Vec<(Origin, BTreeSet<String>)>, ConfigError> {
        let mut refs = Vec::new();
        let mut fields = Vec::new();
        let mut json = serde_json::to_value(&step.spec).unwrap_or_default();
        let _ = render_strings(&mut json, String::new(), &mut |path, s| {
            fields.push((path.to_string(), s.to_string()));
            Ok(s.to_string())
        });
        for (path, s) in fields
            .iter()
            .filter(|(_, s)| s.contains("{{") || s.contains("{%"))
        {
            let names = self
                .templates
                .referenced_in_str(&step.name, s)
                .map_err(|e| self.err(step, format!("field `{path}`: {}", e.message)))?;
            refs.push((Origin::Field(path.clone()), names));
        }
        if let Some(w) = &step.when {
            let names = self
                .templates
                .referenced_in_expr(&step.name, w)
                .map_err(|e| self.err_at_header(step, format!("when: {}", e.message)))?;
            refs.push((Origin::When, names));
        }
        if let Some(src) = step.spec.template_file().filter(|s| !s.contains("{{")) {
            let names = self
                .templates
                .referenced_in_file(src)
                .map_err(|e| self.err(step, e.to_string()))?;
            refs.push((Origin::Template(src.to_string()), names));
        }
        Ok(refs)
    }

    /// Where a reference is, for messages: the template file's line when it is in one.
    fn origin_text(&self, origin: &Origin, name: &str) -> String {
        match origin {
            Origin::Field(path) => format!("field `{path}`"),
            Origin::When => "when".to_string(),
            Origin::Template(src) => match self.templates.line_of_variable(src, name) {
                Some(line) => format!("{src}:{line}"),
                None => src.clone(),
            },
        }
    }

    /// Render a step's fields against `ctx` and prepare its desired state.
    pub fn prepare(&self, step: &Step, ctx: &Value) -> Result<Arc<dyn StepKind>, String> {
        let ctx = &expand::with_locals(ctx, &step.lang.locals);
        let spec = self.render_spec(step, ctx)?;
        let cx = PrepareCx {
            app: &self.app,
            env: &self.env,
            allow_recreate: self.opts.allow_recreate,
            root: &self.root,
            templates: &self.templates,
            context: ctx,
            secrets: &self.secrets,
            shared: &self.shared,
        };
        Ok(Arc::from(spec.prepare(&cx).map_err(|e| e.to_string())?))
    }

    /// The release id recorded in the release log, rendered with the run's registered values.
    pub fn release(&self, ctx: &Value) -> String {
        let Some(t) = &self.playbook.release else {
            return String::new();
        };
        self.templates
            .render_str("release", t, ctx)
            .unwrap_or_else(|_| "unknown".into())
    }

    /// The vars recorded with a release: the ones given on the command line (`-e`), which are
    /// what selects a release (`ref`, `version`...) and what `rollback` sets again.
    pub fn release_vars(&self) -> BTreeMap<String, String> {
        // A value that is also a secret's stays off the host's log (and its process list).
        let redactor = self.secrets.redactor();
        self.opts
            .vars
            .iter()
            .filter(|(_, v)| redactor.redact(v) == *v)
            .cloned()
            .collect()
    }

    /// Whether a `when` condition holds.
    pub fn when(&self, step: &Step, ctx: &Value) -> Result<bool, String> {
        let ctx = &expand::with_locals(ctx, &step.lang.locals);
        match &step.when {
            None => Ok(true),
            Some(w) => self
                .templates
                .eval_bool(&step.name, w, ctx)
                .map_err(|e| format!("when: {}", e.message)),
        }
    }

    fn render_spec(&self, step: &Step, ctx: &Value) -> Result<Spec, String> {
        let mut json = serde_json::to_value(&step.spec).map_err(|e| e.to_string())?;
        let redactor = self.secrets.redactor();
        render_strings(&mut json, String::new(), &mut |path, s| {
            let (out, read_secret) = self
                .secrets
                .track(ctx, |ctx| self.templates.render_str(&step.name, s, ctx));
            let out = out.map_err(|e| format!("field `{path}`: {}", e.message))?;
            // Step fields end up in scripts, which are visible in the host's process list.
            // Only env_file's extra values travel on stdin. A field that read a secret is
            // refused whatever filters changed it (`| upper` output does not contain the
            // value); one holding a known value by other means (a literal) is refused too.
            let on_stdin = step.spec.on_stdin(path);
            if !on_stdin && (read_secret || redactor.redact(&out) != out) {
                return Err(format!(
                    "field `{path}` would put a secret on a command line; write it to the host with an env_file or template step instead"
                ));
            }
            Ok(out)
        })?;
        serde_json::from_value(json).map_err(|e| e.to_string())
    }
}

/// A host as templates see it (`host`, and each entry of `hosts.<role>`).
fn host_value(h: &Host) -> serde_json::Value {
    serde_json::json!({
        "name": h.name, "address": h.connect.address, "port": h.connect.port,
        "user": h.connect.user, "roles": h.roles, "vars": h.vars,
    })
}

type RenderFn<'a> = dyn FnMut(&str, &str) -> Result<String, String> + 'a;

fn render_strings(
    v: &mut serde_json::Value,
    path: String,
    f: &mut RenderFn<'_>,
) -> Result<(), String> {
    match v {
        serde_json::Value::String(s) => *s = f(&path, s)?,
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                render_strings(x, format!("{path}[{i}]"), f)?;
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                render_strings(x, p, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The string vars in an order where each comes after the vars it uses; `Err` is a cycle
/// (`a → b → a`).
fn var_order(uses: &BTreeMap<&str, Vec<String>>) -> Result<Vec<String>, Vec<String>> {
    fn visit(
        k: &str,
        uses: &BTreeMap<&str, Vec<String>>,
        done: &mut Vec<String>,
        path: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        if done.iter().any(|d| d == k) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|p| p == k) {
            let mut cycle = path[at..].to_vec();
            cycle.push(k.to_string());
            return Err(cycle);
        }
        path.push(k.to_string());
        for dep in uses.get(k).into_iter().flatten() {
            visit(dep, uses, done, path)?;
        }
        path.pop();
        done.push(k.to_string());
        Ok(())
    }
    let (mut done, mut path) = (Vec::new(), Vec::new());
    for k in uses.keys() {
        visit(k, uses, &mut done, &mut path)?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Redactor;
    use std::path::Path;

    fn setup(playbook: &str, secrets: &[(&str, &str)]) -> (Project, Planner, Vec<Host>) {
        let project = Project::parse(
            Path::new("/nonexistent/provision.toml"),
            "app = \"demo\"\n[vars]\nport = 8000\nurl = \"http://x:{{ port }}\"\n[ssh]\nconfig = \"none\"\n[env.prod]\nhosts = { web = [\"a\"], db = [\"b\"] }\nvars = { port = 9000 }\n",
        )
        .unwrap();
        let pb = Playbook::parse(Path::new("p.toml"), "playbooks/p.toml", playbook).unwrap();
        let redactor = Redactor::default();
        let mut s = Secrets::load(None, redactor.clone()).unwrap();
        for (k, v) in secrets {
            // SAFETY: tests in this module set distinct variable names.
            unsafe { std::env::set_var(k, v) };
            s.get(k);
        }
        let hosts =
            crate::inventory::resolve(&project, project.env("prod").unwrap(), None, false).unwrap();
        let planner = Planner::new(
            &project,
            "prod",
            pb,
            std::mem::take(&mut s),
            PlanOptions::default(),
        )
        .unwrap();
        (project, planner, hosts)
    }

    #[test]
    fn hosts_by_role_in_written_order_with_vars_and_every_host_in_all() {
        let project = Project::parse(
            Path::new("/nonexistent/provision.toml"),
            "app = \"demo\"\n[ssh]\nconfig = \"none\"\nuser = \"ops\"\n[env.prod]\n\
             hosts = { web = [{ host = \"10.0.0.9\", name = \"web2\", vars = { weight = 3 } }, { host = \"10.0.0.1:2222\", name = \"web1\", vars = { weight = 1 } }], db = [\"10.0.0.5\"] }\n",
        )
        .unwrap();
        let pb = Playbook::parse(
            Path::new("p.toml"),
            "playbooks/p.toml",
            "[[step]]\ncommand = { run = \"echo {{ host.vars.weight }}\" }\n",
        )
        .unwrap();
        let secrets = Secrets::load(None, Redactor::default()).unwrap();
        let mut p = Planner::new(&project, "prod", pb, secrets, PlanOptions::default()).unwrap();
        let env = project.env("prod").unwrap();
        let all = crate::inventory::resolve(&project, env, None, false).unwrap();
        let limited = crate::inventory::resolve(&project, env, Some("web1"), false).unwrap();
        p.set_hosts(&all);
        let ctx = p.context(Some(&limited[0]), &BTreeMap::new());
        let render = |t: &str| p.templates.render_str("t", t, &ctx).unwrap();
        assert_eq!(
            render(
                "{% for h in hosts.web %}{{ h.name }}={{ h.address }}:{{ h.port }}*{{ h.vars.weight }} {% endfor %}"
            ),
            "web2=10.0.0.9:22*3 web1=10.0.0.1:2222*1 "
        );
        assert_eq!(
            render("{{ hosts.db[0].name }} {{ hosts.db[0].user }} {{ hosts.db[0].roles }}"),
            "10.0.0.5 ops ['db']"
        );
        assert_eq!(
            render("{{ hosts.all | map(attribute='name') | join(',') }}"),
            "web2,web1,10.0.0.5"
        );
        assert_eq!(
            render("{{ host.name }} {{ host.vars.weight * 10 }}"),
            "web1 10"
        );
        let plan = p.plan_host(&limited[0]).unwrap();
        assert!(plan.steps[0].prepared.is_some() && !plan.steps[0].facts);
    }

    #[test]
    fn steps_using_facts_in_fields_are_deferred_and_in_when_only_are_not() {
        let (_, p, hosts) = setup(
            "[[step]]\nname = \"a\"\ncommand = { run = \"echo {{ facts.cpus * 2 + 1 }}\" }\n\
             [[step]]\nname = \"b\"\nwhen = \"facts.os.family == 'debian'\"\ncommand = { run = \"true\" }\n\
             [[step]]\nname = \"c\"\ncommand = { run = \"true\" }\n",
            &[],
        );
        let plan = p.plan_host(&hosts[0]).unwrap();
        let s = &plan.steps;
        assert!(s[0].prepared.is_none() && s[0].facts);
        assert_eq!(s[0].deps.iter().collect::<Vec<_>>(), vec!["facts"]);
        assert!(s[1].prepared.is_some() && s[1].facts && s[1].deps.is_empty());
        assert!(s[2].prepared.is_some() && !s[2].facts);
    }

    #[test]
    fn a_var_named_like_what_provision_sets_is_an_error() {
        let project = Project::parse(
            Path::new("/nonexistent/provision.toml"),
            "app = \"demo\"\n[vars]\nfacts = 1\n[env.prod]\nhosts = [\"a\"]\n",
        )
        .unwrap();
        let pb = Playbook::parse(Path::new("p.toml"), "playbooks/p.toml", "").unwrap();
        let secrets = Secrets::load(None, Redactor::default()).unwrap();
        let e = Planner::new(&project, "prod", pb, secrets, PlanOptions::default())
            .err()
            .unwrap();
        assert!(e.message.contains("provision sets `facts`"), "{e}");
    }

    #[test]
    fn vars_render_at_any_depth_and_a_cycle_is_an_error() {
        let planner = |vars: &str| {
            let project = Project::parse(
                Path::new("/nonexistent/provision.toml"),
                &format!("app = \"demo\"\n[vars]\n{vars}\n[env.prod]\nhosts = [\"a\"]\n"),
            )
            .unwrap();
            let pb = Playbook::parse(Path::new("p.toml"), "playbooks/p.toml", "").unwrap();
            let secrets = Secrets::load(None, Redactor::default()).unwrap();
            Planner::new(&project, "prod", pb, secrets, PlanOptions::default())
        };
        let p = planner("a = \"{{ b }}!\"\nb = \"{{ c }}-{{ n }}\"\nc = \"x\"\nn = 3").unwrap();
        assert_eq!(p.vars["a"].as_str(), Some("x-3!"));
        let e = planner("a = \"{{ b }}\"\nb = \"{{ a }}\"").err().unwrap();
        assert!(e.message.contains("cycle: a → b → a"), "{e}");
        let e = planner("a = \"{{ a }}\"").err().unwrap();
        assert!(e.message.contains("cycle: a → a"), "{e}");
    }

    #[test]
    fn env_vars_override_and_vars_render() {
        let (_, p, hosts) = setup(
            "[[step]]\ndirectory = { path = \"/srv/{{ app }}-{{ port }}\" }\n",
            &[],
        );
        let plan = p.plan_host(&hosts[0]).unwrap();
        assert_eq!(p.vars["url"].as_str(), Some("http://x:9000"));
        let probe = plan.steps[0]
            .prepared
            .as_ref()
            .unwrap()
            .probe(false)
            .unwrap();
        assert!(probe.contains("/srv/demo-9000"), "{probe}");
    }

    #[test]
    fn roles_select_steps_and_registers_defer() {
        let (_, p, hosts) = setup(
            "[[step]]\non = \"web\"\ngit = { repo = \"/r\", dest = \"/srv/x\" }\nregister = \"src\"\n[[step]]\non = \"web\"\ncommand = { run = \"echo {{ src.sha }}\" }\n[[step]]\non = \"db\"\ncommand = { run = \"true\" }\n",
            &[],
        );
        let web = p.plan_host(&hosts[0]).unwrap();
        assert_eq!(web.steps.len(), 2);
        assert!(web.steps[1].prepared.is_none());
        assert_eq!(web.steps[1].deps.iter().collect::<Vec<_>>(), vec!["src"]);
        assert_eq!(p.plan_host(&hosts[1]).unwrap().steps.len(), 1);
    }

    #[test]
    fn undefined_and_later_registers_are_errors_with_line() {
        let (_, p, hosts) = setup("[[step]]\ncommand = { run = \"echo {{ nope }}\" }\n", &[]);
        let e = p.plan_host(&hosts[0]).unwrap_err();
        // At the kind's key (line 2, column 1), not the [[step]] header.
        assert!(
            e.to_string().starts_with("playbooks/p.toml:2:1: step"),
            "{e}"
        );
        assert!(e.message.contains("`nope`"), "{e}");
        let (_, p, hosts) = setup(
            "[[step]]\ncommand = { run = \"echo {{ later.x }}\" }\n[[step]]\ncommand = { run = \"true\" }\nregister = \"later\"\n",
            &[],
        );
        assert!(
            p.plan_host(&hosts[0])
                .unwrap_err()
                .message
                .contains("registered by a later step")
        );
    }

    #[test]
    fn secret_on_command_line_is_refused() {
        let (_, p, hosts) = setup(
            "[[step]]\ncommand = { run = \"echo {{ secrets.PLAN_TEST_PW }}\" }\n",
            &[("PLAN_TEST_PW", "pl4n-secret")],
        );
        let e = p.plan_host(&hosts[0]).unwrap_err();
        assert!(e.message.contains("secret on a command line"), "{e}");
        assert!(!e.to_string().contains("pl4n-secret"));
    }

    #[test]
    fn a_secret_may_be_in_what_the_kind_sends_on_stdin_only() {
        let vars =
            "env_file = { dest = \"/e\", vars = { PW = \"{{ secrets.PLAN_TEST_STDIN }}\" } }";
        let (_, p, hosts) = setup(
            &format!("[[step]]\n{vars}\n"),
            &[("PLAN_TEST_STDIN", "st1n-secret")],
        );
        assert!(p.plan_host(&hosts[0]).is_ok());
        let dest =
            "env_file = { dest = \"/e/{{ secrets.PLAN_TEST_STDIN }}\", vars = { A = \"b\" } }";
        let (_, p, hosts) = setup(
            &format!("[[step]]\n{dest}\n"),
            &[("PLAN_TEST_STDIN", "st1n-secret")],
        );
        let e = p.plan_host(&hosts[0]).unwrap_err();
        assert!(
            e.message
                .contains("field `env_file.dest` would put a secret on a command line"),
            "{e}"
        );
    }

    #[test]
    fn a_filtered_or_derived_secret_on_a_command_line_is_refused() {
        let project_vars =
            "[[step]]\ncommand = { run = \"echo {{ secrets.PLAN_TEST_PW2 | upper }}\" }\n";
        let (_, p, hosts) = setup(project_vars, &[("PLAN_TEST_PW2", "pl4n-secret-two")]);
        let e = p.plan_host(&hosts[0]).unwrap_err();
        assert!(e.message.contains("secret on a command line"), "{e}");
        for run in [
            "{{ secrets.PLAN_TEST_PW2 | replace('-', '_') }}",
            "{{ secrets.PLAN_TEST_PW2 | tojson }}",
            "{% if secrets.PLAN_TEST_PW2 | length > 3 %}long{% endif %}",
        ] {
            let (_, p, hosts) = setup(
                &format!("[[step]]\ncommand = {{ run = \"echo {run}\" }}\n"),
                &[("PLAN_TEST_PW2", "pl4n-secret-two")],
            );
            let e = p.plan_host(&hosts[0]).unwrap_err();
            assert!(e.message.contains("secret on a command line"), "{run}: {e}");
            assert!(!e.to_string().to_lowercase().contains("pl4n"), "{e}");
        }
    }

    #[test]
    fn a_var_rendered_from_a_secret_is_a_secret() {
        let project = Project::parse(
            Path::new("/nonexistent/provision.toml"),
            "app = \"demo\"\n[vars]\ndsn = \"pg://app:{{ secrets.PLAN_TEST_PW3 | replace(' ', '+') }}@db\"\nlabel = \"{{ dsn | upper }}\"\n[env.prod]\nhosts = [\"a\"]\n",
        )
        .unwrap();
        let pb = Playbook::parse(
            Path::new("p.toml"),
            "playbooks/p.toml",
            "[[step]]\ncommand = { run = \"echo {{ label | replace('P', 'Q') }}\" }\n",
        )
        .unwrap();
        // SAFETY: tests in this module set distinct variable names.
        unsafe { std::env::set_var("PLAN_TEST_PW3", "pl4n secret/3") };
        let secrets = Secrets::load(None, Redactor::default()).unwrap();
        let p = Planner::new(&project, "prod", pb, secrets, PlanOptions::default()).unwrap();
        let hosts =
            crate::inventory::resolve(&project, project.env("prod").unwrap(), None, false).unwrap();
        let e = p.plan_host(&hosts[0]).unwrap_err();
        assert!(e.message.contains("secret on a command line"), "{e}");
        assert_eq!(
            p.secrets.redactor().redact("x pg://app:pl4n+secret/3@db"),
            "x ********"
        );
    }

    #[test]
    fn secrets_of_steps_not_rendered_yet_are_masked_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.j2"),
            "k = {{ secrets['PLAN_TEST_TPL'] }}\n",
        )
        .unwrap();
        let project = Project::parse(
            &dir.path().join("provision.toml"),
            "app = \"demo\"\n[env.prod]\nhosts = [\"a\"]\n",
        )
        .unwrap();
        let pb = Playbook::parse(
            Path::new("p.toml"),
            "playbooks/p.toml",
            "[[step]]\ngit = { repo = \"/r\", dest = \"/srv/x\" }\nregister = \"src\"\n\
             [[step]]\ntags = [\"never\"]\nwhen = \"secrets.PLAN_TEST_WHEN is defined\"\ncommand = { run = \"true\" }\n\
             [[step]]\ntemplate = { src = \"t.j2\", dest = \"/srv/{{ src.sha }}\" }\n\
             [[step]]\ntags = [\"never\"]\nenv_file = { dest = \"/srv/.env\", keys = [\"PLAN_TEST_KEY\"] }\n",
        )
        .unwrap();
        for (k, v) in [
            ("PLAN_TEST_WHEN", "wh3n-secret"),
            ("PLAN_TEST_TPL", "tpl-secret"),
            ("PLAN_TEST_KEY", "k3y-secret"),
        ] {
            // SAFETY: tests in this module set distinct variable names.
            unsafe { std::env::set_var(k, v) };
        }
        let secrets = Secrets::load(None, Redactor::default()).unwrap();
        let opts = PlanOptions {
            tags: vec!["other".into()],
            ..PlanOptions::default()
        };
        let p = Planner::new(&project, "prod", pb, secrets, opts).unwrap();
        assert_eq!(
            p.secrets
                .redactor()
                .redact("wh3n-secret tpl-secret k3y-secret"),
            "******** ******** ********"
        );
    }

    #[test]
    fn command_line_vars_are_typed_only_when_exact() {
        use toml::Value::*;
        assert_eq!(typed_var("3"), Integer(3));
        assert_eq!(typed_var("-1"), Integer(-1));
        assert_eq!(typed_var("0.5"), Float(0.5));
        assert_eq!(typed_var("true"), Boolean(true));
        for text in [
            "1.10", "007", "1_000", "v1.2", "True", "", "abc123", "\"q\"", "[1]", "1e3",
        ] {
            assert_eq!(typed_var(text), String(text.into()), "{text}");
        }
    }
}
