//! `provision hosts <env>`: the env's hosts, their roles and how they are reached (for an
//! env with `ec2`, its instances as EC2 lists them).

use super::context::Context;
use super::load;
use crate::error::{Error, exit};
use crate::inventory::Host;

pub async fn run(cx: &Context, env_name: &str) -> Result<i32, Error> {
    let project = load::project(cx)?;
    let env = project.env(env_name)?;
    let resolve = load::resolver(&project, cx);
    if let Some(r) = crate::cloud::print_hosts(&project, env, cx.cloud(), resolve).await {
        return r;
    }
    let hosts = crate::inventory::resolve_with(&project, env, cx.limit.as_deref(), &cx.access)?;
    if cx.json() {
        hosts.iter().for_each(print_json);
    } else {
        print_table(&hosts);
    }
    Ok(exit::OK)
}

fn print_json(h: &Host) {
    let c = &h.connect;
    let jump = c
        .jump
        .as_ref()
        .map(|j| format!("{}@{}:{}", j.user, j.address, j.port));
    out(&serde_json::json!({ "event": "host", "host": h.name, "roles": h.roles, "address": c.address, "port": c.port, "user": c.user, "jump": jump }).to_string());
}

fn print_table(hosts: &[Host]) {
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(4).max(4);
    out(&format!("{:width$}  {:<16} CONNECT", "HOST", "ROLES"));
    for h in hosts {
        let c = &h.connect;
        let via = c
            .jump
            .as_ref()
            .map(|j| format!(" via {}@{}:{}", j.user, j.address, j.port))
            .unwrap_or_default();
        let roles = h.roles.join(",");
        out(&format!(
            "{:width$}  {roles:<16} {}@{}:{}{via}",
            h.name, c.user, c.address, c.port
        ));
    }
}

fn out(line: &str) {
    println!("{line}");
}
