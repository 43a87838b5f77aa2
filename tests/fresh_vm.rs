//! The slow group: the full deploy on "fresh VM" targets (see `support/fresh_vm.rs`), Debian
//! bookworm containers with sshd, a sudo user and nothing else. provision installs Docker and
//! git over SSH with apt for real, clones the app from a git server on the target's network,
//! uploads the env files, builds the image, starts PostgreSQL, waits for it, migrates and
//! starts the app; a second run changes nothing; after a reboot the app is back without
//! provision.
//!
//! No registry is reachable, so the deploy is "air-gapped": the repo's `playbooks/deploy.toml`
//! runs with three steps spliced in after `docker` that upload a `docker save` of the local
//! base images and `docker load` them (once).
//!
//! `dev_and_prod_example_…` deploys `examples/dev-and-prod` (systemd units, volume snapshots,
//! rollback) to a fresh VM too: it needs systemd, which the loopback targets lack.
//!
//! Every test is `#[ignore]`d: `cargo test` runs the fast suite; `scripts/test.sh` runs this
//! group after it (`cargo test --test fresh_vm -- --ignored --nocapture`). Wall times of each
//! phase are printed (`[phase] …`).

#[path = "support/docker.rs"]
mod docker_support;
#[path = "support/fresh_vm.rs"]
mod fresh;
mod support;

use std::time::{Duration, Instant};

use fresh::*;
use support::*;

/// A project for one target: provision.toml pinning the target's host key, secrets, the
/// repo's templates, and `playbook` as playbooks/deploy.toml.
fn project(t: &Target, vars: &str, playbook: &str) -> Project {
    let p = Project::new();
    save_base_images(&p.path("images/base-images.tar.gz"));
    p.write(
        "provision.toml",
        &format!(
            "app = \"hello\"\nrepo = \"http://git.test/hello.git\"\n\n[vars]\n{vars}\n\
             [ssh]\nidentity_file = {key:?}\nknown_hosts = \"strict\"\nhost_key = {host_key:?}\n\
             config = \"none\"\nconnect_timeout = \"10s\"\n\n\
             [env.vm]\nhosts = [{host:?}]\nsecrets = \"secrets/vm.env\"\nssh = {{ become = true }}\n",
            key = t.key.private.display().to_string(),
            host_key = t.host_key,
            host = t.addr(),
        ),
    );
    p.write(
        "secrets/vm.env",
        "APP_SECRET=fresh-vm-app-secret\nDB_PASSWORD=fresh-vm-db-password\n",
    );
    p.write(
        "templates/release.txt.j2",
        &std::fs::read_to_string(docker_support::repo_root().join("templates/release.txt.j2"))
            .expect("read templates/release.txt.j2"),
    );
    p.write("playbooks/deploy.toml", playbook);
    p
}

/// `up vm --output json` (apt inside the target may take minutes).
fn up(p: &Project) -> Run {
    p.run_timeout(
        &["up", "vm", "--output", "json"],
        Duration::from_secs(20 * 60),
    )
}

/// Print each step's wall time from a run's events.
fn print_steps(r: &Run) {
    for e in r.events_of("step_finished") {
        println!(
            "         {:<28} {:<8} {:>6.1}s",
            e["step"].as_str().unwrap_or_default(),
            e["status"].as_str().unwrap_or_default(),
            e["ms"].as_u64().unwrap_or_default() as f64 / 1000.0
        );
    }
}

/// GET `path` through a fresh SSH tunnel to the target's loopback port `port`, retrying until
/// 200 or `bound`.
fn get_until(t: &Target, port: u16, path: &str, bound: Duration) -> String {
    let deadline = Instant::now() + bound;
    let mut last = None;
    while Instant::now() < deadline {
        // A new tunnel each try: after a reboot the first ones may come too early.
        if let Some(tunnel) = t.tunnel(port) {
            last = docker_support::http_get(tunnel.port, path);
            if let Some((200, body)) = &last {
                return body.clone();
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("GET {path} on the target's 127.0.0.1:{port} within {bound:?}: {last:?}");
}

#[test]
#[ignore = "slow group (fresh VMs): scripts/test.sh runs it; cargo test --test fresh_vm -- --ignored"]
fn full_deploy_on_a_fresh_vm_then_noop_then_reboot() {
    let mut ph = Phases::start();
    images();
    ph.lap("images (debootstrap cached)");

    let net = Network::create("vm");
    let repos = tempfile::Builder::new()
        .prefix("prov-fv-git-")
        .tempdir()
        .expect("git dir");
    hello_repo(repos.path(), "hello");
    let _git = GitServer::start(&net, repos.path());
    let keydir = tempfile::tempdir().expect("key dir");
    let mut t = Target::start(Variant::Vm, &net, "vm", ClientKey::generate(keydir.path()));
    ph.lap("target boot to ssh");

    // Nothing but sshd and sudo: no Docker, no git, no curl; systemd is PID 1.
    assert_eq!(
        t.exec("command -v docker git curl || true").as_deref(),
        Some("")
    );
    assert_eq!(t.exec("cat /proc/1/comm").as_deref(), Some("systemd"));

    let deploy = std::fs::read_to_string(docker_support::repo_root().join("playbooks/deploy.toml"))
        .expect("read playbooks/deploy.toml");
    let anchor = "docker_install = {}\n";
    let at = deploy
        .find(anchor)
        .expect("deploy.toml has a docker_install step")
        + anchor.len();
    let playbook = format!(
        "{}{}{}",
        &deploy[..at],
        airgap_steps("images/base-images.tar.gz"),
        &deploy[at..]
    );
    let vars = "base = \"/srv/hello\"\nref = \"main\"\nhttp_port = 8080\n\
                greeting = \"Hello from a fresh VM\"\n\
                base_image = \"provision-local/base:1\"\ndb_image = \"provision-local/postgres:15\"\n\
                pull = \"never\"\n";
    let p = project(&t, vars, &playbook);
    ph.lap("project + image archive");

    let r = up(&p);
    r.expect_code(0);
    print_steps(&r);
    assert_eq!(r.failed(), 0, "{}", r.dump());
    assert!(
        r.changed() >= 10,
        "a fresh VM changes most steps\n{}",
        r.dump()
    );
    for step in [
        "docker",
        "git and curl",
        "checkout",
        "image",
        "database",
        "migrations",
        "app",
    ] {
        assert_eq!(r.step(step)["status"], "changed", "{step}\n{}", r.dump());
    }
    ph.lap("first up (apt docker.io + git, clone, build, db, migrate, app)");

    // Installed for real, by apt, and started by systemd.
    assert!(t.exec("dpkg-query -W docker.io git").is_some());
    assert_eq!(
        t.exec("systemctl is-enabled docker").as_deref(),
        Some("enabled")
    );
    let body = get_until(&t, 8080, "/cgi-bin/hello", Duration::from_secs(30));
    assert!(body.contains("Hello from a fresh VM"), "{body}");
    ph.lap("GET through ssh -L");

    let r = up(&p);
    r.expect_code(0);
    assert_eq!(r.changed(), 0, "second run changes nothing\n{}", r.dump());
    ph.lap("second up (0 changes)");

    let app_id = t
        .exec("docker inspect -f '{{.Id}}' hello")
        .expect("app container");
    let started = t.exec("docker inspect -f '{{.State.StartedAt}}' hello");
    let boot_id = t.exec("cat /proc/sys/kernel/random/boot_id; systemctl show -p ActiveEnterTimestampMonotonic --value sysinit.target");
    t.reboot();
    ph.lap("reboot to ssh");
    let body = get_until(&t, 8080, "/cgi-bin/hello", Duration::from_secs(180));
    assert!(body.contains("Hello from a fresh VM"), "{body}");
    // The same container came back (restart policy), not a new one.
    assert_eq!(
        t.exec("docker inspect -f '{{.Id}}' hello").as_deref(),
        Some(app_id.as_str())
    );
    // ...started again by the engine at boot, in a new boot of systemd.
    assert_ne!(
        t.exec("docker inspect -f '{{.State.StartedAt}}' hello"),
        started
    );
    assert_ne!(
        t.exec("cat /proc/sys/kernel/random/boot_id; systemctl show -p ActiveEnterTimestampMonotonic --value sysinit.target"),
        boot_id
    );
    assert_eq!(
        t.exec("systemctl is-active docker").as_deref(),
        Some("active")
    );
    ph.lap("app back after reboot (no provision)");
    println!("{}", ph.summary());
}

#[test]
#[ignore = "slow group (fresh VMs): scripts/test.sh runs it; cargo test --test fresh_vm -- --ignored"]
fn docker_install_without_systemd_starts_dockerd() {
    let mut ph = Phases::start();
    images();
    let net = Network::create("bare");
    let keydir = tempfile::tempdir().expect("key dir");
    let t = Target::start(
        Variant::Bare,
        &net,
        "bare",
        ClientKey::generate(keydir.path()),
    );
    ph.lap("bare target boot to ssh");
    assert_eq!(t.exec("command -v docker git || true").as_deref(), Some(""));
    assert_eq!(
        t.exec("test -d /run/systemd/system || echo none")
            .as_deref(),
        Some("none")
    );

    let playbook = format!(
        "[[step]]\nname = \"docker\"\ndocker_install = {{}}\n{}\n\
         [[step]]\nname = \"probe\"\n\
         docker_run = {{ name = \"probe\", image = \"provision-local/base:1\", command = [\"httpd\", \"-f\", \"-p\", \"8000\"], pull = \"never\" }}\n",
        airgap_steps("images/base-images.tar.gz")
    );
    let p = project(&t, "", &playbook);
    let r = up(&p);
    r.expect_code(0);
    print_steps(&r);
    assert!(
        r.step("docker")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("start dockerd"),
        "without systemd, docker_install starts dockerd itself\n{}",
        r.dump()
    );
    ph.lap("first up (apt docker.io, dockerd, load, run)");
    assert!(t.exec("pgrep -x dockerd").is_some(), "dockerd runs");
    assert_eq!(
        t.exec("docker inspect -f '{{.State.Running}}' probe")
            .as_deref(),
        Some("true")
    );
    let r = up(&p);
    r.expect_code(0);
    assert_eq!(r.changed(), 0, "second run changes nothing\n{}", r.dump());
    ph.lap("second up (0 changes)");
    println!("{}", ph.summary());
}

/// GET a page of the dev-and-prod example on the target's loopback port.
fn page(t: &Target, port: u16, path: &str) -> String {
    get_until(t, port, path, Duration::from_secs(60))
        .trim()
        .to_string()
}

#[test]
#[ignore = "slow group (fresh VMs): scripts/test.sh runs it; cargo test --test fresh_vm -- --ignored"]
fn dev_and_prod_example_with_snapshot_rollback_and_systemd() {
    let mut ph = Phases::start();
    images();
    let net = Network::create("dp");
    let keydir = tempfile::tempdir().expect("key dir");
    let t = Target::start(Variant::Vm, &net, "dp", ClientKey::generate(keydir.path()));
    ph.lap("target boot to ssh");

    // The example as shipped, pointed at this target (and at the local base image).
    let p = Project::new();
    docker_support::copy_dir(
        &docker_support::repo_root().join("examples/dev-and-prod"),
        p.dir.path(),
    );
    save_base_images(&p.path("images/base-images.tar.gz"));
    let replace = |text: &str, from: &str, to: &str| {
        assert!(text.contains(from), "example lacks {from:?}");
        text.replace(from, to)
    };
    let toml = std::fs::read_to_string(p.path("provision.toml")).unwrap();
    let toml = replace(&toml, "deploy@203.0.113.10", &t.addr());
    let toml = replace(
        &toml,
        "[ssh]\nknown_hosts = \"accept-new\"\n",
        &format!(
            "[ssh]\nknown_hosts = \"strict\"\nhost_key = {:?}\nidentity_file = {:?}\nconfig = \"none\"\n",
            t.host_key,
            t.key.private.display().to_string()
        ),
    );
    let toml = replace(&toml, "\"busybox:1.36\"", "\"provision-local/base:1\"");
    p.write("provision.toml", &toml);
    let pb = std::fs::read_to_string(p.path("playbooks/deploy.toml")).unwrap();
    let anchor = "docker_install = {}\n";
    let pb = replace(
        &pb,
        anchor,
        &format!("{anchor}{}", airgap_steps("images/base-images.tar.gz")),
    );
    p.write("playbooks/deploy.toml", &pb);
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let r = p.run_timeout(&a, Duration::from_secs(20 * 60));
        r.expect_code(0);
        r
    };

    let r = run(&["up", "prod"]);
    print_steps(&r);
    ph.lap("up prod v1 (apt docker.io + curl, build, unit)");
    run(&["up", "dev"]);
    ph.lap("up dev v1");
    assert_eq!(page(&t, 8080, "/cgi-bin/version"), "prod v1");
    assert_eq!(page(&t, 8081, "/cgi-bin/version"), "dev v1");
    assert_eq!(page(&t, 8080, "/cgi-bin/notes"), "created by v1");
    // Someone uses prod: data only prod's volume holds.
    t.exec("docker exec notes-prod sh -c 'echo user note >> /data/notes.txt'")
        .expect("write a note in prod");

    let r = run(&["up", "prod", "-e", "ref=v2"]);
    assert!(
        r.step("data for this version")["output"]
            .as_str()
            .unwrap_or_default()
            .contains("snapshot v1.tgz"),
        "{}",
        r.dump()
    );
    assert_eq!(page(&t, 8080, "/cgi-bin/version"), "prod v2");
    assert_eq!(
        page(&t, 8080, "/cgi-bin/notes"),
        "created by v1\nuser note\nschema v2"
    );
    // dev: its own volume, untouched.
    assert_eq!(page(&t, 8081, "/cgi-bin/notes"), "created by v1");
    assert_eq!(page(&t, 8081, "/cgi-bin/version"), "dev v1");
    ph.lap("up prod v2 (snapshot, migrate)");

    let r = run(&["rollback", "prod"]);
    assert!(
        r.step("data for this version")["output"]
            .as_str()
            .unwrap_or_default()
            .contains("restored v1.tgz"),
        "{}",
        r.dump()
    );
    assert_eq!(page(&t, 8080, "/cgi-bin/version"), "prod v1");
    // The data as v1 left it: the user's note kept, v2's migration gone.
    assert_eq!(page(&t, 8080, "/cgi-bin/notes"), "created by v1\nuser note");
    ph.lap("rollback prod (restore snapshot)");

    for env in ["prod", "dev"] {
        let r = run(&["up", env]);
        assert_eq!(
            r.changed(),
            0,
            "second run of {env} changes nothing\n{}",
            r.dump()
        );
    }
    ph.lap("up prod + up dev again (0 changes)");

    // Restart=always: whatever ends the container, systemd starts it again.
    let before = t.exec("systemctl show -p NRestarts --value notes-prod");
    t.exec("docker kill notes-prod")
        .expect("kill the prod container");
    assert_eq!(page(&t, 8080, "/cgi-bin/version"), "prod v1");
    let after = t.exec("systemctl show -p NRestarts --value notes-prod");
    assert_ne!(after, before, "systemd restarted the service");
    assert_eq!(page(&t, 8080, "/cgi-bin/notes"), "created by v1\nuser note");
    ph.lap("container killed, back by systemd");
    println!("{}", ph.summary());
}
