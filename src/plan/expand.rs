//! The playbook language, expanded once vars are known (before any host is planned): each
//! step's `vars` (and those of the includes around it) become values only it sees, a `loop`
//! becomes one step per item (`item`, `loop_index`), and handlers go after the steps, each
//! run when a step notifying it changed.
//!
//! A handler is a step like any other, so plan, apply, events and idempotency are the same:
//! every notifying step registers its result (under its own `register`, or a name made from
//! its step name), and the handler's `when` is "one of them changed". The runner's pending
//! markers (`runner/pending.rs`) keep a notification on the host until the handler ran, so a
//! run that stops in between does not lose it.

use super::Planner;
use crate::config::{ConfigError, Step};
use minijinja::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The names a looped step's item is seen by.
pub const ITEM: &str = "item";
pub const LOOP_INDEX: &str = "loop_index";

impl Planner {
    /// Replace the playbook's steps and handlers by their expansion.
    pub(super) fn expand(&mut self) -> Result<(), ConfigError> {
        let written = std::mem::take(&mut self.playbook.steps);
        let handlers = std::mem::take(&mut self.playbook.handlers);
        let registers: BTreeSet<String> = (written.iter().chain(&handlers))
            .filter_map(|s| s.register.clone())
            .collect();
        let mut out = Vec::new();
        for step in written.into_iter().chain(handlers) {
            out.extend(self.expand_step(step, &registers)?);
        }
        check_names(&out)?;
        wire_handlers(&mut out);
        for (i, s) in out.iter_mut().enumerate() {
            s.index = i;
        }
        self.playbook.steps = out;
        Ok(())
    }

    /// A step's `vars` rendered, then one step per loop item (the step itself without a loop).
    fn expand_step(
        &mut self,
        mut step: Step,
        registers: &BTreeSet<String>,
    ) -> Result<Vec<Step>, ConfigError> {
        let mut locals = BTreeMap::new();
        for layer in std::mem::take(&mut step.lang.scopes) {
            let mut rendered = BTreeMap::new();
            for (k, v) in &layer {
                rendered.insert(k.clone(), self.scope_value(&step, k, v, &locals)?);
            }
            locals.extend(rendered);
        }
        let Some(lp) = step.lang.loop_.clone() else {
            if !locals.is_empty() {
                step.name = self.render_name(&step.name, &locals);
                step.lang.locals = locals;
            }
            return Ok(vec![step]);
        };
        let items = self.loop_items(&step, &lp, &locals, registers)?;
        let mentions = self
            .templates
            .referenced_in_str(&step.name, &step.name)
            .is_ok_and(|r| r.contains(ITEM) || r.contains(LOOP_INDEX));
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let mut s = step.clone();
            s.lang.locals = locals.clone();
            s.lang
                .locals
                .insert(LOOP_INDEX.into(), serde_json::json!(i));
            s.lang.locals.insert(ITEM.into(), item.clone());
            let name = self.render_name(&step.name, &s.lang.locals);
            s.name = if mentions {
                name
            } else {
                format!("{name} ({})", label(&item))
            };
            out.push(s);
        }
        Ok(out)
    }

    /// One `vars` value: a string is a template over the project's vars and the layers
    /// before it; a value read from a secret is a secret (as a var's is).
    fn scope_value(
        &mut self,
        step: &Step,
        key: &str,
        value: &toml::Value,
        locals: &BTreeMap<String, serde_json::Value>,
    ) -> Result<serde_json::Value, ConfigError> {
        let toml::Value::String(text) = value else {
            return Ok(serde_json::to_value(value).unwrap_or_default());
        };
        let ctx = with_locals(&self.context(None, &BTreeMap::new()), locals);
        let (out, read_secret) = self.secrets.track(&ctx, |ctx| {
            self.templates.render_str(&format!("var {key}"), text, ctx)
        });
        let out = out.map_err(|e| {
            ConfigError::new(&step.file, format!("step `{}`: var `{key}`: {}", step.name, e.message))
                .at_line(step.line)
                .with_help("`vars` may use the project's and env's vars and those of the includes around the step")
        })?;
        if read_secret {
            self.secrets.mark_derived(key, &out);
        }
        Ok(serde_json::Value::String(out))
    }

    /// The items of a loop: the list written, or the list var (or expression) it names.
    fn loop_items(
        &self,
        step: &Step,
        lp: &crate::config::lang::Loop,
        locals: &BTreeMap<String, serde_json::Value>,
        registers: &BTreeSet<String>,
    ) -> Result<Vec<serde_json::Value>, ConfigError> {
        let err = |msg: String| {
            let mut e = ConfigError::new(&step.file, format!("step `{}`: {msg}", step.name))
                .at_line(lp.at.0);
            e.col = Some(lp.at.1);
            e
        };
        let text = match &lp.value {
            toml::Value::String(t) => t,
            list => {
                let v = serde_json::to_value(list).unwrap_or_default();
                return Ok(v.as_array().cloned().unwrap_or_default());
            }
        };
        let expr = text
            .trim()
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .unwrap_or(text)
            .trim();
        let ctx = with_locals(&self.context(None, &BTreeMap::new()), locals);
        self.loop_references(&step.name, expr, &ctx, registers)
            .map_err(|m| err(m).with_help(LOOP_HELP))?;
        let (value, read_secret) = self
            .secrets
            .track(&ctx, |ctx| self.templates.eval(&step.name, expr, ctx));
        let value = value.map_err(|e| err(format!("loop: {}", e.message)).with_help(LOOP_HELP))?;
        if read_secret {
            return Err(err(
                "loop reads a secret: items are shown in step names and output".into(),
            )
            .with_help("loop over plain values, and read the secret in the step's fields"));
        }
        match serde_json::to_value(&value) {
            Ok(serde_json::Value::Array(items)) => Ok(items),
            _ => Err(
                err(format!("loop: `{expr}` is {}, not a list", kind_of(&value)))
                    .with_help(LOOP_HELP),
            ),
        }
    }

    /// Every name a loop expression uses is known now (a var, not a register or facts).
    fn loop_references(
        &self,
        name: &str,
        expr: &str,
        ctx: &Value,
        registers: &BTreeSet<String>,
    ) -> Result<(), String> {
        let refs = self
            .templates
            .referenced_in_expr(name, expr)
            .map_err(|e| format!("loop: {}", e.message))?;
        let known: BTreeSet<String> = ctx
            .try_iter()
            .map(|it| it.filter_map(|k| k.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let Some(r) = refs.iter().find(|r| !known.contains(*r)) else {
            return Ok(());
        };
        Err(
            if registers.contains(r) || ["facts", "host", "hosts"].contains(&r.as_str()) {
                format!(
                    "loop uses `{r}`, which is known only on the host's turn; a loop is expanded when the playbook is planned"
                )
            } else {
                match crate::error::suggest(r, known.iter().map(String::as_str)) {
                    Some(n) => format!("loop: undefined variable `{r}`; did you mean `{n}`?"),
                    None => format!("loop: undefined variable `{r}`"),
                }
            },
        )
    }

    /// A name with `{{ }}` rendered with the step's own values (kept as written when it uses
    /// what is known only on the host's turn, e.g. a register).
    fn render_name(&self, name: &str, locals: &BTreeMap<String, serde_json::Value>) -> String {
        if !name.contains("{{") {
            return name.to_string();
        }
        let ctx = with_locals(&self.context(None, &BTreeMap::new()), locals);
        self.templates
            .render_str(name, name, &ctx)
            .unwrap_or_else(|_| name.to_string())
    }
}

const LOOP_HELP: &str = "write loop = [\"a\", \"b\"], or loop = \"{{ users }}\" with `users` a list under [vars] (or the env's vars)";

/// `ctx` with a step's own values over it.
pub(super) fn with_locals(ctx: &Value, locals: &BTreeMap<String, serde_json::Value>) -> Value {
    if locals.is_empty() {
        return ctx.clone();
    }
    minijinja::value::merge_maps([ctx.clone(), Value::from(minijinja::value::Serde(locals))])
}

fn kind_of(v: &Value) -> &'static str {
    use minijinja::value::ValueKind::*;
    match v.kind() {
        Undefined | None => "none",
        Bool => "a boolean",
        Number => "a number",
        String => "a string",
        Map => "a table",
        _ => "not a list",
    }
}

/// How an item shows in a step name: a string as it is, a table by its `name` when it has
/// one, anything else as JSON.
fn label(item: &serde_json::Value) -> String {
    match item {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => match o.get("name") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => item.to_string(),
        },
        other => other.to_string(),
    }
}

/// Names key the output and `--limit`: two expansions of one name are an error.
fn check_names(steps: &[Step]) -> Result<(), ConfigError> {
    let mut seen = BTreeSet::new();
    for s in steps {
        if !seen.insert(s.name.as_str()) {
            let mut e = ConfigError::new(&s.file, format!("two steps are named `{}`", s.name))
                .at_line(s.lang.loop_.as_ref().map_or(s.line, |l| l.at.0))
                .with_help("give each step a distinct `name`: with a loop, use `{{ item }}` in it or make the items distinct");
            e.col = Some(1);
            return Err(e);
        }
    }
    Ok(())
}

/// The register a notifying step's result is kept under when it has none of its own: made
/// from its name, so a pending notification on the host is found again by the next run.
fn notify_register(step_name: &str) -> String {
    let digest = Sha256::digest(step_name.as_bytes());
    format!("_notify_{}", &hex::encode(digest)[..12])
}

/// Each notifying step registers; each handler runs when one of its notifiers changed (and
/// its own `when` holds).
fn wire_handlers(steps: &mut [Step]) {
    let mut by_handler: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (i, s) in steps.iter_mut().enumerate() {
        if s.lang.notify.is_empty() {
            continue;
        }
        let register = s
            .register
            .get_or_insert_with(|| notify_register(&s.name))
            .clone();
        for h in &s.lang.notify {
            by_handler
                .entry(h.clone())
                .or_default()
                .push((i, register.clone()));
        }
    }
    for s in steps.iter_mut() {
        let Some(h) = &s.lang.handler else {
            continue;
        };
        let notifiers = by_handler.get(h).cloned().unwrap_or_default();
        s.lang.notified_by = notifiers.iter().map(|(i, _)| *i).collect();
        let notified: Vec<String> = notifiers
            .iter()
            .map(|(_, r)| format!("({r} is defined and {r}.changed)"))
            .collect();
        let notified = if notified.is_empty() {
            "false".to_string()
        } else {
            notified.join(" or ")
        };
        s.when = Some(match &s.when {
            Some(w) => format!("({notified}) and ({w})"),
            None => notified,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Playbook, Project};
    use crate::plan::{PlanOptions, Planner};
    use crate::secrets::{Redactor, Secrets};
    use std::path::Path;

    /// The plan of the one host `a` of a minimal project.
    fn plan_one_host(p: &Planner) -> crate::plan::HostPlan {
        let project = Project::parse(
            Path::new("/nonexistent/provision.toml"),
            "app = \"demo\"\n[env.prod]\nhosts = [\"a\"]\n",
        )
        .unwrap();
        let env = project.env("prod").unwrap();
        let hosts = crate::inventory::resolve(&project, env, None, false).unwrap();
        p.plan_host(&hosts[0]).unwrap()
    }

    fn planner(playbook: &str) -> Result<Planner, crate::config::ConfigError> {
        planner_with(playbook, PlanOptions::default())
    }

    fn planner_with(
        playbook: &str,
        opts: PlanOptions,
    ) -> Result<Planner, crate::config::ConfigError> {
        let project = Project::parse(
            Path::new("/nonexistent/provision.toml"),
            "app = \"demo\"\n[vars]\nusers = [\"ann\", \"bob\"]\nroot = \"/srv\"\n[env.prod]\nhosts = [\"a\"]\n",
        )
        .unwrap();
        let pb = Playbook::parse(Path::new("p.toml"), "playbooks/p.toml", playbook)?;
        let secrets = Secrets::load(None, Redactor::default()).unwrap();
        Planner::new(&project, "prod", pb, secrets, opts)
    }

    fn names(p: &Planner) -> Vec<String> {
        p.playbook.steps.iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn a_loop_is_one_step_per_item_named_by_it() {
        let p = planner(
            "[[step]]\ndirectory = { path = \"{{ root }}/{{ item }}\" }\nloop = \"{{ users }}\"\n\
             [[step]]\nname = \"user\"\ncommand = { run = \"echo {{ item.n }} {{ loop_index }}\" }\nloop = [{ n = 1 }, { n = 2, name = \"two\" }]\n\
             [[step]]\nname = \"bare\"\ncommand = { run = \"true\" }\nloop = \"users\"\n",
        )
        .unwrap();
        assert_eq!(
            names(&p),
            [
                "directory /srv/ann",
                "directory /srv/bob",
                "user ({\"n\":1})",
                "user (two)",
                "bare (ann)",
                "bare (bob)"
            ]
        );
        let idx: Vec<usize> = p.playbook.steps.iter().map(|s| s.index).collect();
        assert_eq!(idx, [0, 1, 2, 3, 4, 5]);
        assert_eq!(p.playbook.steps[3].lang.locals["loop_index"], 1);
        let plan = plan_one_host(&p);
        let probe = plan.steps[1]
            .prepared
            .as_ref()
            .unwrap()
            .probe(false)
            .unwrap();
        assert!(probe.contains("/srv/bob"), "{probe}");
    }

    #[test]
    fn a_bad_loop_is_an_error_at_its_value() {
        let e = planner("[[step]]\ncommand = { run = \"x\" }\nloop = \"{{ usres }}\"\n")
            .err()
            .unwrap();
        assert_eq!((e.line, e.col), (Some(3), Some(8)), "{e}");
        assert!(e.message.contains("did you mean `users`?"), "{e}");
        let e = planner("[[step]]\ncommand = { run = \"x\" }\nloop = \"root\"\n")
            .err()
            .unwrap();
        assert!(e.message.contains("`root` is a string, not a list"), "{e}");
        let e = planner(
            "[[step]]\ngit = { repo = \"/r\", dest = \"/x\" }\nregister = \"src\"\n[[step]]\ncommand = { run = \"x\" }\nloop = \"{{ src.files }}\"\n",
        )
        .err()
        .unwrap();
        assert!(e.message.contains("known only on the host's turn"), "{e}");
        let e = planner("[[step]]\ncommand = { run = \"x\" }\nloop = [\"a\", \"a\"]\n")
            .err()
            .unwrap();
        assert!(
            e.message.contains("two steps are named `command x (a)`"),
            "{e}"
        );
    }

    #[test]
    fn vars_render_over_the_project_vars_and_are_seen_by_their_step_only() {
        let p = planner(
            "[[step]]\nname = \"a {{ port }}\"\ncommand = { run = \"echo {{ port }}\" }\nvars = { port = \"{{ root }}:80\" }\n\
             [[step]]\ncommand = { run = \"echo {{ root }}\" }\n",
        )
        .unwrap();
        assert_eq!(names(&p), ["a /srv:80", "command echo {{ root }}"]);
        assert_eq!(p.playbook.steps[0].lang.locals["port"], "/srv:80");
        assert!(p.playbook.steps[1].lang.locals.is_empty());
    }

    #[test]
    fn handlers_follow_the_steps_and_run_when_a_notifier_changed() {
        let p = planner(
            "[[handler]]\nname = \"reload\"\nwhen = \"true\"\ncommand = { run = \"r\" }\n\
             [[handler]]\nname = \"idle\"\ncommand = { run = \"i\" }\n\
             [[step]]\nname = \"conf\"\ncommand = { run = \"c {{ item }}\" }\nloop = [1, 2]\nnotify = \"reload\"\n\
             [[step]]\nname = \"own\"\ncommand = { run = \"o\" }\nregister = \"mine\"\nnotify = [\"reload\"]\n",
        )
        .unwrap();
        assert_eq!(names(&p), ["conf (1)", "conf (2)", "own", "reload", "idle"]);
        let s = &p.playbook.steps;
        let (r1, r2) = (
            s[0].register.clone().unwrap(),
            s[1].register.clone().unwrap(),
        );
        assert!(r1.starts_with("_notify_") && r1 != r2, "{r1} {r2}");
        assert_eq!(s[2].register.as_deref(), Some("mine"));
        assert_eq!(
            s[3].when.as_deref().unwrap(),
            format!(
                "(({r1} is defined and {r1}.changed) or ({r2} is defined and {r2}.changed) or (mine is defined and mine.changed)) and (true)"
            )
        );
        assert_eq!(s[3].lang.notified_by, [0, 1, 2]);
        assert_eq!(s[4].when.as_deref(), Some("false"));
    }

    #[test]
    fn a_handler_goes_where_a_notifier_goes_whatever_the_tags() {
        let playbook = "[[step]]\nname = \"a\"\ntags = [\"conf\"]\ncommand = { run = \"a\" }\nnotify = \"h\"\n\
                        [[step]]\nname = \"b\"\ncommand = { run = \"b\" }\nnotify = \"h2\"\n\
                        [[handler]]\nname = \"h\"\ncommand = { run = \"h\" }\n\
                        [[handler]]\nname = \"h2\"\ncommand = { run = \"h2\" }\n";
        let opts = PlanOptions {
            tags: vec!["conf".into()],
            ..PlanOptions::default()
        };
        let p = planner_with(playbook, opts).unwrap();
        let plan = plan_one_host(&p);
        let planned: Vec<&str> = plan.steps.iter().map(|s| s.step.name.as_str()).collect();
        assert_eq!(planned, ["a", "h"]);
    }
}
