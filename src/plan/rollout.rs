//! A run's shape across hosts, decided before any connection: the batches hosts deploy in
//! (`serial`), when the rollout stops (`max_fail_percentage`, `max_failures`), and which host
//! runs each `run_once` step. Pure: the runner follows it.

use super::HostPlan;
use crate::config::{self, ConfigError, Playbook, RunOnce, Serial, Step};
use std::collections::BTreeMap;

/// How a run goes through its hosts.
#[derive(Debug)]
pub struct Rollout {
    /// The hosts' plans in run order, in batches run one after another.
    pub batches: Vec<Vec<HostPlan>>,
    /// A `run_once` step (by its playbook index) → the host that runs it.
    pub once: BTreeMap<usize, String>,
    /// When a failed batch stops the rollout.
    pub limits: config::Rollout,
    /// Whether batches were asked for (`serial`): then each batch is reported.
    pub serial: bool,
}

impl Rollout {
    /// Split `plans` (in run order) by `serial` (`--serial` over the env's), and choose the
    /// host of each `run_once` step. `limited`: `--limit` was given (for the error naming a
    /// host it leaves out).
    pub fn new(
        plans: Vec<HostPlan>,
        env: &config::Rollout,
        cli: Option<&Serial>,
        playbook: &Playbook,
        limited: bool,
    ) -> Result<Rollout, ConfigError> {
        let serial = cli.or(env.serial.as_ref());
        let sizes = match serial {
            Some(s) => s.batch_sizes(plans.len()),
            None => vec![plans.len()],
        };
        let batch_of = batch_index(&sizes);
        let mut once = BTreeMap::new();
        for step in &playbook.steps {
            if let Some(host) = once_host(step, &plans, &batch_of, playbook, limited)? {
                once.insert(step.index, host);
            }
        }
        let mut rest = plans.into_iter();
        let batches = sizes
            .iter()
            .map(|n| rest.by_ref().take(*n).collect())
            .collect();
        Ok(Rollout {
            batches,
            once,
            limits: env.clone(),
            serial: serial.is_some(),
        })
    }

    /// Every host's name, in run order.
    pub fn host_names(&self) -> Vec<String> {
        self.batches
            .iter()
            .flatten()
            .map(|p| p.host.name.clone())
            .collect()
    }
}

/// Host position (run order) → its batch.
fn batch_index(sizes: &[usize]) -> Vec<usize> {
    (sizes.iter().enumerate())
        .flat_map(|(b, n)| std::iter::repeat_n(b, *n))
        .collect()
}

/// The host that runs `step` once, when it is a `run_once` step that some host runs. Among
/// the hosts it is selected for: the first in run order (so in the earliest batch that has
/// one), or the one named, which must be in that batch too: a later one would leave the
/// earlier hosts waiting for a batch that starts only after theirs.
fn once_host(
    step: &Step,
    plans: &[HostPlan],
    batch_of: &[usize],
    playbook: &Playbook,
    limited: bool,
) -> Result<Option<String>, ConfigError> {
    let Some(how) = &step.run_once else {
        return Ok(None);
    };
    let runs = |p: &HostPlan| p.steps.iter().any(|s| s.step.index == step.index);
    let Some(first) = plans.iter().position(runs) else {
        return Ok(None);
    };
    let RunOnce::Host(name) = how else {
        return Ok(Some(plans[first].host.name.clone()));
    };
    let err = |message: String, help: String| {
        let (line, col) = step.run_once_at;
        let mut e = ConfigError::new(&playbook.display, message)
            .at_line(line)
            .with_help(help);
        e.col = Some(col);
        e
    };
    let named = |p: &HostPlan| p.host.name == *name || p.host.connect.address == *name;
    let Some(at) = plans.iter().position(named) else {
        let why = if limited {
            "which --limit leaves out"
        } else {
            "which is not one of this run's hosts"
        };
        return Err(err(
            format!("step `{}` runs once on `{name}`, {why}", step.name),
            format!(
                "add `{name}` to --limit, or write run_once = true to run it on the first host the run has ({})",
                plans[first].host.name
            ),
        ));
    };
    if !runs(&plans[at]) {
        return Err(err(
            format!(
                "step `{}` runs once on `{name}`, which the step does not run on (on = {:?})",
                step.name, step.on
            ),
            "name a host in one of the step's roles, or write run_once = true".to_string(),
        ));
    }
    if batch_of[at] > batch_of[first] {
        return Err(err(
            format!(
                "step `{}` runs once on `{name}`, which is in batch {} while {} runs it in batch {}",
                step.name,
                batch_of[at] + 1,
                plans[first].host.name,
                batch_of[first] + 1
            ),
            format!(
                "name a host of batch {} (the others wait for the one that runs it), or write run_once = true",
                batch_of[first] + 1
            ),
        ));
    }
    Ok(Some(plans[at].host.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Project;
    use crate::plan::{PlanOptions, Planner};
    use crate::secrets::{Redactor, Secrets};
    use std::path::Path;

    /// Plans for web1..web3 (role web) and zdb (role db), in that run order.
    fn plans(playbook: &str) -> (Vec<HostPlan>, Playbook) {
        let project = Project::parse(
            Path::new("/nonexistent/provision.toml"),
            "app = \"demo\"\n[ssh]\nconfig = \"none\"\n[env.prod]\nhosts = { a_web = [\"web1\", \"web2\", \"web3\"], db = [\"zdb\"] }\n",
        )
        .unwrap();
        let pb = Playbook::parse(Path::new("p.toml"), "playbooks/p.toml", playbook).unwrap();
        let secrets = Secrets::load(None, Redactor::default()).unwrap();
        let planner = Planner::new(
            &project,
            "prod",
            pb.clone(),
            secrets,
            PlanOptions::default(),
        )
        .unwrap();
        let hosts =
            crate::inventory::resolve(&project, project.env("prod").unwrap(), None, false).unwrap();
        let plans = hosts
            .iter()
            .map(|h| planner.plan_host(h).unwrap())
            .collect();
        (plans, pb)
    }

    fn serial(s: &str) -> config::Rollout {
        config::Rollout {
            serial: Some(s.parse().unwrap()),
            ..config::Rollout::default()
        }
    }

    fn names(r: &Rollout) -> Vec<Vec<String>> {
        (r.batches.iter())
            .map(|b| b.iter().map(|p| p.host.name.clone()).collect())
            .collect()
    }

    const ONCE: &str =
        "[[step]]\nname = \"m\"\non = \"a_web\"\nrun_once = true\ncommand = { run = \"x\" }\n";

    #[test]
    fn batches_follow_serial_and_the_command_line_wins() {
        let (p, pb) = plans("");
        let r = Rollout::new(p, &serial("1,50%"), None, &pb, false).unwrap();
        assert_eq!(names(&r), [vec!["web1"], vec!["web2", "web3"], vec!["zdb"]]);
        assert!(r.serial);
        let (p, pb) = plans("");
        let cli: Serial = "3".parse().unwrap();
        let r = Rollout::new(p, &serial("1"), Some(&cli), &pb, false).unwrap();
        assert_eq!(names(&r), [vec!["web1", "web2", "web3"], vec!["zdb"]]);
        let (p, pb) = plans("");
        let r = Rollout::new(p, &config::Rollout::default(), None, &pb, false).unwrap();
        assert_eq!(names(&r).len(), 1);
        assert!(!r.serial);
    }

    #[test]
    fn run_once_goes_to_the_first_host_the_step_runs_on() {
        let (p, pb) = plans(&format!(
            "{ONCE}[[step]]\nname = \"d\"\non = \"db\"\nrun_once = true\ncommand = {{ run = \"y\" }}\n[[step]]\nname = \"all\"\ncommand = {{ run = \"z\" }}\n"
        ));
        let r = Rollout::new(p, &serial("1"), None, &pb, false).unwrap();
        assert_eq!(
            r.once,
            BTreeMap::from([(0, "web1".into()), (1, "zdb".into())])
        );
    }

    #[test]
    fn a_migrate_runs_once_unless_told_otherwise() {
        let m = "migrate = { image = \"i\", command = \"m\" }";
        let (p, pb) = plans(&format!("[[step]]\non = \"db\"\n{m}\n"));
        let r = Rollout::new(p, &config::Rollout::default(), None, &pb, false).unwrap();
        assert_eq!(r.once, BTreeMap::from([(0, "zdb".into())]));
        let (p, pb) = plans(&format!("[[step]]\nrun_once = false\n{m}\n"));
        let r = Rollout::new(p, &config::Rollout::default(), None, &pb, false).unwrap();
        assert!(r.once.is_empty());
    }

    #[test]
    fn a_named_host_must_be_in_the_run_in_the_steps_roles_and_in_the_first_batch() {
        let named = |h: &str| ONCE.replace("run_once = true", &format!("run_once = \"{h}\""));
        let (p, pb) = plans(&named("web2"));
        let r = Rollout::new(p, &serial("2"), None, &pb, false).unwrap();
        assert_eq!(r.once[&0], "web2");
        let (p, pb) = plans(&named("web3"));
        let e = Rollout::new(p, &serial("2"), None, &pb, false).unwrap_err();
        assert!(
            e.message
                .contains("in batch 2 while web1 runs it in batch 1"),
            "{e}"
        );
        assert_eq!((e.line, e.col), (Some(4), Some(12)), "{e}");
        let (p, pb) = plans(&named("zdb"));
        let e = Rollout::new(p, &config::Rollout::default(), None, &pb, false).unwrap_err();
        assert!(e.message.contains("which the step does not run on"), "{e}");
        let (mut p, pb) = plans(&named("web2"));
        p.remove(1);
        let e = Rollout::new(p, &config::Rollout::default(), None, &pb, true).unwrap_err();
        assert!(e.message.contains("which --limit leaves out"), "{e}");
        assert!(e.help.unwrap().contains("(web1)"));
    }

    #[test]
    fn a_step_no_host_runs_has_no_host() {
        let (p, pb) = plans(&ONCE.replace("a_web", "db").replace("true", "\"web1\""));
        let p: Vec<HostPlan> = p.into_iter().take(3).collect();
        let r = Rollout::new(p, &config::Rollout::default(), None, &pb, true).unwrap();
        assert!(r.once.is_empty());
    }
}
