//! `become_user` set to a non-root user (issue 12, item 11): the scripts run as that user with
//! its own HOME, so provision's state (release log, deploy lock) lands in that user's home —
//! never in a world-writable fallback such as /tmp/.local.

mod support;

use std::path::Path;
use support::*;

const LOGIN: &str = "provbu-deploy";
const APP_USER: &str = "provbu-app";

#[test]
fn state_of_a_become_user_deploy_lives_in_that_users_home() {
    ensure_user(LOGIN, true);
    ensure_user(APP_USER, false);
    let servers = Servers::start(1);
    let app = format!("bu{}", servers.sshd().port);
    let p = servers.project(
        &app,
        LOGIN,
        "",
        &format!("ssh = {{ become = true, become_user = \"{APP_USER}\" }}\n"),
    );
    p.write(
        "playbooks/deploy.toml",
        "[[step]]\ncommand = { run = \"echo HOME=$HOME USER=$USER; id -un\" }\n",
    );
    let r = p.run(&["up", "test", "-v"]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains(&format!("HOME=/home/{APP_USER} USER={APP_USER}")),
        "{}",
        r.dump()
    );
    let log = format!("/home/{APP_USER}/.local/state/provision/{app}/test/releases.log");
    assert!(
        Path::new(&log).is_file(),
        "no release log at {log}:\n{}",
        r.dump()
    );
    let tmp = format!("/tmp/.local/state/provision/{app}");
    assert!(!Path::new(&tmp).exists(), "state fell back to {tmp}");
}
