//! `provision down <env>`: terminate every instance tagged for the env, then delete the
//! security groups and key pairs provision created for it (by tag), after one confirmation.

use super::ec2::Ec2;
use super::run::{Resolve, confirm, forget_pins, labels, wait_state};
use super::{CloudError, Console, Ec2Env, Instance, InstanceState, Options};
use crate::config::{Env, Project};
use crate::error::{Error, exit};
use std::time::{Duration, Instant};

/// How long terminated instances may take to go away.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a group may stay "in use" after its instances are gone.
const GROUP_TIMEOUT: Duration = Duration::from_secs(300);

/// What provision created for the env, found by its tags.
struct Ours {
    instances: Vec<Instance>,
    /// (id, name)
    groups: Vec<(String, String)>,
    keys: Vec<String>,
}

impl Ours {
    fn counts(&self) -> String {
        format!(
            "{} instance(s), {} security group(s), {} key pair(s)",
            self.instances.len(),
            self.groups.len(),
            self.keys.len()
        )
    }
}

pub(super) async fn down(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    opts: Options<'_>,
    resolve: Resolve<'_>,
) -> Result<i32, Error> {
    let out = opts.out;
    let ec2 = Ec2::connect(d).await?;
    let ours = Ours {
        instances: ec2.instances(&d.app, &d.env).await?,
        groups: ec2.our_groups(&d.app, &d.env).await?,
        keys: ec2.our_key_pairs(&d.app, &d.env).await?,
    };
    let at = format!("ec2 {} ({}/{})", ec2.region(), d.app, d.env);
    if ours.instances.is_empty() && ours.groups.is_empty() && ours.keys.is_empty() {
        opts.out.say(&format!("{at}: nothing to remove"));
        return Ok(exit::OK);
    }
    opts.out.say(&format!("{at}: {} to remove", ours.counts()));
    show(opts, &ours);
    let what = format!("`down` removes these from {}/{} for good", d.app, d.env);
    confirm(project, opts, &what, Some(&d.env))?;
    if !ours.instances.is_empty() {
        terminate(&ec2, &ours.instances, out).await?;
        forget_pins(project, env, d, &ours.instances, &[], resolve, out)?;
        let ids: Vec<String> = ours.instances.iter().map(|i| i.id.clone()).collect();
        let deadline = Instant::now() + TERMINATE_TIMEOUT;
        wait_state(&ec2, &ids, InstanceState::Terminated, deadline, out).await?;
    }
    for (id, name) in &ours.groups {
        delete_group(&ec2, id, name, out).await?;
    }
    for k in &ours.keys {
        ec2.delete_key_pair(k).await?;
        out.progress(&format!("ec2: deleted key pair {k}"));
    }
    opts.out.say(&format!("ec2: removed {}", ours.counts()));
    Ok(exit::OK)
}

/// One line per thing to remove.
fn show(opts: Options<'_>, ours: &Ours) {
    for i in &ours.instances {
        let line = format!("  - terminate {} [{}]", i.label(), i.state.as_str());
        opts.out.say(&line);
    }
    for (id, name) in &ours.groups {
        opts.out.say(&format!("  - security group {name} ({id})"));
    }
    for k in &ours.keys {
        opts.out.say(&format!("  - key pair {k}"));
    }
}

async fn terminate(ec2: &Ec2, instances: &[Instance], out: &dyn Console) -> Result<(), Error> {
    let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    out.progress(&format!("ec2: terminating {}", labels(instances)));
    Ok(ec2.terminate(&ids).await?)
}

/// A group stays "in use" for a while after its instances are gone (their network
/// interfaces are released late): retried until [`GROUP_TIMEOUT`].
async fn delete_group(ec2: &Ec2, id: &str, name: &str, out: &dyn Console) -> Result<(), Error> {
    let deadline = Instant::now() + GROUP_TIMEOUT;
    while !ec2.delete_group(id).await? {
        if Instant::now() >= deadline {
            return Err(CloudError {
                op: "DeleteSecurityGroup".into(),
                code: Some("DependencyViolation".into()),
                message: format!(
                    "{name} ({id}) is still in use after {}s",
                    GROUP_TIMEOUT.as_secs()
                ),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    out.progress(&format!("ec2: deleted security group {name} ({id})"));
    Ok(())
}
