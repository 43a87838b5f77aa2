//! `provision hosts <env>` for an env with `ec2`: every instance tagged for the env (id,
//! state, address, role) and how each is reached, next to the env's static hosts.

use super::ec2::Ec2;
use super::hosts::Ec2Host;
use super::run::Resolve;
use super::{Ec2Env, Instance, Options};
use crate::config::{Env, Project};
use crate::error::{Error, exit};
use crate::inventory::Host;

/// The env's hosts as `hosts` lists them.
struct Listing {
    statics: Vec<Host>,
    /// Sorted by role, name and id; with the host it is reached as, when it has an address
    /// and is not on its way out.
    instances: Vec<(Instance, Option<Host>)>,
}

pub(super) async fn print_hosts(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
    opts: Options,
    resolve: Resolve<'_>,
) -> Result<i32, Error> {
    let ec2 = Ec2::connect(d).await?;
    let mut instances = ec2.instances(&d.app, &d.env).await?;
    instances.sort_by(|a, b| (&a.role, &a.name, &a.id).cmp(&(&b.role, &b.name, &b.id)));
    let listing = listing(project, env, d, instances, resolve)?;
    if opts.json {
        print_json(&listing, d);
        return Ok(exit::OK);
    }
    print_table(&listing, d);
    if listing.instances.is_empty() {
        out(&format!(
            "(no EC2 instance of {}/{} in {}: `provision up {}` creates them)",
            d.app,
            d.env,
            ec2.region(),
            d.env
        ));
    }
    Ok(exit::OK)
}

/// Resolve the static hosts and the instances that can be reached, through the inventory.
fn listing(
    project: &Project,
    env: &Env,
    d: &Ec2Env,
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
    let instances: Vec<(Instance, Option<Host>)> = instances
        .into_iter()
        .map(|i| {
            let host = host_of(&i.id);
            (i, host)
        })
        .collect();
    // What is left are the static hosts.
    let statics = pairs.into_iter().map(|(h, _)| h).collect();
    Ok(Listing { statics, instances })
}

fn print_json(listing: &Listing, d: &Ec2Env) {
    for h in &listing.statics {
        let c = &h.connect;
        out(&serde_json::json!({ "host": h.name, "roles": h.roles, "address": c.address, "port": c.port, "user": c.user }).to_string());
    }
    for (i, host) in &listing.instances {
        let c = host.as_ref().map(|h| &h.connect);
        out(&serde_json::json!({
            "host": host.as_ref().map_or(i.id.clone(), |h| h.name.clone()),
            "roles": [i.role.clone().unwrap_or_default()],
            "id": i.id, "state": i.state.as_str(), "instance_address": i.address(d.address),
            "instance_type": i.instance_type,
            "address": c.map(|c| c.address.clone()), "port": c.map(|c| c.port), "user": c.map(|c| c.user.clone()),
        })
        .to_string());
    }
}

fn print_table(listing: &Listing, d: &Ec2Env) {
    let name_of = |i: &Instance| i.name.clone().unwrap_or_else(|| i.id.clone());
    let width = listing
        .instances
        .iter()
        .map(|(i, _)| name_of(i).len())
        .chain(listing.statics.iter().map(|h| h.name.len()))
        .max()
        .unwrap_or(4)
        .max(4);
    let row = |host: &str, role: &str, id: &str, state: &str, address: &str, connect: &str| {
        out(&format!(
            "{host:width$}  {role:<10} {id:<20} {state:<13} {address:<16} {connect}"
        ))
    };
    row("HOST", "ROLE", "ID", "STATE", "ADDRESS", "CONNECT");
    let connect = |h: &Host| {
        format!(
            "{}@{}:{}",
            h.connect.user, h.connect.address, h.connect.port
        )
    };
    for h in &listing.statics {
        row(
            &h.name,
            &h.roles.join(","),
            "-",
            "static",
            &h.name,
            &connect(h),
        );
    }
    for (i, host) in &listing.instances {
        row(
            &name_of(i),
            i.role.as_deref().unwrap_or("-"),
            &i.id,
            i.state.as_str(),
            i.address(d.address).unwrap_or("-"),
            &host.as_ref().map_or("-".into(), connect),
        );
    }
}

/// The listing goes to stdout, in either format.
fn out(line: &str) {
    println!("{line}");
}
