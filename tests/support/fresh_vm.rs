//! "Fresh VM" targets for the slow test group (`tests/fresh_vm.rs`): containers of the shared
//! test engine made from a debootstrap'd Debian bookworm (`scripts/fresh-vm-image.sh`), with
//! sshd, a sudo user `admin` and nothing else: no Docker, no git.
//!
//! - `Variant::Vm`: systemd is PID 1 (a brand-new cloud VM); `docker restart` is a reboot.
//! - `Variant::VmDocker`: the same VM with Debian's docker.io baked in and enabled (a cloud image
//!   with Docker preinstalled; the login user is not in the docker group). Every test not about
//!   installing Docker starts here, so apt runs once per image build instead of once per test.
//! - `Variant::Bare`: sshd is PID 1, no init system (the `docker_install` fallback path).
//!
//! Each target sits on a user network of its own (created before any inner dockerd starts, so
//! the inner engine's bridge never takes the same subnet), publishes sshd on 127.0.0.1 only,
//! generates its own host keys at first boot, and keeps its own /var/lib/docker on a volume.
//! Privileged mode fails in the sandboxes these tests run in (CAP_SYS_RESOURCE is not in the
//! bounding set), so the targets get every other capability instead.
//! A dumb-HTTP git server (busybox httpd, alias `git.test`) can join the network.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::docker_support::{BASE_IMAGE, DB_IMAGE, docker, docker_host, docker_ok, repo_root};
use crate::support::{ClientKey, free_port, git};

pub const VM_IMAGE: &str = "provision-fresh/vm:bookworm";
pub const VM_DOCKER_IMAGE: &str = "provision-fresh/vm-docker:bookworm";
pub const BARE_IMAGE: &str = "provision-fresh/bare:bookworm";
/// Label on everything the fresh-VM tests create in the engine (for reaping).
pub const LABEL: &str = "provision.test=fresh-vm";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Vm,
    VmDocker,
    Bare,
}

/// Wall time of named phases, printed as they end and summed up at the end.
pub struct Phases {
    started: Instant,
    last: Instant,
    done: Vec<(String, Duration)>,
}

impl Phases {
    pub fn start() -> Phases {
        let now = Instant::now();
        Phases {
            started: now,
            last: now,
            done: Vec::new(),
        }
    }

    /// End the current phase, naming it.
    pub fn lap(&mut self, name: &str) {
        let d = self.last.elapsed();
        self.last = Instant::now();
        println!("[phase] {name}: {:.1}s", d.as_secs_f64());
        self.done.push((name.to_string(), d));
    }

    pub fn summary(&self) -> String {
        let mut s = String::from("phase wall times:\n");
        for (n, d) in &self.done {
            s.push_str(&format!("  {n:<64} {:>7.1}s\n", d.as_secs_f64()));
        }
        s.push_str(&format!(
            "  {:<64} {:>7.1}s\n",
            "total",
            self.started.elapsed().as_secs_f64()
        ));
        s
    }
}

/// The shared engine, with the fresh-VM images built (once per process; the script is
/// idempotent and takes a lock across processes).
pub fn images() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        docker_host();
        reap_stale();
        let started = Instant::now();
        let out = Command::new(repo_root().join("scripts/fresh-vm-image.sh"))
            .env("DOCKER_HOST", crate::docker_support::DOCKER_HOST)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/fresh-vm-image.sh");
        assert!(
            out.status.success(),
            "scripts/fresh-vm-image.sh failed (needs debootstrap: scripts/deps.sh):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "[phase] fresh-VM images ready: {:.1}s",
            started.elapsed().as_secs_f64()
        );
    });
}

/// Remove containers and networks of fresh-VM test processes that are gone.
fn reap_stale() {
    for (kind, fmt) in [("ps -a", "{{.Names}}"), ("network ls", "{{.Name}}")] {
        let mut args: Vec<&str> = kind.split(' ').collect();
        args.extend(["--filter", "label=provision.test=fresh-vm", "--format", fmt]);
        let Some(out) = docker_ok(&args) else {
            continue;
        };
        for name in out.lines() {
            // Names are `pfv<pid>-…`.
            let pid: String = name
                .trim_start_matches("pfv")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let Ok(pid) = pid.parse::<i32>() else {
                continue;
            };
            // SAFETY: signal 0 only checks that the process exists.
            if pid != std::process::id() as i32 && unsafe { libc::kill(pid, 0) } != 0 {
                eprintln!("removing what a dead fresh-VM test left: {name}");
                if kind == "ps -a" {
                    let _ = docker_ok(&["rm", "-f", "-v", name]);
                } else {
                    let _ = docker_ok(&["network", "rm", name]);
                }
            }
        }
    }
}

/// A user network of the shared engine, removed on drop (after the containers on it).
pub struct Network {
    pub name: String,
}

impl Network {
    pub fn create(tag: &str) -> Network {
        let name = format!("pfv{}-{tag}", std::process::id());
        let _ = docker_ok(&["network", "rm", &name]);
        docker(&["network", "create", "--label", LABEL, &name]);
        Network { name }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker_ok(&["network", "rm", &self.name]);
    }
}

/// A fresh-VM target container.
pub struct Target {
    pub container: String,
    pub variant: Variant,
    pub ssh_port: u16,
    /// `ssh-ed25519 AAAA…` of the target's host key (generated at its first boot).
    pub host_key: String,
    pub key: ClientKey,
    /// known_hosts file for the system `ssh` the test uses to look inside.
    known_hosts: PathBuf,
    _keys: tempfile::TempDir,
}

impl Target {
    /// Start a target on `net`, accepting `key` for `admin`.
    pub fn start(variant: Variant, net: &Network, tag: &str, key: ClientKey) -> Target {
        images();
        let container = format!("pfv{}-{tag}", std::process::id());
        let _ = docker_ok(&["rm", "-f", "-v", &container]);
        let keys = tempfile::Builder::new()
            .prefix("prov-fv-keys-")
            .tempdir()
            .expect("keys dir");
        std::fs::write(
            keys.path().join("authorized_keys"),
            format!("{}\n", key.public),
        )
        .expect("write authorized_keys");
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(keys.path())
            .status();
        let image = match variant {
            Variant::Vm => VM_IMAGE,
            Variant::VmDocker => VM_DOCKER_IMAGE,
            Variant::Bare => BARE_IMAGE,
        };
        let keys_mount = format!("{}:/etc/ssh/test-keys:ro", keys.path().display());
        let mut last_err = String::new();
        for _ in 0..5 {
            let ssh_port = free_port();
            let publish = format!("127.0.0.1:{ssh_port}:22");
            let mut args = vec![
                "run",
                "-d",
                "--name",
                &container,
                "--hostname",
                tag,
                "--label",
                LABEL,
                "--network",
                &net.name,
                // "Privileged" minus CAP_SYS_RESOURCE, which these sandboxes lack.
                "--cap-add",
                "ALL",
                "--cap-drop",
                "SYS_RESOURCE",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--security-opt",
                "systempaths=unconfined",
                "--device-cgroup-rule",
                "a *:* rwm",
                "-v",
                "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                "--mount",
                "type=volume,dst=/var/lib/docker",
                "-v",
                &keys_mount,
                "-p",
                &publish,
            ];
            match variant {
                Variant::Vm | Variant::VmDocker => {
                    args.extend(["--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp"])
                }
                Variant::Bare => args.push("--init"),
            }
            args.push(image);
            let out = crate::docker_support::docker_out(&args);
            if out.status.success() {
                let known_hosts = keys.path().join("known_hosts");
                let mut t = Target {
                    container,
                    variant,
                    ssh_port,
                    host_key: String::new(),
                    key,
                    known_hosts,
                    _keys: keys,
                };
                t.wait_ssh(Duration::from_secs(60));
                return t;
            }
            last_err = String::from_utf8_lossy(&out.stderr).into_owned();
            let _ = docker_ok(&["rm", "-f", "-v", &container]);
        }
        panic!("could not start {container}: {last_err}");
    }

    /// Until sshd answers with its banner and the host key exists; records the host key.
    pub fn wait_ssh(&mut self, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            let key = docker_ok(&[
                "exec",
                &self.container,
                "cat",
                "/etc/ssh/ssh_host_ed25519_key.pub",
            ]);
            if let Some(key) = key.filter(|k| k.starts_with("ssh-ed25519 "))
                && banner(self.ssh_port)
            {
                self.host_key = key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                std::fs::write(
                    &self.known_hosts,
                    format!("[127.0.0.1]:{} {}\n", self.ssh_port, self.host_key),
                )
                .expect("write known_hosts");
                return;
            }
            if Instant::now() > deadline {
                let logs =
                    crate::docker_support::docker_out(&["logs", "--tail", "40", &self.container]);
                panic!(
                    "{}: sshd did not answer within {bound:?}\n{}{}",
                    self.container,
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `admin@127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("admin@127.0.0.1:{}", self.ssh_port)
    }

    /// `docker exec <target> sh -c script` (root inside the target): stdout when it succeeded.
    pub fn exec(&self, script: &str) -> Option<String> {
        docker_ok(&["exec", &self.container, "sh", "-c", script])
    }

    /// "Reboot": `docker restart` (systemd shuts down on SIGRTMIN+3 and boots again).
    pub fn reboot(&mut self) {
        docker(&["restart", "-t", "30", &self.container]);
        self.wait_ssh(Duration::from_secs(120));
    }

    /// The system `ssh` to the target as admin, checking the host key.
    pub fn ssh(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-F", "none", "-i"])
            .arg(&self.key.private)
            .args(["-p", &self.ssh_port.to_string()])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=10",
                "admin@127.0.0.1",
            ])
            .stdin(Stdio::null());
        c
    }

    /// Forward a local port to `127.0.0.1:remote_port` on the target (the app binds the
    /// target's loopback): `ssh -N -L`, killed on drop. None when ssh gave up.
    pub fn tunnel(&self, remote_port: u16) -> Option<Tunnel> {
        let local = free_port();
        let child = self
            .ssh()
            .args([
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                &format!("127.0.0.1:{local}:127.0.0.1:{remote_port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh is required (openssh-client)");
        let mut tunnel = Tunnel { port: local, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", local)).is_err() {
            let exited = tunnel.child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(tunnel)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if std::env::var_os("PROVISION_KEEP_FRESH_VM").is_none() {
            let _ = docker_ok(&["rm", "-f", "-v", &self.container]);
        }
    }
}

/// A running `ssh -N -L`; `port` is the local end.
pub struct Tunnel {
    pub port: u16,
    child: Child,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when something on 127.0.0.1:port speaks SSH.
fn banner(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
}

/// A dumb-HTTP git server on `net` (busybox httpd in the local base image), reachable from
/// the targets as `http://git.test/<name>.git`, serving the bare repos in `root`.
pub struct GitServer {
    pub container: String,
}

impl GitServer {
    pub fn start(net: &Network, root: &Path) -> GitServer {
        let container = format!("{}-git", net.name);
        let _ = docker_ok(&["rm", "-f", &container]);
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(root)
            .status();
        docker(&[
            "run",
            "-d",
            "--name",
            &container,
            "--label",
            LABEL,
            "--network",
            &net.name,
            "--network-alias",
            "git.test",
            "-v",
            &format!("{}:/srv:ro", root.display()),
            "--pull",
            "never",
            BASE_IMAGE,
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/srv",
        ]);
        GitServer { container }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = docker_ok(&["rm", "-f", &self.container]);
    }
}

/// A bare repo `<root>/<name>.git` holding `examples/hello`, ready for dumb HTTP.
pub fn hello_repo(root: &Path, name: &str) -> PathBuf {
    repo_from(root, name, &repo_root().join("examples/hello")).0
}

/// A bare repo `<root>/<name>.git` holding the files of `src`, ready for dumb HTTP, and its
/// working clone (`<root>/<name>-work`) for later commits ([`commit_and_push`]).
pub fn repo_from(root: &Path, name: &str, src: &Path) -> (PathBuf, PathBuf) {
    let bare = root.join(format!("{name}.git"));
    std::fs::create_dir_all(&bare).expect("create bare repo");
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    let work = root.join(format!("{name}-work"));
    git(
        root,
        &[
            "clone",
            "-q",
            &bare.display().to_string(),
            &work.display().to_string(),
        ],
    );
    git(&work, &["checkout", "-q", "-B", "main"]);
    crate::docker_support::copy_dir(src, &work);
    commit_and_push(&work, &bare, "initial");
    (bare, work)
}

/// Commit everything in `work`, push it to `bare` and refresh the dumb-HTTP index; the SHA.
pub fn commit_and_push(work: &Path, bare: &Path, message: &str) -> String {
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["push", "-q", "origin", "main"]);
    // Dumb HTTP needs info/refs and objects/info/packs.
    git(bare, &["update-server-info"]);
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(bare)
        .status();
    git(work, &["rev-parse", "HEAD"])
}

/// `docker save` of the local base images, gzipped, at `dest`: what an air-gapped deploy
/// uploads and `docker load`s instead of pulling.
pub fn save_base_images(dest: &Path) {
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"docker save "$1" "$2" | gzip -1 > "$3""#)
        .arg("sh")
        .arg(BASE_IMAGE)
        .arg(DB_IMAGE)
        .arg(dest)
        .env("DOCKER_HOST", crate::docker_support::DOCKER_HOST)
        .output()
        .expect("docker save");
    assert!(
        out.status.success(),
        "docker save failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The air-gapped steps: upload the saved images and load them into the target's engine
/// (once: `unless` they are there).
pub fn airgap_steps(archive_src: &str) -> String {
    airgap_steps_in("/opt/provision-images", archive_src)
}

/// `airgap_steps` with the archive kept in `dir` (e.g. a non-root user's home).
pub fn airgap_steps_in(dir: &str, archive_src: &str) -> String {
    format!(
        r#"
[[step]]
name = "image archive folder"
directory = {{ path = "{dir}", mode = "0755" }}

[[step]]
name = "image archive"
file = {{ src = "{archive_src}", dest = "{dir}/base-images.tar.gz" }}

[[step]]
name = "load images"
command = {{ run = "docker load -q -i {dir}/base-images.tar.gz", unless = "docker image inspect {BASE_IMAGE} {DB_IMAGE} >/dev/null 2>&1" }}
"#
    )
}
