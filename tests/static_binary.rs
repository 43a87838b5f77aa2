//! The one static binary (`scripts/dist.sh`) on a machine it was not built on: copied into a
//! fresh VM (a debootstrap'd Debian with sshd and nothing else, `support/fresh_vm.rs`), it runs
//! `provision up` from there against a second fresh VM it reaches by name through the network's
//! DNS, with a pinned host key: plan, up, up again with 0 changes.
//!
//! The slow group (`scripts/test.sh`) links the binary first, over the test build's
//! dependencies: `PROFILE=dev OUT=target/dist-dev scripts/dist.sh` (seconds; the release build
//! differs only in optimisation). `#[ignore]`d in a plain `cargo test`.

#[path = "support/docker.rs"]
mod docker_support;
#[path = "support/fresh_vm.rs"]
mod fresh;
mod support;

use std::path::PathBuf;

use docker_support::{docker, docker_ok, repo_root};
use fresh::*;
use support::*;

/// What `PROFILE=dev OUT=target/dist-dev scripts/dist.sh` produced.
fn dist_binary() -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    let bin = repo_root().join(format!("target/dist-dev/provision-{version}-x86_64-linux"));
    assert!(
        bin.is_file(),
        "{} is missing: run `PROFILE=dev OUT=target/dist-dev scripts/dist.sh` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

const PLAYBOOK: &str = r#"
[[step]]
name = "marker"
template = { src = "templates/static.txt.j2", dest = "/home/admin/static.txt" }

[[step]]
name = "dir"
directory = { path = "/home/admin/app" }

[[step]]
name = "where"
command = { run = "uname -n > /home/admin/app/where", creates = "/home/admin/app/where" }
"#;

/// `provision ARGS` as admin inside `ctl`, in the copied project.
fn run_in(ctl: &Target, args: &str) -> Run {
    let started = std::time::Instant::now();
    let out = docker_support::docker_out(&[
        "exec",
        "-u",
        "admin",
        "-e",
        "HOME=/home/admin",
        "-e",
        "USER=admin",
        "-e",
        "NO_COLOR=1",
        "-w",
        "/home/admin/proj",
        &ctl.container,
        "sh",
        "-c",
        &format!("provision {args}"),
    ]);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

#[test]
#[ignore = "slow group (fresh VMs): scripts/test.sh runs it after scripts/dist.sh"]
fn the_static_binary_deploys_from_one_fresh_vm_to_another() {
    let mut ph = Phases::start();
    let bin = dist_binary();
    let kind = std::process::Command::new("file")
        .arg("-b")
        .arg(&bin)
        .output()
        .expect("file(1) (scripts/deps.sh installs it)");
    let kind = String::from_utf8_lossy(&kind.stdout).into_owned();
    assert!(kind.contains("static-pie linked"), "{kind}");
    let size = std::fs::metadata(&bin).expect("stat").len();
    println!(
        "static binary: {:.1} MiB ({})",
        size as f64 / 1048576.0,
        kind.split(',').next().unwrap_or("")
    );

    let keys = tempfile::tempdir().expect("keys dir");
    let key = ClientKey::generate(keys.path());
    images();
    ph.lap("fresh-VM images");
    let net = Network::create("static");
    let ctl = Target::start(Variant::Vm, &net, "ctl", key.clone());
    let app = Target::start(Variant::Vm, &net, "app", key.clone());
    ph.lap("two fresh VMs");

    // The controller VM: the binary, the key, a project reaching `app` by its DNS name.
    let p = Project::new();
    p.write(
        "provision.toml",
        &format!(
            "app = \"static\"\n\n[ssh]\nidentity_file = \"/home/admin/proj/deploy_key\"\n\
             known_hosts = \"strict\"\nhost_key = {host_key:?}\nconfig = \"none\"\n\
             connect_timeout = \"10s\"\n\n[env.vm]\nhosts = [\"admin@{host}\"]\n",
            host_key = app.host_key,
            host = app.container,
        ),
    );
    p.write("playbooks/deploy.toml", PLAYBOOK);
    p.write(
        "templates/static.txt.j2",
        "deployed by the static binary to {{ host.name }}\n",
    );
    std::fs::copy(&key.private, p.path("deploy_key")).expect("copy the key");
    docker(&[
        "cp",
        &bin.display().to_string(),
        &format!("{}:/usr/local/bin/provision", ctl.container),
    ]);
    docker(&[
        "cp",
        &p.dir.path().display().to_string(),
        &format!("{}:/home/admin/proj", ctl.container),
    ]);
    ctl.exec(
        "chmod 755 /usr/local/bin/provision && chown -R admin: /home/admin/proj \
         && chmod 600 /home/admin/proj/deploy_key",
    )
    .expect("set up the controller VM");
    // `ldd` of the VM's own glibc agrees: nothing to load.
    let ldd = docker_ok(&[
        "exec",
        &ctl.container,
        "sh",
        "-c",
        "ldd /usr/local/bin/provision 2>&1; true",
    ])
    .unwrap_or_default();
    assert!(
        ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
        "ldd on the fresh VM: {ldd}"
    );

    let version = run_in(&ctl, "--version");
    assert_eq!(version.code, 0, "{}", version.dump());
    let plan = run_in(&ctl, "plan vm --output json");
    assert_eq!(plan.code, 0, "{}", plan.dump());
    let up = run_in(&ctl, "up vm --output json");
    assert_eq!(up.code, 0, "{}", up.dump());
    assert_eq!(up.changed(), 3, "{}", up.dump());
    assert_eq!(
        plan.steps_with("changed"),
        up.steps_with("changed"),
        "plan predicted\n{}",
        plan.dump()
    );
    let again = run_in(&ctl, "up vm --output json");
    assert_eq!(again.code, 0, "{}", again.dump());
    assert_eq!(again.changed(), 0, "second up\n{}", again.dump());
    ph.lap("plan, up, up from the controller VM");

    assert_eq!(
        app.exec("cat /home/admin/static.txt").as_deref(),
        Some(format!("deployed by the static binary to {}", app.container).as_str()),
        "the template rendered on the controller VM, written on the app VM"
    );
    assert_eq!(
        app.exec("cat /home/admin/app/where")
            .map(|s| s.trim().to_string()),
        Some("app".to_string()),
        "the command ran on the app VM"
    );
    // A name that does not resolve is the resolver's clear error, not a crash.
    ctl.exec(
        "sed -i 's/admin@pfv[^\"]*/admin@no-such-host.invalid/' /home/admin/proj/provision.toml",
    )
    .expect("point the project at a name that does not resolve");
    let bad = run_in(&ctl, "exec vm -- true");
    assert_ne!(bad.code, 0, "{}", bad.dump());
    assert!(!bad.stderr.contains("panicked"), "{}", bad.dump());
    println!("{}", ph.summary());
}
