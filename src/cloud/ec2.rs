//! The one module that speaks the AWS SDK: each EC2 call provision makes, taking and returning
//! the SDK-free types of `cloud`. Errors become a [`CloudError`] naming the operation and the
//! AWS error code (the SDK's own `Display` is only "service error").
//!
//! Idempotency is "describe first, then create", with `*.Duplicate` / `*.NotFound` answers
//! treated as the state already reached: emulators such as moto ignore `ClientToken`.

use super::ALL_TRAFFIC;
use super::{
    CloudError, Ec2Env, GroupState, Instance, InstanceState, KeyPairState, Observed, Rule, TAG_APP,
    TAG_ENV, TAG_NAME, TAG_ROLE, base_tags,
};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, InstanceType, IpPermission, IpRange, Ipv6Range,
    ResourceType, Tag, TagSpecification,
};

/// An EC2 client for one region.
pub struct Ec2 {
    client: Client,
    region: String,
}

/// `SdkError` → one sentence with the AWS code when AWS answered, else the cause chain
/// (no credentials, connection refused...) on one line. Not `DisplayErrorContext`: it ends
/// with a Debug dump of the whole error.
fn err<E>(op: &str, e: SdkError<E, aws_sdk_ec2::config::http::HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e.code().map(str::to_string);
    let message = match (&code, e.message()) {
        (Some(_), Some(m)) => m.to_string(),
        _ => chain(&e),
    };
    CloudError {
        op: op.to_string(),
        code,
        message,
    }
}

/// An error and its sources, `: `-separated, without repeats (wrappers often repeat their
/// source's message).
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

fn code_is<E: ProvideErrorMetadata>(e: &E, codes: &[&str]) -> bool {
    e.code().is_some_and(|c| codes.contains(&c))
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

fn tag_spec(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.build()
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(Tag::value)
}

fn is_ours(tags: &[Tag], app: &str, env: &str) -> bool {
    tag(tags, TAG_APP) == Some(app) && tag(tags, TAG_ENV) == Some(env)
}

fn instance(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let state = i
        .state()
        .and_then(|s| s.name())
        .and_then(|n| InstanceState::parse(n.as_str()))?;
    Some(Instance {
        id: i.instance_id()?.to_string(),
        name: tag(i.tags(), TAG_NAME).map(str::to_string),
        role: tag(i.tags(), TAG_ROLE).map(str::to_string),
        state,
        launch_time: i.launch_time().map_or(0, |t| t.secs()),
        public_ip: i.public_ip_address().map(str::to_string),
        private_ip: i.private_ip_address().map(str::to_string),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()),
        ami: i.image_id().map(str::to_string),
    })
}

/// The CIDR rules of a group (one [`Rule`] per port range and CIDR).
fn rules(perms: &[IpPermission]) -> std::collections::BTreeSet<Rule> {
    let mut out = std::collections::BTreeSet::new();
    for p in perms {
        let Some(proto) = p.ip_protocol() else {
            continue;
        };
        // "-1" is all traffic (no ports): never declared, so always revoked. Only TCP and UDP
        // rules have port ranges; ICMP's from/to are a type and a code (8/0 is echo), which
        // would read as the port range 8-0: every other protocol is left alone.
        let (from, to) = match proto {
            ALL_TRAFFIC => (0, u16::MAX),
            "tcp" | "udp" | "6" | "17" => {
                let ports = p.from_port().zip(p.to_port());
                match ports.map(|(f, t)| (u16::try_from(f), u16::try_from(t))) {
                    Some((Ok(f), Ok(t))) => (f, t),
                    _ => continue,
                }
            }
            _ => continue,
        };
        let cidrs = p
            .ip_ranges()
            .iter()
            .filter_map(IpRange::cidr_ip)
            .chain(p.ipv6_ranges().iter().filter_map(Ipv6Range::cidr_ipv6));
        for cidr in cidrs {
            out.insert(Rule {
                protocol: proto.to_string(),
                from,
                to,
                cidr: cidr.to_string(),
            });
        }
    }
    out
}

fn permission(r: &Rule) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(&r.protocol);
    if r.protocol != ALL_TRAFFIC {
        b = b.from_port(i32::from(r.from)).to_port(i32::from(r.to));
    }
    if r.cidr.contains(':') {
        b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(&r.cidr).build())
            .build()
    } else {
        b.ip_ranges(IpRange::builder().cidr_ip(&r.cidr).build())
            .build()
    }
}

impl Ec2 {
    /// Credentials and region from the standard chain; `ec2.region` and `ec2.endpoint_url`
    /// win where set (`AWS_ENDPOINT_URL` is honoured by the chain).
    pub async fn connect(d: &Ec2Env) -> Result<Ec2, CloudError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &d.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(url) = &d.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let conf = loader.load().await;
        let Some(region) = conf.region().map(|r| r.to_string()) else {
            return Err(CloudError {
                op: "setup".into(),
                code: None,
                message: "no AWS region: set ec2.region in provision.toml, or AWS_REGION".into(),
            });
        };
        Ok(Ec2 {
            client: Client::new(&conf),
            region,
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The VPC the group and instances live in: the subnet's, else the default VPC.
    pub async fn vpc(&self, subnet: Option<&str>) -> Result<String, CloudError> {
        if let Some(subnet) = subnet {
            let out = self
                .client
                .describe_subnets()
                .subnet_ids(subnet)
                .send()
                .await
                .map_err(|e| err("DescribeSubnets", e))?;
            return out
                .subnets()
                .first()
                .and_then(|s| s.vpc_id())
                .map(str::to_string)
                .ok_or_else(|| CloudError {
                    op: "DescribeSubnets".into(),
                    code: None,
                    message: format!("subnet {subnet} not found in {}", self.region),
                });
        }
        let out = self
            .client
            .describe_vpcs()
            .filters(filter("is-default", &["true"]))
            .send()
            .await
            .map_err(|e| err("DescribeVpcs", e))?;
        out.vpcs()
            .first()
            .and_then(|v| v.vpc_id())
            .map(str::to_string)
            .ok_or_else(|| CloudError {
                op: "DescribeVpcs".into(),
                code: None,
                message: format!(
                    "{} has no default VPC: set ec2.subnet to a subnet of the VPC to use",
                    self.region
                ),
            })
    }

    /// The key pair and group of the desired names (group in `vpc`), and the env's instances.
    pub async fn observe(&self, d: &Ec2Env, vpc: &str) -> Result<Observed, CloudError> {
        let key_pair = match self
            .client
            .describe_key_pairs()
            .key_names(d.key.name())
            .include_public_key(true)
            .send()
            .await
        {
            Ok(out) => out.key_pairs().first().map(|k| KeyPairState {
                name: d.key.name().to_string(),
                ours: is_ours(k.tags(), &d.app, &d.env),
                public_key: k.public_key().map(str::to_string),
            }),
            Err(e) if code_is(&e, &["InvalidKeyPair.NotFound"]) => None,
            Err(e) => return Err(err("DescribeKeyPairs", e)),
        };
        let out = self
            .client
            .describe_security_groups()
            .filters(filter("group-name", &[&d.security_group]))
            .filters(filter("vpc-id", &[vpc]))
            .send()
            .await
            .map_err(|e| err("DescribeSecurityGroups", e))?;
        let group = out.security_groups().first().map(|g| GroupState {
            id: g.group_id().unwrap_or_default().to_string(),
            name: g.group_name().unwrap_or_default().to_string(),
            ours: is_ours(g.tags(), &d.app, &d.env),
            rules: rules(g.ip_permissions()),
        });
        Ok(Observed {
            key_pair,
            group,
            instances: self.instances(&d.app, &d.env).await?,
        })
    }

    /// Every instance tagged for this app and env that is not terminated.
    pub async fn instances(&self, app: &str, env: &str) -> Result<Vec<Instance>, CloudError> {
        let mut pages = self
            .client
            .describe_instances()
            .filters(filter(&format!("tag:{TAG_APP}"), &[app]))
            .filters(filter(&format!("tag:{TAG_ENV}"), &[env]))
            .filters(filter(
                "instance-state-name",
                &["pending", "running", "stopping", "stopped", "shutting-down"],
            ))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| err("DescribeInstances", e))?;
            for r in page.reservations() {
                found.extend(r.instances().iter().filter_map(instance));
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// These instances, now.
    pub async fn describe(&self, ids: &[String]) -> Result<Vec<Instance>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| err("DescribeInstances", e))?;
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(instance)
            .collect())
    }

    pub async fn import_key_pair(&self, d: &Ec2Env, public_key: &str) -> Result<(), CloudError> {
        let name = d.key.name();
        let tags = base_tags(&d.app, &d.env, name);
        match self
            .client
            .import_key_pair()
            .key_name(name)
            .public_key_material(aws_sdk_ec2::primitives::Blob::new(public_key.trim()))
            .tag_specifications(tag_spec(ResourceType::KeyPair, &tags))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_is(&e, &["InvalidKeyPair.Duplicate"]) => Ok(()),
            Err(e) => Err(err("ImportKeyPair", e)),
        }
    }

    /// Create the group in `vpc`, tagged; an existing one of the name is looked up instead.
    pub async fn create_group(&self, d: &Ec2Env, vpc: &str) -> Result<String, CloudError> {
        let tags = base_tags(&d.app, &d.env, &d.security_group);
        let created = self
            .client
            .create_security_group()
            .group_name(&d.security_group)
            .description(format!("provision: {} {}", d.app, d.env))
            .vpc_id(vpc)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, &tags))
            .send()
            .await;
        match created {
            Ok(out) => Ok(out.group_id().unwrap_or_default().to_string()),
            Err(e) if code_is(&e, &["InvalidGroup.Duplicate"]) => {
                let seen = self.observe(d, vpc).await?;
                seen.group
                    .map(|g| g.id)
                    .ok_or_else(|| err("CreateSecurityGroup", e))
            }
            Err(e) => Err(err("CreateSecurityGroup", e)),
        }
    }

    /// One call per rule, so a rule that exists already (`InvalidPermission.Duplicate`) does
    /// not hide the others.
    pub async fn authorize(&self, group: &str, rules: &[Rule]) -> Result<(), CloudError> {
        for r in rules {
            match self
                .client
                .authorize_security_group_ingress()
                .group_id(group)
                .ip_permissions(permission(r))
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if code_is(&e, &["InvalidPermission.Duplicate"]) => {}
                Err(e) => return Err(err("AuthorizeSecurityGroupIngress", e)),
            }
        }
        Ok(())
    }

    pub async fn revoke(&self, group: &str, rules: &[Rule]) -> Result<(), CloudError> {
        for r in rules {
            match self
                .client
                .revoke_security_group_ingress()
                .group_id(group)
                .ip_permissions(permission(r))
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if code_is(&e, &["InvalidPermission.NotFound"]) => {}
                Err(e) => return Err(err("RevokeSecurityGroupIngress", e)),
            }
        }
        Ok(())
    }

    /// The root device name of an AMI (to size its volume).
    pub async fn root_device(&self, ami: &str) -> Result<String, CloudError> {
        let out = self
            .client
            .describe_images()
            .image_ids(ami)
            .send()
            .await
            .map_err(|e| err("DescribeImages", e))?;
        out.images()
            .first()
            .and_then(|i| i.root_device_name())
            .map(str::to_string)
            .ok_or_else(|| CloudError {
                op: "DescribeImages".into(),
                code: Some("InvalidAMIID.NotFound".into()),
                message: format!("AMI {ami} not found in {}", self.region),
            })
    }

    /// Launch one instance named `name`, tagged (instance and volumes) for the app, env and
    /// role. `user_data` is already base64.
    pub async fn launch(&self, l: &LaunchSpec<'_>) -> Result<String, CloudError> {
        let d = l.desired;
        let spec = &d.roles[l.role];
        let mut tags = base_tags(&d.app, &d.env, l.name);
        tags.push((TAG_ROLE.into(), l.role.to_string()));
        tags.extend(spec.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut req = self
            .client
            .run_instances()
            .image_id(&spec.ami)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .key_name(d.key.name())
            .security_group_ids(l.group_id)
            .set_subnet_id(d.subnet.clone())
            .set_user_data(l.user_data.map(str::to_string))
            .tag_specifications(tag_spec(ResourceType::Instance, &tags))
            .tag_specifications(tag_spec(ResourceType::Volume, &tags));
        if let (Some(gb), Some(device)) = (spec.root_volume_gb, l.root_device) {
            req = req.block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(i32::try_from(gb).unwrap_or(i32::MAX))
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            );
        }
        let out = req.send().await.map_err(|e| err("RunInstances", e))?;
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_string)
            .ok_or_else(|| CloudError {
                op: "RunInstances".into(),
                code: None,
                message: "the answer names no instance".into(),
            })
    }

    pub async fn start(&self, ids: &[String]) -> Result<(), CloudError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| err("StartInstances", e))?;
        Ok(())
    }

    pub async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| err("TerminateInstances", e))?;
        Ok(())
    }

    /// Groups tagged for this app and env: `(id, name)`.
    pub async fn our_groups(
        &self,
        app: &str,
        env: &str,
    ) -> Result<Vec<(String, String)>, CloudError> {
        let out = self
            .client
            .describe_security_groups()
            .filters(filter(&format!("tag:{TAG_APP}"), &[app]))
            .filters(filter(&format!("tag:{TAG_ENV}"), &[env]))
            .send()
            .await
            .map_err(|e| err("DescribeSecurityGroups", e))?;
        Ok(out
            .security_groups()
            .iter()
            .filter(|g| is_ours(g.tags(), app, env))
            .filter_map(|g| Some((g.group_id()?.to_string(), g.group_name()?.to_string())))
            .collect())
    }

    /// Key pairs tagged for this app and env.
    pub async fn our_key_pairs(&self, app: &str, env: &str) -> Result<Vec<String>, CloudError> {
        let out = self
            .client
            .describe_key_pairs()
            .filters(filter(&format!("tag:{TAG_APP}"), &[app]))
            .filters(filter(&format!("tag:{TAG_ENV}"), &[env]))
            .send()
            .await
            .map_err(|e| err("DescribeKeyPairs", e))?;
        Ok(out
            .key_pairs()
            .iter()
            .filter(|k| is_ours(k.tags(), app, env))
            .filter_map(|k| k.key_name().map(str::to_string))
            .collect())
    }

    /// Delete a group; `Ok(false)` while something still uses it (`DependencyViolation`,
    /// e.g. network interfaces of instances that are still going away).
    pub async fn delete_group(&self, id: &str) -> Result<bool, CloudError> {
        match self
            .client
            .delete_security_group()
            .group_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if code_is(&e, &["InvalidGroup.NotFound"]) => Ok(true),
            Err(e) if code_is(&e, &["DependencyViolation"]) => Ok(false),
            Err(e) => Err(err("DeleteSecurityGroup", e)),
        }
    }

    pub async fn delete_key_pair(&self, name: &str) -> Result<(), CloudError> {
        match self.client.delete_key_pair().key_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if code_is(&e, &["InvalidKeyPair.NotFound"]) => Ok(()),
            Err(e) => Err(err("DeleteKeyPair", e)),
        }
    }
}

/// What [`Ec2::launch`] needs besides the desired state.
pub struct LaunchSpec<'a> {
    pub desired: &'a Ec2Env,
    pub role: &'a str,
    pub name: &'a str,
    pub group_id: &'a str,
    pub user_data: Option<&'a str>,
    pub root_device: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(proto: &str, from: i32, to: i32) -> IpPermission {
        IpPermission::builder()
            .ip_protocol(proto)
            .from_port(from)
            .to_port(to)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build()
    }

    /// ICMP rules someone added by hand (echo is type 8, code 0) are not ours to revoke:
    /// they never become port rules (issue 12, #21).
    #[test]
    fn icmp_rules_are_left_alone() {
        let found = rules(&[perm("icmp", 8, 0), perm("icmp", -1, -1), perm("58", 128, 0)]);
        assert!(found.is_empty(), "{found:?}");
        let found = rules(&[perm("tcp", 22, 22), perm("udp", 53, 53), perm("icmp", 8, 0)]);
        let protos: Vec<&str> = found.iter().map(|r| r.protocol.as_str()).collect();
        assert_eq!(protos, ["tcp", "udp"]);
    }
}
