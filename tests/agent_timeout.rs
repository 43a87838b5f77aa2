//! A wedged ssh-agent (its socket accepts, then never answers) must not hang a run: the agent
//! is given up after `connect_timeout` and the key files are tried next.

mod support;

use std::os::unix::net::UnixListener;
use std::time::Duration;
use support::{Project, Servers};

/// A socket that accepts every connection and never says a word; the connections are kept
/// open (never closed) for as long as the test runs.
fn mute_agent(path: &std::path::Path) {
    let listener = UnixListener::bind(path).expect("bind the fake agent socket");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
}

#[test]
fn a_mute_agent_falls_back_to_the_key_files() {
    let servers = Servers::start(1);
    let p = Project::new();
    // No identity_file: the agent first, then ~/.ssh/id_ed25519 (the servers' key).
    p.write(
        "provision.toml",
        &format!(
            "app = \"agent\"\n\n[ssh]\nknown_hosts = \"accept-new\"\nconfig = \"none\"\nconnect_timeout = \"2s\"\n\n[env.test]\nhosts = [{:?}]\n",
            servers.sshd().addr("root")
        ),
    );
    std::fs::create_dir_all(p.home.join(".ssh")).unwrap();
    std::fs::copy(&servers.key.private, p.home.join(".ssh/id_ed25519")).unwrap();
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"mark\"\ncommand = {{ run = \"touch {}\" }}\n",
            p.remote_path("marked")
        ),
    );
    let sock = p.path("agent.sock");
    mute_agent(&sock);
    // Without the bound the run waits on the agent forever and run_timeout fails the test.
    let run = p.run_timeout_env(
        &["up", "test"],
        &[("SSH_AUTH_SOCK", sock.as_os_str())],
        Duration::from_secs(30),
    );
    run.expect_code(0);
    assert!(p.remote.join("marked").exists(), "{}", run.dump());
}
