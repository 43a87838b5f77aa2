//! EC2 provisioning against a real EC2 API emulator: each test starts its own `moto_server`
//! on a free 127.0.0.1 port (installed by `scripts/deps.sh` into a venv; a missing one fails
//! the test, it is never skipped) and runs the real binary on a project whose env has an
//! `ec2` table.
//!
//! moto hands out fake public IPs. Nothing may connect to them: every instance address is
//! mapped to a real local sshd by an ssh_config file (`Host *` / `HostName 127.0.0.1` /
//! `Port <sshd>`), which provision honours for every connection it makes, the wait for SSH
//! included. The account is inspected independently with boto3 from the same venv.

#![cfg(feature = "ec2")]

#[path = "support/moto.rs"]
mod moto_support;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use moto_support::Moto;
use serde_json::Value;
use support::*;

const AMI: &str = "ami-03cf127a";
const APP: &str = "shop";

// ---------------------------------------------------------------------------------------------
// moto_server
// ---------------------------------------------------------------------------------------------

impl Moto {
    /// Run `PY_HELPER` with `args` and parse its JSON answer.
    fn py(&self, args: &[&str]) -> Value {
        let out = self.python(PY_HELPER, args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("python helper {args:?} printed no JSON ({e}): {out}"))
    }

    fn account(&self) -> Account {
        Account(self.py(&["state"]))
    }

    fn private_ip(&self, id: &str) -> String {
        let ip = self.py(&["private", id]);
        ip.as_str()
            .unwrap_or_else(|| panic!("{id} has no private IP: {ip}"))
            .to_string()
    }

    fn public_ip(&self, id: &str) -> String {
        let ip = self.py(&["ip", id]);
        ip.as_str()
            .unwrap_or_else(|| panic!("{id} has no public IP: {ip}"))
            .to_string()
    }
}

/// boto3 against the emulator: `state` dumps the account; `run` launches an instance with
/// the given `key=value` tags (none: untagged); `group NAME` creates an untagged group; `ip ID`
/// an instance's public IP, `private ID` its private one; `userdata ID` its UserData attribute,
/// decoded; `v6 NAME` a group's rules from its Ipv6Ranges only; `stop ID` stops it; `icmp
/// NAME` allows ping (ICMP echo, type 8 code 0) into a group, as an operator would by hand.
const PY_HELPER: &str = r#"
cmd = sys.argv[1]
if cmd == "state":
    tags = lambda x: {t["Key"]: t["Value"] for t in x.get("Tags", [])}
    inst = [dict(id=i["InstanceId"], state=i["State"]["Name"], tags=tags(i),
                 type=i["InstanceType"], launch=i["LaunchTime"].isoformat(),
                 root=[b["DeviceName"] for b in i.get("BlockDeviceMappings", [])])
            for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    groups = [dict(id=g["GroupId"], name=g["GroupName"], tags=tags(g),
                   rules=sorted("%s %s-%s %s" % (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), c)
                                for p in g["IpPermissions"]
                                for c in [x["CidrIp"] for x in p.get("IpRanges", [])] + [x["CidrIpv6"] for x in p.get("Ipv6Ranges", [])]))
              for g in ec2.describe_security_groups()["SecurityGroups"]]
    keys = [dict(name=k["KeyName"], tags=tags(k)) for k in ec2.describe_key_pairs()["KeyPairs"]]
    print(json.dumps(dict(instances=inst, groups=groups, keys=keys)))
elif cmd == "run":
    kv = [a.split("=", 1) for a in sys.argv[2:]]
    extra = {}
    if kv:
        extra["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in kv]}]
    r = ec2.run_instances(ImageId="ami-03cf127a", MinCount=1, MaxCount=1, InstanceType="t3.micro", **extra)
    print(json.dumps(r["Instances"][0]["InstanceId"]))
elif cmd == "allow-all":
    g = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [sys.argv[2]]}])["SecurityGroups"][0]
    ec2.authorize_security_group_ingress(GroupId=g["GroupId"], IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    print(json.dumps(g["GroupId"]))
elif cmd == "icmp":
    g = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [sys.argv[2]]}])["SecurityGroups"][0]
    ec2.authorize_security_group_ingress(GroupId=g["GroupId"], IpPermissions=[{"IpProtocol": "icmp", "FromPort": 8, "ToPort": 0, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    print(json.dumps(g["GroupId"]))
elif cmd == "ip":
    i = ec2.describe_instances(InstanceIds=[sys.argv[2]])["Reservations"][0]["Instances"][0]
    print(json.dumps(i.get("PublicIpAddress")))
elif cmd == "private":
    i = ec2.describe_instances(InstanceIds=[sys.argv[2]])["Reservations"][0]["Instances"][0]
    print(json.dumps(i.get("PrivateIpAddress")))
elif cmd == "userdata":
    import base64
    a = ec2.describe_instance_attribute(InstanceId=sys.argv[2], Attribute="userData")
    v = a.get("UserData", {}).get("Value")
    print(json.dumps(v and base64.b64decode(v).decode()))
elif cmd == "v6":
    g = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [sys.argv[2]]}])["SecurityGroups"][0]
    print(json.dumps(sorted("%s %s-%s %s" % (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), x["CidrIpv6"])
                            for p in g["IpPermissions"] for x in p.get("Ipv6Ranges", []))))
elif cmd == "stop":
    ec2.stop_instances(InstanceIds=[sys.argv[2]])
    print(json.dumps(sys.argv[2]))
elif cmd == "group":
    r = ec2.create_security_group(GroupName=sys.argv[2], Description="not provision's")
    print(json.dumps(r["GroupId"]))
"#;

/// What boto3 sees in the emulated account.
struct Account(Value);

impl Account {
    fn instances(&self) -> Vec<&Value> {
        self.0["instances"].as_array().unwrap().iter().collect()
    }

    /// Instances of this app (tag provision:app) that are not terminated: Name → id.
    fn ours(&self) -> BTreeMap<String, String> {
        self.instances()
            .into_iter()
            .filter(|i| i["tags"]["provision:app"] == APP && i["state"] != "terminated")
            .map(|i| {
                (
                    i["tags"]["Name"].as_str().unwrap_or("").to_string(),
                    i["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn state_of(&self, id: &str) -> String {
        self.instances()
            .into_iter()
            .find(|i| i["id"] == id)
            .map(|i| i["state"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no instance {id}: {}", self.0))
    }

    fn instance(&self, id: &str) -> &Value {
        self.instances()
            .into_iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("no instance {id}: {}", self.0))
    }

    fn group(&self, name: &str) -> Option<&Value> {
        self.0["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
    }

    fn rules(&self, name: &str) -> Vec<String> {
        let g = self
            .group(name)
            .unwrap_or_else(|| panic!("no group {name}: {}", self.0));
        g["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    }

    fn keys(&self) -> Vec<String> {
        self.0["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_string())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Projects
// ---------------------------------------------------------------------------------------------

/// A project, its client key, the sshd every instance address is mapped to, and a moto.
struct Ec2Test {
    p: Project,
    key: ClientKey,
    sshd: Sshd,
    moto: Moto,
}

const GROUP: &str = "provision-shop-test";
const KEY_PAIR: &str = "provision-shop-test";

/// A playbook step that never changes anything (its guard always holds).
const NOOP_PLAYBOOK: &str =
    "[[step]]\nname = \"noop\"\ncommand = { run = \"true\", unless = \"true\" }\n";

impl Ec2Test {
    fn new() -> Ec2Test {
        let p = Project::new();
        let key = ClientKey::generate(&p.path("keys"));
        let sshd = Sshd::start(&key);
        let moto = Moto::start();
        // Every host name (the fake EC2 addresses) → the local sshd.
        p.write(
            "ssh_config",
            &format!("Host *\n  HostName 127.0.0.1\n  Port {}\n", sshd.port),
        );
        p.write("playbooks/deploy.toml", NOOP_PLAYBOOK);
        Ec2Test { p, key, sshd, moto }
    }

    /// provision.toml with `[env.test.ec2]` plus `ec2` lines. The endpoint comes from
    /// AWS_ENDPOINT_URL (see [`Ec2Test::run`]) unless `ec2` sets endpoint_url.
    fn config(&self, ec2: &str) {
        self.p.write(
            "provision.toml",
            &format!(
                "app = \"{APP}\"\n\n[ssh]\nidentity_file = {key:?}\nconfig = {cfg:?}\nconnect_timeout = \"5s\"\n\n[env.test.ec2]\nregion = \"us-east-1\"\nami = \"{AMI}\"\ninstance_type = \"t3.micro\"\nssh_user = \"root\"\nssh_timeout = \"60s\"\n{ec2}\n",
                key = self.key.private.display().to_string(),
                cfg = self.p.path("ssh_config").display().to_string(),
            ),
        );
    }

    /// The binary on the project, with test credentials and the emulator's endpoint; no
    /// instance metadata service, no profile files.
    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// [`Ec2Test::run`] with environment changes: `(name, None)` removes a variable.
    fn run_with(&self, args: &[&str], env: &[(&str, Option<&str>)]) -> Run {
        let started = Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provision"));
        cmd.arg("-C")
            .arg(self.p.dir.path())
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("AWS_PROFILE")
            .env("HOME", &self.p.home)
            .env("NO_COLOR", "1")
            .env("CI", "1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", self.moto.url())
            .stdin(Stdio::null());
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.output().expect("run the provision binary");
        let run = Run {
            code: out.status.code().expect("provision killed by a signal"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        eprintln!(
            "$ provision {} → exit {} in {:?}\n{}",
            args.join(" "),
            run.code,
            run.elapsed,
            run.dump()
        );
        run
    }

    /// ssh_config mapping each of `known` (an EC2 address → a local name for the sshd) and
    /// every other address to `other`, all on the sshd's port: one server, whose address
    /// (the name provision pins it under) follows the one EC2 reports.
    fn map_addresses(&self, known: &[(&str, &str)], other: &str) {
        let port = self.sshd.port;
        let mut text = String::new();
        for (ip, local) in known {
            text.push_str(&format!("Host {ip}\n  HostName {local}\n  Port {port}\n"));
        }
        text.push_str(&format!("Host *\n  HostName {other}\n  Port {port}\n"));
        self.p.write("ssh_config", &text);
    }

    fn known_hosts(&self) -> String {
        std::fs::read_to_string(self.p.path(".provision/known_hosts")).unwrap_or_default()
    }
}

fn names(map: &BTreeMap<String, String>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn up_on_an_empty_account_creates_group_key_and_instances_then_nothing() {
    let t = Ec2Test::new();
    t.config("count = 2\ningress = [{ ports = [22], cidrs = [\"0.0.0.0/0\"] }]");
    let up = t.run(&["up", "test"]);
    up.expect_code(0);
    assert!(
        up.stdout.contains("ec2 us-east-1 (shop/test): 4 to create"),
        "{}",
        up.dump()
    );
    let acc = t.moto.account();
    let ours = acc.ours();
    assert_eq!(names(&ours), ["shop-test-1", "shop-test-2"], "{}", acc.0);
    for id in ours.values() {
        let i = acc.instance(id);
        assert_eq!(i["state"], "running");
        assert_eq!(i["tags"]["provision:env"], "test");
        assert_eq!(i["tags"]["provision:role"], "all");
        assert_eq!(i["type"], "t3.micro");
    }
    assert_eq!(acc.rules(GROUP), ["tcp 22-22 0.0.0.0/0"]);
    assert_eq!(acc.group(GROUP).unwrap()["tags"]["provision:app"], APP);
    assert_eq!(acc.keys(), [KEY_PAIR]);
    // The wait for SSH went to the mapped sshd and pinned its key (accept-new for new hosts).
    assert!(
        up.stderr.contains("shop-test-1 answers SSH"),
        "{}",
        up.dump()
    );
    assert!(
        t.known_hosts().contains(&t.sshd.known_hosts_line()),
        "known_hosts: {}",
        t.known_hosts()
    );
    assert!(
        up.stdout.contains("shop-test-1") && up.stdout.contains("shop-test-2"),
        "the playbook ran on both: {}",
        up.dump()
    );

    let again = t.run(&["up", "test"]);
    again.expect_code(0);
    assert!(
        again
            .stdout
            .contains("ec2 us-east-1 (shop/test): nothing to change"),
        "{}",
        again.dump()
    );
    assert!(!again.stderr.contains("launched"), "{}", again.dump());
    assert_eq!(
        t.moto.account().ours(),
        ours,
        "the second up created nothing"
    );

    let hosts = t.run(&["hosts", "test"]);
    hosts.expect_code(0);
    for (name, id) in &ours {
        let line = hosts
            .stdout
            .lines()
            .find(|l| l.starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("{name} not listed: {}", hosts.dump()));
        assert!(
            line.contains(id) && line.contains("running") && line.contains("all"),
            "{line}"
        );
        assert!(
            line.contains(&format!("root@127.0.0.1:{}", t.sshd.port)),
            "{line}"
        );
    }
    let json = t.run(&["hosts", "test", "--output", "json"]);
    json.expect_code(0);
    let rows: Vec<Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r["state"] == "running" && r["id"].as_str().unwrap().starts_with("i-"))
    );
}

#[test]
fn plan_lists_the_creations_without_making_them() {
    let t = Ec2Test::new();
    t.config("count = 1");
    let plan = t.run(&["plan", "test"]);
    plan.expect_code(0);
    for want in [
        "+ key pair provision-shop-test (import",
        "+ security group provision-shop-test",
        "+ ingress tcp 22 from 0.0.0.0/0",
        "+ instance shop-test-1 (role all, t3.micro, ami-03cf127a)",
        "the playbook would run on 1 host(s) not running yet: shop-test-1",
    ] {
        assert!(
            plan.stdout.contains(want),
            "missing `{want}`\n{}",
            plan.dump()
        );
    }
    let acc = t.moto.account();
    assert!(acc.ours().is_empty(), "plan created an instance: {}", acc.0);
    assert!(acc.group(GROUP).is_none(), "plan created the group");
    assert!(acc.keys().is_empty(), "plan imported the key");
    t.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(2);

    // With JSON events on stdout, the EC2 lines go to stderr.
    let json = t.run(&["plan", "test", "--output", "json"]);
    json.expect_code(0);
    assert!(
        json.stderr.contains("+ instance shop-test-1"),
        "{}",
        json.dump()
    );
    json.events();

    t.run(&["up", "test"]).expect_code(0);
    let after = t.run(&["plan", "test", "--detailed-exitcode"]);
    after.expect_code(0);
    assert!(
        after.stdout.contains("nothing to change"),
        "{}",
        after.dump()
    );

    // Another public key under the same key pair name: said, not silently ignored.
    let other = ClientKey::generate(&t.p.path("keys2"));
    t.config(&format!(
        "count = 1\npublic_key = \"{}.pub\"",
        other.private.display()
    ));
    let noted = t.run(&["plan", "test"]);
    noted.expect_code(0);
    assert!(
        noted
            .stdout
            .contains("! key pair provision-shop-test holds another public key"),
        "{}",
        noted.dump()
    );
}

#[test]
fn count_and_ingress_changes_are_applied_and_scaling_down_needs_yes() {
    let t = Ec2Test::new();
    t.config("count = 1");
    t.run(&["up", "test"]).expect_code(0);
    let first = t.moto.account().ours();
    assert_eq!(names(&first), ["shop-test-1"]);

    // count 1 → 2 and one more ingress rule.
    t.config("count = 2\ningress = [{ ports = [22, 80], cidrs = [\"0.0.0.0/0\"] }]");
    let plan = t.run(&["plan", "test"]);
    plan.expect_code(0);
    assert!(
        plan.stdout.contains("+ instance shop-test-2"),
        "{}",
        plan.dump()
    );
    assert!(
        plan.stdout.contains("+ ingress tcp 80 from 0.0.0.0/0"),
        "{}",
        plan.dump()
    );
    assert!(
        !plan.stdout.contains("+ instance shop-test-1"),
        "{}",
        plan.dump()
    );
    let up = t.run(&["up", "test"]);
    up.expect_code(0);
    assert!(
        up.stdout.contains("1 to create, 1 rule(s) to change"),
        "{}",
        up.dump()
    );
    let acc = t.moto.account();
    let two = acc.ours();
    assert_eq!(names(&two), ["shop-test-1", "shop-test-2"]);
    assert_eq!(
        two["shop-test-1"], first["shop-test-1"],
        "the first instance was kept"
    );
    assert_eq!(
        acc.rules(GROUP),
        ["tcp 22-22 0.0.0.0/0", "tcp 80-80 0.0.0.0/0"]
    );

    // A changed rule: port 80 now only from one network, 22 from anywhere still.
    t.config(
        "count = 2\ningress = [{ ports = [22] }, { ports = [80], cidrs = [\"203.0.113.0/24\"] }]",
    );
    let up = t.run(&["up", "test"]);
    up.expect_code(0);
    assert!(
        up.stdout.contains("+ ingress tcp 80 from 203.0.113.0/24"),
        "{}",
        up.dump()
    );
    assert!(
        up.stdout.contains("- ingress tcp 80 from 0.0.0.0/0"),
        "{}",
        up.dump()
    );
    assert_eq!(
        t.moto.account().rules(GROUP),
        ["tcp 22-22 0.0.0.0/0", "tcp 80-80 203.0.113.0/24"]
    );
    // A rule added by hand (all traffic) is not declared: the next up revokes it.
    t.moto.py(&["allow-all", GROUP]);
    let up = t.run(&["up", "test"]);
    up.expect_code(0);
    assert!(
        up.stdout.contains("- ingress all traffic from 0.0.0.0/0"),
        "{}",
        up.dump()
    );
    assert_eq!(
        t.moto.account().rules(GROUP),
        ["tcp 22-22 0.0.0.0/0", "tcp 80-80 203.0.113.0/24"]
    );

    // count 2 → 1: without a terminal, only with --yes; the newest goes.
    t.config(
        "count = 1\ningress = [{ ports = [22] }, { ports = [80], cidrs = [\"203.0.113.0/24\"] }]",
    );
    let refused = t.run(&["up", "test"]);
    refused.expect_code(1);
    assert!(refused.stderr.contains("--yes"), "{}", refused.dump());
    assert!(refused.stderr.contains("shop-test-2"), "{}", refused.dump());
    assert_eq!(t.moto.account().ours(), two, "nothing was terminated");
    let down = t.run(&["up", "test", "--yes"]);
    down.expect_code(0);
    let acc = t.moto.account();
    assert_eq!(names(&acc.ours()), ["shop-test-1"]);
    assert_eq!(acc.state_of(&two["shop-test-2"]), "terminated");
    assert_eq!(acc.ours()["shop-test-1"], first["shop-test-1"]);
    // Here every instance is reached at the one local sshd: each has its own line for that
    // address. The terminated one's goes; the kept one's stays.
    let pins = t.known_hosts();
    let kept = format!("provision:instance={}", first["shop-test-1"]);
    assert_eq!(pins.lines().count(), 1, "{pins}");
    assert!(pins.contains(&kept), "{pins}");
    assert!(
        down.stderr.contains("ec2: forgot 1 pinned"),
        "{}",
        down.dump()
    );
}

#[test]
fn down_removes_what_it_created_and_nothing_else() {
    let t = Ec2Test::new();
    // Not provision's: an untagged instance, another app's instance in an env of the same
    // name, a group of another name.
    let untagged = t.moto.py(&["run"]);
    let other_app = t.moto.py(&[
        "run",
        "provision:app=other",
        "provision:env=test",
        "provision:role=all",
        "Name=other-test-1",
    ]);
    let foreign_group = t.moto.py(&["group", "hand-made"]);
    let untagged = untagged.as_str().unwrap();
    let other_app = other_app.as_str().unwrap();

    t.config("count = 2\nroot_volume_gb = 12\nuser_data = \"#!/bin/sh\\necho hi\\n\"\ntags = { team = \"web\" }");
    t.run(&["up", "test"]).expect_code(0);
    let acc = t.moto.account();
    let ours = acc.ours();
    assert_eq!(ours.len(), 2, "{}", acc.0);
    let one = acc.instance(&ours["shop-test-1"]);
    assert_eq!(one["tags"]["team"], "web");
    assert_eq!(acc.state_of(untagged), "running");

    let refused = t.run(&["down", "test"]);
    refused.expect_code(1);
    assert!(refused.stderr.contains("--yes"), "{}", refused.dump());
    assert_eq!(
        t.moto.account().ours(),
        ours,
        "nothing removed without --yes"
    );

    // One pin per instance (both reached at the one local sshd).
    assert_eq!(t.known_hosts().lines().count(), 2, "{}", t.known_hosts());
    let down = t.run(&["down", "test", "--yes"]);
    down.expect_code(0);
    assert!(
        down.stdout
            .contains("removed 2 instance(s), 1 security group(s), 1 key pair(s)"),
        "{}",
        down.dump()
    );
    // The host keys pinned for the instances go with them: a later machine given their
    // address is not refused as a "changed key".
    assert!(
        down.stderr
            .contains("ec2: forgot 2 pinned host key(s) of terminated instances"),
        "{}",
        down.dump()
    );
    assert_eq!(t.known_hosts(), "", "pins left after down");
    let acc = t.moto.account();
    for id in ours.values() {
        assert_eq!(acc.state_of(id), "terminated");
    }
    assert!(acc.group(GROUP).is_none(), "the group is gone: {}", acc.0);
    assert!(acc.keys().is_empty(), "the key pair is gone: {}", acc.0);
    assert_eq!(
        acc.state_of(untagged),
        "running",
        "untagged instance untouched"
    );
    assert_eq!(
        acc.state_of(other_app),
        "running",
        "other app's instance untouched"
    );
    assert!(
        acc.0["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == foreign_group),
        "the hand-made group survives"
    );

    let again = t.run(&["down", "test", "--yes"]);
    again.expect_code(0);
    assert!(
        again.stdout.contains("nothing to remove"),
        "{}",
        again.dump()
    );
}

/// The whole path: no instance → created on EC2 → waited for (its address mapped to a real
/// sshd) → its key pinned → the playbook applied; a second `up` changes nothing.
#[test]
fn full_path_from_no_instance_to_the_playbook_applied() {
    let t = Ec2Test::new();
    let dir = t.p.remote_path("site");
    t.p.write("files/index.html", "<h1>shop</h1>\n");
    t.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"site dir\"\ndirectory = {{ path = \"{dir}\", mode = \"0755\" }}\n\n[[step]]\nname = \"index\"\nfile = {{ src = \"files/index.html\", dest = \"{dir}/index.html\" }}\n"
        ),
    );
    // This time the endpoint is in the config (AWS_ENDPOINT_URL is overridden by it).
    t.config(&format!(
        "count = 1\nendpoint_url = \"{}\"\n[env.test.ec2.roles.web]\ncount = 1",
        t.moto.url()
    ));
    assert!(t.moto.account().ours().is_empty());

    let up = t.run(&["up", "test", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(up.changed(), 2, "{}", up.dump());
    assert_eq!(
        up.host_steps_with("changed"),
        [
            ("shop-test-web-1".to_string(), "site dir".to_string()),
            ("shop-test-web-1".to_string(), "index".to_string())
        ]
        .into()
    );
    assert!(
        up.stderr.contains("launched shop-test-web-1"),
        "{}",
        up.dump()
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&dir).join("index.html")).unwrap(),
        "<h1>shop</h1>\n"
    );
    assert_eq!(
        t.known_hosts().lines().count(),
        1,
        "one pin: {}",
        t.known_hosts()
    );
    let acc = t.moto.account();
    assert_eq!(names(&acc.ours()), ["shop-test-web-1"]);

    let again = t.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    assert_eq!(again.ok(), 2);
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.dump()
    );
    assert_eq!(t.moto.account().ours(), acc.ours());

    // The operator commands find the instance through the EC2 API too (nothing is created).
    let exec = t.run(&["exec", "test", "--", &format!("cat {dir}/index.html")]);
    exec.expect_code(0);
    assert!(
        exec.stdout.contains("[shop-test-web-1] <h1>shop</h1>"),
        "{}",
        exec.dump()
    );
    let releases = t.run(&["releases", "test"]);
    releases.expect_code(0);
    assert!(
        releases.stdout.contains("[shop-test-web-1] 1 release(s)"),
        "{}",
        releases.dump()
    );
    let status = t.run(&["status", "test"]);
    status.expect_code(0);
    assert!(
        status
            .stdout
            .contains("[shop-test-web-1] lock:        free"),
        "{}",
        status.dump()
    );
    let ssh = t.run(&["ssh", "test", "shop-test-web-1", "--", "echo", "via-ssh"]);
    ssh.expect_code(0);
    assert!(ssh.stdout.contains("via-ssh"), "{}", ssh.dump());
    assert_eq!(t.moto.account().ours(), acc.ours());
}

#[test]
fn aws_errors_are_one_sentence_with_the_code() {
    let t = Ec2Test::new();
    t.config("subnet = \"subnet-nope\"");
    let up = t.run(&["up", "test"]);
    up.expect_code(3);
    assert!(
        up.stderr
            .contains("EC2 DescribeSubnets failed: InvalidSubnetID.NotFound"),
        "{}",
        up.dump()
    );
    assert!(!up.stderr.contains("service error"), "{}", up.dump());
    assert_eq!(up.stderr.trim().lines().count(), 1, "{}", up.dump());

    // Nothing answers on the endpoint: the cause, one line, no debug dump.
    t.config("");
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let up = t.run_with(&["up", "test"], &[("AWS_ENDPOINT_URL", Some(&closed))]);
    up.expect_code(3);
    let err = up.stderr.trim();
    assert!(
        err.starts_with("error: EC2 DescribeVpcs failed: "),
        "{}",
        up.dump()
    );
    assert!(
        err.contains("cannot reach the EC2 endpoint"),
        "{}",
        up.dump()
    );
    assert_eq!(err.lines().count(), 1, "{}", up.dump());
    assert!(
        !err.contains("DispatchFailure("),
        "no Debug dump: {}",
        up.dump()
    );
    // The operator commands read the instances the same way, and fail the same way.
    let exec = t.run_with(
        &["exec", "test", "--", "true"],
        &[("AWS_ENDPOINT_URL", Some(&closed))],
    );
    exec.expect_code(3);
    assert!(
        exec.stderr
            .trim()
            .starts_with("error: EC2 DescribeInstances failed: ")
            && exec.stderr.contains("cannot reach the EC2 endpoint"),
        "{}",
        exec.dump()
    );

    // No credentials anywhere (no env, no profile, no instance metadata).
    let up = t.run_with(
        &["up", "test"],
        &[("AWS_ACCESS_KEY_ID", None), ("AWS_SECRET_ACCESS_KEY", None)],
    );
    up.expect_code(3);
    assert!(up.stderr.contains("credentials"), "{}", up.dump());
    assert_eq!(up.stderr.trim().lines().count(), 1, "{}", up.dump());

    // An existing key pair that is not there is refused before anything is created.
    t.config("key_pair = \"nobody\"");
    let up = t.run(&["up", "test"]);
    up.expect_code(1);
    assert!(
        up.stderr.contains("key pair `nobody` does not exist"),
        "{}",
        up.dump()
    );
    assert!(t.moto.account().group(GROUP).is_none());
}

/// Everything that can be checked without a host is checked before EC2 is asked to create
/// anything: a template typo in the playbook of an env with no instance yet stops `up` with
/// the template's file:line, and the account stays empty.
#[test]
fn a_template_typo_stops_up_before_any_instance_is_created() {
    let t = Ec2Test::new();
    let dir = t.p.remote_path("site");
    t.p.write(
        "templates/app.conf.j2",
        "app = {{ app }}\nname = {{ nmae }}\n",
    );
    t.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"conf\"\ntemplate = {{ src = \"templates/app.conf.j2\", dest = \"{dir}/app.conf\" }}\n"
        ),
    );
    t.config("count = 1\n[env.test.ec2.roles.web]\ncount = 1");
    let up = t.run(&["up", "test"]);
    up.expect_code(1);
    assert!(
        up.stderr.contains("templates/app.conf.j2:2") && up.stderr.contains("nmae"),
        "{}",
        up.dump()
    );
    assert!(!up.stderr.contains("launched"), "{}", up.dump());
    let acc = t.moto.account();
    assert!(
        acc.instances().is_empty(),
        "an instance was created: {}",
        acc.0
    );
    assert!(
        acc.group(GROUP).is_none(),
        "the group was created: {}",
        acc.0
    );
    assert!(acc.keys().is_empty(), "the key was imported: {}", acc.0);
}

/// Pins follow the instance, not its address. Stopped and started, an instance comes back with
/// another public IP (moto, like EC2, hands out a new one on start); the ssh_config maps that
/// one to another name of the same sshd. Under strict checking (the default) its key is still
/// known, by its instance id, and the pin moves to the new address. A changed key behind yet
/// another address is refused, naming the instance.
#[test]
fn a_stopped_and_started_instance_keeps_its_pin_at_its_new_address() {
    let mut t = Ec2Test::new();
    t.config("count = 1");
    t.run(&["up", "test"]).expect_code(0);
    let id = t.moto.account().ours()["shop-test-1"].clone();
    let first_ip = t.moto.public_ip(&id);
    let port = t.sshd.port;
    let mark = format!("provision:instance={id}");
    assert_eq!(
        t.known_hosts(),
        format!("{} {mark}\n", t.sshd.known_hosts_line()),
        "the launch pinned the key for the instance"
    );

    // The first address stays 127.0.0.1; any other one is reached as `localhost`.
    t.map_addresses(&[(&first_ip, "127.0.0.1")], "localhost");
    t.moto.py(&["stop", &id]);
    let up = t.run(&["up", "test"]);
    up.expect_code(0);
    assert!(
        up.stdout.contains("(shop/test): 1 to start"),
        "{}",
        up.dump()
    );
    let second_ip = t.moto.public_ip(&id);
    assert_ne!(second_ip, first_ip, "a new address on start");
    assert!(
        up.stdout.contains("shop-test-1") && up.stderr.contains("shop-test-1 answers SSH"),
        "{}",
        up.dump()
    );
    assert_eq!(
        t.known_hosts(),
        format!("[localhost]:{port} {} {mark}\n", t.sshd.host_pub_key),
        "the pin moved to the new address, the old address's went"
    );

    // Stopped again, back at 127.0.0.1 (whose pin is gone), and the server's key changed.
    t.map_addresses(&[(&second_ip, "localhost")], "127.0.0.1");
    t.moto.py(&["stop", &id]);
    t.sshd.regenerate_host_key();
    let refused = t.run(&["up", "test"]);
    refused.expect_code(4);
    let named = format!("HOST KEY CHANGED for shop-test-1 ({id}, [127.0.0.1]:{port})");
    assert!(
        refused.stdout.contains(&named) || refused.stderr.contains(&named),
        "{}",
        refused.dump()
    );
    assert!(
        !t.known_hosts().contains(&t.sshd.host_pub_key),
        "the changed key is not pinned: {}",
        t.known_hosts()
    );
}

/// `address = "private"`: instances are listed and reached at the private IP EC2 gave them.
/// Only private (RFC 1918) addresses are mapped to the sshd; every other one, the public IP
/// moto hands out (54.214.*) included, goes to a closed port, so the wait for SSH and the
/// playbook succeed only through the private address.
#[test]
fn address_private_reaches_instances_at_their_private_ip() {
    let t = Ec2Test::new();
    t.p.write(
        "ssh_config",
        &format!(
            "Host 10.* 172.* 192.168.*\n  HostName 127.0.0.1\n  Port {}\nHost *\n  HostName 127.0.0.1\n  Port {}\n",
            t.sshd.port,
            closed_port()
        ),
    );
    t.config("count = 1\naddress = \"private\"");
    let up = t.run(&["up", "test"]);
    up.expect_code(0);
    assert!(
        up.stderr.contains("shop-test-1 answers SSH"),
        "{}",
        up.dump()
    );
    let id = t.moto.account().ours()["shop-test-1"].clone();
    let private = t.moto.private_ip(&id);
    assert_ne!(private, t.moto.public_ip(&id), "{id} has two addresses");

    let json = t.run(&["hosts", "test", "--output", "json"]);
    json.expect_code(0);
    let row: Value = serde_json::from_str(json.stdout.trim()).expect("one JSON row");
    assert_eq!(row["id"], id.as_str(), "{row}");
    assert_eq!(row["instance_address"], private.as_str(), "{row}");
    assert_eq!(
        row["port"], t.sshd.port,
        "reached through the private IP's mapping: {row}"
    );

    // A second up connects again (the playbook runs on the kept instance there).
    let again = t.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.ok(), 1, "{}", again.dump());
}

/// `user_data_file`: a missing file stops `plan`, and `up` before anything is created, naming
/// the file; present, its content is the instance's UserData as EC2 stores it.
#[test]
fn user_data_file_becomes_the_instances_user_data() {
    let t = Ec2Test::new();
    t.config("count = 1\nuser_data_file = \"cloud-init.yaml\"");
    let wanted = t.p.path("cloud-init.yaml").display().to_string();
    // `plan` reads it as `up` would: a plan that passes does not hide an `up` that fails.
    for cmd in ["plan", "up"] {
        let missing = t.run(&[cmd, "test"]);
        missing.expect_code(1);
        assert!(
            missing.stderr.contains("cannot read user_data_file")
                && missing.stderr.contains(&wanted),
            "{cmd}: {}",
            missing.dump()
        );
    }
    let acc = t.moto.account();
    assert!(acc.instances().is_empty(), "launched: {}", acc.0);
    assert!(
        acc.group(GROUP).is_none(),
        "the group was created: {}",
        acc.0
    );
    assert!(acc.keys().is_empty(), "the key was imported: {}", acc.0);

    let content = "#cloud-config\nruncmd:\n  - [touch, /tmp/from-user-data-file]\n";
    t.p.write("cloud-init.yaml", content);
    t.run(&["up", "test"]).expect_code(0);
    let id = t.moto.account().ours()["shop-test-1"].clone();
    assert_eq!(t.moto.py(&["userdata", &id]), content);
}

/// UDP rules and IPv6 networks: authorized as UDP permissions with Ipv6Ranges, stable on the
/// next run, and one CIDR of a permission revoked without the others.
#[test]
fn udp_and_ipv6_ingress_converge_and_revoke_only_the_removed_rule() {
    let t = Ec2Test::new();
    let udp =
        "{ ports = [53, \"60000-60010\"], protocol = \"udp\", cidrs = [\"0.0.0.0/0\", \"::/0\"] }";
    t.config(&format!("count = 1\ningress = [{{ ports = [22] }}, {udp}]"));
    let up = t.run(&["up", "test"]);
    up.expect_code(0);
    for want in [
        "+ ingress udp 53 from ::/0",
        "+ ingress udp 60000-60010 from ::/0",
        "+ ingress udp 53 from 0.0.0.0/0",
    ] {
        assert!(up.stdout.contains(want), "missing `{want}`\n{}", up.dump());
    }
    let all = [
        "tcp 22-22 0.0.0.0/0",
        "udp 53-53 0.0.0.0/0",
        "udp 53-53 ::/0",
        "udp 60000-60010 0.0.0.0/0",
        "udp 60000-60010 ::/0",
    ];
    assert_eq!(t.moto.account().rules(GROUP), all);
    assert_eq!(
        t.moto.py(&["v6", GROUP]),
        serde_json::json!(["udp 53-53 ::/0", "udp 60000-60010 ::/0"]),
        "the IPv6 networks are Ipv6Ranges"
    );

    let again = t.run(&["up", "test"]);
    again.expect_code(0);
    assert!(
        again.stdout.contains("(shop/test): nothing to change"),
        "{}",
        again.dump()
    );
    assert!(!again.stdout.contains("ingress"), "{}", again.dump());
    t.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(0);

    // IPv6 no longer allowed on 53: that one network goes, the same port's IPv4 one stays.
    t.config(
        "count = 1\ningress = [{ ports = [22] }, { ports = [53], protocol = \"udp\" }, { ports = [\"60000-60010\"], protocol = \"udp\", cidrs = [\"0.0.0.0/0\", \"::/0\"] }]",
    );
    let up = t.run(&["up", "test"]);
    up.expect_code(0);
    assert!(
        up.stdout.contains("1 rule(s) to change")
            && up.stdout.contains("- ingress udp 53 from ::/0"),
        "{}",
        up.dump()
    );
    let left: Vec<&str> = all
        .iter()
        .copied()
        .filter(|r| *r != "udp 53-53 ::/0")
        .collect();
    assert_eq!(t.moto.account().rules(GROUP), left);
}

/// A changed instance_type or ami is not applied to running instances (no silent replacement)
/// but said, by `plan` and `up`, with how to replace them.
#[test]
fn a_changed_instance_type_or_ami_is_reported_not_applied() {
    let t = Ec2Test::new();
    t.config("count = 1");
    t.run(&["up", "test"]).expect_code(0);
    let before = t.moto.account().ours();
    let id = &before["shop-test-1"];
    let label = format!("shop-test-1 ({id})");
    let advice = "not changed (terminate it, or scale down and up, to replace it)";

    t.p.write(
        "provision.toml",
        &std::fs::read_to_string(t.p.path("provision.toml"))
            .unwrap()
            .replace(
                "instance_type = \"t3.micro\"",
                "instance_type = \"t3.small\"",
            )
            .replace(AMI, "ami-0fedcba987654321"),
    );
    for cmd in ["plan", "up"] {
        let run = t.run(&[cmd, "test"]);
        run.expect_code(0);
        for want in [
            format!("! {label} is a t3.micro, the config says t3.small: {advice}"),
            format!("! {label} runs {AMI}, the config says ami-0fedcba987654321: {advice}"),
        ] {
            assert!(
                run.stdout.contains(&want),
                "{cmd}: missing `{want}`\n{}",
                run.dump()
            );
        }
        assert!(!run.stderr.contains("launched"), "{}", run.dump());
    }
    let acc = t.moto.account();
    assert_eq!(acc.ours(), before, "the instance was kept");
    assert_eq!(acc.instance(id)["type"], "t3.micro");
    assert_eq!(acc.state_of(id), "running");
}

/// An ICMP rule added by hand (type 8 / code 0, which the API returns as "ports" 8-0) is not
/// a port range provision manages: `up` leaves it, and says nothing to change (issue 12 #21).
#[test]
fn an_icmp_rule_added_by_hand_is_left_alone() {
    let t = Ec2Test::new();
    t.config("count = 1\ningress = [{ ports = [22] }]");
    t.run(&["up", "test"]).expect_code(0);
    t.moto.py(&["icmp", GROUP]);
    let ping = "icmp 8-0 10.0.0.0/8";
    assert!(t.moto.account().rules(GROUP).contains(&ping.to_string()));
    let plan = t.run(&["plan", "test", "--detailed-exitcode"]);
    plan.expect_code(0);
    let up = t.run(&["up", "test"]);
    up.expect_code(0);
    assert!(!up.stdout.contains("ingress"), "{}", up.dump());
    assert_eq!(
        t.moto.account().rules(GROUP),
        ["icmp 8-0 10.0.0.0/8", "tcp 22-22 0.0.0.0/0"],
        "the ICMP rule was revoked"
    );
}

/// Keys from a profile's `credential_process` (aws-vault, granted, 1Password; SSO through
/// `aws configure export-credentials --format process`): the command runs locally, its keys
/// sign the calls, and the secret it printed appears nowhere; a failing command is one clear
/// line.
#[test]
fn a_profiles_credential_process_supplies_the_keys() {
    const KEY_ID: &str = "AKIAPROCESSKEY";
    const SECRET: &str = "process-secret-access-key-1f2e";
    let t = Ec2Test::new();
    t.config("count = 1");
    let ran = t.p.path("process-ran");
    let script = t.p.path("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {ran:?}\nprintf '{{\"Version\": 1, \"AccessKeyId\": \"{KEY_ID}\", \"SecretAccessKey\": \"{SECRET}\"}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = t.p.path("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile vault]\ncredential_process = {} prod\n\n[profile broken]\ncredential_process = /bin/false\n",
            script.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let env = |profile| {
        [
            ("AWS_ACCESS_KEY_ID", None),
            ("AWS_SECRET_ACCESS_KEY", None),
            ("AWS_PROFILE", Some(profile)),
            ("AWS_CONFIG_FILE", Some(config.as_str())),
            ("AWS_SHARED_CREDENTIALS_FILE", Some("/nonexistent")),
        ]
    };
    let up = t.run_with(&["up", "test", "-vv", "--output", "json"], &env("vault"));
    up.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&ran)
            .unwrap_or_default()
            .lines()
            .next(),
        Some("prod"),
        "the profile's command ran"
    );
    // With no keys anywhere else, the run got this far only with the process's keys
    // (`aws_errors_are_one_sentence_with_the_code` shows the same run failing without them).
    assert_eq!(t.moto.account().ours().len(), 1);
    for out in [&up.stdout, &up.stderr] {
        assert!(!out.contains(SECRET), "{}", up.dump());
    }

    let broken = t.run_with(&["plan", "test"], &env("broken"));
    broken.expect_code(3);
    assert!(broken.stderr.contains("credential"), "{}", broken.dump());
    assert_eq!(broken.stderr.trim().lines().count(), 1, "{}", broken.dump());
}
