//! The worked examples in `examples/<name>/`, each deployed as shipped (its own provision.toml,
//! playbooks, templates and app) to a real sshd on loopback whose Docker is the tests' shared
//! engine. The test adds an `[env.test]` to the example's provision.toml (the host, the key,
//! DOCKER_HOST, local images instead of Docker Hub ones, paths under a temp dir), deploys,
//! answers the example's own smoke check, and runs `up` again: 0 changes.

#[path = "support/docker.rs"]
mod docker_support;
mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use docker_support::*;
use support::*;

/// The `vars` of the examples that run PostgreSQL behind nginx: local images, loopback only.
const NGINX_POSTGRES_VARS: &str = "http_bind = \"127.0.0.1\", db_image = \"provision-local/postgres:15\", nginx_image = \"provision-local/nginx:1\"";

/// An example copied into a project, its app renamed `<app><pid>` so concurrent runs never
/// share containers, and an `[env.test]` appended. What the app leaves on the Docker engine is
/// removed before the test and when it ends.
struct Example {
    // Dropped first: the containers go before the host and project they were deployed from.
    _cleanup: Cleanup,
    p: Project,
    app: String,
    _sshd: Sshd,
    http_port: u16,
}

impl Example {
    /// [`Example::new`] for an example that serves through nginx from PostgreSQL, with the
    /// local nginx image built first.
    fn with_nginx_and_postgres(name: &str) -> Example {
        nginx_image();
        Example::new(name, NGINX_POSTGRES_VARS)
    }

    fn new(name: &str, env_vars: &str) -> Example {
        docker_host();
        let p = Project::new();
        copy_dir(&repo_root().join("examples").join(name), p.dir.path());
        let toml_path = p.path("provision.toml");
        let toml = std::fs::read_to_string(&toml_path).expect("example provision.toml");
        let original = toml
            .lines()
            .find_map(|l| l.strip_prefix("app = \""))
            .and_then(|r| r.strip_suffix('"'))
            .expect("app = \"…\" line")
            .to_string();
        let app = format!("{original}{}", std::process::id());
        let key = ClientKey::generate(&p.path("keys"));
        let sshd = Sshd::start(&key);
        let http_port = free_port();
        let toml = toml.replacen(
            &format!("app = \"{original}\""),
            &format!("app = \"{app}\""),
            1,
        );
        let toml = format!(
            "{toml}\n[env.test]\nhosts = [{host:?}]\nsecrets = \"secrets/test.env\"\n\
             remote_env = {{ DOCKER_HOST = {DOCKER_HOST:?} }}\n\
             ssh = {{ identity_file = {key:?}, known_hosts = \"accept-new\", config = \"none\" }}\n\
             vars = {{ base = {base:?}, http_port = {http_port}, {env_vars} }}\n",
            host = sshd.addr("root"),
            key = key.private.display().to_string(),
            base = p.remote_path("srv"),
        );
        p.write("provision.toml", &toml);
        p.write(
            "secrets/test.env",
            &format!("DB_PASSWORD=ex{}pw\n", std::process::id()),
        );
        cleanup(&app);
        Example {
            _cleanup: Cleanup(app.clone()),
            p,
            app,
            _sshd: sshd,
            http_port,
        }
    }

    fn up(&self, env: &str) -> Run {
        self.p
            .run_timeout(&["up", env, "--output", "json"], Duration::from_secs(300))
    }

    /// `up test` with one more variable (`-e name=value`): it succeeds.
    #[track_caller]
    fn up_with_var(&self, var: &str) -> Run {
        let r = self.p.run_timeout(
            &["up", "test", "--output", "json", "-e", var],
            Duration::from_secs(300),
        );
        r.expect_code(0);
        r
    }

    /// `sql` run by psql in the app's database container (`<app>-db`, user and database
    /// named after the app), unaligned and without headers.
    fn psql(&self, sql: &str) -> String {
        docker(&[
            "exec",
            &format!("{}-db", self.app),
            "psql",
            "-U",
            &self.app,
            "-d",
            &self.app,
            "-tAc",
            sql,
        ])
    }

    /// The first `up`: it succeeds with no failed step.
    #[track_caller]
    fn first_up(&self) -> Run {
        let r = self.up("test");
        r.expect_code(0);
        assert_eq!(r.failed(), 0, "{}", r.dump());
        r
    }

    /// Another `up` right after one that converged: it succeeds and changes nothing.
    #[track_caller]
    fn up_changes_nothing(&self) -> Run {
        let r = self.up("test");
        r.expect_code(0);
        assert_eq!(r.changed(), 0, "second run changes nothing\n{}", r.dump());
        r
    }
}

/// GET through the published port: (status, headers, body); retried until `bound`.
fn get(port: u16, path: &str, bound: Duration) -> (u16, String, String) {
    fetch(port, path, bound, false)
}

/// [`get`] asking for gzip (the body is then compressed bytes, read lossily).
fn get_gzip(port: u16, path: &str, bound: Duration) -> (u16, String, String) {
    fetch(port, path, bound, true)
}

fn fetch(port: u16, path: &str, bound: Duration, gzip: bool) -> (u16, String, String) {
    let deadline = Instant::now() + bound;
    let accept = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    loop {
        let once = || -> Option<(u16, String, String)> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n"
            )
            .ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).ok()?;
            let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
            let head = String::from_utf8_lossy(&buf[..split]).into_owned();
            let body = &buf[split + 4..];
            let status = head.split_whitespace().nth(1)?.parse().ok()?;
            let body = if header(&head, "Transfer-Encoding") == Some("chunked") {
                dechunk(body)
            } else {
                body.to_vec()
            };
            Some((status, head, String::from_utf8_lossy(&body).into_owned()))
        };
        match once() {
            Some(r) if r.0 == 200 => return r,
            other if Instant::now() > deadline => {
                panic!("GET {path} on 127.0.0.1:{port}: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let data = &rest[eol + 2..];
        if n == 0 || data.len() < n {
            break;
        }
        out.extend_from_slice(&data[..n]);
        rest = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    out
}

/// A response header's value (case-insensitive name).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Remove containers, volumes and networks whose name starts with `app` (best effort).
fn cleanup(app: &str) {
    for (ls, rm) in [
        (
            &["ps", "-a", "--format", "{{.Names}}"][..],
            &["rm", "-f", "-v"][..],
        ),
        (
            &["volume", "ls", "--format", "{{.Name}}"],
            &["volume", "rm", "-f"],
        ),
        (
            &["network", "ls", "--format", "{{.Name}}"],
            &["network", "rm"],
        ),
        (
            &["images", "--format", "{{.Repository}}:{{.Tag}}"],
            &["rmi", "-f"],
        ),
    ] {
        for name in docker_ok(ls).unwrap_or_default().lines() {
            if name.starts_with(app) {
                let mut args = rm.to_vec();
                args.push(name);
                let _ = docker_out(&args);
            }
        }
    }
}

struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup(&self.0);
    }
}

fn nginx_image() {
    let out =
        std::process::Command::new(repo_root().join("examples/compose-three-tier/nginx-image.sh"))
            .env("DOCKER_HOST", DOCKER_HOST)
            .output()
            .expect("run nginx-image.sh");
    assert!(
        out.status.success(),
        "examples/compose-three-tier/nginx-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_three_tier() {
    let ex = Example::with_nginx_and_postgres("compose-three-tier");

    let r = ex.first_up();
    assert_eq!(r.step("seed")["status"], "changed", "{}", r.dump());

    // Smoke: the seeded rows, through nginx, from the app.
    let (_, head, body) = get(ex.http_port, "/items", Duration::from_secs(30));
    assert_eq!(body.trim(), "apples\nbread\ncoffee", "{head}\n{body}");
    // nginx's own $variables survived rendering and nginx filled them in.
    let front = header(&head, "X-Front").unwrap_or_default();
    assert!(
        front.starts_with("nginx/1.") && !front.contains('$'),
        "X-Front: {front:?}\n{head}"
    );
    let upstream = header(&head, "X-Upstream").unwrap_or_default();
    assert!(
        upstream.ends_with(":8000"),
        "X-Upstream: {upstream:?}\n{head}"
    );
    let conf = std::fs::read_to_string(Path::new(&ex.p.remote_path("srv/nginx/nginx.conf")))
        .expect("rendered nginx.conf");
    assert!(conf.contains("proxy_set_header Host $host;"), "{conf}");
    assert!(
        conf.contains(&format!("# Rendered by provision ({}", ex.app)),
        "{conf}"
    );
    // The seed ran once: the rows are in the database.
    let rows = ex.psql("SELECT count(*) FROM items");
    assert_eq!(rows, "3");

    let r = ex.up_changes_nothing();
    assert_eq!(r.step("nginx reload")["status"], "skipped", "{}", r.dump());

    // A config change reaches nginx without recreating anything.
    let front_id = docker(&["inspect", "-f", "{{.Id}}", &format!("{}-front", ex.app)]);
    let toml = std::fs::read_to_string(ex.p.path("provision.toml")).unwrap();
    ex.p.write(
        "provision.toml",
        &toml.replace("nginx_workers = 2", "nginx_workers = 3"),
    );
    let r = ex.up("test");
    r.expect_code(0);
    assert_eq!(
        r.steps_with("changed"),
        set(&["nginx config", "nginx reload"]),
        "{}",
        r.dump()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let workers = docker_ok(&[
            "exec",
            &format!("{}-front", ex.app),
            "sh",
            "-c",
            "ps | grep -c '[n]ginx: worker'",
        ]);
        if workers.as_deref() == Some("3") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nginx workers after reload: {workers:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        docker(&["inspect", "-f", "{{.Id}}", &format!("{}-front", ex.app)]),
        front_id
    );
    get(ex.http_port, "/items", Duration::from_secs(10));
}

#[test]
fn django_style_workshop() {
    let ex = Example::with_nginx_and_postgres("django-style-workshop");

    ex.first_up();

    // Both replicas serve, each with its two workers; production mode; visits in PostgreSQL.
    let mut replicas = std::collections::BTreeSet::new();
    let mut upstreams = std::collections::BTreeSet::new();
    // Which worker takes a request is the kernel's choice: ask until all four answered (or
    // 200 requests went by), instead of judging the spread on a fixed dozen.
    for _ in 0..200 {
        let (_, head, body) = get(ex.http_port, "/page", Duration::from_secs(30));
        assert!(body.contains("mode=production (debug off)"), "{body}");
        replicas.insert(header(&head, "X-Replica").unwrap_or_default().to_string());
        upstreams.insert(header(&head, "X-Served-By").unwrap_or_default().to_string());
        assert_eq!(header(&head, "Cache-Control"), Some("no-store"), "{head}");
        if replicas.len() >= 2 && upstreams.len() >= 4 {
            break;
        }
    }
    assert_eq!(replicas, set(&["1", "2"]), "both replicas answer");
    assert_eq!(upstreams.len(), 4, "2 replicas x 2 workers: {upstreams:?}");
    let visits = ex.psql("SELECT count(DISTINCT replica) FROM visits");
    assert_eq!(visits, "2");

    // Static files: gzip and cache headers from nginx.
    let (_, head, _) = get_gzip(ex.http_port, "/static/style.css", Duration::from_secs(10));
    assert_eq!(header(&head, "Content-Encoding"), Some("gzip"), "{head}");
    assert_eq!(
        header(&head, "Cache-Control"),
        Some("public, max-age=604800, immutable"),
        "{head}"
    );
    assert_eq!(header(&head, "Vary"), Some("Accept-Encoding"), "{head}");

    ex.up_changes_nothing();

    // Development mode: the env var changes, both replicas are recreated, nginx follows.
    let r = ex.up_with_var("mode=development");
    assert_eq!(
        r.steps_with("changed"),
        set(&["app env", "web 1", "web 2", "nginx reload"]),
        "{}",
        r.dump()
    );
    for _ in 0..4 {
        let (_, _, body) = get(ex.http_port, "/page", Duration::from_secs(30));
        assert!(body.contains("mode=development (debug on)"), "{body}");
    }
}

#[test]
fn code_config_state() {
    let ex = Example::new(
        "code-config-state",
        "http_bind = \"127.0.0.1\", base_image = \"provision-local/base:1\"",
    );
    // The code's repository: examples/code-config-state/app as its root.
    let bare = ex.p.path("counter.git");
    let work = ex.p.path("counter-work");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(
        ex.p.dir.path(),
        &[
            "clone",
            "-q",
            &bare.display().to_string(),
            &work.display().to_string(),
        ],
    );
    git(&work, &["checkout", "-q", "-B", "main"]);
    copy_dir(&repo_root().join("examples/code-config-state/app"), &work);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "counter"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let sha1 = git(&work, &["rev-parse", "--short=12", "HEAD"]);
    let toml = std::fs::read_to_string(ex.p.path("provision.toml")).unwrap();
    let toml = toml.replace(
        "repo = \"https://git.example.com/acme/counter.git\"",
        &format!("repo = {:?}", bare.display().to_string()),
    );
    ex.p.write("provision.toml", &toml);
    let page = || get(ex.http_port, "/cgi-bin/count", Duration::from_secs(30)).2;

    let r = ex.up("test");
    r.expect_code(0);
    assert_eq!(page().trim(), format!("Hello, visit 1 (code {sha1})"));
    assert_eq!(page().trim(), format!("Hello, visit 2 (code {sha1})"));
    ex.up_changes_nothing();

    // New code, shipped by the updater: only code steps change; config and state are kept.
    let env_file = std::path::PathBuf::from(ex.p.remote_path("srv/.env"));
    let config_before = (std::fs::read(&env_file).unwrap(), mode_of(&env_file));
    let volume = format!("{}_state", ex.app);
    let created = docker(&["volume", "inspect", "-f", "{{.CreatedAt}}", &volume]);
    let count = std::fs::read_to_string(work.join("cgi-bin/count")).unwrap();
    std::fs::write(
        work.join("cgi-bin/count"),
        count.replace("%s, visit %s", "%s! visit %s"),
    )
    .unwrap();
    git(&work, &["commit", "-q", "-am", "exclaim"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let sha2 = git(&work, &["rev-parse", "--short=12", "HEAD"]);
    let update = || {
        ex.p.run_timeout(
            &["up", "test", "--playbook", "update", "--output", "json"],
            Duration::from_secs(300),
        )
    };
    let r = update();
    r.expect_code(0);
    assert_eq!(
        r.steps_with("changed"),
        set(&["checkout", "image", "compose file", "stack"]),
        "{}",
        r.dump()
    );
    assert_eq!(page().trim(), format!("Hello! visit 3 (code {sha2})"));
    assert_eq!(
        (std::fs::read(&env_file).unwrap(), mode_of(&env_file)),
        config_before,
        ".env untouched by the updater"
    );
    assert_eq!(
        docker(&["volume", "inspect", "-f", "{{.CreatedAt}}", &volume]),
        created
    );
    let r = update();
    r.expect_code(0);
    assert_eq!(r.changed(), 0, "no new code: nothing to do\n{}", r.dump());

    // New config: the full deploy rewrites .env and compose recreates the app; state kept.
    let r = ex.up_with_var("greeting=Bonjour");
    assert_eq!(
        r.steps_with("changed"),
        set(&["config", "stack"]),
        "{}",
        r.dump()
    );
    assert_eq!(page().trim(), format!("Bonjour! visit 4 (code {sha2})"));
}
