//! The documented `[ssh]` options no other test drove through the binary (issue 19):
//! `host_key_env`, `known_hosts_file`, `identity_file` as a list, and an ECDSA key found by
//! the default lookup in `~/.ssh`. Real sshd on loopback, real keys from ssh-keygen.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const PLAYBOOK: &str = "[[step]]\nname = \"hello\"\ncommand = { run = \"true\" }\n";

/// A project for the one server with `ssh` as its whole `[ssh]` section.
fn project(servers: &Servers, ssh: &str) -> Project {
    let p = Project::new();
    p.write(
        "provision.toml",
        &format!(
            "app = \"sshopts\"\n\n[ssh]\nconfig = \"none\"\n{ssh}\n\n[env.test]\nhosts = [{:?}]\n",
            servers.sshd().addr("root")
        ),
    );
    p.write("playbooks/deploy.toml", PLAYBOOK);
    p
}

/// `ssh-keygen -t <kind>` at `path`; returns the `.pub` line.
fn keygen(kind: &str, path: &Path) -> String {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "provision-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen is required")
        .success();
    assert!(ok, "ssh-keygen -t {kind}");
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    std::fs::read_to_string(PathBuf::from(pub_path)).unwrap()
}

fn key_line(servers: &Servers) -> String {
    format!(
        "identity_file = {:?}\n",
        servers.key.private.display().to_string()
    )
}

#[test]
fn host_key_env_names_the_variable_with_the_pins() {
    let servers = Servers::start(1);
    let sshd = servers.sshd();
    let ssh = format!(
        "{}known_hosts = \"strict\"\nhost_key_env = \"MY_PINS\"\n",
        key_line(&servers)
    );
    let p = project(&servers, &ssh);
    let up = ["up", "test"];
    // Strict, nothing pinned anywhere: refused, nothing ran.
    let r = p.run(&up);
    r.expect_code(4);
    assert!(r.stdout.contains("not known"), "{}", r.dump());
    // The default variable is not read when another is named.
    p.run_env(&up, &[("PROVISION_KNOWN_HOSTS", sshd.fingerprint())])
        .expect_code(4);
    // The named one is: a fingerprint, then a bare key.
    p.run_env(&up, &[("MY_PINS", sshd.fingerprint())])
        .expect_code(0);
    p.run_env(&up, &[("MY_PINS", sshd.host_pub_key.clone())])
        .expect_code(0);
    assert!(
        !p.dir.path().join(".provision/known_hosts").exists(),
        "a pin from the environment is not written anywhere"
    );
    // A pin of another key: the host is refused at key exchange.
    let other = keygen("ed25519", &p.home.join("other"));
    let other_key = other
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let r = p.run_env(&up, &[("MY_PINS", other_key)]);
    r.expect_code(4);
    assert!(r.stdout.to_uppercase().contains("HOST KEY"), "{}", r.dump());
}

#[test]
fn known_hosts_file_is_where_pins_are_kept_and_read() {
    let servers = Servers::start(1);
    let ssh = format!(
        "{}known_hosts = \"accept-new\"\nknown_hosts_file = \"pins/hosts\"\n",
        key_line(&servers)
    );
    let p = project(&servers, &ssh);
    p.run(&["up", "test"]).expect_code(0);
    let pins = std::fs::read_to_string(p.dir.path().join("pins/hosts")).unwrap();
    assert!(
        pins.contains(&servers.sshd().host_pub_key),
        "the key was not pinned in pins/hosts:\n{pins}"
    );
    assert!(!p.dir.path().join(".provision/known_hosts").exists());
    // Strict now: the pin in that file is what lets the host in.
    let strict = ssh.replace("accept-new", "strict");
    p.write(
        "provision.toml",
        &std::fs::read_to_string(p.dir.path().join("provision.toml"))
            .unwrap()
            .replace(&ssh, &strict),
    );
    p.run(&["up", "test"]).expect_code(0);
    std::fs::remove_file(p.dir.path().join("pins/hosts")).unwrap();
    p.run(&["up", "test"]).expect_code(4);
}

#[test]
fn identity_file_as_a_list_tries_each_key_in_turn() {
    let servers = Servers::start(1);
    let p0 = Project::new();
    let stranger = p0.home.join("stranger/id_ed25519");
    keygen("ed25519", &stranger);
    let good = servers.key.private.display().to_string();
    let bad = stranger.display().to_string();
    for list in [[&bad, &good], [&good, &bad]] {
        let ssh = format!("identity_file = {list:?}\nknown_hosts = \"accept-new\"\n");
        let p = project(&servers, &ssh);
        let r = p.run(&["up", "test"]);
        r.expect_code(0);
    }
    let ssh = format!("identity_file = [{bad:?}]\nknown_hosts = \"accept-new\"\n");
    let r = project(&servers, &ssh).run(&["up", "test"]);
    r.expect_code(4);
}

#[test]
fn an_ecdsa_key_in_home_is_found_without_identity_file() {
    let servers = Servers::start(1);
    let p = project(&servers, "known_hosts = \"accept-new\"\n");
    // No identity_file, no agent (the binary's environment has none): ~/.ssh/id_ecdsa.
    let public = keygen("ecdsa", &p.home.join(".ssh/id_ecdsa"));
    let r = p.run(&["up", "test"]);
    r.expect_code(4);
    servers.sshd().authorize(&public);
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.step("hello")["status"], "changed", "{}", r.dump());
    let log = servers.sshd().log();
    assert!(
        log.contains("Accepted publickey for root") && log.contains("ECDSA"),
        "sshd did not accept the ECDSA key:\n{log}"
    );
}

/// An IPv6 host end to end: `user@[::1]:port` in the inventory, pinned as `[::1]:port`,
/// converged, then checked strictly against that pin.
#[test]
fn an_ipv6_host_converges_and_is_pinned_by_its_bracketed_address() {
    let has_v6 = std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("00000000000000000000000000000001"))
    });
    assert!(has_v6, "this test needs ::1 on the loopback interface");
    let key_dir = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(key_dir.path());
    let sshd = Sshd::start_listening(&key, "::1");
    let p = Project::new();
    let toml = |policy: &str| {
        format!(
            "app = \"sshv6\"\n\n[ssh]\nconfig = \"none\"\nidentity_file = {:?}\nknown_hosts = \"{policy}\"\n\n[env.test]\nhosts = [\"root@[::1]:{}\"]\n",
            key.private.display().to_string(),
            sshd.port
        )
    };
    p.write("provision.toml", &toml("accept-new"));
    let done = p.remote_path("v6");
    p.write(
        "playbooks/deploy.toml",
        &format!("[[step]]\nname = \"touch\"\ncommand = {{ run = \"touch {done}\", creates = \"{done}\" }}\n"),
    );
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    let name = format!("[::1]:{}", sshd.port);
    assert_eq!(r.step("touch")["host"], name, "{}", r.dump());
    assert!(std::path::Path::new(&done).exists());
    let pins = std::fs::read_to_string(p.dir.path().join(".provision/known_hosts")).unwrap();
    assert!(
        pins.lines()
            .any(|l| l.starts_with(&format!("{name} ")) && l.contains(&sshd.host_pub_key)),
        "no pin for {name}:\n{pins}"
    );
    p.write("provision.toml", &toml("strict"));
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.changed(), 0, "{}", r.dump());
    let log = sshd.log();
    assert!(
        log.contains("from ::1"),
        "sshd did not see an IPv6 client:\n{log}"
    );
}

/// A project whose hosts are ssh_config aliases: `[ssh] config` names `ssh_config` (written
/// into the project), and nothing else says how to connect.
fn aliased_project(ssh_config: &str, hosts: &[&str]) -> Project {
    let p = Project::new();
    p.write("ssh_config", ssh_config);
    p.write(
        "provision.toml",
        &format!(
            "app = \"sshcfg\"\n\n[ssh]\nconfig = \"ssh_config\"\nknown_hosts = \"accept-new\"\n\n[env.test]\nhosts = {hosts:?}\n"
        ),
    );
    p.write("playbooks/deploy.toml", PLAYBOOK);
    p
}

/// ssh_config `Match` blocks (issue 18): their options do not leak into the `Host` block
/// before them (the parser alone would apply `User nobody-here` to `web`), and each block is
/// a warning naming file:line.
#[test]
fn match_blocks_warn_and_do_not_change_the_host_before_them() {
    let servers = Servers::start(1);
    let s = servers.sshd();
    let cfg = format!(
        "Host web\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n\nMatch user root\n  User nobody-here\n  Port 1\n",
        s.port,
        servers.key.private.display()
    );
    let p = aliased_project(&cfg, &["web"]);
    let r = p.run(&["exec", "test", "--", "id", "-un"]);
    r.expect_code(0);
    assert!(r.stdout.contains("[web] root"), "{}", r.dump());
    let file = p.path("ssh_config").display().to_string();
    let warning = format!("warning: {file}:7: `Match` blocks are not supported");
    assert!(r.dump().contains(&warning), "{}", r.dump());
    assert_eq!(
        r.dump().matches("`Match` blocks").count(),
        1,
        "{}",
        r.dump()
    );
}

/// `IdentityAgent`: the agent at that socket is asked for keys, whatever `$SSH_AUTH_SOCK`
/// says; `none` asks no agent at all.
#[test]
fn identity_agent_names_the_agent_to_ask() {
    let servers = Servers::start(1);
    let s = servers.sshd();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let _agent = SshAgent::start(&sock, &[&servers.key.private]);
    for (agent, works) in [(sock.display().to_string(), true), ("none".into(), false)] {
        let cfg = format!(
            "Host web\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityAgent {agent}\n",
            s.port
        );
        let p = aliased_project(&cfg, &["web"]);
        let r = p.run_env(
            &["exec", "test", "--", "true"],
            &[("SSH_AUTH_SOCK", "/nonexistent/agent.sock")],
        );
        if works {
            r.expect_code(0);
            assert!(
                s.log().contains("Accepted publickey for root"),
                "{}",
                s.log()
            );
        } else {
            r.expect_code(4);
            assert!(r.stdout.contains("authentication as root"), "{}", r.dump());
        }
    }
}

/// `ProxyCommand` (issue 18): the connection runs over `ssh -W %h:%p` through a second real
/// sshd (the bastion), plan and up work through it, the target's host key is still checked
/// (a wrong pin is refused), and a failing command is a clear error with what it printed.
#[test]
fn proxy_command_carries_the_connection_and_the_target_key_is_checked() {
    let servers = Servers::start(2);
    let (target, bastion) = (&servers.sshds[0], &servers.sshds[1]);
    let key = servers.key.private.display().to_string();
    let proxy = format!(
        "ssh -q -i {key} -p {} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -F /dev/null -W %h:%p root@127.0.0.1",
        bastion.port
    );
    let cfg = format!(
        "Host web\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {key}\n  ProxyCommand {proxy}\n",
        target.port
    );
    let p = aliased_project(&cfg, &["web"]);
    p.run(&["plan", "test"]).expect_code(0);
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.changed(), 1, "{}", r.dump());
    // The bastion carried it: it logged the forwarding login; the target's key was pinned.
    assert!(
        bastion.log().contains("Accepted publickey for root"),
        "{}",
        bastion.log()
    );
    let pins = std::fs::read_to_string(p.path(".provision/known_hosts")).unwrap();
    assert!(pins.contains(&target.known_hosts_line()), "{pins}");

    let other = tempfile::tempdir().unwrap();
    let wrong = keygen("ed25519", &other.path().join("k"));
    let p2 = aliased_project(&cfg, &["web"]);
    let pin = wrong
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    p2.write(
        "provision.toml",
        &std::fs::read_to_string(p2.path("provision.toml"))
            .unwrap()
            .replace(
                "known_hosts = \"accept-new\"\n",
                &format!("host_key = {pin:?}\n"),
            ),
    );
    let r = p2.run(&["exec", "test", "--", "true"]);
    r.expect_code(4);
    assert!(
        r.stdout.contains("does not match the pinned host key"),
        "{}",
        r.dump()
    );

    let failing = aliased_project(
        &format!(
            "Host web\n  HostName 127.0.0.1\n  Port {}\n  ProxyCommand echo no route to %h >&2; exit 3\n",
            target.port
        ),
        &["web"],
    );
    let r = failing.run(&["exec", "test", "--", "true"]);
    r.expect_code(4);
    assert!(
        r.stdout.contains("through its ProxyCommand") && r.stdout.contains("no route to 127.0.0.1"),
        "{}",
        r.dump()
    );
}
