//! `moto_server`, the EC2 API emulator the EC2 tests talk to (PyPI `moto[server]`, installed
//! by scripts/deps.sh into a venv): one per test, on a free 127.0.0.1 port, a fresh empty
//! account each, killed on drop. A missing install fails the test; it is never skipped.
//! Included with `#[path = "support/moto.rs"] mod moto_support;` next to `mod support;`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;

pub struct Moto {
    pub port: u16,
    child: Child,
    /// moto_server's own output, shown when something about it fails.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The venv `scripts/deps.sh` installs moto into (`PROVISION_VENV`, /opt/provision-venv as
/// root, ~/.cache/provision-venv otherwise).
pub fn venv() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(v) = std::env::var_os("PROVISION_VENV") {
        candidates.push(PathBuf::from(v));
    }
    candidates.push(PathBuf::from("/opt/provision-venv"));
    if let Some(h) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(h).join(".cache/provision-venv"));
    }
    candidates
        .iter()
        .find(|v| v.join("bin/moto_server").exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "moto_server not found in {candidates:?}: run scripts/deps.sh (it installs moto[server] into a venv)"
            )
        })
}

impl Moto {
    /// Start one and wait until it listens (30 s at most); a port lost to a race is retried.
    pub fn start() -> Moto {
        let bin = venv().join("bin/moto_server");
        let dir = tempfile::Builder::new()
            .prefix("prov-moto-")
            .tempdir()
            .expect("moto temp dir");
        let log = dir.path().join("moto.log");
        let log_text = |log: &PathBuf| std::fs::read_to_string(log).unwrap_or_default();
        for _ in 0..5 {
            let port = free_port();
            let out = std::fs::File::create(&log).expect("moto log");
            let err = out.try_clone().expect("moto log");
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!(
                        "moto_server on port {port} exited ({status}): {}",
                        log_text(&log)
                    );
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Moto {
                        port,
                        child,
                        log,
                        _dir: dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "moto_server did not listen on 127.0.0.1:{port} within 30s: {}",
                        log_text(&log)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("moto_server would not start: {}", log_text(&log));
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Run Python `code` with `args` as sys.argv[1:], boto3's client bound to this emulator
    /// as `ec2` (and `json`, `sys` imported); its stdout, trimmed.
    pub fn python(&self, code: &str, args: &[&str]) -> String {
        let script = format!(
            "import json, sys, boto3\nec2 = boto3.client('ec2', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{code}",
            self.url()
        );
        let out = Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .expect("run the venv's python");
        assert!(
            out.status.success(),
            "boto3 script {args:?} failed: {}\nmoto log: {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
