//! `up` and `plan` for an env with `ec2` (and the steps `down` shares): observe, diff, confirm, apply,
//! wait until new machines run and answer SSH, then hand them to the inventory.
//!
//! Every connection, the wait for SSH included, goes through the inventory's resolution of
//! the instance address (ssh_config `HostName`/`Port`, jump host...), exactly like the
//! playbook's own connections: nothing here opens a socket to an instance by itself.

use super::ec2::{Ec2, LaunchSpec};
use super::hosts::Ec2Host;
use super::{
    CloudError, Console, Ec2Env, Ec2Plan, Instance, InstanceState, KeySource, Observed, Options,
    Refusal, RunHosts, UserData,
};
use crate::config::{ConfigError, Env, Project};
use crate::error::Error;
use crate::inventory::Host;
use crate::transport::Connector;
use crate::transport::ssh::SshConnector;
use crate::transport::{ConnectError, Transport};
use crate::value::Mode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often instance states are polled while waiting.
const POLL: Duration = Duration::from_secs(2);
/// Progress lines while waiting come this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);
/// AWS's limit on user data, before base64.
const USER_DATA_MAX: usize = 16 * 1024;

pub(super) type Resolve<'a> = &'a dyn Fn(&Env) -> Result<Vec<Host>, ConfigError>;

fn refuse(project: &Project, env: &str, m: Refusal) -> Error {
    ConfigError::new(&project.file, format!("env `{env}`: {m}")).into()
}

pub(super) async fn hosts_for_run(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    limit: Option<&str>,
    mode: Mode,
    opts: Options<'_>,
    resolve: Resolve<'_>,
) -> Result<RunHosts, Error> {
    let ec2 = Ec2::connect(d).await?;
    let vpc = ec2.vpc(d.subnet.as_deref()).await?;
    let observed = ec2.observe(d, &vpc).await?;
    let (plan, public_key) = diff(project, env, d, &observed)?;
    show_plan(opts, &ec2, d, &plan);
    let hosts = match mode {
        Mode::Check => {
            // A missing user_data_file fails `plan` as it would fail `up`.
            launch_user_data(project, d, &plan)?;
            return check_hosts(project, env, d, limit, opts, &plan, resolve);
        }
        Mode::Apply => {
            let inputs = Inputs {
                user_data: launch_inputs(project, opts, d, &plan)?,
                public_key: public_key.filter(|_| plan.import_key),
                existing_group: observed.group.as_ref().map(|g| g.id.clone()),
            };
            let out = opts.out;
            let created = apply(&ec2, d, &vpc, &plan, &inputs, out).await?;
            let kept: Vec<Instance> = plan.keep.iter().chain(&plan.start).cloned().collect();
            forget_pins(project, env, d, &plan.terminate, &kept, resolve, out)?;
            let deadline = Instant::now() + d.ssh_timeout;
            let waiting = wait_running(&ec2, &plan, &created, deadline, out).await?;
            let (hosts, fresh) =
                converged_hosts(&ec2, project, env, d, &created, &waiting, resolve).await?;
            if !fresh.is_empty() {
                wait_ssh(&fresh, deadline, out).await;
            }
            hosts
        }
    };
    Ok(RunHosts::new(hosts, limit, &project.file, false)?)
}

/// The plan and the public key to import (read, and checked to be a public key, before
/// anything else), with a note when EC2 holds another key under the name.
fn diff(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    observed: &Observed,
) -> Result<(Ec2Plan, Option<String>), Error> {
    let mut plan = super::plan(d, observed).map_err(|m| refuse(project, &env.name, m))?;
    let public_key = match &d.key {
        KeySource::Import { public_key, .. } => Some(read_public_key(project, public_key)?),
        KeySource::Existing { .. } => None,
    };
    if let (Some(key), Some(kp)) = (&public_key, &observed.key_pair) {
        plan.notes
            .extend(super::key_note(&kp.name, key, kp.public_key.as_deref()));
    }
    Ok((plan, public_key))
}

/// `ec2 <region> (app/env): <summary>` and one line per change.
fn show_plan(opts: Options<'_>, ec2: &Ec2, d: &Ec2Env, plan: &Ec2Plan) {
    let (region, summary) = (ec2.region(), plan.summary());
    opts.out
        .say(&format!("ec2 {region} ({}/{}): {summary}", d.app, d.env));
    for line in plan.lines(d) {
        opts.out.say(&format!("  {line}"));
    }
}

/// `plan`: the playbook is checked on the instances that run now; those that would be
/// launched or started are named.
fn check_hosts(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    limit: Option<&str>,
    opts: Options<'_>,
    plan: &Ec2Plan,
    resolve: Resolve<'_>,
) -> Result<RunHosts, Error> {
    let running = |i: &&Instance| i.state == InstanceState::Running;
    let kept: Vec<Ec2Host> = plan
        .keep
        .iter()
        .filter(running)
        .map(|i| Ec2Host {
            instance: i.clone(),
            created: false,
        })
        .collect();
    let not_running = plan.keep.iter().filter(|i| !running(i));
    let waiting: Vec<String> = plan
        .launch
        .iter()
        .map(|l| l.name.clone())
        .chain(plan.start.iter().chain(not_running).map(Instance::label))
        .collect();
    if !waiting.is_empty() {
        opts.out.say(&format!(
            "  the playbook would run on {} host(s) not running yet: {}",
            waiting.len(),
            waiting.join(", ")
        ));
    }
    let hosts = hosts_of(project, env, d, &kept, resolve)?;
    Ok(RunHosts::new(
        hosts,
        limit,
        &project.file,
        !plan.is_empty(),
    )?)
}

/// Everything that can be refused before the first change: the confirmation of
/// terminations, and each launched role's user data (read and encoded).
fn launch_inputs(
    project: &Project,
    opts: Options<'_>,
    d: &Ec2Env,
    plan: &Ec2Plan,
) -> Result<BTreeMap<String, String>, Error> {
    if !plan.terminate.is_empty() {
        let names: Vec<String> = plan.terminate.iter().map(Instance::label).collect();
        let what = format!(
            "`up` would terminate {} instance(s) of {}/{}: {}",
            names.len(),
            d.app,
            d.env,
            names.join(", ")
        );
        confirm(project, opts, &what, None)?;
    }
    launch_user_data(project, d, plan)
}

/// Each launched role's user data, read and encoded: role → base64.
fn launch_user_data(
    project: &Project,
    d: &Ec2Env,
    plan: &Ec2Plan,
) -> Result<BTreeMap<String, String>, Error> {
    let mut user_data = BTreeMap::new();
    for l in &plan.launch {
        if let Some(u) = &d.roles[&l.role].user_data {
            user_data.insert(l.role.clone(), read_user_data(project, u)?);
        }
    }
    Ok(user_data)
}

/// After the changes: wait until the new, started and pending instances run. Returns their
/// IDs.
async fn wait_running(
    ec2: &Ec2,
    plan: &Ec2Plan,
    created: &[String],
    deadline: Instant,
    out: &dyn Console,
) -> Result<Vec<String>, Error> {
    let pending = plan
        .keep
        .iter()
        .filter(|i| i.state == InstanceState::Pending);
    let mut waiting: Vec<String> = created.to_vec();
    waiting.extend(plan.start.iter().chain(pending).map(|i| i.id.clone()));
    if !waiting.is_empty() {
        wait_state(ec2, &waiting, InstanceState::Running, deadline, out).await?;
    }
    Ok(waiting)
}

/// Every running instance (and static host) as a host, and those of them that were
/// `waiting` for (they must answer SSH before the run).
async fn converged_hosts(
    ec2: &Ec2,
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    created: &[String],
    waiting: &[String],
    resolve: Resolve<'_>,
) -> Result<(Vec<Host>, Vec<Host>), Error> {
    let live: Vec<Ec2Host> = ec2
        .instances(&d.app, &d.env)
        .await?
        .into_iter()
        .filter(|i| i.state == InstanceState::Running)
        .map(|i| Ec2Host {
            created: created.contains(&i.id),
            instance: i,
        })
        .collect();
    let pairs = super::hosts::hosts(env, d, &live, &project.file, resolve)?;
    let fresh: Vec<Host> = pairs
        .iter()
        .filter(|(_, e)| e.as_ref().is_some_and(|e| waiting.contains(&e.instance.id)))
        .map(|(h, _)| h.clone())
        .collect();
    Ok((pairs.into_iter().map(|(h, _)| h).collect(), fresh))
}

/// After terminating `gone`: drop the host keys provision pinned for them (by instance id)
/// and for their addresses, since a cloud address is handed to another machine later and its
/// key would be refused as "changed". An address that a static host or a `kept` instance
/// also uses keeps its pin.
pub(super) fn forget_pins(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    gone: &[Instance],
    kept: &[Instance],
    resolve: Resolve<'_>,
    out: &dyn Console,
) -> Result<(), Error> {
    if gone.is_empty() {
        return Ok(());
    }
    for (file, (hosts, ids)) in pins_to_forget(project, env, d, gone, kept, resolve)? {
        match crate::transport::ssh::forget_pins(&file, &hosts, &ids) {
            Ok(0) => {}
            Ok(n) => out.progress(&format!(
                "ec2: forgot {n} pinned host key(s) of terminated instances ({})",
                file.display()
            )),
            Err(e) => out.progress(&format!(
                "ec2: could not forget the host keys of terminated instances in {}: {e}",
                file.display()
            )),
        }
    }
    Ok(())
}

/// Per project known_hosts file: the addresses (`(address, port)`) no host left in the env
/// uses, and the ids of the `gone` instances.
type Forget = BTreeMap<std::path::PathBuf, (Vec<(String, u16)>, Vec<String>)>;

fn pins_to_forget(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    gone: &[Instance],
    kept: &[Instance],
    resolve: Resolve<'_>,
) -> Result<Forget, Error> {
    let all: Vec<Ec2Host> = gone
        .iter()
        .chain(kept)
        .filter(|i| i.address(d.address).is_some())
        .map(|i| Ec2Host {
            instance: i.clone(),
            created: false,
        })
        .collect();
    let pairs = super::hosts::hosts(env, d, &all, &project.file, resolve)?;
    let at = |h: &Host| (h.connect.address.clone(), h.connect.port);
    let gone_id = |e: &Option<Ec2Host>| {
        e.as_ref()
            .map(|e| e.instance.id.clone())
            .filter(|id| gone.iter().any(|g| g.id == *id))
    };
    let still_used: Vec<_> = pairs
        .iter()
        .filter(|(_, e)| gone_id(e).is_none())
        .map(|(h, _)| at(h))
        .collect();
    let mut by_file = Forget::new();
    for (h, e) in &pairs {
        let Some(id) = gone_id(e) else { continue };
        let file = h.connect.project_known_hosts.clone();
        let (hosts, ids) = by_file.entry(file).or_default();
        ids.push(id);
        if !still_used.contains(&at(h)) {
            hosts.push(at(h));
        }
    }
    Ok(by_file)
}

/// Static hosts plus these instances, as inventory hosts.
fn hosts_of(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    instances: &[Ec2Host],
    resolve: Resolve<'_>,
) -> Result<Vec<Host>, Error> {
    let pairs = super::hosts::hosts(env, d, instances, &project.file, resolve)?;
    Ok(pairs.into_iter().map(|(h, _)| h).collect())
}

/// What a launch needs besides the plan, read and checked before the first change.
struct Inputs {
    /// Base64 user data by role.
    user_data: BTreeMap<String, String>,
    /// The public key to import (when the plan imports one).
    public_key: Option<String>,
    /// The id of the security group found, when there is one.
    existing_group: Option<String>,
}

/// Key pair, group and rules, terminations, starts, launches. Returns the launched IDs.
async fn apply(
    ec2: &Ec2,
    d: &Ec2Env,
    vpc: &str,
    plan: &Ec2Plan,
    inputs: &Inputs,
    out: &dyn Console,
) -> Result<Vec<String>, Error> {
    if let Some(key) = &inputs.public_key {
        out.progress(&format!("ec2: importing key pair {}", d.key.name()));
        ec2.import_key_pair(d, key).await?;
    }
    let group_id = apply_group(ec2, d, vpc, plan, inputs.existing_group.as_deref(), out).await?;
    if !plan.terminate.is_empty() {
        let ids: Vec<String> = plan.terminate.iter().map(|i| i.id.clone()).collect();
        out.progress(&format!("ec2: terminating {}", labels(&plan.terminate)));
        ec2.terminate(&ids).await?;
    }
    if !plan.start.is_empty() {
        start(ec2, d, &plan.start, out).await?;
    }
    launch(ec2, d, plan, &group_id, inputs, out).await
}

/// The security group (created when missing) with its rules brought to the declared set.
/// Returns its id.
async fn apply_group(
    ec2: &Ec2,
    d: &Ec2Env,
    vpc: &str,
    plan: &Ec2Plan,
    existing: Option<&str>,
    out: &dyn Console,
) -> Result<String, Error> {
    let group_id = match existing {
        Some(id) if !plan.create_group => id.to_string(),
        _ => {
            out.progress(&format!(
                "ec2: creating security group {}",
                d.security_group
            ));
            ec2.create_group(d, vpc).await?
        }
    };
    // Authorize before revoking: a rule being replaced is never missing in between.
    if !plan.authorize.is_empty() {
        let n = plan.authorize.len();
        out.progress(&format!("ec2: {n} ingress rule(s) to authorize"));
        ec2.authorize(&group_id, &plan.authorize).await?;
    }
    if !plan.revoke.is_empty() {
        let n = plan.revoke.len();
        out.progress(&format!("ec2: {n} ingress rule(s) to revoke"));
        ec2.revoke(&group_id, &plan.revoke).await?;
    }
    Ok(group_id)
}

/// Start stopped instances (those still stopping are waited for first: EC2 refuses them).
async fn start(ec2: &Ec2, d: &Ec2Env, list: &[Instance], out: &dyn Console) -> Result<(), Error> {
    let stopping: Vec<String> = list
        .iter()
        .filter(|i| i.state == InstanceState::Stopping)
        .map(|i| i.id.clone())
        .collect();
    if !stopping.is_empty() {
        let deadline = Instant::now() + d.ssh_timeout;
        wait_state(ec2, &stopping, InstanceState::Stopped, deadline, out).await?;
    }
    let ids: Vec<String> = list.iter().map(|i| i.id.clone()).collect();
    out.progress(&format!("ec2: starting {}", labels(list)));
    Ok(ec2.start(&ids).await?)
}

/// Launch the planned instances; returns their IDs.
async fn launch(
    ec2: &Ec2,
    d: &Ec2Env,
    plan: &Ec2Plan,
    group_id: &str,
    inputs: &Inputs,
    out: &dyn Console,
) -> Result<Vec<String>, Error> {
    let mut created = Vec::new();
    // The AMI's root device name, asked once per AMI, when a role sizes its root volume.
    let mut root_devices = BTreeMap::new();
    for l in &plan.launch {
        let spec = &d.roles[&l.role];
        if spec.root_volume_gb.is_some() && !root_devices.contains_key(&spec.ami) {
            let dev = ec2.root_device(&spec.ami).await?;
            root_devices.insert(spec.ami.clone(), dev);
        }
        let id = ec2
            .launch(&LaunchSpec {
                desired: d,
                role: &l.role,
                name: &l.name,
                group_id,
                user_data: inputs.user_data.get(&l.role).map(String::as_str),
                root_device: root_devices.get(&spec.ami).map(String::as_str),
            })
            .await?;
        let (ty, ami) = (&spec.instance_type, &spec.ami);
        out.progress(&format!("ec2: launched {} ({id}, {ty}, {ami})", l.name));
        created.push(id);
    }
    Ok(created)
}

pub(super) fn labels(list: &[Instance]) -> String {
    list.iter()
        .map(Instance::label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Poll until every instance is in `want`; fails when one ends up terminated on the way or
/// at `deadline`.
pub(super) async fn wait_state(
    ec2: &Ec2,
    ids: &[String],
    want: InstanceState,
    deadline: Instant,
    out: &dyn Console,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut last_note = started;
    out.progress(&format!(
        "ec2: waiting until {} instance(s) are {}",
        ids.len(),
        want.as_str()
    ));
    loop {
        let now = ec2.describe(ids).await?;
        let not_yet: Vec<&Instance> = now.iter().filter(|i| i.state != want).collect();
        if not_yet.is_empty() && now.len() == ids.len() {
            out.progress(&format!(
                "ec2: {} instance(s) {} after {}s",
                ids.len(),
                want.as_str(),
                started.elapsed().as_secs()
            ));
            return Ok(());
        }
        let gone = not_yet.iter().find(|i| {
            want != InstanceState::Terminated
                && matches!(
                    i.state,
                    InstanceState::ShuttingDown | InstanceState::Terminated
                )
        });
        if let Some(i) = gone {
            return Err(CloudError {
                op: "DescribeInstances".into(),
                code: None,
                message: format!(
                    "{} is {} instead of {}: see its state reason in the EC2 console",
                    i.label(),
                    i.state.as_str(),
                    want.as_str()
                ),
            }
            .into());
        }
        if Instant::now() >= deadline {
            let list: Vec<String> = not_yet
                .iter()
                .map(|i| format!("{} is {}", i.label(), i.state.as_str()))
                .collect();
            return Err(CloudError {
                op: "DescribeInstances".into(),
                code: None,
                message: format!(
                    "gave up waiting after {}s: {}",
                    started.elapsed().as_secs(),
                    list.join(", ")
                ),
            }
            .into());
        }
        if last_note.elapsed() >= PROGRESS_EVERY {
            last_note = Instant::now();
            out.progress(&format!(
                "ec2: still waiting ({}s): {} not {} yet",
                started.elapsed().as_secs(),
                not_yet.len(),
                want.as_str()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Until each host accepts an SSH connection (key exchange, host key check, authentication)
/// through its resolved settings, or `deadline`. New hosts' keys get pinned on the way
/// (accept-new). A host that never answers is left to the run, which reports it unreachable.
async fn wait_ssh(hosts: &[Host], deadline: Instant, out: &dyn Console) {
    let waits = hosts.iter().map(|h| async move {
        let started = Instant::now();
        let mut spec = h.connect.clone();
        spec.retries = 0;
        out.progress(&format!(
            "ec2: waiting for SSH on {} ({}@{}:{})",
            h.name, spec.user, spec.address, spec.port
        ));
        let mut last_note = started;
        loop {
            let err = match SshConnector.connect(&spec).await {
                Ok(session) => {
                    session.close().await;
                    out.progress(&format!(
                        "ec2: {} answers SSH after {}s",
                        h.name,
                        started.elapsed().as_secs()
                    ));
                    return;
                }
                Err(e) => e,
            };
            let final_error = matches!(
                err,
                ConnectError::HostKeyChanged { .. } | ConnectError::KeyFile { .. }
            );
            if final_error || Instant::now() >= deadline {
                out.progress(&format!(
                    "ec2: {} does not answer SSH after {}s: {err}",
                    h.name,
                    started.elapsed().as_secs()
                ));
                return;
            }
            if last_note.elapsed() >= PROGRESS_EVERY {
                last_note = Instant::now();
                out.progress(&format!(
                    "ec2: still waiting for SSH on {} ({}s): {err}",
                    h.name,
                    started.elapsed().as_secs()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    });
    futures::future::join_all(waits).await;
}

/// Ask before destroying. `--yes` answers; without a terminal it must be given. `typed`: the
/// answer must be this word (the env name), else `y`/`yes` in any case ([`Console::ask`]).
pub(super) fn confirm(
    project: &Project,
    opts: Options<'_>,
    what: &str,
    typed: Option<&str>,
) -> Result<(), Error> {
    if opts.yes {
        return Ok(());
    }
    let question = match typed {
        Some(word) => format!("{what}.\nType `{word}` to confirm: "),
        None => format!("{what}.\nProceed? [y/N] "),
    };
    match opts.out.ask(&question, typed) {
        Some(true) => Ok(()),
        Some(false) => Err(Error::NotConfirmed),
        None => Err(Error::Config(
            ConfigError::new(&project.file, format!("{what}; nothing was changed"))
                .with_help("confirm with --yes (there is no terminal to ask on)"),
        )),
    }
}

/// The public key to import, checked to be one (never a private key).
fn read_public_key(project: &Project, path: &std::path::Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            &project.file,
            format!("ec2: cannot read the public key {}: {e}", path.display()),
        )
        .with_help(
            "set ec2.public_key to an OpenSSH public key file (ssh-keygen -y -f <key> > <key>.pub)",
        )
    })?;
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let kind = line.split_whitespace().next().unwrap_or("");
    if !(kind.starts_with("ssh-") || kind.starts_with("ecdsa-"))
        || line.split_whitespace().count() < 2
    {
        return Err(Error::Config(
            ConfigError::new(
                &project.file,
                format!("ec2: {} is not an OpenSSH public key", path.display()),
            )
            .with_help(
                "give the .pub file (\"ssh-ed25519 AAAA...\"); a private key is never uploaded",
            ),
        ));
    }
    Ok(line.to_string())
}

/// User data, base64 as RunInstances wants it.
fn read_user_data(project: &Project, u: &UserData) -> Result<String, Error> {
    let bytes = match u {
        UserData::Inline(s) => s.clone().into_bytes(),
        UserData::File(p) => std::fs::read(p).map_err(|e| {
            ConfigError::new(
                &project.file,
                format!("ec2: cannot read user_data_file {}: {e}", p.display()),
            )
        })?,
    };
    if bytes.len() > USER_DATA_MAX {
        return Err(Error::Config(ConfigError::new(
            &project.file,
            format!(
                "ec2: user data is {} bytes; EC2 takes at most {USER_DATA_MAX}",
                bytes.len()
            ),
        )));
    }
    Ok(super::base64(&bytes))
}

pub(super) async fn running_hosts(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    limit: Option<&str>,
    resolve: Resolve<'_>,
) -> Result<Vec<Host>, Error> {
    let ec2 = Ec2::connect(d).await?;
    let running: Vec<Ec2Host> = ec2
        .instances(&d.app, &d.env)
        .await?
        .into_iter()
        .filter(|i| i.state == InstanceState::Running)
        .map(|instance| Ec2Host {
            instance,
            created: false,
        })
        .collect();
    let hosts = hosts_of(project, env, d, &running, resolve)?;
    Ok(super::hosts::select(hosts, limit, &project.file)?)
}
