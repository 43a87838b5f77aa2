//! Test harness for end-to-end runs of the `provision` binary against real OpenSSH servers.
//!
//! Every test starts its own `sshd` on 127.0.0.1 (a free port, its own host key and
//! authorized_keys), writes a project into a temp dir and runs the binary on it. Since the
//! "remote" host is this machine, each [`Project`] also gets its own remote root
//! (`/tmp/prov-remote-XXXX`, mode 0777) for the paths its playbook touches.
//!
//! Nothing is mocked and nothing is skipped: without `/usr/sbin/sshd` and `ssh-keygen` the
//! tests fail with a message saying what to install.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const SSHD: &str = "/usr/sbin/sshd";
/// Where provision keeps per-host state (deploy lock, release log) when it logs in as root.
/// Private to each [`Sshd`] (see [`Sshd::state_dir`]).
pub const HOST_STATE_DIR: &str = "/var/lib/provision";
/// How long one run of the binary may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Client keys
// ---------------------------------------------------------------------------------------------

/// An unencrypted ed25519 client key pair.
#[derive(Clone)]
pub struct ClientKey {
    pub private: PathBuf,
    /// The `.pub` line (`ssh-ed25519 AAAA... comment`), trimmed.
    pub public: String,
}

impl ClientKey {
    /// `ssh-keygen -t ed25519 -N ''` into `dir/id_ed25519`.
    pub fn generate(dir: &Path) -> ClientKey {
        std::fs::create_dir_all(dir).expect("create key dir");
        let private = dir.join("id_ed25519");
        keygen(&private);
        let public = read(&pub_path(&private)).trim().to_string();
        assert!(
            public.starts_with("ssh-ed25519 "),
            "unexpected public key: {public}"
        );
        ClientKey { private, public }
    }
}

fn pub_path(private: &Path) -> PathBuf {
    let mut p = private.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// `ssh-keygen -q -t ed25519 -N '' -f path` (path must not exist).
fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "provision-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("ssh-keygen is required for these tests (apt-get install openssh-client): {e}")
        });
    assert!(
        out.status.success(),
        "ssh-keygen failed for {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------------
// sshd
// ---------------------------------------------------------------------------------------------

/// A throwaway OpenSSH server on 127.0.0.1, killed on drop.
pub struct Sshd {
    pub port: u16,
    /// The host public key as `ssh-ed25519 AAAA...` (no comment).
    pub host_pub_key: String,
    /// The address it listens on: 127.0.0.1, or ::1 for the IPv6 tests.
    pub listen: &'static str,
    dir: TempDir,
    child: Option<Child>,
    /// Extra bind mounts (source, mount point) in sshd's mount namespace: what makes this
    /// "machine" differ from the one the tests run on (see [`Sshd::start_with_binds`]).
    binds: Vec<(PathBuf, PathBuf)>,
}

impl Sshd {
    /// Start on a free port with a fresh host key, accepting `key` for every local user.
    pub fn start(key: &ClientKey) -> Sshd {
        Sshd::start_listening(key, "127.0.0.1")
    }

    /// [`Sshd::start`] on another loopback address (`::1`).
    pub fn start_listening(key: &ClientKey, listen: &'static str) -> Sshd {
        Sshd::start_full(key, listen, Vec::new())
    }

    /// [`Sshd::start`] on a "machine" that differs from this one by bind mounts seen only by
    /// sshd and its sessions: each `(source, mount point)` is mounted over the mount point
    /// (which must exist; a file over a file, a dir over a dir). E.g. another
    /// /etc/os-release, or /dev/null over a tool to take it off PATH. The tests' own view of
    /// the filesystem is unchanged.
    pub fn start_with_binds(key: &ClientKey, binds: &[(&Path, &Path)]) -> Sshd {
        let binds = binds
            .iter()
            .map(|(s, m)| (s.to_path_buf(), m.to_path_buf()))
            .collect();
        Sshd::start_full(key, "127.0.0.1", binds)
    }

    fn start_full(key: &ClientKey, listen: &'static str, binds: Vec<(PathBuf, PathBuf)>) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is required for these tests (apt-get install openssh-server)"
        );
        std::fs::create_dir_all("/run/sshd")
            .expect("create /run/sshd (sshd privilege separation dir)");
        let dir = tempfile::Builder::new()
            .prefix("prov-sshd-")
            .tempdir()
            .expect("sshd temp dir");
        // Non-root users read authorized_keys as themselves: the dir must be traversable.
        chmod(dir.path(), 0o755);
        keygen(&dir.path().join("hostkey"));
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{}\n", key.public)).expect("write authorized_keys");
        chmod(&authorized, 0o644);
        let mut sshd = Sshd {
            port: 0,
            host_pub_key: String::new(),
            listen,
            dir,
            child: None,
            binds,
        };
        sshd.host_pub_key = sshd.read_host_pub_key();
        for _ in 0..20 {
            let port = free_port();
            sshd.port = port;
            if sshd.spawn() {
                return sshd;
            }
        }
        panic!("could not start sshd on any free port: {}", sshd.log());
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read_host_pub_key(&self) -> String {
        read(&self.path("hostkey.pub"))
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Accept one more client key (a `.pub` line) from now on.
    pub fn authorize(&self, public: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("authorized_keys"))
            .expect("open authorized_keys");
        writeln!(f, "{}", public.trim()).expect("append to authorized_keys");
    }

    /// The line OpenSSH would put in known_hosts for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_pub_key)
    }

    /// `SHA256:...` of the current host key.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.path("hostkey.pub"))
            .output()
            .expect("ssh-keygen -lf");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }

    /// What this "machine" sees as /var/lib/provision (provision's state as root).
    pub fn state_dir(&self) -> PathBuf {
        self.path("var-lib-provision")
    }

    /// A deploy lock of `app`/`env` as a killed `up` leaves it on this machine (the layout
    /// src/remote/lock.rs writes: a `lock` dir whose `info` holds the owner, then the unix
    /// time it was taken), taken `age` ago. Its path.
    pub fn leave_lock(&self, app: &str, env: &str, owner: &str, age: Duration) -> PathBuf {
        let lock = self.state_dir().join(app).join(env).join("lock");
        std::fs::create_dir_all(&lock).expect("create the lock dir");
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .saturating_sub(age)
            .as_secs();
        let info = lock.join("info");
        std::fs::write(&info, format!("{owner}\n{since}\n")).expect("write lock info");
        // A lock left behind is not refreshed any more: its last heartbeat (the info file's
        // mtime) is as old as the lock.
        let then = std::time::SystemTime::now() - age;
        std::fs::File::options()
            .write(true)
            .open(&info)
            .and_then(|f| f.set_modified(then))
            .expect("date the lock info back");
        lock
    }

    /// Until no session of this server is left (sshd has no child process), at most
    /// `timeout`: the remote side of a client that was killed can run on for a while.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        loop {
            let children = Command::new("pgrep")
                .args(["-P", &pid.to_string()])
                .output()
                .expect("run pgrep (procps)");
            if children.stdout.is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What sshd logged so far (it runs with `-e`, so this is everything).
    pub fn log(&self) -> String {
        read(&self.path("sshd.log"))
    }

    /// `user@127.0.0.1:PORT`, a host string for provision.toml.
    pub fn addr(&self, user: &str) -> String {
        format!("{user}@127.0.0.1:{}", self.port)
    }

    /// The name provision gives this host in its output (`127.0.0.1:PORT`).
    pub fn name(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Same port, new host key: what a reinstalled (or impersonated) server looks like.
    pub fn regenerate_host_key(&mut self) {
        self.stop();
        for f in ["hostkey", "hostkey.pub"] {
            std::fs::remove_file(self.path(f)).expect("remove old host key");
        }
        keygen(&self.path("hostkey"));
        self.host_pub_key = self.read_host_pub_key();
        // The old listener is gone at once (sshd sets SO_REUSEADDR), but give it a few tries.
        for _ in 0..10 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("sshd did not restart on port {}: {}", self.port, self.log());
    }

    /// Kill the server (also done on drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start sshd on `self.port`. False when it exited at once (port taken meanwhile).
    fn spawn(&mut self) -> bool {
        let d = self.dir.path().display();
        let config = format!(
            "Port {port}\n\
             ListenAddress {listen}\n\
             HostKey {d}/hostkey\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\n\
             StrictModes no\n\
             UsePAM no\n\
             PermitRootLogin yes\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             MaxStartups 200\n\
             MaxSessions 20\n\
             AllowTcpForwarding yes\n\
             LogLevel VERBOSE\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n\
             # Root's rc files are this machine's, not under test: bash reads ~/.bashrc for an\n\
             # ssh command only at shell level 1, and a root .bashrc running `pyenv rehash` (a\n\
             # lock held up to 60 s) stalls concurrent logins. The rc-file tests use other users.\n\
             Match User root\n\
             \x20   SetEnv SHLVL=1\n",
            port = self.port,
            listen = self.listen,
        );
        std::fs::write(self.path("sshd_config"), config).expect("write sshd_config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("sshd.log"))
            .expect("open sshd.log");
        let before = self.log().len();
        // Every server stands for its own machine, so each gets a private /var/lib/provision
        // (where provision keeps its per-host state, such as the deploy lock): sshd runs in its
        // own mount namespace with its state dir bound there. Nothing else is private.
        let state = self.state_dir();
        std::fs::create_dir_all(&state).expect("create sshd state dir");
        chmod(&state, 0o755);
        std::fs::create_dir_all(HOST_STATE_DIR).expect("create the /var/lib/provision mount point");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(
                "while [ \"$1\" != -- ]; do mount --bind \"$1\" \"$2\" || exit 97; shift 2; done; \
                 shift; exec \"$@\"",
            )
            .arg("sh")
            .arg(&state)
            .arg(HOST_STATE_DIR);
        for (source, point) in &self.binds {
            cmd.arg(source).arg(point);
        }
        let child = cmd
            .arg("--")
            .args([SSHD, "-D", "-e", "-f"])
            .arg(self.path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {SSHD} through `unshare` (util-linux; needs root): {e}")
            });
        self.child = Some(child);
        self.wait_listening(before)
    }

    /// Until sshd says it listens on our port and the port accepts TCP (10 s at most).
    fn wait_listening(&mut self, log_from: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listening = format!("Server listening on {} port {}", self.listen, self.port);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("child")
                .try_wait()
                .expect("try_wait sshd")
            {
                let log = self.log();
                assert_ne!(
                    status.code(),
                    Some(97),
                    "cannot bind-mount a private {HOST_STATE_DIR} (or {:?}) for sshd (needs root and `unshare`): {log}",
                    self.binds
                );
                eprintln!("sshd on port {} exited ({status}): {log}", self.port);
                self.child = None;
                return false;
            }
            let logged = self
                .log()
                .get(log_from..)
                .is_some_and(|l| l.contains(&listening));
            if logged && std::net::TcpStream::connect((self.listen, self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.log();
        self.stop();
        panic!(
            "sshd did not listen on port {} within 10s: {log}",
            self.port
        );
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long a test waits for something that should happen "soon" (a marker file, a log line,
/// a process to go away). Generous: on a loaded 2-core runner, seconds become tens of seconds,
/// and a condition that is met is met long before this.
pub const SOON: Duration = Duration::from_secs(30);

/// Poll `cond` every 20 ms until it holds; panic naming `what` after `timeout`. For waiting on
/// states and events instead of sleeping a fixed time and hoping.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A port nothing listens on: an unreachable host.
pub fn closed_port() -> u16 {
    free_port()
}

// ---------------------------------------------------------------------------------------------
// Local users
// ---------------------------------------------------------------------------------------------

/// Create a local user if missing (home under /home, shell /bin/sh) and make sure sshd accepts
/// it without PAM (a `!` locked password would be refused). `sudo` adds
/// `/etc/sudoers.d/<name>` with passwordless sudo. Idempotent and safe across threads and
/// processes (a file lock around the whole thing).
pub fn ensure_user(name: &str, sudo: bool) {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/provision-test-users.lock")
        .expect("open user lock file");
    lock.lock().expect("lock user lock file");

    let exists = Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let out = Command::new("useradd")
            .args(["-m", "-d", &format!("/home/{name}"), "-s", "/bin/sh", name])
            .output()
            .expect("useradd is required (passwd package)");
        // 9: the user exists (created by a process that does not take our lock).
        assert!(
            out.status.success() || out.status.code() == Some(9),
            "useradd {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shadow = read(Path::new("/etc/shadow"));
    let locked = shadow
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .is_some_and(|rest| rest.starts_with('!'));
    if locked {
        // `*`: no password login, but not "locked" for sshd with UsePAM no.
        let out = Command::new("usermod")
            .args(["-p", "*", name])
            .output()
            .expect("usermod");
        assert!(
            out.status.success(),
            "usermod -p '*' {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let home = PathBuf::from(format!("/home/{name}"));
    if !home.is_dir() {
        std::fs::create_dir_all(&home).expect("create home");
        let _ = Command::new("chown")
            .arg(format!("{name}:"))
            .arg(&home)
            .status();
    }
    if sudo {
        let file = PathBuf::from(format!("/etc/sudoers.d/{name}"));
        let want = format!("{name} ALL=(ALL:ALL) NOPASSWD: ALL\n");
        if read(&file) != want {
            let tmp = PathBuf::from(format!("/etc/sudoers.d/.{name}.tmp"));
            std::fs::write(&tmp, &want).expect("write sudoers file");
            chmod(&tmp, 0o440);
            std::fs::rename(&tmp, &file).expect("install sudoers file");
        }
    }
    let _ = lock.unlock();
}

/// [`ensure_user`] without passwordless sudo: `name` gets `password` and may sudo to anyone
/// with it (`ALL=(ALL:ALL) ALL`), as on a server where sudo asks for the password.
pub fn ensure_password_sudoer(name: &str, password: &str) {
    ensure_user(name, false);
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .expect("chpasswd is required (passwd package)");
    use std::io::Write;
    let line = format!("{name}:{password}\n");
    chpasswd
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    assert!(chpasswd.wait().unwrap().success(), "chpasswd {name}");
    let file = PathBuf::from(format!("/etc/sudoers.d/{name}"));
    let tmp = PathBuf::from(format!("/etc/sudoers.d/.{name}.tmp"));
    std::fs::write(&tmp, format!("{name} ALL=(ALL:ALL) ALL\n")).expect("write sudoers file");
    chmod(&tmp, 0o440);
    std::fs::rename(&tmp, &file).expect("install sudoers file");
}

/// A private ssh-agent (`ssh-agent -D -a <sock>`) holding `keys` in that order; killed on drop.
pub struct SshAgent {
    child: Child,
    pub sock: PathBuf,
}

impl SshAgent {
    pub fn start(sock: &Path, keys: &[&Path]) -> SshAgent {
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent is required (openssh-client)");
        let agent = SshAgent {
            child,
            sock: sock.to_path_buf(),
        };
        wait_until("ssh-agent creates its socket", SOON, || sock.exists());
        for key in keys {
            let out = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", sock)
                .output()
                .expect("ssh-add");
            assert!(
                out.status.success(),
                "ssh-add {}: {}",
                key.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        agent
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Projects and runs
// ---------------------------------------------------------------------------------------------

/// A provision project in a temp dir, an empty HOME, and a per-test remote root.
pub struct Project {
    pub dir: TempDir,
    /// Empty home for the binary (no ~/.ssh, no agent).
    pub home: PathBuf,
    /// Per-test root for every path the playbook touches "remotely" (mode 0777).
    pub remote: PathBuf,
    _home: TempDir,
    _remote: TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("prov-project-")
            .tempdir()
            .expect("project dir");
        let home_dir = tempfile::Builder::new()
            .prefix("prov-home-")
            .tempdir()
            .expect("home dir");
        let remote_dir = tempfile::Builder::new()
            .prefix("prov-remote-")
            .tempdir_in("/tmp")
            .expect("remote dir");
        chmod(remote_dir.path(), 0o777);
        Project {
            home: home_dir.path().to_path_buf(),
            remote: remote_dir.path().to_path_buf(),
            dir,
            _home: home_dir,
            _remote: remote_dir,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `remote` joined with `rel`, as a string for playbooks.
    pub fn remote_path(&self, rel: &str) -> String {
        self.remote.join(rel).display().to_string()
    }

    /// Write a project file, creating its parents.
    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dirs");
        }
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Run the binary on this project (120 s at most).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_timeout(args, RUN_TIMEOUT)
    }

    /// [`Project::run`] with more environment variables: secrets passed in provision's
    /// environment, as a CI job passes them (120 s at most).
    pub fn run_env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&self, args: &[&str], env: &[(K, V)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        wait_for(cmd, args, RUN_TIMEOUT)
    }

    /// [`Project::run_env`] with another time limit.
    pub fn run_timeout_env<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        &self,
        args: &[&str],
        env: &[(K, V)],
        timeout: Duration,
    ) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        wait_for(cmd, args, timeout)
    }

    /// [`Project::run`] with another time limit.
    pub fn run_timeout(&self, args: &[&str], timeout: Duration) -> Run {
        wait_for(self.command(args), args, timeout)
    }

    /// The binary on this project as [`Project::run`] starts it (empty HOME, no ssh agent,
    /// `CI=1`, `NO_COLOR=1`; stdin empty, stdout and stderr piped), not started yet: for tests
    /// that must act while it runs (signal it, kill it, read its events as they come).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provision"));
        cmd.arg("-C")
            .arg(self.dir.path())
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SSH_AGENT_PID")
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env("CI", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// Start `cmd` (from [`Project::command`]) and collect its [`Run`], failing the test after
/// `timeout`.
fn wait_for(mut cmd: Command, args: &[&str], timeout: Duration) -> Run {
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run the provision binary");
    let stdout = reader(child.stdout.take().expect("stdout"));
    let stderr = reader(child.stderr.take().expect("stderr"));
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for provision") {
            break Some(s);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    let Some(status) = status else {
        panic!(
            "provision {args:?} ran longer than {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    };
    let code = status.code().unwrap_or_else(|| {
        panic!("provision {args:?} killed by a signal ({status})\nstderr:\n{stderr}")
    });
    let run = Run {
        code,
        stdout,
        stderr,
        elapsed: started.elapsed(),
    };
    eprintln!(
        "$ provision {} → exit {} in {:?}",
        args.join(" "),
        run.code,
        run.elapsed
    );
    run
}

impl Default for Project {
    fn default() -> Self {
        Project::new()
    }
}

/// Read a child's pipe to its end on a thread of its own (so neither of a child's two pipes
/// can fill up and block it while the other is read); `join` gives the text, lossy UTF-8.
pub fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// One finished run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// stdout parsed as NDJSON (for `--output json` runs); every line must be an event.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("stdout line is not JSON ({e}): {l}\n{}", self.dump())
                })
            })
            .collect()
    }

    /// Events of one kind (`step_finished`, `host_finished`, ...).
    pub fn events_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// The `run_finished` event (panics when there is none).
    pub fn finished(&self) -> serde_json::Value {
        let mut f = self.events_of("run_finished");
        assert_eq!(
            f.len(),
            1,
            "expected one run_finished event\n{}",
            self.dump()
        );
        f.remove(0)
    }

    fn total(&self, what: &str) -> usize {
        let f = self.finished();
        f["totals"][what]
            .as_u64()
            .unwrap_or_else(|| panic!("run_finished has no totals.{what}: {f}")) as usize
    }

    pub fn changed(&self) -> usize {
        self.total("changed")
    }

    pub fn failed(&self) -> usize {
        self.total("failed")
    }

    pub fn ok(&self) -> usize {
        self.total("ok")
    }

    pub fn skipped(&self) -> usize {
        self.total("skipped")
    }

    /// Round trips over all hosts (from `host_finished`).
    pub fn round_trips(&self) -> usize {
        self.events_of("host_finished")
            .iter()
            .map(|e| e["round_trips"].as_u64().expect("round_trips") as usize)
            .sum()
    }

    /// `(host, step, status)` of every `step_finished` event, in output order.
    pub fn step_statuses(&self) -> Vec<(String, String, String)> {
        self.events_of("step_finished")
            .iter()
            .map(|e| {
                let s = |k: &str| {
                    e[k].as_str()
                        .unwrap_or_else(|| panic!("step_finished without {k}: {e}"))
                        .to_string()
                };
                (s("host"), s("step"), s("status"))
            })
            .collect()
    }

    /// Names of the steps with `status`, over all hosts.
    pub fn steps_with(&self, status: &str) -> BTreeSet<String> {
        self.step_statuses()
            .into_iter()
            .filter(|(_, _, s)| s == status)
            .map(|(_, step, _)| step)
            .collect()
    }

    /// `(host, step)` pairs with `status`.
    pub fn host_steps_with(&self, status: &str) -> BTreeSet<(String, String)> {
        self.step_statuses()
            .into_iter()
            .filter(|(_, _, s)| s == status)
            .map(|(h, step, _)| (h, step))
            .collect()
    }

    /// The `step_finished` event of `step` (on the only host that ran it).
    /// The `message` and `output` of a step's `step_finished` event, joined.
    pub fn step_text(&self, step: &str) -> String {
        let e = self.step(step);
        format!(
            "{}\n{}",
            e["message"].as_str().unwrap_or_default(),
            e["output"].as_str().unwrap_or_default()
        )
    }

    pub fn step(&self, step: &str) -> serde_json::Value {
        let mut found: Vec<_> = self
            .events_of("step_finished")
            .into_iter()
            .filter(|e| e["step"] == step)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one step_finished for `{step}`\n{}",
            self.dump()
        );
        found.remove(0)
    }

    /// Panic (with the whole output) unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.dump());
        self
    }

    /// Everything the run printed, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A provision.toml for `hosts`: `[ssh]` with the client key, `known_hosts = "accept-new"`,
/// `config = "none"` and `extra_ssh` lines, then `[env.test]` with the hosts. The text ends
/// inside `[env.test]`, so more env keys (`secrets = ...`, `ssh = {...}`) can be appended.
pub fn project_toml(app: &str, hosts: &[String], key: &ClientKey, extra_ssh: &str) -> String {
    let hosts = hosts
        .iter()
        .map(|h| format!("{h:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "app = {app:?}\n\n[ssh]\nidentity_file = {key:?}\nknown_hosts = \"accept-new\"\nconfig = \"none\"\n{extra_ssh}\n\n[env.test]\nhosts = [{hosts}]\n",
        key = key.private.display().to_string(),
    )
}

/// Start `n` servers accepting `key`.
pub fn start_many(key: &ClientKey, n: usize) -> Vec<Sshd> {
    (0..n).map(|_| Sshd::start(key)).collect()
}

/// The `[env.test]` line that makes `secrets/test.env` the environment's secrets file (append
/// it to [`project_toml`]'s text, or pass it as `env_extra`).
pub const SECRETS_ENV: &str = "secrets = \"secrets/test.env\"\n";

/// A client key in a temp dir of its own and `n` servers accepting it: how nearly every test
/// that talks to hosts starts. The key dir, which no project owns, lives exactly as long as the
/// servers.
pub struct Servers {
    // Fields drop in this order: every sshd is stopped before the key and its dir go away.
    pub sshds: Vec<Sshd>,
    pub key: ClientKey,
    _key_dir: TempDir,
}

impl Servers {
    pub fn start(n: usize) -> Servers {
        let key_dir = tempfile::tempdir().expect("key dir");
        let key = ClientKey::generate(key_dir.path());
        Servers {
            sshds: start_many(&key, n),
            key,
            _key_dir: key_dir,
        }
    }

    /// The first server: the one host of a single-host test.
    pub fn sshd(&self) -> &Sshd {
        self.sshds.first().expect("no server was started")
    }

    /// [`project_toml`] for every server as `user`, with this key.
    pub fn project_toml(&self, app: &str, user: &str, extra_ssh: &str) -> String {
        let hosts: Vec<String> = self.sshds.iter().map(|s| s.addr(user)).collect();
        project_toml(app, &hosts, &self.key, extra_ssh)
    }

    /// A new project whose provision.toml is [`Servers::project_toml`] with `env_extra`
    /// appended to `[env.test]`.
    pub fn project(&self, app: &str, user: &str, extra_ssh: &str, env_extra: &str) -> Project {
        let p = Project::new();
        p.write(
            "provision.toml",
            &format!("{}{env_extra}", self.project_toml(app, user, extra_ssh)),
        );
        p
    }
}

/// [`Servers`] and a project deploying to all of them as root: a test's whole setup in one
/// line, the playbook left to the test.
pub struct Setup {
    // Fields drop in this order: the project before the servers it deploys to.
    pub p: Project,
    pub servers: Servers,
}

impl Setup {
    /// `n` servers and a project `app` on them, with `extra_ssh` in `[ssh]`.
    pub fn new(app: &str, n: usize, extra_ssh: &str) -> Setup {
        Setup::with_env(app, n, extra_ssh, "")
    }

    /// [`Setup::new`] with `env_extra` appended to `[env.test]` (`secrets = ...`, `vars = ...`).
    pub fn with_env(app: &str, n: usize, extra_ssh: &str, env_extra: &str) -> Setup {
        let servers = Servers::start(n);
        Setup {
            p: servers.project(app, "root", extra_ssh, env_extra),
            servers,
        }
    }

    /// The first server: the one host of a single-host test.
    pub fn sshd(&self) -> &Sshd {
        self.servers.sshd()
    }
}

/// Run a git command (as root, with a fixed identity), panicking with its output on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.email=test@example.com",
            "-c",
            "user.name=Provision Test",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git is required for these tests");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Mode bits (`0o7777`) of a path.
pub fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Owner uid of a path.
pub fn uid_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .uid()
}

/// The uid of a local user.
pub fn uid_of_user(name: &str) -> u32 {
    let out = Command::new("id").arg("-u").arg(name).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no user {name}"))
}

/// Wait for `child` (bounded by `bound`) while sampling its peak RSS (VmHWM, KiB) every 20 ms.
/// VmHWM is a high-water mark, so one late sample would do; but a run that ended before the
/// first sample (or a /proc that cannot be read) must not pass as "0 KiB": that fails here.
pub fn wait_sampling_peak(child: &mut std::process::Child, bound: Duration) -> Sampled {
    let pid = child.id();
    let started = std::time::Instant::now();
    let (mut peak, mut samples) = (0, 0);
    let status = loop {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak = peak.max(kib);
            samples += 1;
        }
        if let Some(s) = child.try_wait().expect("wait for provision") {
            break s;
        }
        assert!(started.elapsed() < bound, "still running after {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(samples > 0, "no VmHWM sample of provision was taken");
    Sampled {
        status,
        peak_kib: peak,
        samples,
    }
}

/// How a sampled process ended, its peak RSS and how many samples saw it.
pub struct Sampled {
    pub status: std::process::ExitStatus,
    pub peak_kib: u64,
    pub samples: usize,
}

/// A process's peak RSS so far (VmHWM), in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
