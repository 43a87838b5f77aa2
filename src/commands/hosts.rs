//! `provision hosts <env>`: the env's hosts, their roles and how they are reached (for an
//! env with `ec2`, its instances as EC2 lists them), masking the env's secret values (a
//! user or an address may be one).

use super::context::Context;
use super::load;
use crate::cloud::{Listed, Listing};
use crate::error::{Error, exit};
use crate::inventory::Host;
use crate::report::{Event, HostInstance, Output};
use crate::secrets::Secrets;

pub async fn run(cx: &Context, env_name: &str) -> Result<i32, Error> {
    let project = load::project(cx)?;
    let env = project.env(env_name)?;
    // Loaded only so that the secret values are registered with the redactor.
    let secrets = Secrets::load(env.secrets.as_deref(), cx.redactor.clone())?;
    let out = cx.out();
    let resolve = load::resolver(&project, cx);
    if let Some(listing) = crate::cloud::list_hosts(&project, env, resolve).await {
        let listing = listing?;
        let hosts: Vec<Host> = listing
            .statics
            .iter()
            .chain(listing.reached())
            .cloned()
            .collect();
        super::mask_playbook_secrets(&project, env, secrets, &hosts);
        show_listing(&out, &listing, &project.app, env_name);
        return Ok(exit::OK);
    }
    let hosts = crate::inventory::resolve_with(&project, env, cx.limit.as_deref(), &cx.access)?;
    super::mask_playbook_secrets(&project, env, secrets, &hosts);
    if out.json() {
        hosts.iter().for_each(|h| out.emit(Event::host(h, None)));
    } else {
        show_table(&out, &hosts);
    }
    Ok(exit::OK)
}

fn show_table(out: &Output, hosts: &[Host]) {
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(4).max(4);
    out.line(&format!("{:width$}  {:<16} CONNECT", "HOST", "ROLES"));
    for h in hosts {
        let c = &h.connect;
        let via = c
            .jump
            .as_ref()
            .map(|j| format!(" via {}@{}:{}", j.user, j.address, j.port))
            .unwrap_or_default();
        let roles = h.roles.join(",");
        out.line(&format!(
            "{:width$}  {roles:<16} {}@{}:{}{via}",
            h.name, c.user, c.address, c.port
        ));
    }
}

/// An env with `ec2`: its static hosts, then one line per instance.
fn show_listing(out: &Output, listing: &Listing, app: &str, env: &str) {
    if out.json() {
        for h in &listing.statics {
            out.emit(Event::host(h, None));
        }
        for i in &listing.instances {
            out.emit(instance_event(i));
        }
        return;
    }
    show_instances_table(out, listing);
    if listing.instances.is_empty() {
        out.line(&format!(
            "(no EC2 instance of {app}/{env} in {}: `provision up {env}` creates them)",
            listing.region
        ));
    }
}

/// An instance's line: how it is reached, or null connection fields when it is not.
fn instance_event(l: &Listed) -> Event {
    let i = &l.instance;
    let instance = Some(HostInstance {
        id: i.id.clone(),
        state: i.state.as_str().to_string(),
        instance_address: l.address.clone(),
        instance_type: i.instance_type.clone(),
    });
    match &l.host {
        Some(h) => Event::host(h, instance),
        None => Event::Host {
            host: i.id.clone(),
            roles: i.role.iter().cloned().collect(),
            address: None,
            port: None,
            user: None,
            jump: None,
            instance,
        },
    }
}

/// One row per static host and per instance: its role, EC2 ID, state, address and how it is
/// reached (`-` where there is none).
fn show_instances_table(out: &Output, listing: &Listing) {
    let name_of = |l: &Listed| {
        let i = &l.instance;
        i.name.clone().unwrap_or_else(|| i.id.clone())
    };
    let width = listing
        .instances
        .iter()
        .map(|l| name_of(l).len())
        .chain(listing.statics.iter().map(|h| h.name.len()))
        .max()
        .unwrap_or(4)
        .max(4);
    let row = |host: &str, role: &str, id: &str, state: &str, address: &str, connect: &str| {
        out.line(&format!(
            "{host:width$}  {role:<10} {id:<20} {state:<13} {address:<16} {connect}"
        ))
    };
    row("HOST", "ROLE", "ID", "STATE", "ADDRESS", "CONNECT");
    let connect = |h: &Host| {
        let c = &h.connect;
        format!("{}@{}:{}", c.user, c.address, c.port)
    };
    for h in &listing.statics {
        let roles = h.roles.join(",");
        row(&h.name, &roles, "-", "static", &h.name, &connect(h));
    }
    for l in &listing.instances {
        let i = &l.instance;
        row(
            &name_of(l),
            i.role.as_deref().unwrap_or("-"),
            &i.id,
            i.state.as_str(),
            l.address.as_deref().unwrap_or("-"),
            &l.host.as_ref().map_or("-".into(), connect),
        );
    }
}
