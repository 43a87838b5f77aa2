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
