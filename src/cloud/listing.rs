//! `provision hosts <env>` for an env with `ec2`: every instance tagged for the env (id,
//! state, address, role) and how each is reached, next to the env's static hosts. Read only;
//! the command prints the [`Listing`].

use super::ec2::Ec2;
use super::hosts::Ec2Host;
use super::run::Resolve;
use super::{Ec2Env, Instance, Listed, Listing};
use crate::config::{Env, Project};
use crate::error::Error;

pub(super) async fn list_hosts(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    resolve: Resolve<'_>,
) -> Result<Listing, Error> {
    let ec2 = Ec2::connect(d).await?;
    let mut instances = ec2.instances(&d.app, &d.env).await?;
    instances.sort_by(|a, b| (&a.role, &a.name, &a.id).cmp(&(&b.role, &b.name, &b.id)));
    let region = ec2.region().to_string();
    listing(project, env, d, region, instances, resolve)
}

/// Resolve the static hosts and the instances that can be reached, through the inventory.
fn listing(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    region: String,
    instances: Vec<Instance>,
    resolve: Resolve<'_>,
) -> Result<Listing, Error> {
    let reachable: Vec<Ec2Host> = instances
        .iter()
        .filter(|i| i.address(d.address).is_some() && i.state.is_live())
        .map(|i| Ec2Host {
            instance: i.clone(),
            created: false,
        })
        .collect();
    let mut pairs = super::hosts::hosts(env, d, &reachable, &project.file, resolve)?;
    let mut host_of = |id: &str| {
        let at = pairs
            .iter()
            .position(|(_, e)| e.as_ref().is_some_and(|e| e.instance.id == id))?;
        Some(pairs.remove(at).0)
    };
    let instances: Vec<Listed> = instances
        .into_iter()
        .map(|instance| Listed {
            host: host_of(&instance.id),
            address: instance.address(d.address).map(str::to_string),
            instance,
        })
        .collect();
    // What is left are the static hosts.
    let statics = pairs.into_iter().map(|(h, _)| h).collect();
    Ok(Listing {
        region,
        statics,
        instances,
    })
}
