//! Docker for the deploy tests: one shared engine for the whole test run, and a fixture that
//! deploys `examples/hello` with the repo's own `playbooks/deploy.toml` to a real sshd.
//!
//! The engine is a `dockerd` of its own on `unix:///tmp/provision-test-docker/docker.sock`,
//! started on first use (detached, so it outlives the test process and later runs reuse it)
//! under a file lock, so parallel tests and test binaries start it once. The local base images
//! (`scripts/base-images.sh`) are built into it: no registry is ever contacted.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{ClientKey, Project, Run, Sshd, git};

pub const DOCKER_DIR: &str = "/tmp/provision-test-docker";
pub const DOCKER_HOST: &str = "unix:///tmp/provision-test-docker/docker.sock";
pub const BASE_IMAGE: &str = "provision-local/base:1";
pub const DB_IMAGE: &str = "provision-local/postgres:15";
/// The tests' app names: one of these followed by the test process's pid.
pub const APP_BASES: [&str; 10] = [
    "dkflow", "dkwait", "dklock", "dkstate", "dkzero", "dkswitch", "dklb", "dkabsent", "dkinit",
    "dktls",
];
/// The front proxy image of `docker_run`'s start-first strategy (see [`nginx_image`]).
pub const NGINX_IMAGE: &str = "provision-local/nginx:1";

/// The repository root (for `playbooks/`, `templates/`, `examples/hello/`, `scripts/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------------

/// Make sure the shared test engine answers and has the local base images; its DOCKER_HOST.
pub fn docker_host() -> String {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(ensure_engine);
    DOCKER_HOST.to_string()
}

/// An exclusive `flock` on a file, released on drop (when the fd closes).
struct FileLock(std::fs::File);

impl FileLock {
    fn take(path: &str) -> FileLock {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open lock file {path}: {e}"));
        // SAFETY: flock on a file descriptor we own for the lifetime of `f`.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {path}: {}", std::io::Error::last_os_error());
        FileLock(f)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: as above; closing the fd would release it anyway.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .env("DOCKER_HOST", DOCKER_HOST)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pid_alive(pidfile: &Path) -> bool {
    std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        // SAFETY: signal 0 only checks that the process exists.
        .is_some_and(|pid| pid > 0 && unsafe { libc::kill(pid, 0) } == 0)
}

fn ensure_engine() {
    std::fs::create_dir_all(DOCKER_DIR).expect("create the test docker dir");
    let _lock = FileLock::take(&format!("{DOCKER_DIR}/start.lock"));
    let log = format!("{DOCKER_DIR}/dockerd.log");
    if !engine_answers() {
        let pidfile = PathBuf::from(format!("{DOCKER_DIR}/docker.pid"));
        // A dockerd that is alive but does not answer yet is starting: wait for it instead.
        if !pid_alive(&pidfile) {
            let _ = std::fs::remove_file(&pidfile);
            assert!(
                Path::new("/usr/sbin/dockerd").exists() || which("dockerd"),
                "dockerd is required for the Docker tests (scripts/deps.sh installs docker.io)"
            );
            // setsid + nohup, all fds redirected: the engine outlives this test process and
            // holds none of cargo's output pipes.
            let started = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "setsid nohup dockerd --host {DOCKER_HOST} --data-root {DOCKER_DIR}/data \
                     --exec-root {DOCKER_DIR}/exec --pidfile {DOCKER_DIR}/docker.pid \
                     >>{log} 2>&1 </dev/null &"
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run sh to start dockerd");
            assert!(started.success(), "could not launch dockerd");
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine_answers() {
            if Instant::now() > deadline {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(30).collect();
                panic!(
                    "dockerd did not answer on {DOCKER_HOST} within 60s; last lines of {log}:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    reap_stale_apps();
    let out = Command::new(repo_root().join("scripts/base-images.sh"))
        .env("DOCKER_HOST", DOCKER_HOST)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/base-images.sh");
    assert!(
        out.status.success(),
        "scripts/base-images.sh failed (needs busybox-static and postgresql: scripts/deps.sh):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------
// docker CLI helpers (against the test engine)
// ---------------------------------------------------------------------------------------------

/// `docker args…` against the test engine.
pub fn docker_out(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", DOCKER_HOST)
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI is required (docker.io)")
}

/// `docker args…`, panicking on failure; stdout trimmed.
#[track_caller]
pub fn docker(args: &[&str]) -> String {
    let out = docker_out(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker args…`: stdout trimmed when it succeeded.
pub fn docker_ok(args: &[&str]) -> Option<String> {
    let out = docker_out(args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The container's full ID, None when there is no such container.
pub fn container_id(name: &str) -> Option<String> {
    docker_ok(&["container", "inspect", "-f", "{{.Id}}", name])
}

/// `.Config.Image` of a container (the image name it was run with).
#[track_caller]
pub fn container_image(name: &str) -> String {
    docker(&["container", "inspect", "-f", "{{.Config.Image}}", name])
}

/// `.State.Status` of a container.
pub fn container_state(name: &str) -> Option<String> {
    docker_ok(&["container", "inspect", "-f", "{{.State.Status}}", name])
}

/// `.Config.Env` of a container.
#[track_caller]
pub fn container_env(name: &str) -> Vec<String> {
    let json = docker(&["container", "inspect", "-f", "{{json .Config.Env}}", name]);
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("Config.Env of {name} ({e}): {json}"))
}

/// `psql -tAc sql` in the app's database container.
#[track_caller]
pub fn psql(app: &str, sql: &str) -> String {
    docker(&[
        "exec",
        &format!("{app}-db"),
        "psql",
        "-U",
        app,
        "-d",
        app,
        "-tAc",
        sql,
    ])
}

/// The app name of test `base` in this process: `<base><pid>`, so that concurrent runs of the
/// test binary (e.g. `cargo test` and `scripts/test.sh` at once) never share containers.
pub fn app_name(base: &str) -> String {
    format!("{base}{}", std::process::id())
}

/// Remove what earlier test processes that are gone (killed before their cleanup) left in the
/// engine: every container, volume, network and image named after `<base><pid>` of a dead pid.
fn reap_stale_apps() {
    let mut names = Vec::new();
    for args in [
        &["ps", "-a", "--format", "{{.Names}}"][..],
        &["volume", "ls", "--format", "{{.Name}}"],
        &["network", "ls", "--format", "{{.Name}}"],
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
    ] {
        if let Some(out) = docker_ok(args) {
            names.extend(out.lines().map(|l| {
                l.strip_prefix(&format!("{DB_IMAGE}-"))
                    .unwrap_or(l)
                    .to_string()
            }));
        }
    }
    let mut stale = BTreeSet::new();
    for name in &names {
        for base in APP_BASES {
            let Some(rest) = name.strip_prefix(base) else {
                continue;
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let Ok(pid) = digits.parse::<i32>() else {
                continue;
            };
            // SAFETY: signal 0 only checks that the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0;
            if !alive && pid != std::process::id() as i32 {
                stale.insert(format!("{base}{digits}"));
            }
        }
    }
    for app in stale {
        eprintln!("removing what a dead test run left in the engine: {app}");
        cleanup_app(&app);
    }
}

/// Remove everything the deploy of `app` creates in the engine (best effort).
pub fn cleanup_app(app: &str) {
    let _ = docker_out(&["rmi", &format!("{DB_IMAGE}-{app}")]);
    for c in [
        app.to_string(),
        format!("{app}-db"),
        format!("{app}--previous"),
        format!("{app}-lb"),
    ] {
        let _ = docker_out(&["rm", "-f", "-v", &c]);
    }
    // A start-first app: its proxy and every container labelled with the service.
    let _ = docker_out(&["rm", "-f", &format!("{app}-proxy")]);
    let label = format!("label=provision.service={app}");
    if let Some(ids) = docker_ok(&["ps", "-aq", "--filter", &label]) {
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = docker_out(&["rm", "-f", "-v", id]);
        }
    }
    let _ = docker_out(&["volume", "rm", "-f", &format!("{app}-pgdata")]);
    let _ = docker_out(&["network", "rm", &format!("{app}-net")]);
    if let Some(images) = docker_ok(&["images", app, "--format", "{{.Repository}}:{{.Tag}}"]) {
        for image in images.lines().filter(|l| !l.is_empty()) {
            let _ = docker_out(&["rmi", "-f", image]);
        }
    }
}

/// Build the local nginx image the start-first proxy runs (Debian's nginx binary, no
/// registry: `examples/compose-three-tier/nginx-image.sh`, idempotent) into the test engine.
pub fn nginx_image() {
    build_local_image("examples/compose-three-tier/nginx-image.sh");
}

/// Build provision-local/haproxy:1 (Debian's HAProxy, `scripts/haproxy-image.sh`): a load
/// balancer with active health checks, in front of start-first proxies with `proxy.lb`.
pub fn haproxy_image() {
    build_local_image("scripts/haproxy-image.sh");
}

fn build_local_image(script: &str) {
    docker_host();
    let out = Command::new(repo_root().join(script))
        .env("DOCKER_HOST", DOCKER_HOST)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Names of the containers labelled `provision.service=<service>` (a start-first app's).
pub fn service_containers(service: &str) -> Vec<String> {
    let label = format!("label=provision.service={service}");
    docker(&["ps", "-a", "--filter", &label, "--format", "{{.Names}}"])
        .lines()
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// GET http://127.0.0.1:port/path: (status, body), None when nothing answered.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// One request of a [`Load`]: when it started (since the load began), how long it took, and
/// its status and body (None: no answer: refused, reset or timed out).
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub took: Duration,
    pub answer: Option<(u16, String)>,
}

/// A load generator: `workers` threads together sending `rate` GET requests per second to
/// 127.0.0.1:port/path, each on a fresh TCP connection (HTTP/1.0, `Connection: close`), paced
/// on a shared schedule, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Sample>>>,
    began: Instant,
}

/// What a [`Load`] saw, in start order.
pub struct LoadReport {
    pub samples: Vec<Sample>,
    pub elapsed: Duration,
}

impl Load {
    pub fn start(port: u16, path: &str, rate: u32, workers: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let began = Instant::now();
        let next = Arc::new(Mutex::new(0u64));
        let period = Duration::from_secs(1) / rate;
        let threads = (0..workers)
            .map(|_| {
                let (stop, next, path) = (stop.clone(), next.clone(), path.to_string());
                std::thread::spawn(move || {
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        // Take the next slot of the schedule; pacing, not waiting for a condition.
                        let slot = {
                            let mut n = next.lock().unwrap();
                            *n += 1;
                            period * (*n as u32)
                        };
                        if let Some(wait) = slot.checked_sub(began.elapsed()) {
                            std::thread::sleep(wait);
                        }
                        let at = began.elapsed();
                        let t = Instant::now();
                        let answer = http_get(port, &path);
                        samples.push(Sample {
                            at,
                            took: t.elapsed(),
                            answer,
                        });
                    }
                    samples
                })
            })
            .collect();
        Load {
            stop,
            threads,
            began,
        }
    }

    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.began.elapsed();
        let mut samples: Vec<Sample> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("load thread"))
            .collect();
        samples.sort_by_key(|s| s.at);
        LoadReport { samples, elapsed }
    }
}

impl LoadReport {
    /// Requests that got no answer or not a 200.
    pub fn failed(&self) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| !matches!(s.answer, Some((200, _))))
            .collect()
    }

    /// The `q` quantile (0..=1) of the latencies.
    pub fn latency(&self, q: f64) -> Duration {
        let mut t: Vec<Duration> = self.samples.iter().map(|s| s.took).collect();
        t.sort();
        let i = ((t.len() as f64 - 1.0) * q).round() as usize;
        t.get(i).copied().unwrap_or_default()
    }

    /// Requests per second over the whole load.
    pub fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// One line for the test output: count, failures, rate, p50/p99.
    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.1}s ({:.0} req/s, fresh TCP connection each), {} failed, p50 {:.1} ms, p99 {:.1} ms",
            self.samples.len(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.failed().len(),
            self.latency(0.5).as_secs_f64() * 1e3,
            self.latency(0.99).as_secs_f64() * 1e3
        )
    }
}

/// The app's page, which must answer 200.
#[track_caller]
pub fn hello(port: u16) -> String {
    match http_get(port, "/cgi-bin/hello") {
        Some((200, body)) => body,
        other => panic!("GET /cgi-bin/hello on port {port}: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Process-list watcher (secrets must never be on a command line)
// ---------------------------------------------------------------------------------------------

/// Samples `ps -eo args` every 20 ms until stopped, keeping lines holding any needle, and
/// the `docker …` command lines it saw (evidence that the sampling catches them).
pub struct PsWatch {
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<BTreeSet<String>>>,
    docker: Arc<Mutex<BTreeSet<String>>>,
    samples: Arc<Mutex<usize>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a [`PsWatch`] saw.
pub struct PsSeen {
    pub samples: usize,
    /// Command lines holding a needle.
    pub hits: BTreeSet<String>,
    /// Every `docker …` command line seen.
    pub docker: BTreeSet<String>,
}

impl PsWatch {
    pub fn start(needles: &[String]) -> PsWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(BTreeSet::new()));
        let docker = Arc::new(Mutex::new(BTreeSet::new()));
        let samples = Arc::new(Mutex::new(0));
        let needles = needles.to_vec();
        let (s, h, d, n) = (stop.clone(), hits.clone(), docker.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(out) = Command::new("ps")
                    .args(["-eo", "args"])
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                {
                    let text = String::from_utf8_lossy(&out.stdout);
                    for line in text.lines() {
                        if needles.iter().any(|x| line.contains(x.as_str())) {
                            h.lock().unwrap().insert(line.to_string());
                        }
                        if line.starts_with("docker ") {
                            d.lock().unwrap().insert(line.to_string());
                        }
                    }
                    *n.lock().unwrap() += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PsWatch {
            stop,
            hits,
            docker,
            samples,
            thread: Some(thread),
        }
    }

    /// Stop sampling and say what was seen.
    pub fn finish(mut self) -> PsSeen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("ps watcher");
        }
        PsSeen {
            samples: *self.samples.lock().unwrap(),
            hits: self.hits.lock().unwrap().clone(),
            docker: self.docker.lock().unwrap().clone(),
        }
    }
}

impl Drop for PsWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// The deploy fixture
// ---------------------------------------------------------------------------------------------

/// A target (sshd logging in as root, reaching the test engine through `remote_env`), a git
/// repo of `examples/hello`, and a project using the repo's own `playbooks/deploy.toml` and
/// `templates/`. Its containers, volume, network and images are removed before and after.
pub struct Deploy {
    pub p: Project,
    pub sshd: Sshd,
    pub key: ClientKey,
    /// Unique per test: names the containers, network, volume and state dir.
    pub app: String,
    pub http_port: u16,
    pub greeting: String,
    /// Bare repo the target clones from, and a working clone to commit in.
    pub bare: PathBuf,
    pub work: PathBuf,
    /// Secret values: distinctive canaries.
    pub app_secret: String,
    pub db_password: String,
    /// Extra `[vars]` lines.
    pub extra_vars: String,
}

impl Deploy {
    /// `base`: one of [`APP_BASES`]; the app is named `<base><pid>`.
    pub fn new(base: &str) -> Deploy {
        assert!(APP_BASES.contains(&base), "add {base} to APP_BASES");
        docker_host();
        let app = &app_name(base);
        cleanup_app(app);
        let p = Project::new();
        let key = ClientKey::generate(&p.path("keys"));
        let sshd = Sshd::start(&key);
        let http_port = crate::support::free_port();
        let tag = format!("{:x}{:x}", std::process::id(), sshd.port);
        let bare = p.path("hello.git");
        let work = p.path("work");
        let d = Deploy {
            app: app.to_string(),
            http_port,
            greeting: format!("Hello from {app}"),
            bare,
            work,
            app_secret: format!("CanaryAppSecret{tag}x7q"),
            db_password: format!("CanaryDbPass{tag}z9k"),
            extra_vars: String::new(),
            p,
            sshd,
            key,
        };
        d.make_repo();
        for f in ["playbooks/deploy.toml", "templates/release.txt.j2"] {
            let text = std::fs::read_to_string(repo_root().join(f))
                .unwrap_or_else(|e| panic!("read {f}: {e}"));
            d.p.write(f, &text);
        }
        d.write_config();
        d.write_secrets();
        d
    }

    /// The remote base dir (`base` var): the app folder on the target.
    pub fn base(&self) -> PathBuf {
        self.p.remote.join("srv")
    }

    /// provision.toml from the fixture's fields.
    pub fn write_config(&self) {
        let toml = format!(
            "app = {app:?}\nrepo = {repo:?}\n\n\
             [vars]\nbase = {base:?}\nref = \"main\"\nhttp_port = {port}\ngreeting = {greeting:?}\n\
             base_image = {BASE_IMAGE:?}\ndb_image = {DB_IMAGE:?}\npull = \"never\"\n{extra}\n\
             [ssh]\nidentity_file = {key:?}\nknown_hosts = \"accept-new\"\nconfig = \"none\"\nconnect_timeout = \"10s\"\n\n\
             [env.test]\nhosts = [{host:?}]\nsecrets = \"secrets/test.env\"\n\
             remote_env = {{ DOCKER_HOST = {DOCKER_HOST:?} }}\n",
            app = self.app,
            repo = self.bare.display().to_string(),
            base = self.base().display().to_string(),
            port = self.http_port,
            greeting = self.greeting,
            extra = self.extra_vars,
            key = self.key.private.display().to_string(),
            host = self.sshd.addr("root"),
        );
        self.p.write("provision.toml", &toml);
    }

    pub fn write_secrets(&self) {
        self.p.write(
            "secrets/test.env",
            &format!(
                "APP_SECRET={}\nDB_PASSWORD={}\n",
                self.app_secret, self.db_password
            ),
        );
    }

    /// The bare repo and a working clone holding `examples/hello`, committed and pushed.
    fn make_repo(&self) {
        std::fs::create_dir_all(&self.bare).expect("create bare repo dir");
        git(&self.bare, &["init", "-q", "--bare", "-b", "main"]);
        let parent = self.work.parent().expect("work parent");
        git(
            parent,
            &[
                "clone",
                "-q",
                &self.bare.display().to_string(),
                &self.work.display().to_string(),
            ],
        );
        git(&self.work, &["checkout", "-q", "-B", "main"]);
        copy_dir(&repo_root().join("examples/hello"), &self.work);
        self.commit("hello app from examples/hello");
    }

    /// Write a file in the working clone (relative path).
    pub fn write_app_file(&self, rel: &str, content: &str) {
        let path = self.work.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Commit everything in the working clone and push it; the new commit's SHA.
    pub fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                message,
            ],
        );
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Run provision on the project.
    pub fn run(&self, args: &[&str]) -> Run {
        self.p.run(args)
    }

    /// The app container's image tag for a commit.
    /// `up test --output json` plus `extra`, checked for secrets like every run of a test.
    pub fn up_checked(&self, extra: &[&str]) -> Run {
        let mut args = vec!["up", "test", "--output", "json"];
        args.extend_from_slice(extra);
        let r = self.run(&args);
        self.assert_no_secrets(&r, &[]);
        r
    }

    pub fn image_for(&self, sha: &str) -> String {
        format!("{}:{}", self.app, &sha[..12])
    }

    pub fn db(&self) -> String {
        format!("{}-db", self.app)
    }

    /// Where provision keeps this app's lock, release log and migration markers on the target.
    pub fn state_dir(&self) -> PathBuf {
        self.sshd.state_dir().join(&self.app).join("test")
    }

    /// Canary values this fixture's secrets hold.
    pub fn canaries(&self) -> Vec<String> {
        vec![self.app_secret.clone(), self.db_password.clone()]
    }

    /// No secret value (current or `also`) appears in what a run printed.
    #[track_caller]
    pub fn assert_no_secrets(&self, r: &Run, also: &[String]) {
        for c in self.canaries().iter().chain(also) {
            assert!(
                !r.stdout.contains(c.as_str()) && !r.stderr.contains(c.as_str()),
                "a secret value ({c}) was printed\n{}",
                r.dump()
            );
        }
    }
}

impl Drop for Deploy {
    fn drop(&mut self) {
        cleanup_app(&self.app);
    }
}

/// Copy a directory tree (files and dirs; permissions kept).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// Names of the steps with `status` (for `--output json` runs).
pub fn steps(r: &Run, status: &str) -> BTreeSet<String> {
    r.steps_with(status)
}

/// `BTreeSet` of string literals.
pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}
