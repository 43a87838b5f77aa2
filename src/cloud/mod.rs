//! EC2 provisioning: find-or-create an environment's machines by tags, then hand them to the
//! inventory like any other host.
//!
//! This module is SDK-free: the desired state ([`Ec2Env`], from `[env.<name>.ec2]`), what was
//! found on AWS ([`Observed`]) and the pure diff between them ([`plan`] → [`Ec2Plan`]). The AWS
//! SDK lives in `ec2.rs` only (cargo feature `ec2`), and `run.rs` drives the two for `up`,
//! `plan`, `hosts` and `down`.

#[cfg(feature = "ec2")]
mod down;
#[cfg(feature = "ec2")]
mod ec2;
pub mod hosts;
#[cfg(feature = "ec2")]
mod listing;
#[cfg(feature = "ec2")]
mod run;

pub use crate::config::ec2::{
    ALL_TRAFFIC, AddressKind, DEFAULT_ROLE, Ec2Def, Ec2Env, KeySource, RoleSpec, Rule, TAG_APP,
    TAG_ENV, TAG_NAME, TAG_ROLE, UserData,
};

pub use crate::error::CloudError;

use crate::config::{ConfigError, Env, Project};
use crate::error::Error;
use crate::inventory::Host;
use crate::value::Mode;
use std::collections::BTreeSet;

/// `Name` of the `index`-th machine of a role: `app-env-role-N`, or `app-env-N` for the
/// default role.
pub fn instance_name(app: &str, env: &str, role: &str, index: u32) -> String {
    if role == DEFAULT_ROLE {
        format!("{app}-{env}-{index}")
    } else {
        format!("{app}-{env}-{role}-{index}")
    }
}

/// The `N` of a `Name` made by [`instance_name`] for this role.
fn name_index(app: &str, env: &str, role: &str, name: &str) -> Option<u32> {
    let prefix = instance_name(app, env, role, 0);
    let prefix = prefix.strip_suffix('0')?;
    name.strip_prefix(prefix)?.parse().ok()
}

/// Tags for everything provision creates for this app and env (plus `Name`).
pub fn base_tags(app: &str, env: &str, name: &str) -> Vec<(String, String)> {
    vec![
        (TAG_APP.into(), app.into()),
        (TAG_ENV.into(), env.into()),
        (TAG_NAME.into(), name.into()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Observed state
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    pub fn parse(s: &str) -> Option<InstanceState> {
        Some(match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        }
    }

    /// Counts towards the desired number: not on its way out.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            InstanceState::Pending
                | InstanceState::Running
                | InstanceState::Stopping
                | InstanceState::Stopped
        )
    }
}

/// An instance tagged for this app and env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub name: Option<String>,
    pub role: Option<String>,
    pub state: InstanceState,
    /// Seconds since the epoch (0 when unknown).
    pub launch_time: i64,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub instance_type: Option<String>,
    pub ami: Option<String>,
}

impl Instance {
    pub fn address(&self, kind: AddressKind) -> Option<&str> {
        match kind {
            AddressKind::Public => self.public_ip.as_deref(),
            AddressKind::Private => self.private_ip.as_deref(),
        }
    }

    /// `Name (id)`, or the id alone.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({})", self.id),
            None => self.id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairState {
    pub name: String,
    /// Tagged for this app and env: created by provision, deleted by `down`.
    pub ours: bool,
    /// The public key EC2 holds (`type base64`), when it says.
    pub public_key: Option<String>,
}

/// A note when the key pair EC2 holds is not the configured public key: new instances would
/// get the old key, which provision does not replace (running instances keep theirs anyway).
pub fn key_note(name: &str, configured: &str, on_ec2: Option<&str>) -> Option<String> {
    let key = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let on_ec2 = on_ec2?;
    (key(configured) != key(on_ec2)).then(|| {
        format!(
            "key pair {name} holds another public key than ec2.public_key: new instances get the one EC2 holds (`provision down` and up again, or another ec2.key_pair name, to change it)"
        )
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub id: String,
    pub name: String,
    pub ours: bool,
    /// The CIDR ingress rules (rules naming other groups or prefix lists are left alone).
    pub rules: BTreeSet<Rule>,
}

/// What `up` found on EC2 for the env.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The key pair of the desired name, when it exists.
    pub key_pair: Option<KeyPairState>,
    /// The security group of the desired name in the target VPC, when it exists.
    pub group: Option<GroupState>,
    /// Every instance tagged for this app and env, in any state.
    pub instances: Vec<Instance>,
}

// ---------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------

/// An instance to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub role: String,
    pub name: String,
}

/// What `up` does on EC2, in this order: key pair, group and rules, terminations, starts,
/// launches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ec2Plan {
    /// Import the key pair (it does not exist yet).
    pub import_key: bool,
    /// Create the security group (it does not exist yet).
    pub create_group: bool,
    pub authorize: Vec<Rule>,
    pub revoke: Vec<Rule>,
    pub terminate: Vec<Instance>,
    pub start: Vec<Instance>,
    pub launch: Vec<Launch>,
    /// Instances that already run and stay: what the playbook runs on (with the new ones).
    pub keep: Vec<Instance>,
    /// Differences `up` does not fix (an instance type or AMI changed): one sentence each.
    pub notes: Vec<String>,
}

impl Ec2Plan {
    pub fn is_empty(&self) -> bool {
        !self.import_key
            && !self.create_group
            && self.authorize.is_empty()
            && self.revoke.is_empty()
            && self.terminate.is_empty()
            && self.start.is_empty()
            && self.launch.is_empty()
    }

    /// Human lines, `+` create, `~` change, `-` remove, `>` start, `!` note.
    pub fn lines(&self, desired: &Ec2Env) -> Vec<String> {
        let mut out = Vec::new();
        if self.import_key
            && let KeySource::Import { name, public_key } = &desired.key
        {
            out.push(format!(
                "+ key pair {name} (import {})",
                public_key.display()
            ));
        }
        if self.create_group {
            out.push(format!("+ security group {}", desired.security_group));
        }
        for r in &self.authorize {
            out.push(format!("+ ingress {r}"));
        }
        for r in &self.revoke {
            out.push(format!("- ingress {r}"));
        }
        for i in &self.terminate {
            out.push(format!(
                "- terminate {} [{}]",
                i.label(),
                i.role.as_deref().unwrap_or("no role")
            ));
        }
        for i in &self.start {
            out.push(format!("> start {} [{}]", i.label(), i.state.as_str()));
        }
        for l in &self.launch {
            let spec = &desired.roles[&l.role];
            out.push(format!(
                "+ instance {} (role {}, {}, {})",
                l.name, l.role, spec.instance_type, spec.ami
            ));
        }
        for n in &self.notes {
            out.push(format!("! {n}"));
        }
        out
    }

    /// `2 to create, 1 to start, ...` or `nothing to change`.
    pub fn summary(&self) -> String {
        let create =
            self.launch.len() + usize::from(self.import_key) + usize::from(self.create_group);
        let change = self.authorize.len() + self.revoke.len();
        let mut parts = Vec::new();
        for (n, what) in [
            (create, "to create"),
            (self.start.len(), "to start"),
            (change, "rule(s) to change"),
            (self.terminate.len(), "to terminate"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if parts.is_empty() {
            "nothing to change".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Why [`plan`] refuses: EC2 holds something of the desired name that provision did not
/// create for this app and env, or lacks the key pair the config names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "key pair `{name}` exists but was not created by provision for {app}/{env}: set ec2.key_pair = \"{name}\" without ec2.public_key to use it as it is, or choose another ec2.key_pair name to import the key under"
    )]
    ForeignKeyPair {
        name: String,
        app: String,
        env: String,
    },
    #[error(
        "key pair `{name}` does not exist in this region: create it, or set ec2.public_key to have provision import one"
    )]
    MissingKeyPair { name: String },
    #[error(
        "security group `{name}` ({id}) exists but was not created by provision for {app}/{env}: choose another ec2.security_group name"
    )]
    ForeignGroup {
        name: String,
        id: String,
        app: String,
        env: String,
    },
}

/// The diff between `desired` and `observed`. Errors are refusals: a key pair or group of
/// the desired name that provision did not create for this app and env.
pub fn plan(desired: &Ec2Env, observed: &Observed) -> Result<Ec2Plan, Refusal> {
    let mut p = Ec2Plan {
        import_key: plan_key(desired, observed.key_pair.as_ref())?,
        ..Ec2Plan::default()
    };
    plan_group(desired, observed.group.as_ref(), &mut p)?;
    let live: Vec<&Instance> = observed
        .instances
        .iter()
        .filter(|i| i.state.is_live())
        .collect();
    // Instances of roles no longer declared (or without a role tag) are surplus.
    p.terminate = live
        .iter()
        .filter(|i| {
            !i.role
                .as_deref()
                .is_some_and(|r| desired.roles.contains_key(r))
        })
        .map(|i| (*i).clone())
        .collect();
    for (role, spec) in &desired.roles {
        plan_role(desired, role, spec, &live, &mut p);
    }
    Ok(p)
}

/// Whether the key pair is to be imported; refused when the name is taken by another's or
/// an existing one to use is missing.
fn plan_key(desired: &Ec2Env, found: Option<&KeyPairState>) -> Result<bool, Refusal> {
    match (&desired.key, found) {
        (KeySource::Import { .. }, None) => Ok(true),
        (KeySource::Import { name, .. }, Some(k)) if !k.ours => Err(Refusal::ForeignKeyPair {
            name: name.clone(),
            app: desired.app.clone(),
            env: desired.env.clone(),
        }),
        (KeySource::Existing { name }, None) => Err(Refusal::MissingKeyPair { name: name.clone() }),
        (_, Some(_)) => Ok(false),
    }
}

/// The group to create, or the rules to bring to the declared set.
fn plan_group(
    desired: &Ec2Env,
    found: Option<&GroupState>,
    p: &mut Ec2Plan,
) -> Result<(), Refusal> {
    match found {
        None => {
            p.create_group = true;
            p.authorize = desired.ingress.iter().cloned().collect();
        }
        Some(g) if !g.ours => {
            return Err(Refusal::ForeignGroup {
                name: g.name.clone(),
                id: g.id.clone(),
                app: desired.app.clone(),
                env: desired.env.clone(),
            });
        }
        Some(g) => {
            p.authorize = desired.ingress.difference(&g.rules).cloned().collect();
            p.revoke = g.rules.difference(&desired.ingress).cloned().collect();
        }
    }
    Ok(())
}

/// One role: the surplus (newest) to terminate, the stopped to start, the rest kept, and
/// launches up to the count under the lowest free indexes.
fn plan_role(desired: &Ec2Env, role: &str, spec: &RoleSpec, live: &[&Instance], p: &mut Ec2Plan) {
    let index = |i: &Instance| {
        i.name
            .as_deref()
            .and_then(|n| name_index(&desired.app, &desired.env, role, n))
            .unwrap_or(u32::MAX)
    };
    let mut mine: Vec<&Instance> = live
        .iter()
        .copied()
        .filter(|i| i.role.as_deref() == Some(role))
        .collect();
    // Oldest first; the newest are the surplus.
    mine.sort_by(|a, b| (a.launch_time, index(a), &a.id).cmp(&(b.launch_time, index(b), &b.id)));
    let want = spec.count as usize;
    if mine.len() > want {
        p.terminate.extend(mine.drain(want..).cloned());
    }
    for i in &mine {
        if matches!(i.state, InstanceState::Stopped | InstanceState::Stopping) {
            p.start.push((*i).clone());
        } else {
            p.keep.push((*i).clone());
        }
        p.notes.extend(drift_notes(i, spec));
    }
    let used: BTreeSet<u32> = mine.iter().map(|i| index(i)).collect();
    let free = (1..).filter(|n| !used.contains(n));
    p.launch
        .extend(free.take(want - mine.len()).map(|n| Launch {
            role: role.to_string(),
            name: instance_name(&desired.app, &desired.env, role, n),
        }));
}

/// What differs between a kept instance and its role's spec, which `up` does not fix.
fn drift_notes(i: &Instance, spec: &RoleSpec) -> Vec<String> {
    let advice = "not changed (terminate it, or scale down and up, to replace it)";
    let mut notes = Vec::new();
    if let Some(t) = i
        .instance_type
        .as_deref()
        .filter(|t| *t != spec.instance_type)
    {
        notes.push(format!(
            "{} is a {t}, the config says {}: {advice}",
            i.label(),
            spec.instance_type
        ));
    }
    if let Some(a) = i.ami.as_deref().filter(|a| *a != spec.ami) {
        notes.push(format!(
            "{} runs {a}, the config says {}: {advice}",
            i.label(),
            spec.ami
        ));
    }
    notes
}

/// Standard base64 with padding (EC2 wants user data encoded).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Entry points for the commands
// ---------------------------------------------------------------------------------------------

/// Where the EC2 entry points print and ask. `cloud` sits below `report` (tests/layers.rs):
/// the commands hand in their `report::Output`, which masks the env's secret values.
pub trait Console: Sync {
    /// A result line (the EC2 plan, what `down` removes): stdout, or stderr when stdout
    /// carries NDJSON events.
    fn say(&self, line: &str);
    /// Progress, on stderr: it is not part of any result.
    fn progress(&self, line: &str);
    /// Ask `question`: with `word`, yes only when exactly that word is typed; without, yes
    /// for `y` or `yes` in any case. None when no one can answer (no terminal on stdin, or
    /// `CI` set), and then nothing is asked.
    fn ask(&self, question: &str, word: Option<&str>) -> Option<bool>;
}

/// What the command line adds: confirmations and where output goes.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// `--yes`: confirmations are answered yes.
    pub yes: bool,
    pub out: &'a dyn Console,
}

/// The hosts `up` or `plan` runs the playbook on.
#[derive(Debug)]
pub struct RunHosts {
    /// The hosts `--limit` selects.
    pub hosts: Vec<Host>,
    /// Every host of the env, selected or not (templates see them all as `hosts`).
    pub all: Vec<Host>,
    /// `plan`: EC2 changes are pending (for `--detailed-exitcode`).
    pub ec2_pending: bool,
}

impl RunHosts {
    /// `all`, and those of them `limit` selects.
    fn new(
        all: Vec<Host>,
        limit: Option<&str>,
        file: &std::path::Path,
        ec2_pending: bool,
    ) -> Result<RunHosts, ConfigError> {
        Ok(RunHosts {
            hosts: hosts::select(all.clone(), limit, file)?,
            all,
            ec2_pending,
        })
    }
}

/// The hosts of a run. For an env with `ec2`, `up` first brings EC2 to the declared state
/// (creating, starting or, with confirmation, terminating instances, and waiting until new
/// ones answer SSH); `plan` shows what that would do. `resolve` is the inventory's
/// resolution (host string, ssh_config, env ssh settings) applied to an env: EC2 instances
/// go through it by address like static hosts do. The caller plans the playbook on
/// [`hosts::expected`] first, so that nothing is created for a playbook that cannot run.
pub async fn hosts_for_run(
    project: &Project,
    env: &Env,
    limit: Option<&str>,
    mode: Mode,
    opts: Options<'_>,
    resolve: impl Fn(&Env) -> Result<Vec<Host>, ConfigError>,
) -> Result<RunHosts, Error> {
    let Some(desired) = &env.ec2 else {
        return Ok(RunHosts::new(resolve(env)?, limit, &project.file, false)?);
    };
    #[cfg(feature = "ec2")]
    {
        run::hosts_for_run(project, env, desired, limit, mode, opts, &resolve).await
    }
    #[cfg(not(feature = "ec2"))]
    {
        let _ = (desired, mode, opts);
        Err(not_built(project, env))
    }
}

/// The env's static hosts plus its running EC2 instances, read only (nothing is printed,
/// created or waited for): for commands that work on the hosts as they are (`exec`,
/// `releases`, `rollback`...). `resolve` as for [`hosts_for_run`].
pub async fn running_hosts(
    project: &Project,
    env: &Env,
    limit: Option<&str>,
    resolve: impl Fn(&Env) -> Result<Vec<Host>, ConfigError>,
) -> Result<Vec<Host>, Error> {
    let Some(desired) = &env.ec2 else {
        return Ok(hosts::select(resolve(env)?, limit, &project.file)?);
    };
    #[cfg(feature = "ec2")]
    {
        run::running_hosts(project, env, desired, limit, &resolve).await
    }
    #[cfg(not(feature = "ec2"))]
    {
        let _ = desired;
        Err(not_built(project, env))
    }
}

/// `provision hosts <env>` for an env with `ec2`: its instances (id, state, address, role)
/// and how they are reached, next to its static hosts. None when the env has no `ec2` (the
/// command lists static hosts).
pub async fn list_hosts(
    project: &Project,
    env: &Env,
    resolve: impl Fn(&Env) -> Result<Vec<Host>, ConfigError>,
) -> Option<Result<Listing, Error>> {
    let desired = env.ec2.as_ref()?;
    #[cfg(feature = "ec2")]
    {
        Some(listing::list_hosts(project, env, desired, &resolve).await)
    }
    #[cfg(not(feature = "ec2"))]
    {
        let _ = (desired, resolve);
        Some(Err(not_built(project, env)))
    }
}

/// An env with `ec2` as `provision hosts` lists it.
#[derive(Debug)]
pub struct Listing {
    /// `ec2.region`, as the client resolved it.
    pub region: String,
    pub statics: Vec<Host>,
    /// Sorted by role, name and id.
    pub instances: Vec<Listed>,
}

impl Listing {
    /// The hosts the instances are reached as.
    pub fn reached(&self) -> impl Iterator<Item = &Host> {
        self.instances.iter().filter_map(|l| l.host.as_ref())
    }
}

/// One instance of a [`Listing`].
#[derive(Debug)]
pub struct Listed {
    pub instance: Instance,
    /// Its address of the kind the env connects to (`ec2.address`).
    pub address: Option<String>,
    /// The host it is reached as: none when it has no address or is on its way out.
    pub host: Option<Host>,
}

/// `provision down <env>`: terminate the env's instances, delete its security group and key
/// pair (what provision created, by tag), and forget the host keys pinned for the instances.
/// Asks for the env name on a terminal, else needs `--yes`. `resolve` as for [`hosts_for_run`].
pub async fn down(
    project: &Project,
    env: &Env,
    opts: Options<'_>,
    resolve: impl Fn(&Env) -> Result<Vec<Host>, ConfigError>,
) -> Result<i32, Error> {
    let Some(desired) = &env.ec2 else {
        return Err(ConfigError::new(
            &project.file,
            format!(
                "env `{}` has no [env.{}.ec2] table: `down` only removes EC2 machines provision created",
                env.name, env.name
            ),
        )
        .into());
    };
    #[cfg(feature = "ec2")]
    {
        down::down(project, env, desired, opts, &resolve).await
    }
    #[cfg(not(feature = "ec2"))]
    {
        let _ = (desired, opts, resolve);
        Err(not_built(project, env))
    }
}

#[cfg(not(feature = "ec2"))]
fn not_built(project: &Project, env: &Env) -> Error {
    ConfigError::new(
        &project.file,
        format!(
            "env `{}` uses EC2, but this provision was built without EC2 support",
            env.name
        ),
    )
    .with_help("build it with the default features (cargo feature `ec2`)")
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn rule(port: u16, cidr: &str) -> Rule {
        Rule {
            protocol: "tcp".into(),
            from: port,
            to: port,
            cidr: cidr.into(),
        }
    }

    fn desired(roles: &[(&str, u32)]) -> Ec2Env {
        Ec2Env {
            app: "hello".into(),
            env: "prod".into(),
            region: Some("us-east-1".into()),
            endpoint_url: None,
            key: KeySource::Import {
                name: "provision-hello-prod".into(),
                public_key: "/k.pub".into(),
            },
            security_group: "provision-hello-prod".into(),
            ingress: [rule(22, "0.0.0.0/0"), rule(80, "0.0.0.0/0")].into(),
            subnet: None,
            roles: roles
                .iter()
                .map(|(r, n)| {
                    (
                        r.to_string(),
                        RoleSpec {
                            count: *n,
                            ami: "ami-1".into(),
                            instance_type: "t3.micro".into(),
                            root_volume_gb: None,
                            user_data: None,
                            tags: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            ssh_user: None,
            address: AddressKind::Public,
            ssh_timeout: Duration::from_secs(60),
        }
    }

    fn inst(id: &str, role: &str, n: u32, state: InstanceState, t: i64) -> Instance {
        Instance {
            id: id.into(),
            name: Some(instance_name("hello", "prod", role, n)),
            role: Some(role.into()),
            state,
            launch_time: t,
            public_ip: Some(format!("54.0.0.{n}")),
            private_ip: Some(format!("10.0.0.{n}")),
            instance_type: Some("t3.micro".into()),
            ami: Some("ami-1".into()),
        }
    }

    fn ours(rules: &[Rule]) -> Observed {
        Observed {
            key_pair: Some(KeyPairState {
                name: "provision-hello-prod".into(),
                ours: true,
                public_key: None,
            }),
            group: Some(GroupState {
                id: "sg-1".into(),
                name: "provision-hello-prod".into(),
                ours: true,
                rules: rules.iter().cloned().collect(),
            }),
            instances: Vec::new(),
        }
    }

    #[test]
    fn empty_account_creates_everything() {
        let p = plan(&desired(&[("web", 2), ("db", 1)]), &Observed::default()).unwrap();
        assert!(p.import_key && p.create_group);
        assert_eq!(p.authorize.len(), 2);
        let names: Vec<_> = p.launch.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["hello-prod-db-1", "hello-prod-web-1", "hello-prod-web-2"]
        );
        assert_eq!(p.summary(), "5 to create, 2 rule(s) to change");
    }

    #[test]
    fn converged_is_empty_and_default_role_names_have_no_role() {
        let mut obs = ours(&[rule(22, "0.0.0.0/0"), rule(80, "0.0.0.0/0")]);
        obs.instances = vec![inst("i-1", "all", 1, InstanceState::Running, 10)];
        let p = plan(&desired(&[("all", 1)]), &obs).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.keep[0].name.as_deref(), Some("hello-prod-1"));
        assert_eq!(p.summary(), "nothing to change");
    }

    #[test]
    fn rules_are_brought_to_the_declared_set() {
        let obs = ours(&[rule(22, "0.0.0.0/0"), rule(8080, "10.0.0.0/8")]);
        let p = plan(&desired(&[]), &obs).unwrap();
        assert_eq!(p.authorize, vec![rule(80, "0.0.0.0/0")]);
        assert_eq!(p.revoke, vec![rule(8080, "10.0.0.0/8")]);
        assert!(!p.create_group && !p.import_key);
    }

    #[test]
    fn scale_up_fills_the_lowest_free_index_and_starts_stopped_ones() {
        let mut obs = ours(&[rule(22, "0.0.0.0/0"), rule(80, "0.0.0.0/0")]);
        obs.instances = vec![
            inst("i-2", "web", 2, InstanceState::Stopped, 10),
            inst("i-old", "web", 1, InstanceState::Terminated, 5),
        ];
        let p = plan(&desired(&[("web", 3)]), &obs).unwrap();
        assert_eq!(p.start.len(), 1);
        let names: Vec<_> = p.launch.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["hello-prod-web-1", "hello-prod-web-3"]);
    }

    #[test]
    fn scale_down_terminates_the_newest_and_undeclared_roles() {
        let mut obs = ours(&[rule(22, "0.0.0.0/0"), rule(80, "0.0.0.0/0")]);
        obs.instances = vec![
            inst("i-c", "web", 3, InstanceState::Running, 30),
            inst("i-a", "web", 1, InstanceState::Running, 10),
            // Same launch second: the higher index is the newer.
            inst("i-b", "web", 2, InstanceState::Running, 10),
            inst("i-w", "worker", 1, InstanceState::Stopped, 1),
        ];
        let p = plan(&desired(&[("web", 1)]), &obs).unwrap();
        let gone: Vec<_> = p.terminate.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(gone, ["i-w", "i-b", "i-c"]);
        assert_eq!(p.keep[0].id, "i-a");
        assert!(p.launch.is_empty() && p.start.is_empty());
    }

    #[test]
    fn changed_type_is_a_note_not_a_replacement() {
        let mut obs = ours(&[rule(22, "0.0.0.0/0"), rule(80, "0.0.0.0/0")]);
        let mut i = inst("i-a", "web", 1, InstanceState::Running, 10);
        i.instance_type = Some("t3.nano".into());
        obs.instances = vec![i];
        let p = plan(&desired(&[("web", 1)]), &obs).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.notes.len(), 1);
        assert!(p.notes[0].contains("t3.nano"), "{:?}", p.notes);
    }

    #[test]
    fn foreign_group_or_key_is_refused() {
        let mut obs = ours(&[]);
        obs.group.as_mut().unwrap().ours = false;
        let e = plan(&desired(&[]), &obs).unwrap_err().to_string();
        assert!(e.contains("security group `provision-hello-prod`"), "{e}");
        let mut obs = ours(&[]);
        obs.key_pair.as_mut().unwrap().ours = false;
        assert!(
            plan(&desired(&[]), &obs)
                .unwrap_err()
                .to_string()
                .contains("key pair")
        );
        let mut d = desired(&[]);
        d.key = KeySource::Existing {
            name: "mine".into(),
        };
        let e = plan(&d, &Observed::default()).unwrap_err().to_string();
        assert!(e.contains("`mine` does not exist"), "{e}");
    }

    #[test]
    fn key_note_compares_type_and_key_only() {
        let k = "ssh-ed25519 AAAA1 me@laptop";
        assert_eq!(key_note("k", k, Some("ssh-ed25519 AAAA1")), None);
        assert_eq!(key_note("k", k, None), None);
        assert!(key_note("k", k, Some("ssh-ed25519 AAAA2")).is_some());
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"#!/bin/sh\n"), "IyEvYmluL3NoCg==");
    }

    #[test]
    fn plan_lines_read_well() {
        let d = desired(&[("web", 1)]);
        let p = plan(&d, &Observed::default()).unwrap();
        let lines = p.lines(&d);
        assert_eq!(lines[0], "+ key pair provision-hello-prod (import /k.pub)");
        assert_eq!(lines[1], "+ security group provision-hello-prod");
        assert_eq!(lines[2], "+ ingress tcp 22 from 0.0.0.0/0");
        assert_eq!(
            lines.last().unwrap(),
            "+ instance hello-prod-web-1 (role web, t3.micro, ami-1)"
        );
    }
}
