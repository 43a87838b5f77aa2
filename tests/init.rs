//! `provision init` writes a project that deploys as written: the test only names its own
//! host (a loopback sshd as root, the tests' Docker engine) in a new env; the playbook, the app
//! and the secrets `init` generated are used unchanged. plan predicts up exactly, the app
//! answers through the front proxy, a second up changes nothing, a new version is swapped in,
//! and the generated secrets appear in no output.

#[path = "support/docker.rs"]
mod docker_support;
mod support;

use docker_support::*;
use support::*;

#[test]
fn an_init_project_deploys_app_database_and_proxy_as_written() {
    nginx_image();
    docker_host();
    let app = app_name("dkinit");
    cleanup_app(&app);
    let key_dir = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(key_dir.path());
    let sshd = Sshd::start(&key);
    let p = Project::new();
    let made = p.run(&["init", &p.dir.path().display().to_string()]);
    made.expect_code(0);
    for f in [".gitignore", "app/Dockerfile", "playbooks/deploy.toml"] {
        assert!(p.path(f).is_file(), "init made no {f}");
    }
    let secrets = std::fs::read_to_string(p.path("secrets/prod.env")).unwrap();
    let values: Vec<String> = secrets
        .lines()
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.to_string()))
        .collect();
    assert_eq!(values.len(), 2, "{secrets}");

    // Only what names this machine changes: the app's name (tests run side by side), its
    // folder and port, and an env for the loopback host with its key pinned.
    let port = free_port();
    let base = p.remote_path("srv");
    let toml = std::fs::read_to_string(p.path("provision.toml"))
        .unwrap()
        .replace("app = \"myapp\"", &format!("app = {app:?}"))
        .replace("base = \"/srv/myapp\"", &format!("base = {base:?}"))
        .replace("http_port = 8080", &format!("http_port = {port}"));
    p.write(
        "provision.toml",
        &format!(
            "{toml}\n[env.test]\nhosts = [{host:?}]\nsecrets = \"secrets/prod.env\"\n\
             remote_env = {{ DOCKER_HOST = {DOCKER_HOST:?} }}\n\
             ssh = {{ identity_file = {key:?}, host_key = {pin:?}, config = \"none\" }}\n",
            host = sshd.addr("root"),
            key = key.private.display().to_string(),
            pin = sshd.fingerprint(),
        ),
    );

    let plan = p.run(&["plan", "test", "--output", "json"]);
    plan.expect_code(0);
    let up = p.run(&["up", "test", "--output", "json", "-vv"]);
    up.expect_code(0);
    assert_eq!(
        plan.steps_with("changed"),
        up.steps_with("changed"),
        "plan on a fresh host\n{}",
        up.dump()
    );
    assert!(hello(port).contains("Hello from myapp"), "{}", hello(port));
    let again = p.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "second up\n{}", again.dump());

    // A new release: the app's code changes, `-e version=2` swaps it in behind the proxy.
    p.write(
        "app/www/cgi-bin/hello",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nversion two\\n'\n",
    );
    let v2 = p.run(&["up", "test", "-e", "version=2", "--output", "json"]);
    v2.expect_code(0);
    assert_eq!(hello(port).trim(), "version two");
    for r in [&made, &plan, &up, &again, &v2] {
        for v in &values {
            assert!(
                !r.stdout.contains(v.as_str()) && !r.stderr.contains(v.as_str()),
                "a generated secret in the output\n{}",
                r.dump()
            );
        }
    }
    cleanup_app(&app);
}
