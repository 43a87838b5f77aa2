//! `http_status` (src/steps/shell.rs) on hosts without curl, through `wait.http` and the
//! `healthcheck` step: the same function is what `docker_run`'s `healthcheck` polls with.
//!
//! The host is a real sshd on loopback whose mount namespace hides curl (and, for busybox, GNU
//! wget) behind /dev/null and puts a `wget` in /usr/local/sbin, the first directory of the
//! PATH provision's scripts run with (src/transport/script.rs fixes PATH, so the login's own
//! environment cannot change it). `wget` is then Debian's busybox (busybox-static), as on a
//! busybox-based host, or GNU wget.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use support::*;

/// A loopback HTTP/1.0 server answering `GET /<code>` with that status. Serves until the test
/// process ends.
fn status_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the status server");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 2048];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let code: u16 = request
                .strip_prefix("GET /")
                .and_then(|r| r.split([' ', '?']).next())
                .and_then(|c| c.parse().ok())
                .unwrap_or(400);
            let _ = conn.write_all(
                format!("HTTP/1.0 {code} Status {code}\r\nContent-Length: 2\r\n\r\nhi").as_bytes(),
            );
        }
    });
    port
}

/// Every file named `tool` in the scripts' PATH, resolved (so /bin/x and /usr/bin/x, one file
/// on a merged /usr, are hidden once).
fn on_path(tool: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .filter(|p| p.exists())
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The host: curl hidden; `wget` is busybox (`busybox = true`, GNU wget hidden too) or GNU
/// wget.
struct WgetHost {
    _dir: tempfile::TempDir,
    _keys: tempfile::TempDir,
    sshd: Sshd,
    key: ClientKey,
}

impl WgetHost {
    fn start(busybox: bool) -> WgetHost {
        let keys = tempfile::tempdir().unwrap();
        let key = ClientKey::generate(keys.path());
        let dir = tempfile::Builder::new()
            .prefix("prov-wgethost-")
            .tempdir()
            .unwrap();
        let sbin = dir.path().join("sbin");
        std::fs::create_dir_all(&sbin).unwrap();
        let wget = if busybox {
            assert!(
                Path::new("/bin/busybox").exists(),
                "/bin/busybox is required (scripts/deps.sh installs busybox-static)"
            );
            PathBuf::from("/bin/busybox")
        } else {
            on_path("wget")
                .into_iter()
                .next()
                .expect("GNU wget is required (scripts/deps.sh installs wget)")
        };
        // busybox picks the applet from the name it was started as.
        std::os::unix::fs::symlink(&wget, sbin.join("wget")).unwrap();
        let mut hidden = on_path("curl");
        if busybox {
            hidden.extend(on_path("wget"));
        }
        let mut binds: Vec<(&Path, &Path)> = hidden
            .iter()
            .map(|p| (Path::new("/dev/null"), p.as_path()))
            .collect();
        binds.push((&sbin, Path::new("/usr/local/sbin")));
        let sshd = Sshd::start_with_binds(&key, &binds);
        WgetHost {
            _dir: dir,
            _keys: keys,
            sshd,
            key,
        }
    }

    fn project(&self, playbook: &str) -> Project {
        let p = Project::new();
        p.write(
            "provision.toml",
            &project_toml(
                &format!("wget-{}", self.sshd.port),
                &[self.sshd.addr("root")],
                &self.key,
                "retries = 0",
            ),
        );
        p.write("playbooks/deploy.toml", playbook);
        p
    }
}

fn wait_step(name: &str, url: &str, status: u16, timeout: &str) -> String {
    format!(
        "[[step]]\nname = {name:?}\nwait = {{ http = {url:?}, status = {status}, timeout = {timeout:?}, interval = \"200ms\" }}\n\n"
    )
}

/// What the host's scripts see: no curl, and which wget.
fn check_the_host(h: &WgetHost, busybox: bool) {
    let p = h.project(
        "[[step]]\nname = \"tools\"\ncommand = { run = \"command -v curl || echo no-curl; wget --help 2>&1 | head -n 1\" }\n",
    );
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    let out = r.step("tools")["output"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        out.contains("no-curl"),
        "curl is still on PATH: {}",
        r.dump()
    );
    assert_eq!(
        out.contains("BusyBox"),
        busybox,
        "not the wget this test wants: {}",
        r.dump()
    );
}

/// 200 and 500 read right (a wait for each succeeds), a 500 where 200 is wanted fails saying
/// 500, and a closed port fails saying 000.
fn statuses_are_read_right(busybox: bool) {
    let h = WgetHost::start(busybox);
    check_the_host(&h, busybox);
    let port = status_server();
    let url = |code: u16| format!("http://127.0.0.1:{port}/{code}");

    let p = h.project(&format!(
        "{}{}{}[[step]]\nname = \"health\"\nhealthcheck = {{ url = {:?}, status = 503, timeout = \"60s\" }}\n",
        wait_step("200", &url(200), 200, "60s"),
        wait_step("500", &url(500), 500, "60s"),
        wait_step("404", &url(404), 404, "60s"),
        url(503),
    ));
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    for step in ["200", "500", "404", "health"] {
        assert_eq!(r.step(step)["status"], "ok", "{}", r.dump());
    }

    let p = h.project(&wait_step("wrong", &url(500), 200, "1s"));
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(3);
    let wrong = r.step("wrong");
    assert_eq!(wrong["status"], "failed", "{}", r.dump());
    let message = wrong["message"].as_str().unwrap_or_default();
    assert!(message.contains("HTTP status 500"), "{}", r.dump());

    let refused = format!("http://127.0.0.1:{}/200", closed_port());
    let p = h.project(&wait_step("refused", &refused, 200, "1s"));
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(3);
    let step = r.step("refused");
    assert_eq!(step["status"], "failed", "{}", r.dump());
    let message = step["message"].as_str().unwrap_or_default();
    assert!(message.contains("HTTP status 000"), "{}", r.dump());
}

#[test]
fn busybox_wget_reads_200_500_and_a_refused_connection() {
    statuses_are_read_right(true);
}

#[test]
fn gnu_wget_reads_200_500_and_a_refused_connection() {
    statuses_are_read_right(false);
}
