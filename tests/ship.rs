//! The `image` step, end to end: build once on the controller, ship to every host, same
//! image ID everywhere. Real parts only: the binary, sshd on loopback, the tests' shared
//! Docker engine as the controller's own engine (`DOCKER_HOST` of the provision process),
//! and for every "machine" a `dockerd` of its own, reached by its sshd's sessions at the same
//! address (`unix:///var/lib/provision/docker.sock`, which is private to each sshd: see
//! `support::Sshd`), so an image is really missing on a host until provision ships it there.
//! The registry is Debian's `docker-registry` with htpasswd basic auth.
//!
//! - `ship_over_ssh_only_where_missing`: plan, up (built once, streamed to both hosts with
//!   bounded memory, the registered ID used by a later step), up again (0 changes, nothing
//!   sent), one host losing the image (only it receives it, as the plan said).
//! - `ship_through_a_registry_by_digest`: push once, pull by digest on each host; the
//!   password in no output, no -vv event, no process list, no credential file left; a wrong
//!   password fails the step clearly on the controller and changes no host.
//! - `ship_through_an_open_registry`: no login at all, still pulled by digest.
//! - `ten_hosts_in_parallel_share_one_build`: one build and one archive for ten hosts.
//! - `a_load_that_fails_leaves_the_host_as_it_was`: a host whose engine has no room for the
//!   image fails the step with docker's reason, and its tag still names its old image.

#[path = "support/docker.rs"]
mod docker_support;
mod process_list;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use docker_support::{DOCKER_HOST, docker_host};
use process_list::watching_process_list;
use support::*;

/// Where each machine's sessions find its engine (the sshd's private /var/lib/provision).
const REMOTE_DOCKER_HOST: &str = "unix:///var/lib/provision/docker.sock";
const ENGINE_START: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------------

/// A `dockerd` of this test process (a bridge of its own, no iptables: it only stores images), in
/// `/tmp/pship-<pid>-<name>`; stopped and removed on drop. `tmpfs`: its data root is a tmpfs
/// of that size (an engine with little room).
struct Engine {
    dir: PathBuf,
    child: Child,
    tmpfs: bool,
    bridge: String,
}

/// A bridge of the engine's own, `psh<pid>-<n>` with 10.213.<n>.1/24: never `--bridge none`,
/// which makes dockerd delete the host's `docker0` (shared with the tests' engine, whose
/// builds then fail with "could not find bridge docker0").
fn own_bridge() -> String {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("psh{}-{n}", std::process::id());
    let ip = |args: &[&str]| {
        let st = Command::new("ip")
            .args(args)
            .status()
            .expect("ip (iproute2) is required");
        assert!(st.success(), "ip {}", args.join(" "));
    };
    let _ = Command::new("ip").args(["link", "del", &name]).status();
    ip(&["link", "add", "name", &name, "type", "bridge"]);
    ip(&["addr", "add", &format!("10.213.{n}.1/24"), "dev", &name]);
    ip(&["link", "set", &name, "up"]);
    name
}

impl Engine {
    fn start(name: &str, tmpfs: Option<&str>) -> Engine {
        reap_stale_engines();
        let dir = PathBuf::from(format!("/tmp/pship-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("create engine dir");
        if let Some(size) = tmpfs {
            let st = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.join("data"))
                .status()
                .expect("mount is required");
            assert!(st.success(), "mount a {size} tmpfs for the small engine");
        }
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("dockerd log");
        let bridge = own_bridge();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}/docker.sock", dir.display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args(["--bridge", &bridge, "--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd is required (scripts/deps.sh installs docker.io)");
        let engine = Engine {
            dir,
            child,
            tmpfs: tmpfs.is_some(),
            bridge,
        };
        let started = Instant::now();
        while !engine
            .docker(&["info", "--format", "{{.ServerVersion}}"])
            .status
            .success()
        {
            assert!(
                started.elapsed() < ENGINE_START,
                "dockerd {name} did not answer within {ENGINE_START:?}:\n{}",
                std::fs::read_to_string(engine.dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        engine
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .stdin(Stdio::null())
            .output()
            .expect("the docker CLI is required")
    }

    /// The ID of `tag` on this engine, None when it has none.
    fn image_id(&self, tag: &str) -> Option<String> {
        let out = self.docker(&["image", "inspect", "-f", "{{.Id}}", tag]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `sshd`'s machine uses this engine from now on.
    fn serve(&self, sshd: &Sshd) {
        let link = sshd.state_dir().join("docker.sock");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(self.socket(), &link).expect("link the engine's socket");
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        if self.tmpfs {
            let _ = Command::new("umount").arg(self.dir.join("data")).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// Engines a killed test process left: stop them and remove their dirs.
fn reap_stale_engines() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("pship-") else {
            continue;
        };
        let owner: i32 = rest
            .split('-')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        // SAFETY: signal 0 only checks that the process exists.
        if owner <= 0 || owner == std::process::id() as i32 || unsafe { libc::kill(owner, 0) } == 0
        {
            continue;
        }
        let dir = entry.path();
        if let Some(pid) = std::fs::read_to_string(dir.join("docker.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // SAFETY: the engine a dead test process started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            wait_until("a stale test engine stops", ENGINE_START, || unsafe {
                libc::kill(pid, 0) != 0
            });
        }
        let _ = Command::new("umount").arg(dir.join("data")).status();
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Their bridges (`psh<pid>-<n>`).
    let Ok(links) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    for link in links.flatten() {
        let name = link.file_name().to_string_lossy().to_string();
        let owner: i32 = name
            .strip_prefix("psh")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        // SAFETY: signal 0 only checks that the process exists.
        if owner > 0 && owner != std::process::id() as i32 && unsafe { libc::kill(owner, 0) } != 0 {
            let _ = Command::new("ip").args(["link", "del", &name]).status();
        }
    }
}

/// `docker args…` on the controller's engine (the tests' shared one).
fn controller(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", DOCKER_HOST)
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI is required")
}

fn controller_id(tag: &str) -> Option<String> {
    let out = controller(&["image", "inspect", "-f", "{{.Id}}", tag]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Removes the test's tags from the controller's engine before and after.
struct Tags(Vec<String>);

impl Tags {
    fn new(tags: &[&str]) -> Tags {
        let t = Tags(tags.iter().map(|s| s.to_string()).collect());
        t.remove();
        t
    }
    fn remove(&self) {
        for tag in &self.0 {
            let _ = controller(&["rmi", "-f", tag]);
        }
    }
}

impl Drop for Tags {
    fn drop(&mut self) {
        self.remove();
    }
}

// ---------------------------------------------------------------------------------------------
// Projects and runs
// ---------------------------------------------------------------------------------------------

/// A project on `servers` whose hosts reach their engines, with `app/Dockerfile` copying
/// `app/payload` into a scratch image, and a private TMPDIR for provision (to see what it
/// leaves there).
struct Ship {
    p: Project,
    tmp: tempfile::TempDir,
}

impl Ship {
    fn new(app: &str, servers: &Servers, env_extra: &str) -> Ship {
        let p = servers.project(
            app,
            "root",
            "",
            &format!("remote_env = {{ DOCKER_HOST = {REMOTE_DOCKER_HOST:?} }}\n{env_extra}"),
        );
        p.write("app/Dockerfile", "FROM scratch\nCOPY payload /payload\n");
        Ship {
            p,
            tmp: tempfile::tempdir().expect("tmp dir"),
        }
    }

    /// `size` bytes of random data (incompressible, like real layers) as the image's content.
    fn payload(&self, size: usize) {
        let path = self.p.path("app/payload");
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!("head -c {size} /dev/urandom > \"$1\""))
            .arg("sh")
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCKER_HOST", DOCKER_HOST.to_string()),
            ("TMPDIR", self.tmp.path().display().to_string()),
        ]
    }

    fn run(&self, args: &[&str]) -> Run {
        let r = self.p.run_env(args, &self.env());
        self.assert_tmp_clean();
        r
    }

    /// Run while sampling provision's peak RSS (VmHWM); the run and the peak in KiB.
    fn run_measured(&self, args: &[&str]) -> (Run, u64) {
        let mut cmd = self.p.command(args);
        cmd.envs(self.env());
        let started = Instant::now();
        let mut child = cmd.spawn().expect("run provision");
        let out = reader(child.stdout.take().unwrap());
        let err = reader(child.stderr.take().unwrap());
        let sampled = wait_sampling_peak(&mut child, Duration::from_secs(600));
        let (status, peak) = (sampled.status, sampled.peak_kib);
        let run = Run {
            code: status.code().expect("exit code"),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
            elapsed: started.elapsed(),
        };
        self.assert_tmp_clean();
        (run, peak)
    }

    /// The image archive and login dirs provision made are gone once it ended.
    #[track_caller]
    fn assert_tmp_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "provision left {left:?} in its TMPDIR");
    }
}

/// The message of the `image` step on `host`.
fn image_message(r: &Run, host: &str) -> String {
    r.events_of("step_finished")
        .into_iter()
        .find(|e| e["host"] == host && e["step"] == "image")
        .and_then(|e| e["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no image step on {host}\n{}", r.dump()))
}

/// The status of the `image` step per host.
fn image_status(r: &Run, host: &str) -> String {
    r.step_statuses()
        .into_iter()
        .find(|(h, s, _)| h == host && s == "image")
        .map(|(_, _, st)| st)
        .unwrap_or_else(|| panic!("no image step on {host}\n{}", r.dump()))
}

/// Hosts whose round trips streamed a file on stdin (from the -vv exec events).
fn hosts_sent_a_file(r: &Run) -> Vec<String> {
    let mut hosts: Vec<String> = r
        .events_of("debug")
        .into_iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("exec (the file "))
        })
        .map(|e| e["host"].as_str().unwrap_or_default().to_string())
        .collect();
    hosts.sort();
    hosts
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn ship_over_ssh_only_where_missing() {
    docker_host();
    let servers = Servers::start(2);
    let engines = [Engine::start("ssh1", None), Engine::start("ssh2", None)];
    for (e, s) in engines.iter().zip(&servers.sshds) {
        e.serve(s);
    }
    let hosts: Vec<String> = servers.sshds.iter().map(Sshd::name).collect();
    let tag = format!("pship{}ssh:1", std::process::id());
    let _tags = Tags::new(&[&tag]);
    let s = Ship::new("shipssh", &servers, "");
    // 48 MiB of random data: held whole per host, two hosts would be ~100 MiB of RSS.
    const PAYLOAD: usize = 48 << 20;
    s.payload(PAYLOAD);
    let record = s.p.remote_path("{{ host.port }}.id");
    s.p.write("templates/id.j2", "{{ img.id }}\n");
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"image\"\nimage = {{ tag = {tag:?}, build = {{ context = \"app\" }} }}\nregister = \"img\"\n\n\
             [[step]]\nname = \"record\"\ntemplate = {{ src = \"templates/id.j2\", dest = {record:?} }}\n"
        ),
    );

    // plan: nothing is built, and every host would get the image once it is.
    let plan = s.run(&["plan", "test", "--output", "json"]);
    plan.expect_code(0);
    for h in &hosts {
        assert_eq!(image_status(&plan, h), "changed", "{}", plan.dump());
        assert!(
            image_message(&plan, h).contains("build ")
                && image_message(&plan, h).contains("then send over ssh"),
            "{}",
            plan.dump()
        );
    }
    assert_eq!(controller_id(&tag), None, "plan built the image");

    // up: built once, streamed to both, memory bounded.
    let (up, peak) = s.run_measured(&["up", "test", "--output", "json", "-vv"]);
    up.expect_code(0);
    let id = controller_id(&tag).expect("the controller has the image after up");
    for (e, h) in engines.iter().zip(&hosts) {
        assert_eq!(image_status(&up, h), "changed", "{}", up.dump());
        assert_eq!(e.image_id(&tag).as_deref(), Some(id.as_str()), "{h}");
        let port = h.rsplit(':').next().unwrap();
        let recorded = std::fs::read_to_string(s.p.remote.join(format!("{port}.id"))).unwrap();
        assert_eq!(recorded.trim(), id, "the registered id on {h}");
    }
    let built: Vec<&String> = hosts
        .iter()
        .filter(|h| image_message(&up, h).contains("(built on the controller)"))
        .collect();
    assert_eq!(
        built.len(),
        1,
        "built once for both hosts: {built:?}\n{}",
        up.dump()
    );
    let mut both = hosts.clone();
    both.sort();
    assert_eq!(hosts_sent_a_file(&up), both, "{}", up.dump());
    eprintln!(
        "shipped a {} MiB image to 2 hosts over ssh: peak RSS {} MiB, {:?}",
        PAYLOAD >> 20,
        peak / 1024,
        up.elapsed
    );
    assert!(
        peak < 64 * 1024,
        "peak RSS {} MiB: the archive is not streamed in bounded memory",
        peak / 1024
    );

    // up again: nothing to change, nothing sent.
    let (again, idle) = s.run_measured(&["up", "test", "--output", "json", "-vv"]);
    again.expect_code(0);
    eprintln!(
        "the same run with nothing to send: peak RSS {} MiB",
        idle / 1024
    );
    assert_eq!(again.changed(), 0, "{}", again.dump());
    assert!(hosts_sent_a_file(&again).is_empty(), "{}", again.dump());

    // One host loses the image: plan names it alone, and up sends it there alone.
    assert!(engines[1].docker(&["rmi", &tag]).status.success());
    let plan = s.run(&["plan", "test", "--output", "json"]);
    plan.expect_code(0);
    assert_eq!(image_status(&plan, &hosts[0]), "ok", "{}", plan.dump());
    assert_eq!(image_status(&plan, &hosts[1]), "changed", "{}", plan.dump());
    assert!(
        image_message(&plan, &hosts[1]).contains("this host has no"),
        "{}",
        plan.dump()
    );
    let up = s.run(&["up", "test", "--output", "json", "-vv"]);
    up.expect_code(0);
    assert_eq!(
        up.host_steps_with("changed"),
        plan.host_steps_with("changed"),
        "the plan predicted exactly what changed\nplan:\n{}\nup:\n{}",
        plan.dump(),
        up.dump()
    );
    assert_eq!(
        hosts_sent_a_file(&up),
        vec![hosts[1].clone()],
        "{}",
        up.dump()
    );
    assert_eq!(engines[1].image_id(&tag).as_deref(), Some(id.as_str()));
    assert_eq!(
        controller_id(&tag).as_deref(),
        Some(id.as_str()),
        "not rebuilt"
    );
}

/// A real registry on a free loopback port (with htpasswd basic auth for `auth`'s user and
/// password), killed on drop.
struct Registry {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(auth: Option<(&str, &str)>) -> Registry {
        let bin = "/usr/bin/docker-registry";
        assert!(
            Path::new(bin).exists(),
            "{bin} is required (scripts/deps.sh installs docker-registry)"
        );
        let dir = tempfile::tempdir().unwrap();
        let auth_yml = match auth {
            Some((user, password)) => {
                let htpasswd = htpasswd(dir.path(), user, password);
                format!(
                    "auth:\n  htpasswd:\n    realm: provision-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            None => String::new(),
        };
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
                 http:\n  addr: 127.0.0.1:{port}\n{auth_yml}",
                data = dir.path().join("data").display(),
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        wait_until("the registry listens", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Registry {
            port,
            child,
            _dir: dir,
        }
    }
}

/// An htpasswd file (bcrypt) in `dir` for `user`; its path.
fn htpasswd(dir: &Path, user: &str, password: &str) -> PathBuf {
    use std::io::Write;
    let htpasswd = dir.join("htpasswd");
    // -i: the password on stdin, off this test's own process list.
    let mut child = Command::new("htpasswd")
        .arg("-iBc")
        .arg(&htpasswd)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("htpasswd is required (scripts/deps.sh installs apache2-utils)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(password.as_bytes()).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success(), "htpasswd failed");
    htpasswd
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ship_through_a_registry_by_digest() {
    docker_host();
    let password = format!("RegPw{}q7Zx", std::process::id());
    let registry = Registry::start(Some(("ci", &password)));
    let servers = Servers::start(2);
    let engines = [Engine::start("reg1", None), Engine::start("reg2", None)];
    for (e, s) in engines.iter().zip(&servers.sshds) {
        e.serve(s);
    }
    let hosts: Vec<String> = servers.sshds.iter().map(Sshd::name).collect();
    let tag = format!("pship{}reg:1", std::process::id());
    let remote = format!("127.0.0.1:{}/{tag}", registry.port);
    let _tags = Tags::new(&[&tag, &remote]);
    let s = Ship::new("shipreg", &servers, SECRETS_ENV);
    s.payload(1 << 20);
    s.p.write(
        "secrets/test.env",
        &format!("REGISTRY_PASSWORD={password}\n"),
    );
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"image\"\nimage = {{ tag = {tag:?}, build = {{ context = \"app\" }}, \
             ship = {{ registry = \"127.0.0.1:{port}\", username = \"ci\", password = \"{{{{ secrets.REGISTRY_PASSWORD }}}}\" }} }}\n",
            port = registry.port
        ),
    );
    let no_password = |what: &str, r: &Run| {
        assert!(
            !r.stdout.contains(&password) && !r.stderr.contains(&password),
            "{what}: the registry password was printed\n{}",
            r.dump()
        );
    };
    let watched = |args: &[&str]| {
        let (r, samples) = watching_process_list(|| s.run(args));
        assert!(!samples.is_empty(), "no process list sample was taken");
        let hits: Vec<&str> = samples
            .iter()
            .flat_map(|p| p.lines())
            .filter(|l| l.contains(&password))
            .collect();
        assert!(
            hits.is_empty(),
            "the password was on a command line:\n{}",
            hits.join("\n")
        );
        no_password(&format!("{args:?}"), &r);
        (r, samples)
    };

    let (plan, _) = watched(&["plan", "test", "--output", "json", "-vv"]);
    plan.expect_code(0);
    for h in &hosts {
        assert!(
            image_message(&plan, h).contains("then pull from 127.0.0.1:"),
            "{}",
            plan.dump()
        );
    }

    let (up, samples) = watched(&["up", "test", "--output", "json", "-vv"]);
    up.expect_code(0);
    assert_eq!(
        up.host_steps_with("changed"),
        plan.host_steps_with("changed"),
        "the plan predicted exactly what changed"
    );
    // The sampler saw this run's docker commands (so it would have seen a password on one).
    assert!(
        samples.iter().any(|p| p.contains("--password-stdin")),
        "no sample caught a docker login ({} samples)",
        samples.len()
    );
    let id = controller_id(&tag).expect("built on the controller");
    let repo_digests = |e: &Engine| {
        let out = e.docker(&["image", "inspect", "-f", "{{json .RepoDigests}}", &tag]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut digests = Vec::new();
    for (e, h) in engines.iter().zip(&hosts) {
        assert_eq!(image_status(&up, h), "changed", "{}", up.dump());
        assert_eq!(e.image_id(&tag).as_deref(), Some(id.as_str()), "{h}");
        // Pulled by digest: the host knows the image as repository@sha256:….
        let d = repo_digests(e);
        assert!(
            d.contains(&format!("127.0.0.1:{}/pship", registry.port)) && d.contains("@sha256:"),
            "{d}"
        );
        digests.push(d);
    }
    assert_eq!(digests[0], digests[1], "the same digest on both hosts");
    // No credential left behind: not in the operator's (the project's HOME) docker config,
    // nor in root's (the hosts' user).
    for home in [s.p.home.clone(), PathBuf::from("/root")] {
        let cfg = std::fs::read_to_string(home.join(".docker/config.json")).unwrap_or_default();
        assert!(
            !cfg.contains(&format!("127.0.0.1:{}", registry.port)),
            "a login was kept in {}/.docker/config.json",
            home.display()
        );
    }

    let (again, _) = watched(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    // A wrong password: the push fails on the controller with the registry's reason, and no
    // host is touched.
    assert!(engines[0].docker(&["rmi", &tag]).status.success());
    s.p.write("secrets/test.env", "REGISTRY_PASSWORD=not-the-password\n");
    let bad = s.run(&["up", "test", "--output", "json"]);
    no_password("wrong password", &bad);
    bad.expect_code(3);
    let m = image_message(&bad, &hosts[0]);
    eprintln!("a wrong password: {m}");
    assert!(
        m.contains(&format!(
            "docker login to 127.0.0.1:{} failed on the controller",
            registry.port
        )),
        "{m}\n{}",
        bad.dump()
    );
    assert_eq!(image_status(&bad, &hosts[1]), "ok", "{}", bad.dump());
    assert_eq!(
        engines[0].image_id(&tag),
        None,
        "a failed push shipped nothing"
    );
}

#[test]
fn a_load_that_fails_leaves_the_host_as_it_was() {
    docker_host();
    let servers = Servers::start(1);
    let small = Engine::start("small", Some("40m"));
    small.serve(&servers.sshds[0]);
    let host = servers.sshds[0].name();
    let tag = format!("pship{}small:1", std::process::id());
    let _tags = Tags::new(&[&tag]);
    let s = Ship::new("shipsmall", &servers, "");
    // The host's tag names an old, small image.
    let old = tempfile::tempdir().unwrap();
    std::fs::write(
        old.path().join("Dockerfile"),
        "FROM scratch\nCOPY payload /payload\n",
    )
    .unwrap();
    std::fs::write(old.path().join("payload"), "old\n").unwrap();
    let out = small.docker(&["build", "-q", "-t", &tag, old.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_id = small.image_id(&tag).expect("old image");
    let images_before = small.docker(&["images", "-aq"]).stdout;
    // The new one does not fit.
    s.payload(64 << 20);
    s.p.write(
        "playbooks/deploy.toml",
        &format!("[[step]]\nname = \"image\"\nimage = {{ tag = {tag:?}, build = {{ context = \"app\" }} }}\n"),
    );
    let r = s.run(&["up", "test", "--output", "json"]);
    r.expect_code(3);
    assert_eq!(image_status(&r, &host), "failed", "{}", r.dump());
    let m = image_message(&r, &host);
    eprintln!("a load with no room: {m}");
    assert!(
        m.contains("send over ssh") && m.contains("no space left on device"),
        "{m}\n{}",
        r.dump()
    );
    assert_eq!(
        small.image_id(&tag),
        Some(old_id),
        "the tag still names the old image"
    );
    assert_eq!(
        small.docker(&["images", "-aq"]).stdout,
        images_before,
        "no image was half-loaded"
    );
}

/// Ten hosts at once (one engine behind all of them, so each really lacks the image when the
/// run starts): the controller builds and saves once, all ten receive it in parallel, memory
/// stays bounded, and the next run changes nothing.
#[test]
fn ten_hosts_in_parallel_share_one_build() {
    docker_host();
    let servers = Servers::start(10);
    let engine = Engine::start("ten", None);
    for sshd in &servers.sshds {
        engine.serve(sshd);
    }
    let hosts: Vec<String> = servers.sshds.iter().map(Sshd::name).collect();
    let tag = format!("pship{}ten:1", std::process::id());
    let _tags = Tags::new(&[&tag]);
    let s = Ship::new("shipten", &servers, "");
    const PAYLOAD: usize = 16 << 20;
    s.payload(PAYLOAD);
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"image\"\nimage = {{ tag = {tag:?}, build = {{ context = \"app\" }} }}\n"
        ),
    );
    let (up, peak) = s.run_measured(&["up", "test", "--output", "json", "-vv"]);
    up.expect_code(0);
    let built: Vec<&String> = hosts
        .iter()
        .filter(|h| image_message(&up, h).contains("(built on the controller)"))
        .collect();
    assert_eq!(
        built.len(),
        1,
        "one build for ten hosts: {built:?}\n{}",
        up.dump()
    );
    for h in &hosts {
        assert_eq!(image_status(&up, h), "changed", "{}", up.dump());
    }
    assert_eq!(hosts_sent_a_file(&up).len(), 10, "{}", up.dump());
    let id = controller_id(&tag).expect("built");
    assert_eq!(engine.image_id(&tag), Some(id));
    eprintln!(
        "shipped a {} MiB image to 10 hosts at once over ssh: peak RSS {} MiB, {:?}",
        PAYLOAD >> 20,
        peak / 1024,
        up.elapsed
    );
    assert!(
        peak < 96 * 1024,
        "peak RSS {} MiB for 10 streams",
        peak / 1024
    );
    let again = s.run(&["up", "test", "--output", "json", "-vv"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    assert!(hosts_sent_a_file(&again).is_empty(), "{}", again.dump());
}

/// A registry without auth and no username/password in the playbook: pushed and pulled by
/// digest with the engines' own (empty) logins.
#[test]
fn ship_through_an_open_registry() {
    docker_host();
    let registry = Registry::start(None);
    let servers = Servers::start(1);
    let engine = Engine::start("open", None);
    engine.serve(&servers.sshds[0]);
    let host = servers.sshds[0].name();
    let tag = format!("pship{}open:1", std::process::id());
    let _tags = Tags::new(&[&tag, &format!("127.0.0.1:{}/{tag}", registry.port)]);
    let s = Ship::new("shipopen", &servers, "");
    s.payload(1 << 20);
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"image\"\nimage = {{ tag = {tag:?}, build = {{ context = \"app\" }}, ship = {{ registry = \"127.0.0.1:{}\" }} }}\n",
            registry.port
        ),
    );
    let up = s.run(&["up", "test", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(image_status(&up, &host), "changed", "{}", up.dump());
    let id = controller_id(&tag).expect("built");
    assert_eq!(engine.image_id(&tag), Some(id));
    let out = engine.docker(&["image", "inspect", "-f", "{{json .RepoDigests}}", &tag]);
    let digests = String::from_utf8_lossy(&out.stdout);
    assert!(
        digests.contains("@sha256:"),
        "not pulled by digest: {digests}"
    );
    let again = s.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());
}
