//! The `packages` step's dnf and yum paths, for real: Debian's own `dnf`, `rpm` and
//! `createrepo_c` (scripts/deps.sh installs them) against a package repository the test builds.
//!
//! No RPM mirror is reachable, so the RHEL-family host is a real sshd on loopback whose mount
//! namespace differs from this machine's by bind mounts (`Sshd::start_with_binds`): a Rocky Linux
//! (or Amazon Linux) /etc/os-release, an /etc/dnf whose dnf.conf lists only the test's
//! `file://` repository and keeps dnf's cache and history in the test's dir, and an /etc/rpm
//! whose macros give the host an rpm database of its own. Everything else is this machine: the
//! step runs the real `dnf install` / `yum install`, which resolves, downloads and installs
//! with rpm. Packages install their file under /var/lib/provision, which every test sshd
//! has to itself, so nothing lands on the machine the tests run on.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// Fail (never skip) when a tool is missing, saying how to get it.
fn need(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is required for these tests: scripts/deps.sh installs it (Debian packages dnf, rpm, createrepo-c)"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// Which package manager the host offers.
#[derive(Clone, Copy)]
enum Manager {
    /// Rocky Linux 9: dnf on PATH.
    Dnf,
    /// Amazon Linux 2: `yum` on PATH (on RHEL 8+ /usr/bin/yum is the same dnf program), no
    /// `dnf`.
    Yum,
}

/// A RHEL-family "machine" (see the module doc) and the repository its dnf installs from.
struct RpmHost {
    dir: tempfile::TempDir,
    sshd: Sshd,
}

impl RpmHost {
    /// `repo` lists the packages built into the repository; `preinstalled` are recorded in the
    /// host's rpm database before the test starts (they carry no files).
    fn start(key: &ClientKey, manager: Manager, repo: &[&str], preinstalled: &[&str]) -> RpmHost {
        for tool in ["rpmbuild", "createrepo_c", "dnf", "rpm"] {
            need(tool);
        }
        let dir = tempfile::Builder::new()
            .prefix("prov-rpmhost-")
            .tempdir()
            .expect("rpm host dir");
        let m = dir.path();
        for sub in [
            "etc-dnf/repos.d",
            "etc-dnf/vars",
            "etc-rpm",
            "rpmdb",
            "repo",
            "sbin",
        ] {
            std::fs::create_dir_all(m.join(sub)).expect("create rpm host dirs");
        }
        for name in repo {
            build_rpm(m, name, true);
        }
        run(Command::new("createrepo_c").arg("-q").arg(m.join("repo")));
        std::fs::write(
            m.join("etc-rpm/macros"),
            format!("%_dbpath {}\n", m.join("rpmdb").display()),
        )
        .expect("write rpm macros");
        for name in preinstalled {
            let rpm = build_rpm(m, name, false);
            run(Command::new("rpm")
                .arg("--dbpath")
                .arg(m.join("rpmdb"))
                .args(["-i", "--nodeps"])
                .arg(rpm));
        }
        write_dnf_config(m);
        let os_release = match manager {
            Manager::Dnf => {
                "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n"
            }
            Manager::Yum => {
                "NAME=\"Amazon Linux\"\nVERSION=\"2\"\nID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\nVERSION_ID=\"2\"\n"
            }
        };
        std::fs::write(m.join("os-release"), os_release).expect("write os-release");
        // The mount point for the host's rpm macros (Debian's rpm reads /etc/rpm/macros but
        // ships no /etc/rpm); an empty dir changes nothing for this machine.
        std::fs::create_dir_all("/etc/rpm").expect("create /etc/rpm");
        let mut binds: Vec<(PathBuf, PathBuf)> = vec![
            (m.join("os-release"), "/etc/os-release".into()),
            (m.join("etc-dnf"), "/etc/dnf".into()),
            (m.join("etc-rpm"), "/etc/rpm".into()),
        ];
        if let Manager::Yum = manager {
            // /usr/bin/dnf is a symlink to dnf-3: mounting over it hides both, so `yum` is a
            // copy of the dnf-3 program (as /usr/bin/yum is on RHEL) in /usr/local/sbin, which
            // is first on the PATH provision's scripts run with and empty on this machine.
            std::fs::copy("/usr/bin/dnf-3", m.join("sbin/yum")).expect("copy dnf-3 to yum");
            binds.push(("/dev/null".into(), "/usr/bin/dnf".into()));
            binds.push((m.join("sbin"), "/usr/local/sbin".into()));
        }
        let binds: Vec<(&Path, &Path)> = binds
            .iter()
            .map(|(s, p)| (s.as_path(), p.as_path()))
            .collect();
        let sshd = Sshd::start_with_binds(key, &binds);
        RpmHost { dir, sshd }
    }

    /// `rpm -q NAME` against the host's database: the installed version, or None.
    fn installed(&self, name: &str) -> Option<String> {
        let out = Command::new("rpm")
            .arg("--dbpath")
            .arg(self.dir.path().join("rpmdb"))
            .args(["-q", name])
            .output()
            .expect("rpm -q");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The file package `name` installs, as this machine sees it.
    fn payload(&self, name: &str) -> PathBuf {
        self.sshd.state_dir().join("rpm-test").join(name)
    }
}

/// dnf.conf that knows only the test's repository and keeps cache, history and logs in `m`.
fn write_dnf_config(m: &Path) {
    // The stock /etc/dnf (plugins, protected packages, aliases) with our dnf.conf on top.
    run(Command::new("cp")
        .arg("-a")
        .arg("/etc/dnf/.")
        .arg(m.join("etc-dnf")));
    let d = m.display();
    std::fs::write(
        m.join("etc-dnf/dnf.conf"),
        format!(
            "[main]\ngpgcheck=False\nbest=False\nskip_if_unavailable=False\n\
             reposdir={d}/etc-dnf/repos.d\ncachedir={d}/cache\npersistdir={d}/lib-dnf\nlogdir={d}/log\n"
        ),
    )
    .expect("write dnf.conf");
    std::fs::write(
        m.join("etc-dnf/repos.d/provtest.repo"),
        format!("[provtest]\nname=provision test packages\nbaseurl=file://{d}/repo\ngpgcheck=0\n"),
    )
    .expect("write the .repo file");
    // Debian has no package providing system-release(releasever) for dnf to read it from.
    std::fs::write(m.join("etc-dnf/vars/releasever"), "9\n").expect("write releasever");
}

/// `rpmbuild -bb` a noarch package `name` 1.0-1; with `payload` it installs
/// /var/lib/provision/rpm-test/NAME. Its path.
fn build_rpm(m: &Path, name: &str, payload: bool) -> PathBuf {
    let files = if payload {
        format!(
            "%install\nmkdir -p %{{buildroot}}/var/lib/provision/rpm-test\n\
             echo {name} > %{{buildroot}}/var/lib/provision/rpm-test/{name}\n\
             %files\n/var/lib/provision/rpm-test/{name}\n"
        )
    } else {
        "%files\n".to_string()
    };
    let spec = m.join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: provision test package\n\
             License: MIT\nBuildArch: noarch\nAutoReqProv: no\n%description\ntest package\n{files}"
        ),
    )
    .expect("write spec");
    let top = m.join("rpmbuild");
    run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg(&spec));
    let rpm = top.join(format!("RPMS/noarch/{name}-1.0-1.noarch.rpm"));
    if payload {
        std::fs::copy(&rpm, m.join("repo").join(rpm.file_name().unwrap()))
            .expect("copy the package into the repository");
    }
    rpm
}

fn project(host: &RpmHost, key: &ClientKey, playbook: &str) -> Project {
    let p = Project::new();
    p.write(
        "provision.toml",
        &project_toml(
            &format!("rpm-{}", host.sshd.port),
            &[host.sshd.addr("root")],
            key,
            "",
        ),
    );
    p.write("playbooks/deploy.toml", playbook);
    p
}

const PLAYBOOK: &str = r#"
[[step]]
name = "tools"
packages = { names = ["provtest-hello", "provtest-world"] }

[[step]]
name = "already installed"
packages = { names = ["provtest-base"] }
"#;

/// plan predicts, up installs exactly that, the second up changes nothing.
fn converges(host: &RpmHost, p: &Project, manager: &str) {
    let plan = p.run(&["plan", "test", "--output", "json"]);
    plan.expect_code(0);
    assert_eq!(
        plan.steps_with("changed"),
        ["tools".to_string()].into(),
        "{}",
        plan.dump()
    );
    assert_eq!(
        plan.step("tools")["message"],
        format!("install provtest-hello provtest-world ({manager})"),
        "{}",
        plan.dump()
    );
    assert_eq!(
        plan.step("already installed")["status"],
        "ok",
        "{}",
        plan.dump()
    );
    assert_eq!(
        host.installed("provtest-hello"),
        None,
        "plan must not install"
    );
    p.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(2);

    let up = p.run(&["up", "test", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(
        up.steps_with("changed"),
        ["tools".to_string()].into(),
        "{}",
        up.dump()
    );
    assert_eq!(up.changed(), 1, "{}", up.dump());
    for name in ["provtest-hello", "provtest-world"] {
        assert_eq!(
            host.installed(name).as_deref(),
            Some(format!("{name}-1.0-1.noarch").as_str()),
            "{}",
            up.dump()
        );
        assert_eq!(
            std::fs::read_to_string(host.payload(name)).unwrap_or_default(),
            format!("{name}\n"),
            "rpm laid down {name}'s file"
        );
    }

    let again = p.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    assert_eq!(again.step("tools")["status"], "ok", "{}", again.dump());
    p.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn dnf_installs_what_is_missing_from_the_hosts_repository() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let host = RpmHost::start(
        &key,
        Manager::Dnf,
        &["provtest-hello", "provtest-world"],
        &["provtest-base"],
    );
    let p = project(&host, &key, PLAYBOOK);
    converges(&host, &p, "dnf");
}

#[test]
fn yum_is_used_where_dnf_is_not_on_path() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let host = RpmHost::start(
        &key,
        Manager::Yum,
        &["provtest-hello", "provtest-world"],
        &["provtest-base"],
    );
    let p = project(&host, &key, PLAYBOOK);
    converges(&host, &p, "yum");
}

#[test]
fn a_package_the_repositories_lack_fails_with_dnfs_reason() {
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::generate(keys.path());
    let host = RpmHost::start(&key, Manager::Dnf, &["provtest-hello"], &[]);
    let p = project(
        &host,
        &key,
        "[[step]]\nname = \"nope\"\npackages = { names = [\"provtest-hello\", \"provtest-nowhere\"] }\n",
    );
    let up = p.run(&["up", "test", "--output", "json"]);
    up.expect_code(3);
    let step = up.step("nope");
    assert_eq!(step["status"], "failed", "{}", up.dump());
    // The failure carries dnf's own reason (the target alone names both packages).
    let said = format!("{} {}", step["message"], step["output"]);
    assert!(
        said.contains("No match for argument: provtest-nowhere"),
        "the failure says which package dnf could not find: {}",
        up.dump()
    );
    // dnf installs nothing when one name cannot be found.
    assert_eq!(host.installed("provtest-hello"), None, "{}", up.dump());
}
