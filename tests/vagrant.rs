//! Vagrant: the bundled `vagrant/Vagrantfile` validates with Debian's vagrant, and an env
//! reads its hosts and connection settings from `vagrant ssh-config` output
//! (`ssh_config = "<file>"`, here pointing at real sshd servers) or runs `vagrant ssh-config`
//! itself (`vagrant = "<dir>"`).

mod support;

use std::process::{Command, Stdio};

use support::*;

fn vagrant(dir: &std::path::Path, home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("vagrant")
        .args(args)
        .current_dir(dir)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_HOME", home)
        .env("VAGRANT_NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("vagrant is required (scripts/deps.sh installs Debian's vagrant): {e}")
        })
}

#[test]
fn vagrantfile_validates() {
    let home = tempfile::tempdir().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vagrant");
    let out = vagrant(&dir, home.path(), &["validate", "--ignore-provider"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "vagrant validate failed:\n{text}");
    assert!(text.contains("validated successfully"), "{text}");
}

/// What `vagrant ssh-config` prints for one machine (the shape of Vagrant 2.3's output).
fn block(name: &str, port: u16, user: &str, key: &ClientKey) -> String {
    format!(
        "Host {name}\n  HostName 127.0.0.1\n  User {user}\n  Port {port}\n  UserKnownHostsFile /dev/null\n  \
         StrictHostKeyChecking no\n  PasswordAuthentication no\n  IdentityFile {key}\n  IdentitiesOnly yes\n  LogLevel FATAL\n\n",
        key = key.private.display()
    )
}

#[test]
fn ssh_config_file_gives_hosts_and_settings() {
    let p = Project::new();
    let key = ClientKey::generate(&p.path("keys"));
    let app = Sshd::start(&key);
    let db = Sshd::start(&key);
    p.write(
        "vagrant-ssh-config",
        &format!(
            "{}{}Host *\n  ServerAliveInterval 30\n",
            block("app", app.port, "root", &key),
            block("db", db.port, "root", &key)
        ),
    );
    // No identity_file, no hosts: both come from the file.
    p.write(
        "provision.toml",
        "app = \"vg\"\n\n[ssh]\nknown_hosts = \"accept-new\"\nconfig = \"none\"\n\n\
         [env.vagrant]\nssh_config = \"vagrant-ssh-config\"\n",
    );
    let marker = p.remote_path("{{ host.name }}.done");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"mark\"\ncommand = {{ run = \"echo {{{{ host.address }}}}:{{{{ host.port }}}} > {marker}\", creates = \"{marker}\" }}\n"
        ),
    );

    let r = p.run(&["hosts", "vagrant", "--output", "json"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains("\"app\"") && r.stdout.contains("\"db\""),
        "{}",
        r.dump()
    );
    assert!(r.stdout.contains(&app.port.to_string()), "{}", r.dump());

    let r = p.run(&["up", "vagrant", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.changed(), 2, "{}", r.dump());
    for (name, sshd) in [("app", &app), ("db", &db)] {
        let done = std::fs::read_to_string(p.remote.join(format!("{name}.done"))).unwrap();
        assert_eq!(done.trim(), format!("127.0.0.1:{}", sshd.port));
        // The login really went to that server.
        assert!(
            sshd.log().contains("Accepted publickey for root"),
            "{}",
            sshd.log()
        );
    }
    let r = p.run(&["up", "vagrant", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.changed(), 0, "{}", r.dump());

    // `hosts` given: only those, settings still from the file; --limit by name.
    p.write(
        "provision.toml",
        "app = \"vg\"\n\n[ssh]\nknown_hosts = \"accept-new\"\nconfig = \"none\"\n\n\
         [env.vagrant]\nssh_config = \"vagrant-ssh-config\"\nhosts = { web = [\"app\"] }\n",
    );
    let r = p.run(&["up", "vagrant", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.host_steps_with("ok").len(), 1, "{}", r.dump());
}

#[test]
fn vagrant_dir_runs_vagrant_ssh_config() {
    let p = Project::new();
    // A real Vagrantfile whose machine was never created: `vagrant ssh-config` fails, and
    // provision says so and what to do, before contacting anything.
    p.write(
        "vm/Vagrantfile",
        "Vagrant.configure(\"2\") do |config|\n  config.vm.box = \"debian/bookworm64\"\nend\n",
    );
    p.write(
        "provision.toml",
        "app = \"vg\"\n[ssh]\nconfig = \"none\"\n[env.dev]\nvagrant = \"vm\"\n",
    );
    let r = p.run(&["hosts", "dev"]);
    assert_ne!(r.code, 0, "{}", r.dump());
    assert!(
        r.stderr.contains("`vagrant ssh-config` in") && r.stderr.contains("vagrant up"),
        "{}",
        r.dump()
    );
    // No Vagrantfile at all.
    p.write(
        "provision.toml",
        "app = \"vg\"\n[ssh]\nconfig = \"none\"\n[env.dev]\nvagrant = \"nowhere\"\n",
    );
    let r = p.run(&["hosts", "dev"]);
    assert!(r.stderr.contains("no Vagrantfile in"), "{}", r.dump());
    // Both sources at once is a config error.
    p.write(
        "provision.toml",
        "app = \"vg\"\n[env.dev]\nvagrant = \"vm\"\nssh_config = \"x\"\n",
    );
    let r = p.run(&["hosts", "dev"]);
    assert!(
        r.stderr.contains("sets both `vagrant` and `ssh_config`"),
        "{}",
        r.dump()
    );
}
