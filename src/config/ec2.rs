//! `[env.<name>.ec2]` as written (strict serde: unknown keys are errors) and its validation
//! into an [`Ec2Env`]. Files it names (public key, user data) are read when they are used.

use super::{ConfigError, Dur, SshDef};
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Tag keys provision sets on everything it creates; instances are found by them.
pub const TAG_APP: &str = "provision:app";
pub const TAG_ENV: &str = "provision:env";
pub const TAG_ROLE: &str = "provision:role";
pub const TAG_NAME: &str = "Name";

/// The role of an environment whose `ec2` table has no `roles`.
pub const DEFAULT_ROLE: &str = "all";

// ---------------------------------------------------------------------------------------------
// Desired state
// ---------------------------------------------------------------------------------------------

/// `[env.<name>.ec2]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Env {
    pub app: String,
    pub env: String,
    /// None: the standard chain (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// None: the standard chain (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_EC2`), else AWS.
    pub endpoint_url: Option<String>,
    pub key: KeySource,
    pub security_group: String,
    pub ingress: BTreeSet<Rule>,
    /// None: the region's default VPC, a default subnet.
    pub subnet: Option<String>,
    pub roles: BTreeMap<String, RoleSpec>,
    /// The login user on the instances (the AMI's: `ubuntu`, `ec2-user`, `admin`...).
    pub ssh_user: Option<String>,
    pub address: AddressKind,
    /// How long a new instance may take to answer SSH.
    pub ssh_timeout: Duration,
}

/// Where the key pair comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Import this public key file under `name` (created and deleted by provision).
    Import { name: String, public_key: PathBuf },
    /// Use a key pair that exists already (never deleted by provision).
    Existing { name: String },
}

impl KeySource {
    pub fn name(&self) -> &str {
        match self {
            KeySource::Import { name, .. } | KeySource::Existing { name } => name,
        }
    }
}

/// The machines of one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSpec {
    pub count: u32,
    pub ami: String,
    pub instance_type: String,
    pub root_volume_gb: Option<u32>,
    pub user_data: Option<UserData>,
    /// Extra tags (never `Name` or `provision:*`).
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserData {
    Inline(String),
    /// A file of the project, read when instances are launched.
    File(PathBuf),
}

/// Which address of an instance the inventory connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressKind {
    #[default]
    Public,
    Private,
}

/// One ingress permission: a protocol, a port range and one CIDR (IPv4 or IPv6).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub protocol: String,
    pub from: u16,
    pub to: u16,
    pub cidr: String,
}

/// EC2's protocol for "all traffic" (found on a group, never declared by provision).
pub const ALL_TRAFFIC: &str = "-1";

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.protocol == ALL_TRAFFIC {
            write!(f, "all traffic from {}", self.cidr)
        } else if self.from == self.to {
            write!(f, "{} {} from {}", self.protocol, self.from, self.cidr)
        } else {
            write!(
                f,
                "{} {}-{} from {}",
                self.protocol, self.from, self.to, self.cidr
            )
        }
    }
}

/// The most instances one role may ask for: a typo guard, not an AWS limit.
pub const MAX_COUNT: u32 = 100;
/// How long a new instance may take to answer SSH, unless `ssh_timeout` says otherwise.
pub const DEFAULT_SSH_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_INSTANCE_TYPE: &str = "t3.micro";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Def {
    region: Option<String>,
    endpoint_url: Option<String>,
    ami: Option<String>,
    instance_type: Option<String>,
    count: Option<u32>,
    root_volume_gb: Option<u32>,
    user_data: Option<String>,
    user_data_file: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    key_pair: Option<String>,
    public_key: Option<String>,
    security_group: Option<String>,
    ingress: Option<Vec<IngressDef>>,
    subnet: Option<String>,
    ssh_user: Option<String>,
    address: Option<AddressKind>,
    ssh_timeout: Option<Dur>,
    #[serde(default)]
    roles: BTreeMap<String, Spanned<RoleDef>>,
}

/// `[env.<name>.ec2.roles.<role>]`: any of these overrides the env-wide value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleDef {
    ami: Option<String>,
    instance_type: Option<String>,
    count: Option<u32>,
    root_volume_gb: Option<u32>,
    user_data: Option<String>,
    user_data_file: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngressDef {
    ports: Vec<PortDef>,
    /// Default: anywhere (`0.0.0.0/0`).
    cidrs: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    protocol: Protocol,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Protocol {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a port number or a range like \"8000-8010\"")]
enum PortDef {
    One(u16),
    Range(String),
}

/// Where the table is, for errors that serde cannot place.
pub struct At<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    /// Byte offset of the `ec2` table.
    pub offset: usize,
    pub env: &'a str,
}

impl At<'_> {
    fn err(&self, offset: Option<usize>, message: String) -> ConfigError {
        ConfigError::at(
            self.file,
            self.text,
            offset.unwrap_or(self.offset),
            format!("env `{}`: ec2: {message}", self.env),
        )
    }
}

impl Ec2Def {
    /// Validate, filling defaults. `ssh` is the env's merged `ssh` settings (the public key
    /// defaults to the identity file's `.pub`); `root` is the project folder.
    pub fn build(
        self,
        at: &At,
        app: &str,
        ssh: &SshDef,
        root: &Path,
    ) -> Result<Ec2Env, ConfigError> {
        let env = at.env;
        let default_name = format!("provision-{app}-{env}");
        let key = key_source(at, self.key_pair, self.public_key, &default_name, ssh, root)?;
        let security_group = group_name(at, self.security_group.unwrap_or(default_name))?;
        let ingress = match self.ingress {
            Some(list) => rules(at, list)?,
            None => BTreeSet::from([Rule {
                protocol: "tcp".into(),
                from: 22,
                to: 22,
                cidr: "0.0.0.0/0".into(),
            }]),
        };
        check_endpoint(at, self.endpoint_url.as_deref())?;
        check_ssh_user(at, self.ssh_user.as_deref())?;
        let base = RoleDef {
            ami: self.ami,
            instance_type: self.instance_type,
            count: self.count,
            root_volume_gb: self.root_volume_gb,
            user_data: self.user_data,
            user_data_file: self.user_data_file,
            tags: Some(self.tags),
        };
        Ok(Ec2Env {
            app: app.to_string(),
            env: env.to_string(),
            region: self.region,
            endpoint_url: self.endpoint_url,
            key,
            security_group,
            ingress,
            subnet: self.subnet,
            roles: roles(at, &base, self.roles, root)?,
            ssh_user: self.ssh_user,
            address: self.address.unwrap_or_default(),
            ssh_timeout: self.ssh_timeout.map_or(DEFAULT_SSH_TIMEOUT, |d| d.0),
        })
    }
}

/// The key pair to use as it is (`key_pair` alone) or to import (`public_key`, else the
/// identity file's `.pub`), under `key_pair` or the default name.
fn key_source(
    at: &At,
    key_pair: Option<String>,
    public_key: Option<String>,
    default_name: &str,
    ssh: &SshDef,
    root: &Path,
) -> Result<KeySource, ConfigError> {
    let key = match (key_pair, public_key) {
        (Some(name), None) => KeySource::Existing { name },
        (name, Some(p)) => KeySource::Import {
            name: name.unwrap_or_else(|| default_name.to_string()),
            public_key: expand(&p, root),
        },
        (None, None) => {
            let identity = ssh
                .identity_file
                .as_ref()
                .and_then(|f| f.to_vec().into_iter().next());
            let Some(private) = identity else {
                return Err(at
                    .err(None, "no key pair for the instances".into())
                    .with_help("set ec2.public_key = \"~/.ssh/id_ed25519.pub\" (imported as a key pair), ec2.key_pair = \"<existing key pair name>\", or ssh.identity_file (its .pub is imported)"));
            };
            KeySource::Import {
                name: default_name.to_string(),
                public_key: expand(&format!("{private}.pub"), root),
            }
        }
    };
    if key.name().trim().is_empty() {
        return Err(at.err(None, "key_pair is empty".into()));
    }
    Ok(key)
}

/// The security group is found and managed by name (never an `sg-` ID).
fn group_name(at: &At, name: String) -> Result<String, ConfigError> {
    if name.trim().is_empty() || name.starts_with("sg-") {
        return Err(at
            .err(None, format!("security_group `{name}` is not a group name"))
            .with_help(
                "give the name of the group provision creates and manages (not an sg- ID)",
            ));
    }
    Ok(name)
}

fn check_endpoint(at: &At, url: Option<&str>) -> Result<(), ConfigError> {
    match url {
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            Err(at.err(None, format!("endpoint_url `{url}` is not an http(s) URL")))
        }
        _ => Ok(()),
    }
}

fn check_ssh_user(at: &At, user: Option<&str>) -> Result<(), ConfigError> {
    if user.is_some_and(|u| u.trim().is_empty() || u.contains(char::is_whitespace)) {
        return Err(at.err(None, "ssh_user is not a user name".into()));
    }
    Ok(())
}

/// Each role over the env-wide values; without roles, one default role of the env's values.
fn roles(
    at: &At,
    base: &RoleDef,
    defs: BTreeMap<String, Spanned<RoleDef>>,
    root: &Path,
) -> Result<BTreeMap<String, RoleSpec>, ConfigError> {
    let mut roles = BTreeMap::new();
    if defs.is_empty() {
        let spec = role(at, None, base, RoleDef::default(), root)?;
        roles.insert(DEFAULT_ROLE.to_string(), spec);
    }
    for (name, def) in defs {
        let offset = def.span().start;
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if name.is_empty() || !name.chars().all(valid) {
            return Err(at
                .err(Some(offset), format!("role name `{name}` is not valid"))
                .with_help(
                    "use letters, digits, `-` or `_`: it is part of the instances' Name tag",
                ));
        }
        let spec = role(at, Some((&name, offset)), base, def.into_inner(), root)?;
        roles.insert(name, spec);
    }
    Ok(roles)
}

/// One role: its own values over the env-wide ones.
fn role(
    at: &At,
    name: Option<(&str, usize)>,
    base: &RoleDef,
    own: RoleDef,
    root: &Path,
) -> Result<RoleSpec, ConfigError> {
    let offset = name.map(|(_, o)| o);
    let what = match name {
        Some((n, _)) => format!("role `{n}`"),
        None => "the table".to_string(),
    };
    let ami = own.ami.or_else(|| base.ami.clone()).ok_or_else(|| {
        at.err(offset, format!("{what} has no ami"))
            .with_help("set ec2.ami = \"ami-...\" (an AMI of the region), or ami in each role")
    })?;
    let count = own.count.or(base.count).unwrap_or(1);
    if count > MAX_COUNT {
        return Err(at
            .err(
                offset,
                format!("{what}: count {count} is more than {MAX_COUNT}"),
            )
            .with_help("provision refuses this many machines per role as a typo guard"));
    }
    let root_volume_gb = own.root_volume_gb.or(base.root_volume_gb);
    if root_volume_gb == Some(0) {
        return Err(at.err(offset, format!("{what}: root_volume_gb must be at least 1")));
    }
    let (inline, file) = if own.user_data.is_some() || own.user_data_file.is_some() {
        (own.user_data, own.user_data_file)
    } else {
        (base.user_data.clone(), base.user_data_file.clone())
    };
    let user_data = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(at
                .err(
                    offset,
                    format!("{what}: user_data and user_data_file are both set"),
                )
                .with_help("keep one of them"));
        }
        (Some(text), None) => Some(UserData::Inline(text)),
        (None, Some(f)) => Some(UserData::File(expand(&f, root))),
        (None, None) => None,
    };
    let mut tags = base.tags.clone().unwrap_or_default();
    tags.extend(own.tags.unwrap_or_default());
    for k in tags.keys() {
        let lower = k.to_ascii_lowercase();
        if k == TAG_NAME
            || lower.starts_with("provision:")
            || lower.starts_with("aws:")
            || k.is_empty()
        {
            return Err(at
                .err(offset, format!("{what}: tag `{k}` is reserved"))
                .with_help("provision sets Name and provision:* itself; aws:* belongs to AWS"));
        }
    }
    Ok(RoleSpec {
        count,
        ami,
        instance_type: own
            .instance_type
            .or_else(|| base.instance_type.clone())
            .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_string()),
        root_volume_gb,
        user_data,
        tags,
    })
}

fn rules(at: &At, list: Vec<IngressDef>) -> Result<BTreeSet<Rule>, ConfigError> {
    let mut out = BTreeSet::new();
    for def in list {
        let protocol = match def.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        if def.ports.is_empty() {
            return Err(at.err(None, "an ingress rule has no ports".into()));
        }
        let cidrs = match def.cidrs {
            Some(c) => c,
            None => vec![Spanned::new(0..0, "0.0.0.0/0".to_string())],
        };
        if cidrs.is_empty() {
            return Err(at
                .err(None, "an ingress rule has an empty cidrs list".into())
                .with_help("leave cidrs out for anywhere (0.0.0.0/0), or list the networks"));
        }
        for port in &def.ports {
            let (from, to) = port_range(port).map_err(|m| {
                at.err(None, m)
                    .with_help("write ports = [22, 80, \"8000-8010\"]")
            })?;
            for cidr in &cidrs {
                let span = cidr.span();
                let offset = (span.end > 0).then_some(span.start);
                let c = check_cidr(cidr.get_ref()).map_err(|m| at.err(offset, m))?;
                out.insert(Rule {
                    protocol: protocol.into(),
                    from,
                    to,
                    cidr: c,
                });
            }
        }
    }
    Ok(out)
}

fn port_range(p: &PortDef) -> Result<(u16, u16), String> {
    let (from, to) = match p {
        PortDef::One(n) => (*n, *n),
        PortDef::Range(s) => {
            let parse = |x: &str| x.trim().parse::<u16>().ok();
            match s.split_once('-').map(|(a, b)| (parse(a), parse(b))) {
                Some((Some(a), Some(b))) => (a, b),
                _ => match parse(s) {
                    Some(n) => (n, n),
                    None => {
                        return Err(format!(
                            "port `{s}` is not a port or a range like \"8000-8010\""
                        ));
                    }
                },
            }
        }
    };
    if from == 0 || from > to {
        return Err(format!("port range {from}-{to} is not valid"));
    }
    Ok((from, to))
}

/// `a.b.c.d/n` or an IPv6 network, with no host bits set (AWS would store it differently
/// and every run would see a change).
fn check_cidr(c: &str) -> Result<String, String> {
    let bad = || format!("`{c}` is not a CIDR like \"203.0.113.0/24\" or \"::/0\"");
    let (addr, len) = c.trim().split_once('/').ok_or_else(bad)?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        if len > 32 {
            return Err(bad());
        }
        let bits = u32::from(v4);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        if bits & !mask != 0 {
            return Err(format!(
                "`{c}` has host bits set: did you mean \"{}/{len}\"?",
                Ipv4Addr::from(bits & mask)
            ));
        }
        return Ok(format!("{v4}/{len}"));
    }
    if let Ok(v6) = addr.parse::<Ipv6Addr>() {
        if len > 128 {
            return Err(bad());
        }
        let bits = u128::from(v6);
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        if bits & !mask != 0 {
            return Err(format!(
                "`{c}` has host bits set: did you mean \"{}/{len}\"?",
                Ipv6Addr::from(bits & mask)
            ));
        }
        return Ok(format!("{v6}/{len}"));
    }
    Err(bad())
}

/// `~/x` → $HOME/x; relative paths are relative to the project folder.
fn expand(p: &str, root: &Path) -> PathBuf {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => PathBuf::from(h).join(rest),
        _ => root.join(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Project;

    fn parse(ec2: &str) -> Result<Ec2Env, ConfigError> {
        let text = format!("app = \"hello\"\n[env.prod]\n[env.prod.ec2]\n{ec2}\n");
        let p = Project::parse(Path::new("/p/provision.toml"), &text)?;
        Ok(p.env("prod").unwrap().ec2.clone().unwrap())
    }

    #[test]
    fn defaults() {
        let e = parse("ami = \"ami-1\"\npublic_key = \"keys/id.pub\"").unwrap();
        assert_eq!(
            e.key,
            KeySource::Import {
                name: "provision-hello-prod".into(),
                public_key: "/p/keys/id.pub".into()
            }
        );
        assert_eq!(e.security_group, "provision-hello-prod");
        assert_eq!(e.ingress.len(), 1);
        assert_eq!(
            e.ingress.first().unwrap().to_string(),
            "tcp 22 from 0.0.0.0/0"
        );
        let all = &e.roles[DEFAULT_ROLE];
        assert_eq!((all.count, all.instance_type.as_str()), (1, "t3.micro"));
        assert_eq!(e.address, AddressKind::Public);
    }

    #[test]
    fn roles_override_and_rules_expand() {
        let e = parse(
            r#"ami = "ami-1"
key_pair = "ops"
instance_type = "t3.small"
tags = { team = "a" }
ingress = [{ ports = [22, "8000-8010"], cidrs = ["10.0.0.0/8", "::/0"] }, { ports = [53], protocol = "udp" }]
[env.prod.ec2.roles.web]
count = 2
[env.prod.ec2.roles.db]
instance_type = "r6g.large"
tags = { backup = "daily" }
"#,
        )
        .unwrap();
        assert_eq!(e.key, KeySource::Existing { name: "ops".into() });
        assert_eq!(e.roles["web"].count, 2);
        assert_eq!(e.roles["web"].instance_type, "t3.small");
        assert_eq!(e.roles["db"].instance_type, "r6g.large");
        assert_eq!(e.roles["db"].tags.len(), 2);
        let rules: Vec<String> = e.ingress.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            rules,
            [
                "tcp 22 from 10.0.0.0/8",
                "tcp 22 from ::/0",
                "tcp 8000-8010 from 10.0.0.0/8",
                "tcp 8000-8010 from ::/0",
                "udp 53 from 0.0.0.0/0"
            ]
        );
    }

    #[test]
    fn identity_file_pub_is_the_default_key() {
        let text =
            "app = \"hello\"\n[ssh]\nidentity_file = \"keys/id\"\n[env.prod.ec2]\nami = \"a\"\n";
        let p = Project::parse(Path::new("/p/provision.toml"), text).unwrap();
        let e = p.env("prod").unwrap().ec2.clone().unwrap();
        assert_eq!(
            e.key,
            KeySource::Import {
                name: "provision-hello-prod".into(),
                public_key: "/p/keys/id.pub".into()
            }
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("ami = \"a\"\npublic_key = \"k\"\nregoin = \"x\"").unwrap_err();
        assert_eq!((e.line, e.col), (Some(6), Some(1)), "{e}");
        assert!(e.message.contains("unknown field `regoin`"), "{e}");

        let e = parse("ami = \"a\"\npublic_key = \"k\"\ningress = [{ ports = [22], cidrs = [\"10.0.0.1/8\"] }]").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("did you mean \"10.0.0.0/8\""), "{e}");

        let e = parse("public_key = \"k\"").unwrap_err();
        assert!(e.message.contains("has no ami"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");

        let e = parse("ami = \"a\"").unwrap_err();
        assert!(e.message.contains("no key pair"), "{e}");

        let e = parse("ami = \"a\"\npublic_key = \"k\"\ntags = { Name = \"x\" }").unwrap_err();
        assert!(e.message.contains("tag `Name` is reserved"), "{e}");

        let e =
            parse("ami = \"a\"\npublic_key = \"k\"\n[env.prod.ec2.roles.web]\ncount = 1\nsize = 3")
                .unwrap_err();
        assert!(e.message.contains("unknown field `size`"), "{e}");
        assert_eq!(e.line, Some(8), "{e}");

        let e = parse("ami = \"a\"\npublic_key = \"k\"\ningress = [{ ports = [\"90-80\"] }]")
            .unwrap_err();
        assert!(e.message.contains("90-80"), "{e}");
    }

    #[test]
    fn cidrs() {
        assert_eq!(check_cidr("0.0.0.0/0").unwrap(), "0.0.0.0/0");
        assert_eq!(check_cidr("2001:db8::/32").unwrap(), "2001:db8::/32");
        assert!(check_cidr("10.0.0.0").is_err());
        assert!(check_cidr("10.0.0.0/33").is_err());
        assert!(
            check_cidr("2001:db8::1/32")
                .unwrap_err()
                .contains("2001:db8::/32")
        );
    }
}
