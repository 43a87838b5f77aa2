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
//! rollback) to a fresh VM too: it needs systemd, which the loopback targets lack; and
//! `todomvc_ec2_…` deploys `examples/todomvc-ec2` with EC2 on `moto_server`, its instance
//! mapped to a fresh VM by an ssh_config `Host *`; `vagrant_up_…` runs a real
//! `vagrant up --provider=docker` of two machines on the fresh-VM image and deploys through
//! `vagrant = "<dir>"`.
//!
//! Every test is `#[ignore]`d: `cargo test` runs the fast suite; `scripts/test.sh` runs this
//! group after it (`cargo test --test fresh_vm -- --ignored --nocapture`). Wall times of each
//! phase are printed (`[phase] …`).

#[path = "support/docker.rs"]
mod docker_support;
#[path = "support/fresh_vm.rs"]
mod fresh;
#[path = "support/moto.rs"]
mod moto_support;
mod support;

use std::time::{Duration, Instant};

use fresh::*;
use moto_support::Moto;
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

/// Without `ssh.become` the deploy user `admin` (sudo without a password) runs every step
/// itself: `docker_install` goes through `sudo -n` to install and start Docker and add
/// `admin` to `docker`, and the steps after it run `docker` as `admin` in the same run. That
/// session's groups were fixed at login, so provision logs in again after the change.
#[test]
#[ignore = "slow group (fresh VMs): scripts/test.sh runs it; cargo test --test fresh_vm -- --ignored"]
fn docker_install_without_systemd_starts_dockerd_for_a_non_root_deploy_user() {
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
        airgap_steps_in("/home/admin/images", "images/base-images.tar.gz")
    );
    let p = project(&t, "", &playbook);
    let toml = std::fs::read_to_string(p.path("provision.toml")).unwrap();
    let sudo_all = "ssh = { become = true }\n";
    assert!(toml.contains(sudo_all));
    p.write("provision.toml", &toml.replace(sudo_all, ""));

    let r = up(&p);
    r.expect_code(0);
    print_steps(&r);
    assert!(
        r.step("docker")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("start dockerd, add admin to the docker group"),
        "without systemd, docker_install starts dockerd itself\n{}",
        r.dump()
    );
    // The new login: the host connected twice, and the run's round trips count it.
    assert_eq!(r.events_of("host_connected").len(), 2, "{}", r.dump());
    assert_eq!(r.step("load images")["status"], "changed", "{}", r.dump());
    ph.lap("first up as admin (sudo apt docker.io, dockerd, relogin, load, run)");
    assert!(t.exec("pgrep -x dockerd").is_some(), "dockerd runs");
    assert_eq!(
        t.exec("docker inspect -f '{{.State.Running}}' probe")
            .as_deref(),
        Some("true")
    );
    assert_eq!(
        t.exec("stat -c %U /home/admin/images/base-images.tar.gz")
            .as_deref(),
        Some("admin"),
        "the steps ran as admin, not root"
    );
    let r = up(&p);
    r.expect_code(0);
    assert_eq!(r.changed(), 0, "second run changes nothing\n{}", r.dump());
    assert_eq!(r.events_of("host_connected").len(), 1, "{}", r.dump());
    ph.lap("second up (0 changes, one login)");
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
    let t = Target::start(
        Variant::VmDocker,
        &net,
        "dp",
        ClientKey::generate(keydir.path()),
    );
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
    ph.lap("up prod v1 (Docker preinstalled: group + relogin; apt curl, build, unit)");
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

/// The binary on `p` with test AWS credentials and the emulator's endpoint.
fn run_aws(p: &Project, moto: &Moto, args: &[&str]) -> Run {
    run_env(
        p,
        args,
        &[
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("AWS_ENDPOINT_URL", moto.url()),
        ],
    )
}

/// The binary on `p` (like `Project::run`) with extra environment variables.
fn run_env(p: &Project, args: &[&str], env: &[(&str, String)]) -> Run {
    let started = Instant::now();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_provision"));
    cmd.arg("-C")
        .arg(p.dir.path())
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("AWS_PROFILE")
        .env("HOME", &p.home)
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the provision binary");
    let r = Run {
        code: out.status.code().expect("provision killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    };
    eprintln!(
        "$ provision {} → exit {} in {:?}",
        args.join(" "),
        r.code,
        r.elapsed
    );
    r
}

#[test]
#[ignore = "slow group (fresh VMs): scripts/test.sh runs it; cargo test --test fresh_vm -- --ignored"]
fn todomvc_ec2_example_on_the_emulator_and_a_fresh_vm() {
    let mut ph = Phases::start();
    images();
    let net = Network::create("todo");
    let repos = tempfile::Builder::new()
        .prefix("prov-fv-git-")
        .tempdir()
        .expect("git dir");
    let example = docker_support::repo_root().join("examples/todomvc-ec2");
    let (bare, work) = repo_from(repos.path(), "todo", &example.join("app"));
    let _git = GitServer::start(&net, repos.path());
    let keydir = tempfile::tempdir().expect("key dir");
    let t = Target::start(
        Variant::VmDocker,
        &net,
        "todo",
        ClientKey::generate(keydir.path()),
    );
    let moto = Moto::start();
    ph.lap("target boot + moto_server");

    // The example as shipped; the test changes only where things are: the emulator's region
    // and AMI, the key, the repo on the target's network, an ssh_config mapping every instance
    // address (moto's fake IPs) to the fresh VM, and the local PostgreSQL image.
    let p = Project::new();
    docker_support::copy_dir(&example, p.dir.path());
    save_base_images(&p.path("images/base-images.tar.gz"));
    p.write(
        "ssh_config",
        &format!("Host *\n  HostName 127.0.0.1\n  Port {}\n", t.ssh_port),
    );
    p.write("secrets/prod.env", "DB_PASSWORD=todo-fresh-vm-pw\n");
    let replace = |text: &str, from: &str, to: &str| {
        assert!(text.contains(from), "example lacks {from:?}");
        text.replacen(from, to, 1)
    };
    let key = t.key.private.display().to_string();
    let mut toml = std::fs::read_to_string(p.path("provision.toml")).unwrap();
    for (from, to) in [
        (
            "\"https://github.com/acme/todo.git\"",
            "\"http://git.test/todo.git\"".to_string(),
        ),
        (
            "\"~/.ssh/id_ed25519\"",
            format!("{key:?}\nconfig = \"ssh_config\""),
        ),
        ("\"~/.ssh/id_ed25519.pub\"", format!("\"{key}.pub\"")),
        ("\"eu-west-3\"", "\"us-east-1\"".to_string()),
        ("\"ami-0123456789abcdef0\"", "\"ami-03cf127a\"".to_string()),
        (
            "\"postgres:15\"",
            "\"provision-local/postgres:15\"".to_string(),
        ),
    ] {
        toml = replace(&toml, from, &to);
    }
    p.write("provision.toml", &toml);
    let pb = std::fs::read_to_string(p.path("playbooks/deploy.toml")).unwrap();
    let anchor = "docker_install = {}\n";
    p.write(
        "playbooks/deploy.toml",
        &replace(
            &pb,
            anchor,
            &format!("{anchor}{}", airgap_steps("images/base-images.tar.gz")),
        ),
    );

    let r = run_aws(&p, &moto, &["up", "prod", "--output", "json"]);
    r.expect_code(0);
    print_steps(&r);
    assert!(r.stderr.contains("launched todo-prod-1"), "{}", r.dump());
    ph.lap("up: EC2 (key pair, group, instance) + apt git + deploy (Docker preinstalled)");
    // The emulated account: one instance of ours, its group open on 22 and 80.
    let account = moto.python(
        "g = ec2.describe_security_groups(GroupNames=['provision-todo-prod'])['SecurityGroups'][0]\n\
         rules = sorted('%s %s' % (p['IpProtocol'], p['FromPort']) for p in g['IpPermissions'])\n\
         inst = [i['State']['Name'] for r in ec2.describe_instances()['Reservations'] for i in r['Instances']]\n\
         print(json.dumps([rules, inst]))",
        &[],
    );
    assert_eq!(account, r#"[["tcp 22", "tcp 80"], ["running"]]"#);

    // The app on port 80 of the instance: migrated at start; the token's fingerprint.
    assert_eq!(
        get_until(&t, 80, "/cgi-bin/todos", Duration::from_secs(30)).trim(),
        "[ ] deploy with provision"
    );
    let token = get_until(&t, 80, "/cgi-bin/token", Duration::from_secs(10));
    assert_eq!(token.trim().len(), 12, "{token}");
    let token_file = t
        .exec("cat /srv/todo/app_token")
        .expect("token on the host");
    assert_eq!(token_file.len(), 64, "32 random bytes, hex");
    assert_eq!(
        t.exec("stat -c %a /srv/todo/app_token").as_deref(),
        Some("600")
    );
    ph.lap("smoke (todos, token)");

    let r = run_aws(&p, &moto, &["up", "prod", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.changed(), 0, "second run changes nothing\n{}", r.dump());
    assert!(r.stderr.contains("nothing to change"), "{}", r.dump());
    ph.lap("second up (0 changes, EC2 included)");

    // A new commit with a migration: the app is rebuilt, migrates at start; the token stays.
    std::fs::write(
        work.join("migrations/002_more.sql"),
        "INSERT INTO todos (title, done) VALUES ('keep the token', true);\n",
    )
    .unwrap();
    commit_and_push(&work, &bare, "a second todo");
    let r = run_aws(&p, &moto, &["up", "prod", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.step("secret token")["status"], "ok", "{}", r.dump());
    assert_eq!(r.step("app")["status"], "changed", "{}", r.dump());
    assert_eq!(
        get_until(&t, 80, "/cgi-bin/todos", Duration::from_secs(30)).trim(),
        "[ ] deploy with provision\n[x] keep the token"
    );
    assert_eq!(
        get_until(&t, 80, "/cgi-bin/token", Duration::from_secs(10)),
        token
    );
    assert_eq!(t.exec("cat /srv/todo/app_token"), Some(token_file));
    ph.lap("new commit: rebuild, migration at start, token kept");
    println!("{}", ph.summary());
}

/// A Vagrant project using the docker provider with the fresh-VM image; destroyed on drop.
struct VagrantVms {
    dir: tempfile::TempDir,
}

impl VagrantVms {
    fn vagrant(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("vagrant")
            .args(args)
            .current_dir(self.dir.path())
            .env("DOCKER_HOST", docker_support::DOCKER_HOST)
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .env("VAGRANT_HOME", self.dir.path().join(".vagrant.d"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("vagrant is required (scripts/deps.sh)")
    }
}

impl Drop for VagrantVms {
    fn drop(&mut self) {
        let _ = self.vagrant(&["destroy", "-f"]);
    }
}

#[test]
#[ignore = "slow group (fresh VMs): scripts/test.sh runs it; cargo test --test fresh_vm -- --ignored"]
fn vagrant_up_with_the_docker_provider_then_provision_reads_vagrant_ssh_config() {
    let mut ph = Phases::start();
    images();
    let dir = tempfile::Builder::new()
        .prefix("prov-vagrant-")
        .tempdir()
        .expect("vagrant dir");
    let key = ClientKey::generate(&dir.path().join("key"));
    let keys = dir.path().join("authorized");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("authorized_keys"), format!("{}\n", key.public)).unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir.path())
        .status();
    // The same two machines as vagrant/Vagrantfile (app, db), with the docker provider and
    // the fresh-VM image: systemd, sshd, user admin. SSH published on 127.0.0.1 only.
    let machines: String = ["app", "db"]
        .iter()
        .map(|name| {
            format!(
                r#"
  config.vm.define "{name}" do |node|
    node.vm.network :forwarded_port, guest: 22, host: {port}, host_ip: "127.0.0.1", id: "ssh"
    node.vm.provider "docker" do |d|
      d.image = "{VM_IMAGE}"
      d.has_ssh = true
      d.remains_running = true
      d.create_args = ["--label", "{LABEL}", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--security-opt", "systempaths=unconfined", "--device-cgroup-rule=a *:* rwm",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--tmpfs", "/tmp", "-v", "{keys}:/etc/ssh/test-keys:ro"]
    end
  end
"#,
                port = support::free_port(),
                keys = keys.display(),
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("Vagrantfile"),
        format!(
            "Vagrant.configure(\"2\") do |config|\n  config.ssh.username = \"admin\"\n  \
             config.ssh.private_key_path = {key:?}\n  \
             config.vm.synced_folder \".\", \"/vagrant\", disabled: true\n{machines}end\n",
            key = key.private.display().to_string(),
        ),
    )
    .unwrap();
    let vms = VagrantVms { dir };
    // Vagrant's docker provider lists the engine's networks, then inspects each: a network
    // that a test running beside this one removes in between fails it ("No such object").
    // `vagrant up` goes on from where it stopped, so it is run again then.
    let mut out = vms.vagrant(&["up", "--provider=docker"]);
    for _ in 0..3 {
        let said = [&out.stdout[..], &out.stderr[..]].concat();
        if out.status.success() || !String::from_utf8_lossy(&said).contains("No such object") {
            break;
        }
        eprintln!("vagrant up raced a network removal; again");
        out = vms.vagrant(&["up", "--provider=docker"]);
    }
    assert!(
        out.status.success(),
        "vagrant up --provider=docker:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ph.lap("vagrant up --provider=docker (2 machines)");

    let p = Project::new();
    p.write(
        "provision.toml",
        &format!(
            "app = \"vg\"\n\n[ssh]\nknown_hosts = \"accept-new\"\nconfig = \"none\"\n\n\
             [env.dev]\nvagrant = {:?}\nssh = {{ become = true }}\n",
            vms.dir.path().display().to_string()
        ),
    );
    p.write(
        "playbooks/deploy.toml",
        "[[step]]\nname = \"mark\"\ncommand = { run = \"hostname > /etc/provisioned-by-provision\", creates = \"/etc/provisioned-by-provision\" }\n",
    );
    let env = [("DOCKER_HOST", docker_support::DOCKER_HOST.to_string())];
    let r = run_env(&p, &["hosts", "dev", "--output", "json"], &env);
    r.expect_code(0);
    assert!(
        r.stdout.contains("\"app\"") && r.stdout.contains("\"db\""),
        "{}",
        r.dump()
    );
    let r = run_env(&p, &["up", "dev", "--output", "json"], &env);
    r.expect_code(0);
    assert_eq!(r.changed(), 2, "{}", r.dump());
    ph.lap("provision up (vagrant ssh-config → 2 hosts)");
    for name in ["app", "db"] {
        let out = vms.vagrant(&["ssh", name, "-c", "cat /etc/provisioned-by-provision"]);
        assert!(
            out.status.success() && !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "{name}: the playbook's file, seen through `vagrant ssh`"
        );
    }
    let r = run_env(&p, &["up", "dev", "--output", "json"], &env);
    r.expect_code(0);
    assert_eq!(r.changed(), 0, "{}", r.dump());
    ph.lap("second up (0 changes)");
    drop(vms);
    ph.lap("vagrant destroy -f");
    println!("{}", ph.summary());
}

/// The `systemd` kind on a VM where systemd is PID 1: a unit written, reloaded, enabled and
/// started; a rerun changes nothing; a changed unit file is one daemon-reload and a restart
/// (a new main PID); `stopped` stops it.
#[test]
#[ignore = "slow group (fresh VMs): scripts/test.sh runs it; cargo test --test fresh_vm -- --ignored"]
fn systemd_unit_written_enabled_started_then_restarted_on_change() {
    let mut ph = Phases::start();
    images();
    let net = Network::create("sd");
    let keydir = tempfile::tempdir().expect("key dir");
    let t = Target::start(Variant::Vm, &net, "sd", ClientKey::generate(keydir.path()));
    ph.lap("target boot to ssh");
    let playbook = |exec: &str, state: &str| {
        format!(
            "[[step]]\nname = \"unit\"\n\
             systemd = {{ name = \"pvk-sleep.service\", enabled = true, state = \"{state}\", \
             content = \"[Service]\\nExecStart={exec}\\n[Install]\\nWantedBy=multi-user.target\\n\" }}\n"
        )
    };
    let p = project(&t, "", &playbook("/bin/sleep 100001", "restarted"));
    let plan = p.run(&["plan", "vm", "--output", "json"]);
    plan.expect_code(0);
    assert_eq!(plan.steps_with("changed").len(), 1, "{}", plan.dump());
    let text = plan.step_text("unit");
    assert!(
        text.contains("daemon-reload") && text.contains("enable") && text.contains("start"),
        "{}",
        plan.dump()
    );
    assert_eq!(
        t.exec("systemctl is-active pvk-sleep.service || true")
            .as_deref(),
        Some("inactive")
    );

    let r = up(&p);
    r.expect_code(0);
    assert_eq!(r.changed(), 1, "{}", r.dump());
    assert_eq!(
        t.exec("systemctl is-active pvk-sleep.service").as_deref(),
        Some("active")
    );
    assert_eq!(
        t.exec("systemctl is-enabled pvk-sleep.service").as_deref(),
        Some("enabled")
    );
    let pid = t
        .exec("systemctl show -p MainPID --value pvk-sleep.service")
        .unwrap();
    let r = up(&p);
    r.expect_code(0);
    assert_eq!(r.changed(), 0, "second up changes nothing\n{}", r.dump());
    assert_eq!(
        t.exec("systemctl show -p MainPID --value pvk-sleep.service")
            .unwrap(),
        pid
    );
    ph.lap("write, enable, start; rerun 0 changes");

    p.write(
        "playbooks/deploy.toml",
        &playbook("/bin/sleep 100002", "restarted"),
    );
    let plan = p.run(&["plan", "vm", "--output", "json"]);
    assert!(
        plan.step_text("unit").contains("restart"),
        "{}",
        plan.dump()
    );
    let r = up(&p);
    r.expect_code(0);
    assert_eq!(r.changed(), 1, "{}", r.dump());
    let new_pid = t
        .exec("systemctl show -p MainPID --value pvk-sleep.service")
        .unwrap();
    assert_ne!(new_pid, pid, "a changed unit restarts the service");
    assert_eq!(
        t.exec("systemctl show -p NeedDaemonReload --value pvk-sleep.service")
            .as_deref(),
        Some("no"),
        "the change was reloaded"
    );
    assert!(
        t.exec(&format!("cat /proc/{new_pid}/cmdline | tr '\\0' ' '"))
            .unwrap()
            .contains("100002")
    );
    assert_eq!(up(&p).changed(), 0);

    p.write(
        "playbooks/deploy.toml",
        &playbook("/bin/sleep 100002", "stopped"),
    );
    let r = up(&p);
    r.expect_code(0);
    assert_eq!(r.changed(), 1, "{}", r.dump());
    assert_eq!(
        t.exec("systemctl is-active pvk-sleep.service || true")
            .as_deref(),
        Some("inactive")
    );
    assert_eq!(up(&p).changed(), 0);
    ph.lap("restart on change, stop");
    println!("{}", ph.summary());
}
