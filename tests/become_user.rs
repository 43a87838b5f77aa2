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

/// Per-step `become` / `become_user`: the login user (no `ssh.become`) runs most steps; one
/// step writes under /etc as root, one runs as the app user, and their probes run as those
/// users too, so plan predicts exactly what up changes and a second up changes nothing.
#[test]
fn a_steps_become_runs_that_step_alone_as_root_or_its_user() {
    ensure_user(LOGIN, true);
    ensure_user(APP_USER, false);
    let servers = Servers::start(1);
    let app = format!("bs{}", servers.sshd().port);
    let p = servers.project(&app, LOGIN, "", "");
    let dir = format!("/tmp/provbs-{app}");
    let etc = format!("/etc/provbs-{app}.conf");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&etc);
    p.write("templates/conf.j2", "owned by root\n");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            r#"[[step]]
name = "mine"
directory = {{ path = "{dir}", mode = "0777" }}

[[step]]
name = "root conf"
become = true
template = {{ src = "templates/conf.j2", dest = "{etc}" }}

[[step]]
name = "as app"
become_user = "{APP_USER}"
command = {{ run = "id -un > {dir}/app", creates = "{dir}/app" }}

[[step]]
name = "as root"
become = true
command = {{ run = "id -un > {dir}/root", creates = "{dir}/root" }}

[[step]]
name = "as login"
command = {{ run = "id -un > {dir}/login", creates = "{dir}/login" }}
"#
        ),
    );
    let plan = p.run(&["plan", "test", "--output", "json"]);
    plan.expect_code(0);
    let up = p.run(&["up", "test", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(up.changed(), 5, "{}", up.dump());
    assert_eq!(
        plan.steps_with("changed"),
        up.steps_with("changed"),
        "plan predicted\n{}",
        plan.dump()
    );
    let owner = |path: &str| {
        let out = std::process::Command::new("stat")
            .args(["-c", "%U", path])
            .output()
            .expect("stat");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(owner(&dir), LOGIN);
    assert_eq!(owner(&etc), "root");
    for (file, user) in [("app", APP_USER), ("root", "root"), ("login", LOGIN)] {
        let who = std::fs::read_to_string(format!("{dir}/{file}")).unwrap_or_default();
        assert_eq!(who.trim(), user, "step `as {file}` ran as");
    }
    let again = p.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "second up\n{}", again.dump());

    // Without `become` the login user cannot write there: the step's become is what worked.
    std::fs::remove_file(&etc).unwrap();
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"root conf\"\ntemplate = {{ src = \"templates/conf.j2\", dest = \"{etc}\" }}\n"
        ),
    );
    let denied = p.run(&["up", "test"]);
    assert_ne!(denied.code, 0, "{}", denied.dump());
    let _ = std::fs::remove_dir_all(&dir);
}
