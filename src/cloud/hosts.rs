//! EC2 instances → inventory hosts, through the same resolution as static hosts: each
//! instance becomes a host string (`ssh_user@address`) looked up in ssh_config by its address
//! (so `HostName`/`Port` apply to it), then named by its `Name` tag.

use crate::cloud::{Ec2Env, Instance, InstanceState};
use crate::config::{ConfigError, Env, HostAddr, HostEntry};
use crate::inventory::{Host, apply_limit};
use crate::transport::KnownHostsPolicy;
use std::collections::BTreeMap;
use std::path::Path;

/// An instance the playbook runs on.
#[derive(Debug, Clone)]
pub struct Ec2Host {
    pub instance: Instance,
    /// This run launched it: its host key is trusted on first sight and pinned (accept-new).
    pub created: bool,
}

/// The env's static hosts plus `instances`, resolved by `resolve` (the inventory's resolution
/// of an env, without `--limit`). Returns the hosts sorted by name, and for each EC2 one the
/// instance it stands for.
pub fn hosts(
    env: &Env,
    ec2: &Ec2Env,
    instances: &[Ec2Host],
    file: &Path,
    resolve: &dyn Fn(&Env) -> Result<Vec<Host>, ConfigError>,
) -> Result<Vec<(Host, Option<Ec2Host>)>, ConfigError> {
    let mut with_instances = env.clone();
    let mut by_address: BTreeMap<String, &Ec2Host> = BTreeMap::new();
    for h in instances {
        let i = &h.instance;
        let address = i.address(ec2.address).ok_or_else(|| {
            let kind = match ec2.address {
                crate::cloud::AddressKind::Public => "public",
                crate::cloud::AddressKind::Private => "private",
            };
            ConfigError::new(file, format!("instance {} has no {kind} address", i.label()))
                .with_help("set ec2.address = \"private\" (reached through ssh.jump), or a subnet that assigns public IPs")
        })?;
        let addr = HostAddr {
            user: ec2.ssh_user.clone(),
            host: address.to_string(),
            port: None,
        };
        by_address.insert(addr.name(), h);
        let role = i
            .role
            .clone()
            .unwrap_or_else(|| crate::cloud::DEFAULT_ROLE.into());
        // EC2 instances have no vars of their own: only hosts written in the config do.
        with_instances.hosts.push(HostEntry::new(addr, vec![role]));
    }
    let names = display_names(instances);
    let mut out = Vec::new();
    for mut host in resolve(&with_instances)? {
        let found = by_address.get(&host.name).map(|h| (*h).clone());
        if let Some(h) = &found {
            host.name = names[&h.instance.id].clone();
            host.connect.name = host.name.clone();
            // Pins follow the instance, not its address (a new one on every stop/start).
            host.connect.instance_id = Some(h.instance.id.clone());
            if h.created {
                host.connect.known_hosts = KnownHostsPolicy::AcceptNew;
            }
        }
        out.push((host, found));
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(out)
}

/// The hosts a run will have once EC2 matches the config: the static hosts plus one per
/// instance the roles declare, named as `up` launches them (`app-env-role-N`). An address is
/// not known before launch, so the name stands in for it. For planning the playbook before
/// anything is created; never connected to.
pub fn expected(
    env: &Env,
    ec2: &Ec2Env,
    file: &Path,
    resolve: &dyn Fn(&Env) -> Result<Vec<Host>, ConfigError>,
) -> Result<Vec<Host>, ConfigError> {
    let instances: Vec<Ec2Host> = ec2
        .roles
        .keys()
        .flat_map(|role| (1..=ec2.roles[role].count).map(move |n| placeholder(ec2, role, n)))
        .collect();
    let pairs = hosts(env, ec2, &instances, file, resolve)?;
    Ok(pairs.into_iter().map(|(h, _)| h).collect())
}

/// The `n`-th instance of `role` as it will be launched, its name standing for its address.
fn placeholder(ec2: &Ec2Env, role: &str, n: u32) -> Ec2Host {
    let name = crate::cloud::instance_name(&ec2.app, &ec2.env, role, n);
    let spec = &ec2.roles[role];
    Ec2Host {
        instance: Instance {
            id: name.clone(),
            name: Some(name.clone()),
            role: Some(role.to_string()),
            state: InstanceState::Pending,
            launch_time: 0,
            public_ip: Some(name.clone()),
            private_ip: Some(name),
            instance_type: Some(spec.instance_type.clone()),
            ami: Some(spec.ami.clone()),
        },
        created: false,
    }
}

/// `Name` when it is set and unique among the instances, else the instance ID.
fn display_names(instances: &[Ec2Host]) -> BTreeMap<String, String> {
    let count = |n: &str| {
        instances
            .iter()
            .filter(|h| h.instance.name.as_deref() == Some(n))
            .count()
    };
    instances
        .iter()
        .map(|h| {
            let i = &h.instance;
            let name = match i.name.as_deref() {
                Some(n) if !n.is_empty() && count(n) == 1 => n.to_string(),
                _ => i.id.clone(),
            };
            (i.id.clone(), name)
        })
        .collect()
}

/// Keep the hosts `--limit` selects (names, addresses or roles, comma separated).
pub fn select(
    hosts: Vec<Host>,
    limit: Option<&str>,
    file: &Path,
) -> Result<Vec<Host>, ConfigError> {
    match limit {
        Some(limit) => apply_limit(hosts, limit, file),
        None => Ok(hosts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Project;

    fn instance(id: &str, name: &str, ip: &str) -> Instance {
        Instance {
            id: id.into(),
            name: Some(name.into()),
            role: Some("web".into()),
            state: InstanceState::Running,
            launch_time: 0,
            public_ip: Some(ip.into()),
            private_ip: Some("10.0.0.9".into()),
            instance_type: None,
            ami: None,
        }
    }

    #[test]
    fn instances_resolve_through_ssh_config_by_address() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("ssh_config");
        std::fs::write(&cfg, "Host *\n  HostName 127.0.0.1\n  Port 2200\n").unwrap();
        let text = format!(
            "app = \"a\"\n[ssh]\nconfig = \"{}\"\n[env.prod]\nhosts = {{ db = [\"root@192.0.2.1\"] }}\n[env.prod.ec2]\nami = \"ami-1\"\nkey_pair = \"k\"\nssh_user = \"admin\"\n[env.prod.ec2.roles.web]\ncount = 2\n",
            cfg.display()
        );
        let project = Project::parse(&dir.path().join("provision.toml"), &text).unwrap();
        let env = project.env("prod").unwrap();
        assert_eq!(env.roles, ["db", "web"]);
        let ec2 = env.ec2.as_ref().unwrap();
        let instances = [
            Ec2Host {
                instance: instance("i-1", "a-prod-web-1", "54.0.0.1"),
                created: true,
            },
            Ec2Host {
                instance: instance("i-2", "a-prod-web-2", "54.0.0.2"),
                created: false,
            },
        ];
        let resolve = |e: &Env| crate::inventory::resolve(&project, e, None, false);
        let hosts = hosts(env, ec2, &instances, &project.file, &resolve).unwrap();
        let names: Vec<_> = hosts.iter().map(|(h, _)| h.name.as_str()).collect();
        assert_eq!(names, ["192.0.2.1", "a-prod-web-1", "a-prod-web-2"]);
        let (web1, inst) = &hosts[1];
        assert_eq!(inst.as_ref().unwrap().instance.id, "i-1");
        assert_eq!(
            (
                web1.connect.address.as_str(),
                web1.connect.port,
                web1.connect.user.as_str()
            ),
            ("127.0.0.1", 2200, "admin")
        );
        assert_eq!(web1.connect.known_hosts, KnownHostsPolicy::AcceptNew);
        assert_eq!(web1.connect.instance_id.as_deref(), Some("i-1"));
        assert_eq!(hosts[0].0.connect.instance_id, None, "a static host");
        assert_eq!(hosts[2].0.connect.known_hosts, KnownHostsPolicy::Strict);
        assert_eq!(hosts[1].0.roles, ["web"]);

        let only = select(
            hosts.into_iter().map(|(h, _)| h).collect(),
            Some("a-prod-web-2"),
            &project.file,
        )
        .unwrap();
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn expected_hosts_are_named_as_up_launches_them() {
        let text = "app = \"a\"\n[ssh]\nconfig = \"none\"\n[env.prod]\nhosts = { db = [\"root@192.0.2.1\"] }\n[env.prod.ec2]\nami = \"ami-1\"\nkey_pair = \"k\"\nssh_user = \"admin\"\n[env.prod.ec2.roles.web]\ncount = 2\n";
        let project = Project::parse(std::path::Path::new("/p/provision.toml"), text).unwrap();
        let env = project.env("prod").unwrap();
        let resolve = |e: &Env| crate::inventory::resolve(&project, e, None, false);
        let hosts = expected(env, env.ec2.as_ref().unwrap(), &project.file, &resolve).unwrap();
        let seen: Vec<_> = hosts
            .iter()
            .map(|h| (h.name.as_str(), h.roles.join(","), h.connect.user.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("192.0.2.1", "db".to_string(), "root"),
                ("a-prod-web-1", "web".to_string(), "admin"),
                ("a-prod-web-2", "web".to_string(), "admin"),
            ]
        );
    }
}
