//! The SSH transport against real OpenSSH servers started by the tests themselves (no mocks).
//! Needs /usr/sbin/sshd and ssh-keygen; fails loudly when they are missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use provision::transport::ssh::SshSession;
use provision::transport::{ConnectError, ConnectSpec, ExecError, KnownHostsPolicy, Transport};
use sha2::{Digest, Sha256};

const SSHD: &str = "/usr/sbin/sshd";
const LONG: Duration = Duration::from_secs(30);

/// Ports handed out to sshd instances of this test binary (22500-22599).
static NEXT_PORT: AtomicU16 = AtomicU16::new(22500);

/// A throwaway sshd on 127.0.0.1 with its own host key and authorized client key.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    extra: String,
    child: Option<Child>,
}

impl Sshd {
    fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// `extra` is appended to sshd_config.
    fn start_with(extra: &str) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is required for these tests (apt-get install openssh-server)"
        );
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (privilege separation dir)");
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("hostkey"), "");
        keygen(&dir.path().join("client"), "");
        keygen(&dir.path().join("client_enc"), "s3cret passphrase");
        keygen(&dir.path().join("stranger"), "");
        let mut authorized = read(&dir.path().join("client.pub"));
        authorized.push_str(&read(&dir.path().join("client_enc.pub")));
        std::fs::write(dir.path().join("authorized_keys"), authorized).unwrap();
        let mut sshd = Sshd {
            dir,
            port: 0,
            extra: extra.to_string(),
            child: None,
        };
        sshd.spawn_on_free_port();
        sshd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Try ports until one sshd stays up: another process may hold any given port.
    fn spawn_on_free_port(&mut self) {
        loop {
            let port = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
            assert!(port < 22600, "no free port left in 22500-22599");
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            self.port = port;
            if self.spawn() {
                return;
            }
        }
    }

    /// Start sshd on `self.port`; false when it exited at once (port taken meanwhile).
    fn spawn(&mut self) -> bool {
        let d = self.dir.path().display();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\nUsePAM no\nPidFile {d}/pid\nMaxStartups 200\nPermitRootLogin yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n{extra}\n",
            port = self.port,
            extra = self.extra
        );
        std::fs::write(self.path("sshd_config"), config).unwrap();
        let log = std::fs::File::create(self.path("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(self.path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        self.wait_listening()
    }

    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                eprintln!(
                    "sshd on {} exited ({status}): {}",
                    self.port,
                    read(&self.path("sshd.log"))
                );
                self.child = None;
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "sshd did not listen on {}: {}",
            self.port,
            read(&self.path("sshd.log"))
        );
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Same port, new host key: what a reinstalled (or impersonated) server looks like.
    fn restart_with_new_host_key(&mut self) {
        self.stop();
        std::fs::remove_file(self.path("hostkey")).unwrap();
        std::fs::remove_file(self.path("hostkey.pub")).unwrap();
        keygen(&self.path("hostkey"), "");
        assert!(self.spawn(), "sshd did not restart on port {}", self.port);
    }

    /// `SHA256:...` of the current host key, as ssh-keygen prints it.
    fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.path("hostkey.pub"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }

    /// The host key as a known_hosts key part (`ssh-ed25519 AAAA...`).
    fn host_key_text(&self) -> String {
        read(&self.path("hostkey.pub"))
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn spec(&self) -> ConnectSpec {
        spec_for(self.dir.path(), self.port)
    }
}

/// What the tests connect with: root, the authorized client key, accept-new into a project
/// file under `dir` (whose parent does not exist yet).
fn spec_for(dir: &Path, port: u16) -> ConnectSpec {
    ConnectSpec {
        name: format!("sshd-{port}"),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        identity_files: vec![dir.join("client")],
        identity_key: None,
        identity_env: None,
        host_keys: vec![],
        known_hosts: KnownHostsPolicy::AcceptNew,
        project_known_hosts: dir.join("project/.provision/known_hosts"),
        user_known_hosts: None,
        instance_id: None,
        connect_timeout: Duration::from_secs(10),
        retries: 0,
        keepalive: Duration::from_secs(15),
        jump: None,
        become_user: None,
        become_password: None,
        proxy_command: None,
        agent: Default::default(),
        forward_agent: false,
        allow_prompt: false,
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keygen(path: &Path, passphrase: &str) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "provision-test",
            "-f",
        ])
        .arg(path)
        .status()
        .expect("ssh-keygen is required");
    assert!(status.success());
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn connect(spec: &ConnectSpec) -> SshSession {
    match SshSession::connect(spec).await {
        Ok(s) => s,
        Err(e) => panic!("connect to {} failed: {e}", spec.name),
    }
}

async fn connect_err(spec: &ConnectSpec) -> ConnectError {
    match SshSession::connect(spec).await {
        Ok(_) => panic!("connect to {} unexpectedly succeeded", spec.name),
        Err(e) => {
            eprintln!("{}: {e}", spec.name);
            e
        }
    }
}

/// A port nothing listens on (bound then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_separates_stdout_stderr_exit_and_signal() {
    let sshd = Sshd::start();
    let s = connect(&sshd.spec()).await;
    let out = s
        .exec("echo out; echo err >&2; exit 3", None, LONG)
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "out\n");
    assert_eq!(out.stderr_lossy(), "err\n");
    assert_eq!(out.exit, Some(3));
    assert!(!out.success());

    // Quoting survives the trip through the login shell and `sh -c`.
    let out = s
        .exec("printf '%s|' \"a b\" 'it'\\''s' \"$HOME\"", None, LONG)
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "a b|it's|/root|");
    assert!(out.success());

    let out = s.exec("kill -KILL $$", None, LONG).await.unwrap();
    assert_eq!(out.exit, None);
    assert_eq!(out.signal.as_deref(), Some("KILL"));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn become_user_runs_through_sudo() {
    let sshd = Sshd::start();
    let mut spec = sshd.spec();
    spec.become_user = Some("nobody".into());
    let s = connect(&spec).await;
    let out = s.exec("id -un", None, LONG).await.unwrap();
    assert_eq!(
        out.stdout_lossy(),
        "nobody\n",
        "stderr: {}",
        out.stderr_lossy()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_of_3mb_arrives_intact_and_can_be_echoed() {
    let sshd = Sshd::start();
    let s = connect(&sshd.spec()).await;
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let expected = hex::encode(Sha256::digest(&data));

    let out = s.exec("sha256sum", Some(&data), LONG).await.unwrap();
    assert_eq!(
        out.stdout_lossy().split_whitespace().next(),
        Some(expected.as_str())
    );

    // Full duplex: `cat` writes back while we are still sending.
    let out = s.exec("cat", Some(&data), LONG).await.unwrap();
    assert_eq!(out.exit, Some(0));
    assert!(
        out.stdout == data,
        "echoed {} bytes of {}",
        out.stdout.len(),
        data.len()
    );

    // No stdin: it is closed at once, so `cat` ends instead of hanging.
    let out = s
        .exec("cat; echo done", None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout_lossy(), "done\n");

    // A command that never reads its stdin does not block us either.
    let out = s
        .exec("exit 0", Some(&data), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.exit, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_execs_share_one_session() {
    // VERBOSE: sshd logs "Connection from" for every TCP connection it accepts.
    let sshd = Sshd::start_with("LogLevel VERBOSE");
    let s = connect(&sshd.spec()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    // Each command marks that it started, then waits (15 s at most) until 4 have started: if
    // the execs ran one after another, the first would wait in vain and fail. 4 is well under
    // the transport's channel cap (8) and sshd's MaxSessions (10).
    // It prints its start and end times (ns), from which the overlap is measured as well.
    let runs = (0..20).map(|i| {
        let s = &s;
        let script = format!(
            "start=$(date +%s%N); touch {d}/started-{i}; n=0; \
             while [ $(ls {d} | wc -l) -lt 4 ]; do n=$((n+1)); [ $n -gt 300 ] && exit 9; sleep 0.05; done; \
             echo {i} $start $(date +%s%N)"
        );
        async move { (i, s.exec(&script, None, LONG).await) }
    });
    let mut intervals = Vec::new();
    for (i, out) in futures::future::join_all(runs).await {
        let out = out.unwrap_or_else(|e| panic!("exec {i}: {e}"));
        assert_eq!(out.exit, Some(0), "exec {i} saw no other exec running");
        let text = out.stdout_lossy();
        let f: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(f.len(), 3, "exec {i}: {text}");
        assert_eq!(f[0], i.to_string(), "exec {i} got another's output: {text}");
        let (start, end): (u128, u128) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        intervals.push((start, end));
    }
    // The most execs running at one instant (an interval's start inside others').
    let most = intervals
        .iter()
        .map(|&(t, _)| intervals.iter().filter(|&&(a, b)| a <= t && t < b).count())
        .max()
        .unwrap();
    eprintln!("at most {most} of 20 execs ran at once");
    assert!(
        most >= 4,
        "fewer than 4 execs ever ran at once: {intervals:?}"
    );
    // One login, and all 20 sessions on that one connection (sshd names the client port of
    // each; the harness's listening probe is a connection too, but it never logs in).
    let log = read(&sshd.path("sshd.log"));
    let logins: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("Accepted publickey for root from 127.0.0.1 port "))
        .collect();
    assert_eq!(logins.len(), 1, "{log}");
    let port = logins[0]
        .split(" port ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let sessions: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("Starting session: command for root from 127.0.0.1 port "))
        .collect();
    assert_eq!(sessions.len(), 20, "{log}");
    assert!(
        sessions
            .iter()
            .all(|l| l.contains(&format!(" port {port} id "))),
        "a session on another connection than the login on port {port}:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_timeout_is_reported_and_session_stays_usable() {
    let sshd = Sshd::start();
    let s = connect(&sshd.spec()).await;
    // Only the exec's own 1 s timeout can end `sleep 60` before the 30 s bound: a bound for
    // "it does not hang", far above 1 s however loaded the machine.
    let err = tokio::time::timeout(LONG, s.exec("sleep 60", None, Duration::from_secs(1)))
        .await
        .expect("the exec timeout did not stop `sleep 60` within 30 s")
        .unwrap_err();
    assert!(matches!(err, ExecError::Timeout(_)), "{err}");
    assert_eq!(err.to_string(), "remote command timed out after 1s");
    let out = s.exec("echo still here", None, LONG).await.unwrap();
    assert_eq!(out.stdout_lossy(), "still here\n");

    s.close().await;
    let err = s.exec("true", None, LONG).await.unwrap_err();
    assert!(matches!(err, ExecError::Disconnected(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_refuses_an_unknown_host() {
    let sshd = Sshd::start();
    let mut spec = sshd.spec();
    spec.known_hosts = KnownHostsPolicy::Strict;
    let err = connect_err(&spec).await;
    assert!(matches!(err, ConnectError::HostKeyUnknown { .. }), "{err}");
    assert!(!err.is_retryable());
    let msg = err.to_string();
    assert!(msg.contains(&sshd.fingerprint()), "{msg}");
    assert!(
        msg.contains(&spec.project_known_hosts.display().to_string()),
        "{msg}"
    );
    assert!(!spec.project_known_hosts.exists(), "strict must not write");
}

#[tokio::test(flavor = "multi_thread")]
async fn accept_new_pins_the_key_then_strict_accepts_it() {
    // DEBUG only to see the negotiated kex (it would leak into exec stderr otherwise).
    let sshd = Sshd::start_with("LogLevel DEBUG");
    let spec = sshd.spec();
    connect(&spec).await.close().await;
    let pinned = read(&spec.project_known_hosts);
    assert_eq!(
        pinned,
        format!("[127.0.0.1]:{} {}\n", sshd.port, sshd.host_key_text())
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&spec.project_known_hosts)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    let mut strict = spec.clone();
    strict.known_hosts = KnownHostsPolicy::Strict;
    connect(&strict).await.close().await;
    // Known already: nothing appended.
    assert_eq!(read(&spec.project_known_hosts), pinned);
    // The cheap key exchange was negotiated (see perf-baseline.md).
    let log = read(&sshd.path("sshd.log"));
    assert!(log.contains("kex: algorithm: curve25519-sha256"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_accept_new_pins_once() {
    let sshd = Sshd::start();
    let spec = sshd.spec();
    let sessions = futures::future::join_all((0..8).map(|_| SshSession::connect(&spec))).await;
    assert!(sessions.iter().all(|s| s.is_ok()));
    assert_eq!(read(&spec.project_known_hosts).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_host_key_is_refused_with_both_fingerprints() {
    let mut sshd = Sshd::start();
    let spec = sshd.spec();
    connect(&spec).await.close().await;
    let old = sshd.fingerprint();
    sshd.restart_with_new_host_key();
    let new = sshd.fingerprint();
    assert_ne!(old, new);

    // Refused even under accept-new, and not retried.
    let err = connect_err(&spec).await;
    assert!(
        matches!(err, ConnectError::HostKeyChanged { line: 1, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&old) && msg.contains(&new), "{msg}");
    assert!(
        msg.contains(&format!("{}:1", spec.project_known_hosts.display())),
        "{msg}"
    );
    assert_eq!(
        read(&spec.project_known_hosts).lines().count(),
        1,
        "nothing appended"
    );
}

/// The user's known_hosts as OpenSSH users really have it: tabs, wildcards, hashed names.
#[tokio::test(flavor = "multi_thread")]
async fn user_known_hosts_tabs_wildcards_and_hashed_names() {
    let sshd = Sshd::start();
    let key = sshd.host_key_text().replace(' ', "\t");
    let variants = [
        format!("# comment\n[127.0.0.1]:{}\t{key}\tcomment\n", sshd.port),
        format!("other.example.com,[127.0.0.*]:{} {key}\n", sshd.port),
        format!("[127.0.0.1]:{} {key}\n", sshd.port), // hashed below with ssh-keygen -H
    ];
    for (i, text) in variants.iter().enumerate() {
        let file = sshd.path(&format!("user_known_hosts_{i}"));
        std::fs::write(&file, text).unwrap();
        if i == 2 {
            let ok = Command::new("ssh-keygen")
                .arg("-H")
                .arg("-f")
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(ok.success());
            assert!(read(&file).starts_with("|1|"), "{}", read(&file));
        }
        let mut spec = sshd.spec();
        spec.known_hosts = KnownHostsPolicy::Strict;
        spec.user_known_hosts = Some(file.clone());
        connect(&spec).await.close().await;
        assert!(
            !spec.project_known_hosts.exists(),
            "variant {i} must not pin"
        );
    }

    // A different key for the host in the user's file is a change, reported at its line.
    let file = sshd.path("user_known_hosts_changed");
    let stranger = read(&sshd.path("stranger.pub"));
    std::fs::write(
        &file,
        format!("# x\n\n[127.0.0.1]:{} {stranger}", sshd.port),
    )
    .unwrap();
    let mut spec = sshd.spec();
    spec.user_known_hosts = Some(file);
    let err = connect_err(&spec).await;
    assert!(
        matches!(err, ConnectError::HostKeyChanged { line: 3, .. }),
        "{err}"
    );
}

/// RSA keys must sign with rsa-sha2-*: OpenSSH >= 8.8 refuses the old ssh-rsa (SHA-1).
#[tokio::test(flavor = "multi_thread")]
async fn rsa_key_authenticates() {
    let sshd = Sshd::start();
    let key = sshd.path("client_rsa");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let mut authorized = read(&sshd.path("authorized_keys"));
    authorized.push_str(&read(&sshd.path("client_rsa.pub")));
    std::fs::write(sshd.path("authorized_keys"), authorized).unwrap();
    let mut spec = sshd.spec();
    spec.identity_files = vec![key];
    let s = connect(&spec).await;
    assert_eq!(
        s.exec("echo rsa", None, LONG).await.unwrap().stdout_lossy(),
        "rsa\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_failure_names_what_was_tried() {
    let sshd = Sshd::start();
    let mut spec = sshd.spec();
    spec.identity_files = vec![sshd.path("stranger")];
    let err = connect_err(&spec).await;
    assert!(matches!(err, ConnectError::Auth { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&sshd.path("stranger").display().to_string()),
        "{msg}"
    );
    assert!(msg.starts_with("authentication as root@sshd-"), "{msg}");
    assert!(!msg.contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_or_broken_key_is_a_key_file_error() {
    assert!(
        std::env::var_os("PROVISION_SSH_KEY_PASSPHRASE").is_none(),
        "unset PROVISION_SSH_KEY_PASSPHRASE to run this test"
    );
    let sshd = Sshd::start();
    let mut spec = sshd.spec();
    spec.identity_files = vec![sshd.path("client_enc")];
    let err = connect_err(&spec).await;
    assert!(matches!(err, ConnectError::KeyFile { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("encrypted") && msg.contains("PROVISION_SSH_KEY_PASSPHRASE"),
        "{msg}"
    );
    assert!(
        msg.contains(&sshd.path("client_enc").display().to_string()),
        "{msg}"
    );

    std::fs::write(sshd.path("garbage"), "not a key\n").unwrap();
    spec.identity_files = vec![sshd.path("garbage")];
    let err = connect_err(&spec).await;
    assert!(
        matches!(err, ConnectError::KeyFile { ref path, .. } if path.ends_with("garbage")),
        "{err}"
    );

    spec.identity_files = vec![sshd.path("missing")];
    let err = connect_err(&spec).await;
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn jump_host_tunnels_to_the_target() {
    let bastion = Sshd::start();
    let target = Sshd::start();
    let mut spec = target.spec();
    spec.jump = Some(Box::new(bastion.spec()));
    let s = connect(&spec).await;
    let out = s.exec("echo via bastion", None, LONG).await.unwrap();
    assert_eq!(out.stdout_lossy(), "via bastion\n");
    s.close().await;
    // Each leg pinned its own host key.
    assert_eq!(read(&bastion.spec().project_known_hosts).lines().count(), 1);
    assert_eq!(read(&spec.project_known_hosts).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn jump_host_failures_say_which_leg() {
    let target = Sshd::start();
    // The bastion is down: wrapped in Jump.
    let mut jump = target.spec();
    jump.name = "bastion".into();
    jump.port = closed_port();
    let mut spec = target.spec();
    spec.jump = Some(Box::new(jump));
    let err = connect_err(&spec).await;
    assert!(
        matches!(err, ConnectError::Jump { ref source, .. } if matches!(**source, ConnectError::Network { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("via jump host bastion: cannot connect to 127.0.0.1:"),
        "{err}"
    );

    // The bastion refuses to forward: proves the target leg really goes through it.
    let bastion = Sshd::start_with("AllowTcpForwarding no");
    spec.jump = Some(Box::new(bastion.spec()));
    let err = connect_err(&spec).await;
    assert!(matches!(err, ConnectError::Network { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("jump host could not open a tunnel"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_is_a_quick_network_error_and_retries_back_off() {
    let sshd = Sshd::start();
    let mut spec = sshd.spec();
    spec.port = closed_port();
    // "Quick" is the error kind: a refused connection is a network error at once, not a wait
    // for the 10 s connect timeout (which would be ConnectError::Timeout).
    let err = connect_err(&spec).await;
    assert!(matches!(err, ConnectError::Network { .. }), "{err}");
    assert!(err.is_retryable());

    // Two retries back off between attempts: the waits add up to at least 600 ms. A lower
    // bound only (load makes it longer, never shorter); the upper one just says "no hang".
    spec.retries = 2;
    let start = Instant::now();
    let err = connect_err(&spec).await;
    assert!(matches!(err, ConnectError::Network { .. }), "{err}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < LONG,
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_listener_times_out_after_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection without ever sending a byte.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let spec = ConnectSpec {
        name: "silent".into(),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        identity_files: vec![],
        identity_key: None,
        identity_env: None,
        host_keys: vec![],
        known_hosts: KnownHostsPolicy::Strict,
        project_known_hosts: dir.path().join("known_hosts"),
        user_known_hosts: None,
        instance_id: None,
        connect_timeout: Duration::from_secs(1),
        retries: 0,
        keepalive: Duration::from_secs(15),
        jump: None,
        become_user: None,
        become_password: None,
        proxy_command: None,
        agent: Default::default(),
        forward_agent: false,
        allow_prompt: false,
    };
    // The feature: a server that never answers does not hang the client. It waits the
    // timeout (a lower bound load cannot break) and gives up well before 30 s.
    let start = Instant::now();
    let err = tokio::time::timeout(LONG, connect_err(&spec))
        .await
        .expect("a silent server hung the connect for 30 s (connect_timeout is 1 s)");
    let took = start.elapsed();
    assert!(matches!(err, ConnectError::Timeout { .. }), "{err}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert_eq!(
        err.to_string(),
        format!("connection to 127.0.0.1:{port} timed out after 1s")
    );
    holder.abort();
}

// ---- Tests that need a different environment (passphrase variable, agent, HOME) ----
//
// Changing the environment of this multi-threaded test process is not sound, so these tests
// re-run themselves as a child process of this test binary with the variables set, against
// an sshd the parent started (its dir and port are passed down).

const CHILD_DIR: &str = "PROVISION_TEST_CHILD_DIR";
const CHILD_PORT: &str = "PROVISION_TEST_CHILD_PORT";
const CHILD_EXPECT: &str = "PROVISION_TEST_CHILD_EXPECT";
const PASSPHRASE_ENV: &str = "PROVISION_SSH_KEY_PASSPHRASE";

/// In the child: the spec for the parent's sshd and what the parent expects to happen.
fn child_spec() -> Option<(ConnectSpec, String)> {
    let dir = PathBuf::from(std::env::var_os(CHILD_DIR)?);
    let port = std::env::var(CHILD_PORT).ok()?.parse().ok()?;
    Some((
        spec_for(&dir, port),
        std::env::var(CHILD_EXPECT).unwrap_or_default(),
    ))
}

/// Run test `name` alone in a child process with `set` variables and without `unset` ones.
fn run_child(
    name: &str,
    sshd: &Sshd,
    expect: &str,
    set: &[(&str, &std::ffi::OsStr)],
    unset: &[&str],
) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, sshd.dir.path())
        .env(CHILD_PORT, sshd.port.to_string())
        .env(CHILD_EXPECT, expect);
    for (k, v) in set {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child {name} ({expect}) failed:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn passphrase_from_environment() {
    const PASSPHRASE: &str = "s3cret passphrase";
    let Some((mut spec, expect)) = child_spec() else {
        let sshd = Sshd::start();
        let name = "passphrase_from_environment";
        run_child(
            name,
            &sshd,
            "ok",
            &[(PASSPHRASE_ENV, PASSPHRASE.as_ref())],
            &[],
        );
        run_child(
            name,
            &sshd,
            "wrong",
            &[(PASSPHRASE_ENV, "nope".as_ref())],
            &[],
        );
        return;
    };
    spec.identity_files =
        vec![PathBuf::from(std::env::var_os(CHILD_DIR).unwrap()).join("client_enc")];
    if expect == "ok" {
        let s = connect(&spec).await;
        assert_eq!(
            s.exec("echo decrypted", None, LONG)
                .await
                .unwrap()
                .stdout_lossy(),
            "decrypted\n"
        );
    } else {
        let err = connect_err(&spec).await;
        assert!(matches!(err, ConnectError::KeyFile { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("PROVISION_SSH_KEY_PASSPHRASE does not decrypt it"),
            "{err}"
        );
    }
}

/// Without identity files: the agent (first identity refused, second accepted), else
/// ~/.ssh/id_ed25519, else a clear "nothing to try".
#[tokio::test(flavor = "multi_thread")]
async fn agent_then_default_keys() {
    let Some((mut spec, expect)) = child_spec() else {
        let sshd = Sshd::start();
        let agent = Agent::start(&sshd);
        let empty_home = sshd.path("home_empty");
        std::fs::create_dir_all(&empty_home).unwrap();
        let key_home = sshd.path("home_keys");
        std::fs::create_dir_all(key_home.join(".ssh")).unwrap();
        std::fs::copy(sshd.path("client"), key_home.join(".ssh/id_ed25519")).unwrap();
        let name = "agent_then_default_keys";
        let sock = agent.sock.as_os_str();
        run_child(
            name,
            &sshd,
            "agent",
            &[("SSH_AUTH_SOCK", sock), ("HOME", empty_home.as_os_str())],
            &[],
        );
        run_child(
            name,
            &sshd,
            "default-key",
            &[("HOME", key_home.as_os_str())],
            &["SSH_AUTH_SOCK"],
        );
        run_child(
            name,
            &sshd,
            "nothing",
            &[("HOME", empty_home.as_os_str())],
            &["SSH_AUTH_SOCK"],
        );
        return;
    };
    spec.identity_files.clear();
    if expect == "nothing" {
        let err = connect_err(&spec).await;
        assert!(matches!(err, ConnectError::Auth { .. }), "{err}");
        assert!(err.to_string().contains("no ssh-agent and no key"), "{err}");
    } else {
        let s = connect(&spec).await;
        assert_eq!(
            s.exec("echo in", None, LONG).await.unwrap().stdout_lossy(),
            "in\n"
        );
    }
}

/// A private ssh-agent holding the unauthorized key first, then the authorized one.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(sshd: &Sshd) -> Agent {
        let sock = sshd.path("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent is required");
        let agent = Agent { child, sock };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.sock.exists() {
            assert!(
                Instant::now() < deadline,
                "ssh-agent did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for key in ["stranger", "client"] {
            let ok = Command::new("ssh-add")
                .arg(sshd.path(key))
                .env("SSH_AUTH_SOCK", &agent.sock)
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(ok.success(), "ssh-add {key}");
        }
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
