//! The `compose` step against a real Docker engine and docker-compose, over real SSH: the
//! compose file comes from a template, a second `up` recreates nothing, a changed value
//! recreates only the service it touches, and a stopped service is started again.

#[path = "support/docker.rs"]
mod docker_support;
mod support;

use docker_support::{container_id, container_state, docker, docker_host};
use std::collections::BTreeSet;
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

/// docker-compose v1 names containers <project>_<service>_1.
fn ids(app: &str) -> (String, String) {
    let id = |svc: &str| {
        container_id(&format!("{app}_{svc}_1")).unwrap_or_else(|| panic!("{svc} container missing"))
    };
    (id("web"), id("worker"))
}

#[test]
fn compose_is_idempotent_and_recreates_only_what_changed() {
    let docker_host = docker_host();
    let app = format!("compose{}", std::process::id());
    let key_dir = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(key_dir.path());
    let sshd = Sshd::start(&key);
    let p = Project::new();
    let dir = p.remote_path("stack");
    let mut toml = project_toml(&app, &[sshd.addr("root")], &key, "");
    toml.push_str(&format!(
        "remote_env = {{ DOCKER_HOST = {docker_host:?} }}\nvars = {{ greeting = \"one\" }}\n"
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
    let (web, worker) = ids(&app);

    let again = p.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    assert_eq!(
        ids(&app),
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
    let (web2, worker2) = ids(&app);
    assert_ne!(web2, web, "web should be recreated");
    assert_eq!(worker2, worker, "worker should be untouched");

    // A stopped service is noticed and started.
    docker(&["stop", &format!("{app}_worker_1")]);
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
        container_state(&format!("{app}_worker_1")).as_deref(),
        Some("running")
    );
    assert_eq!(p.run(&["up", "test", "--output", "json"]).changed(), 0);

    let _ = docker_support::docker_ok(&[
        "rm",
        "-f",
        &format!("{app}_web_1"),
        &format!("{app}_worker_1"),
    ]);
    let _ = docker_support::docker_ok(&["network", "rm", &format!("{app}_default")]);
}
