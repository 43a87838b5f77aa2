//! The operator's commands against real targets: `exec` on several hosts with one failing,
//! `status` after a deploy and while a lock is held, `unlock`, `logs` (and `--follow` stopped
//! by a signal) of a real container on a real Docker engine, `ssh` (the system client, jump
//! host included); and the conventions: completions, man page, --version, --help examples,
//! --color / NO_COLOR, -q, config discovery.

#[path = "support/docker.rs"]
mod docker_support;
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use docker_support::{BASE_IMAGE, docker, docker_host, docker_ok};
use support::*;

/// A key and `n` servers; each server's private /var/lib/provision holds a `name` file
/// (`h0`, `h1`, …) so a command can tell the "machines" apart.
fn servers(n: usize) -> Servers {
    let servers = Servers::start(n);
    for (i, s) in servers.sshds.iter().enumerate() {
        std::fs::write(s.state_dir().join("name"), format!("h{i}\n")).unwrap();
    }
    servers
}

fn project_on(app: &str, sshds: &[Sshd], key: &ClientKey, extra_env: &str) -> Project {
    let p = Project::new();
    let hosts: Vec<String> = sshds.iter().map(|s| s.addr("root")).collect();
    p.write(
        "provision.toml",
        &format!(
            "{}{extra_env}",
            project_toml(app, &hosts, key, "retries = 0")
        ),
    );
    p
}

/// The lines of `text` that start with `[host]`.
fn lines_of<'a>(text: &'a str, host: &str) -> Vec<&'a str> {
    let prefix = format!("[{host}] ");
    text.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// Lines of each host are contiguous (not interleaved with another host's).
fn assert_grouped(text: &str) {
    let mut seen: Vec<String> = Vec::new();
    for l in text.lines() {
        let Some(host) = l
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|x| x.0)
        else {
            continue;
        };
        if seen.last().map(String::as_str) != Some(host) {
            assert!(
                !seen.iter().any(|h| h == host),
                "lines of {host} are not grouped:\n{text}"
            );
            seen.push(host.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// exec
// ---------------------------------------------------------------------------------------------

#[test]
fn exec_runs_everywhere_prefixes_by_host_and_fails_when_one_host_fails() {
    let Servers { key, sshds, .. } = &servers(3);
    // h1 is the broken machine.
    std::fs::write(sshds[1].state_dir().join("broken"), "").unwrap();
    let p = project_on(
        "execapp",
        sshds,
        key,
        "remote_env = { GREETING = \"hi from\" }\n",
    );
    let cmd = "if [ -e /var/lib/provision/broken ]; then echo \"disk full on $(cat /var/lib/provision/name)\" >&2; exit 7; fi; \
               echo \"$GREETING $(cat /var/lib/provision/name)\"; echo second line";
    let r = p.run(&["exec", "test", "--", cmd]);
    r.expect_code(3);
    assert_grouped(&r.stdout);
    let (h0, h1, h2) = (sshds[0].name(), sshds[1].name(), sshds[2].name());
    // The healthy hosts ran (remote_env included) although h1 failed.
    assert_eq!(
        lines_of(&r.stdout, &h0),
        [format!("[{h0}] hi from h0"), format!("[{h0}] second line")]
    );
    assert_eq!(
        lines_of(&r.stdout, &h2),
        [format!("[{h2}] hi from h2"), format!("[{h2}] second line")]
    );
    assert_eq!(
        lines_of(&r.stdout, &h1),
        [
            format!("[{h1}] disk full on h1"),
            format!("[{h1}] exit code 7")
        ]
    );
    assert_eq!(
        r.stdout.lines().last().unwrap(),
        "exec on 3 hosts: 2 ok, 1 failed, 0 unreachable"
    );

    // -q: only the failing host and the summary.
    let q = p.run(&["exec", "test", "-q", "--", cmd]);
    q.expect_code(3);
    assert!(lines_of(&q.stdout, &h0).is_empty() && lines_of(&q.stdout, &h2).is_empty());
    assert_eq!(lines_of(&q.stdout, &h1).len(), 2, "{}", q.dump());

    // --limit picks hosts; all fine → 0.
    let ok = p.run(&[
        "exec",
        "test",
        "--limit",
        &h2,
        "--",
        "cat /var/lib/provision/name",
    ]);
    ok.expect_code(0);
    assert_eq!(lines_of(&ok.stdout, &h2), [format!("[{h2}] h2")]);

    // An unreachable host does not stop the others either; exit 4 wins over 3.
    let dead = format!("root@127.0.0.1:{}", closed_port());
    let mut hosts: Vec<String> = sshds.iter().map(|s| s.addr("root")).collect();
    hosts.push(dead.clone());
    p.write(
        "provision.toml",
        &project_toml("execapp", &hosts, key, "retries = 0"),
    );
    let r = p.run(&["exec", "test", "--", cmd]);
    r.expect_code(4);
    assert_eq!(lines_of(&r.stdout, &h0).len(), 2, "{}", r.dump());
    let dead_name = dead.trim_start_matches("root@");
    assert!(
        lines_of(&r.stdout, dead_name)[0].contains("UNREACHABLE"),
        "{}",
        r.dump()
    );
    assert!(
        r.stdout
            .ends_with("exec on 4 hosts: 2 ok, 1 failed, 1 unreachable\n")
    );
}

// ---------------------------------------------------------------------------------------------
// status, unlock, logs: a real container on the test Docker engine
// ---------------------------------------------------------------------------------------------

/// A project whose playbook runs a container printing `tick N` every second, recorded as
/// release `v1-<app>`.
fn container_project(app: &str, sshd: &Sshd, key: &ClientKey) -> Project {
    let p = engine_project(app, sshd, key);
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "release = \"v1-{app}\"\n\n[[step]]\nname = \"app\"\ndocker_run = {{ name = \"{app}\", image = \"{BASE_IMAGE}\", pull = \"never\", \
             command = \"i=0; while :; do i=$((i+1)); echo tick $i; echo warn $i >&2; sleep 1; done\" }}\n"
        ),
    );
    p
}

/// A project `app` on `sshd` whose host reaches the test Docker engine, with no container
/// `app` left from an earlier run.
fn engine_project(app: &str, sshd: &Sshd, key: &ClientKey) -> Project {
    let _ = docker_ok(&["rm", "-f", app]);
    project_on(
        app,
        std::slice::from_ref(sshd),
        key,
        &format!("remote_env = {{ DOCKER_HOST = \"{}\" }}\n", docker_host()),
    )
}

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_ok(&["rm", "-f", &self.0]);
    }
}

#[test]
fn status_after_a_deploy_while_locked_and_unlock() {
    let Servers { key, sshds, .. } = &servers(1);
    let sshd = &sshds[0];
    let app = format!("opstatus{}", std::process::id());
    let p = container_project(&app, sshd, key);
    let _c = Container(app.clone());
    let host = sshd.name();

    // Before any deploy.
    let r = p.run(&["status", "test"]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains(&format!("[{host}] release:     none recorded")),
        "{}",
        r.dump()
    );
    assert!(
        r.stdout
            .contains(&format!("[{host}] container:   {app} absent")),
        "{}",
        r.dump()
    );

    p.run(&["up", "test"]).expect_code(0);
    let r = p.run(&["status", "test"]);
    r.expect_code(0);
    let lines = lines_of(&r.stdout, &host);
    assert_eq!(lines.len(), 4, "{}", r.dump());
    assert!(
        lines[0].starts_with(&format!("[{host}] release:     v1-{app} (deployed 20")),
        "{}",
        r.dump()
    );
    assert!(lines[1].contains(" ok, 1 changed"), "{}", r.dump());
    assert!(
        lines[2].starts_with(&format!(
            "[{host}] container:   {app} running (image {BASE_IMAGE}, started 20"
        )),
        "{}",
        r.dump()
    );
    assert_eq!(lines[3], format!("[{host}] lock:        free"));
    assert_eq!(
        r.stdout.lines().last().unwrap(),
        "status of 1 host: 1 answered, 0 unreachable"
    );
    let j = p.run(&["status", "test", "--output", "json"]);
    let e = &j.events()[0];
    assert_eq!(e["release"]["release"], format!("v1-{app}"));
    assert_eq!(e["container"]["state"], "running");
    assert!(e["lock"].is_null());

    // A lock as an interrupted deploy leaves it, a minute old (not stale yet).
    let lock = sshd.leave_lock(
        &app,
        "test",
        "alice@laptop (pid 4242)",
        Duration::from_secs(60),
    );
    let r = p.run(&["status", "test"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!(
            "[{host}] lock:        held by alice@laptop (pid 4242) for 1m"
        )),
        "{}",
        r.dump()
    );
    let j = p.run(&["status", "test", "--output", "json"]);
    assert_eq!(j.events()[0]["lock"]["owner"], "alice@laptop (pid 4242)");
    assert!(j.events()[0]["lock"]["age_secs"].as_u64().unwrap() >= 60);

    // A no-op `up` and a `plan` find it in their one probe round trip, say whose it is and how
    // old, and leave it alone (they take no lock).
    let r = p.run(&["up", "test"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!(
            "[{host}] WARNING: the deploy lock is held by alice@laptop (pid 4242) since "
        )) && r
            .stdout
            .contains("this run changed nothing and left it alone")
            && r.stdout.contains("run `provision unlock test`"),
        "{}",
        r.dump()
    );
    assert!(r.stdout.contains("changed=0"), "{}", r.dump());
    assert!(lock.exists());
    let j = p.run(&["plan", "test", "--output", "json"]);
    j.expect_code(0);
    let warn: Vec<_> = j
        .events()
        .into_iter()
        .filter(|e| e["event"] == "host_warning")
        .collect();
    assert_eq!(warn.len(), 1, "{}", j.dump());
    assert!(
        warn[0]["message"]
            .as_str()
            .unwrap()
            .contains("a change now would be refused"),
        "{}",
        j.dump()
    );

    // unlock: without a terminal it needs --yes, and touches nothing without it.
    let r = p.run(&["unlock", "test"]);
    r.expect_code(1);
    assert!(r.stderr.contains("pass --yes"), "{}", r.dump());
    assert!(lock.exists());
    let r = p.run(&["unlock", "test", "--yes"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!(
            "[{host}] removed the deploy lock held by alice@laptop (pid 4242)"
        )),
        "{}",
        r.dump()
    );
    assert!(!lock.exists());
    let r = p.run(&["status", "test", "-q"]);
    r.expect_code(0);
    assert_eq!(r.stdout, "status of 1 host: 1 answered, 0 unreachable\n");

    // A stopped container, and a container with a Docker health check.
    docker(&["stop", "-t", "1", &app]);
    let r = p.run(&["status", "test"]);
    assert!(
        r.stdout.contains(&format!(
            "[{host}] container:   {app} exited (exit code 137"
        )),
        "{}",
        r.dump()
    );
    let healthy = format!("{app}-hc");
    let _h = Container(healthy.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &healthy,
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        BASE_IMAGE,
        "sleep",
        "300",
    ]);
    wait_until("status reports the container healthy", SOON, || {
        p.run(&["status", "test", "--container", &healthy])
            .stdout
            .contains(&format!("{healthy} running, healthy (image"))
    });
}

#[test]
fn logs_of_a_running_container_and_follow_until_stopped() {
    let Servers { key, sshds, .. } = &servers(1);
    let sshd = &sshds[0];
    let app = format!("oplogs{}", std::process::id());
    let p = container_project(&app, sshd, key);
    let _c = Container(app.clone());
    let host = sshd.name();
    p.run(&["up", "test"]).expect_code(0);

    // The logs so far: stdout to stdout, stderr to stderr, each line prefixed. The container
    // ticks once a second: wait for its second tick instead of sleeping and hoping.
    let mut last = None;
    wait_until("the container logs two ticks", SOON, || {
        let r = p.run(&["logs", "test"]);
        let two = lines_of(&r.stdout, &host).len() >= 2;
        last = Some(r);
        two
    });
    let r = last.unwrap();
    r.expect_code(0);
    let ticks = lines_of(&r.stdout, &host);
    assert_eq!(ticks[0], format!("[{host}] tick 1"));
    assert_eq!(ticks[1], format!("[{host}] tick 2"));
    assert!(
        lines_of(&r.stderr, &host)
            .iter()
            .any(|l| l.ends_with("warn 1")),
        "{}",
        r.dump()
    );
    // A container that is not there: the host fails (exit 3), docker's message shown.
    let r = p.run(&["logs", "test", "--container", "no-such-container-here"]);
    r.expect_code(3);
    assert!(r.stderr.contains("No such container"), "{}", r.dump());

    // --follow: new lines keep coming until SIGTERM, which also ends the remote `docker logs`.
    let mut child = p
        .command(&["logs", "test", "--follow", "--tail", "0"])
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    while got.len() < 2 {
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(l) => got.push(l),
            Err(e) => {
                let _ = child.kill();
                panic!("no new log lines within 15s ({e}); got {got:?}");
            }
        }
    }
    assert!(
        got.iter()
            .all(|l| l.starts_with(&format!("[{host}] tick "))),
        "{got:?}"
    );
    let remote = || {
        Command::new("pgrep")
            .args(["-f", &format!("docker logs --follow --tail=0 {app}")])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(remote(), "no remote docker logs process while following");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > SOON {
            let _ = child.kill();
            panic!("logs --follow did not stop within {SOON:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    wait_until("the remote docker logs --follow ends", SOON, || !remote());

    // --tail 1 is the last line of the log, from whichever stream it was written to. Judged
    // on a stopped container, whose log no longer grows: each second it printed `tick N` on
    // stdout, then `warn N` on stderr, so the last line is `warn N` when both reached the same
    // N, else `tick N` (killed between the two).
    docker(&["stop", "-t", "1", &app]);
    let all = p.run(&["logs", "test"]);
    all.expect_code(0);
    let last_n = |lines: Vec<&str>, word: &str| -> u64 {
        let prefix = format!("[{host}] {word} ");
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .max()
            .unwrap_or_else(|| panic!("no `{word} N` lines\n{}", all.dump()))
    };
    let (ticks, warns) = (
        last_n(lines_of(&all.stdout, &host), "tick"),
        last_n(lines_of(&all.stderr, &host), "warn"),
    );
    let r = p.run(&["logs", "test", "--tail", "1"]);
    r.expect_code(0);
    let (out, err) = (lines_of(&r.stdout, &host), lines_of(&r.stderr, &host));
    // Docker reads the two streams separately, so when both reached the same N their order
    // in the log is either: the one line is the newest line of one of the streams.
    let newest = [
        (ticks >= warns).then(|| (vec![format!("[{host}] tick {ticks}")], Vec::new())),
        (warns >= ticks).then(|| (Vec::new(), vec![format!("[{host}] warn {warns}")])),
    ];
    assert!(
        newest.iter().flatten().any(|(o, e)| *o == out && *e == err),
        "--tail 1 is not the last line (tick {ticks}, warn {warns}):\n{}",
        r.dump()
    );
}

/// `docker_build` with another `dockerfile` (relative to the context) and `build_args`: the
/// image is built from that file with those args; the tag is what it is judged by.
#[test]
fn docker_build_with_another_dockerfile_and_build_args() {
    let Servers { key, sshds, .. } = &servers(1);
    let sshd = &sshds[0];
    let app = format!("opbuild{}", std::process::id());
    let p = engine_project(&app, sshd, key);
    let ctx = p.remote.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch-that-does-not-exist\n").unwrap();
    let alt = |flavour: &str| {
        std::fs::write(
            ctx.join("Dockerfile.alt"),
            format!(
                "FROM {BASE_IMAGE}\nARG GREETING\nLABEL flavour={flavour} greeting=$GREETING\n"
            ),
        )
        .unwrap()
    };
    alt("one");
    let playbook = |tag: &str| {
        format!(
            "[[step]]\nname = \"image\"\ndocker_build = {{ context = \"{}\", dockerfile = \"Dockerfile.alt\", tag = \"{tag}\", build_args = {{ GREETING = \"hello\" }} }}\n",
            ctx.display()
        )
    };
    let label = |tag: &str, name: &str| {
        let format = format!("{{{{index .Config.Labels \"{name}\"}}}}");
        docker(&["image", "inspect", "-f", &format, tag])
            .trim()
            .to_string()
    };
    let (v1, v2) = (format!("{app}:v1"), format!("{app}:v2"));
    p.write("playbooks/deploy.toml", &playbook(&v1));
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.step("image")["status"], "changed", "{}", r.dump());
    assert_eq!(label(&v1, "flavour"), "one");
    assert_eq!(label(&v1, "greeting"), "hello");
    let again = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    // A new Dockerfile goes with a new tag (a commit's, in a real playbook).
    alt("two");
    p.write("playbooks/deploy.toml", &playbook(&v2));
    let r = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(r.step("image")["status"], "changed", "{}", r.dump());
    assert_eq!(label(&v2, "flavour"), "two");
    assert_eq!(
        label(&v1, "flavour"),
        "one",
        "the older tag is kept (keep = 5)"
    );
    for tag in [&v1, &v2] {
        let _ = docker_ok(&["rmi", "-f", tag]);
    }
}

/// A real registry (Debian's `docker-registry`) on a free loopback port, killed on drop.
struct Registry {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let bin = "/usr/bin/docker-registry";
        assert!(
            Path::new(bin).exists(),
            "{bin} is required (apt-get install docker-registry; scripts/deps.sh installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
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
        wait_until("the registry listens", SOON, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Registry {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Push an image built `FROM` the base with `LABEL build=<build>` as `tag`; its id.
fn push_build(tag: &str, build: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nLABEL build={build}\n"),
    )
    .unwrap();
    docker(&["build", "-q", "-t", tag, dir.path().to_str().unwrap()]);
    docker(&["push", tag]);
    docker(&["image", "inspect", "-f", "{{.Id}}", tag])
        .trim()
        .to_string()
}

/// `pull = "always"` against a real registry: a new image pushed under the same tag is
/// pulled and the container recreated (plan says so first); the same image changes nothing;
/// a registry that is gone fails the step with docker's reason.
#[test]
fn docker_run_pull_always_follows_the_registry() {
    let registry = Registry::start();
    let Servers { key, sshds, .. } = &servers(1);
    let sshd = &sshds[0];
    let app = format!("oppull{}", std::process::id());
    let _c = Container(app.clone());
    let image = format!("127.0.0.1:{}/{app}:latest", registry.port);
    let p = engine_project(&app, sshd, key);
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"app\"\ndocker_run = {{ name = \"{app}\", image = \"{image}\", pull = \"always\", command = \"sleep 600\" }}\n"
        ),
    );
    let running = || {
        docker(&["inspect", "-f", "{{.Image}}", &app])
            .trim()
            .to_string()
    };
    let first = push_build(&image, "one");
    p.run(&["up", "test"]).expect_code(0);
    assert_eq!(running(), first);
    let again = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    // A new build under the same tag, and the local copy forgotten: only a pull finds it.
    let second = push_build(&image, "two");
    docker(&["tag", &first, &image]);
    let plan = p.run(&["plan", "test", "--output", "json"]);
    assert_eq!(plan.step("app")["status"], "changed", "{}", plan.dump());
    let up = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(up.step("app")["status"], "changed", "{}", up.dump());
    assert_eq!(running(), second);

    drop(registry);
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(3);
    let message = r.step("app")["message"].as_str().unwrap().to_string();
    assert!(message.contains("cannot pull"), "{message}");
    for id in [first, second] {
        let _ = docker_ok(&["rmi", "-f", &id]);
    }
}

/// A new container that dies at start, with or without a health check: the step fails at
/// once with its logs (the health check's timeout is not waited out) and the previous
/// container is running again, the same one.
#[test]
fn a_container_that_dies_at_start_restores_the_previous_one() {
    let Servers { key, sshds, .. } = &servers(1);
    let sshd = &sshds[0];
    let app = format!("opdies{}", std::process::id());
    let _c = Container(app.clone());
    let p = engine_project(&app, sshd, key);
    let playbook = |command: &str, health: &str| {
        format!(
            "[[step]]\nname = \"app\"\ndocker_run = {{ name = \"{app}\", image = \"{BASE_IMAGE}\", pull = \"never\", command = \"{command}\"{health} }}\n"
        )
    };
    p.write("playbooks/deploy.toml", &playbook("sleep 600", ""));
    p.run(&["up", "test"]).expect_code(0);
    let id = || {
        docker(&["inspect", "-f", "{{.Id}} {{.State.Running}}", &app])
            .trim()
            .to_string()
    };
    let good = id();
    let health = ", healthcheck = { url = \"http://127.0.0.1:1/\", timeout = \"120s\" }";
    for h in ["", health] {
        p.write(
            "playbooks/deploy.toml",
            &playbook("echo dying words; exit 3", h),
        );
        let started = Instant::now();
        let r = p.run(&["up", "test", "--output", "json"]);
        r.expect_code(3);
        let e = r.step("app");
        let text = format!("{}\n{}", e["message"], e["output"]);
        assert!(
            text.contains("exited right after start") && text.contains("dying words"),
            "{text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the health check timeout was waited out"
        );
        assert_eq!(id(), good, "the previous container is not the one running");
    }
}

/// The `tick N` numbers in a logs output.
fn ticks_in(text: &str, host: &str) -> Vec<u64> {
    let prefix = format!("[{host}] tick ");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .collect()
}

#[test]
fn docker_run_labels_and_restart_then_logs_since() {
    let Servers { key, sshds, .. } = &servers(1);
    let sshd = &sshds[0];
    let app = format!("oplabels{}", std::process::id());
    let _c = Container(app.clone());
    let p = engine_project(&app, sshd, key);
    let playbook = |tier: &str| {
        format!(
            "[[step]]\nname = \"app\"\ndocker_run = {{ name = \"{app}\", image = \"{BASE_IMAGE}\", pull = \"never\", \
             restart = \"unless-stopped\", labels = {{ team = \"web\", \"com.example.tier\" = \"{tier}\" }}, \
             command = \"i=0; while :; do i=$((i+1)); echo tick $i; sleep 1; done\" }}\n"
        )
    };
    p.write("playbooks/deploy.toml", &playbook("front"));
    p.run(&["up", "test"]).expect_code(0);
    let inspect = |format: &str| docker(&["inspect", "-f", format, &app]).trim().to_string();
    assert_eq!(
        inspect("{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
    assert_eq!(inspect("{{index .Config.Labels \"team\"}}"), "web");
    assert_eq!(
        inspect("{{index .Config.Labels \"com.example.tier\"}}"),
        "front"
    );
    let again = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    // A label is part of what the container is: changing it recreates the container.
    let id = inspect("{{.Id}}");
    p.write("playbooks/deploy.toml", &playbook("back"));
    let changed = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(
        changed.step("app")["status"],
        "changed",
        "{}",
        changed.dump()
    );
    assert_ne!(inspect("{{.Id}}"), id);
    assert_eq!(
        inspect("{{index .Config.Labels \"com.example.tier\"}}"),
        "back"
    );

    // --since: only what was logged after the instant given (a Unix time, as docker takes it).
    let host = sshd.name();
    let mut before = Vec::new();
    wait_until("the container logs three ticks", SOON, || {
        before = ticks_in(&p.run(&["logs", "test"]).stdout, &host);
        before.len() >= 3
    });
    let seen = *before.iter().max().unwrap();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let since = format!("{}.{:09}", since.as_secs(), since.subsec_nanos());
    let mut after = Vec::new();
    wait_until("a tick after --since", SOON, || {
        let r = p.run(&["logs", "test", "--since", &since]);
        r.expect_code(0);
        after = ticks_in(&r.stdout, &host);
        !after.is_empty()
    });
    assert!(
        after.iter().all(|&n| n > seen),
        "--since {since} shows ticks up to {seen}, printed before it: {after:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// ssh
// ---------------------------------------------------------------------------------------------

fn logins(sshd: &Sshd) -> usize {
    sshd.log().matches("Accepted publickey").count()
}

/// `provision ssh test -- command` as a CI job runs it: nothing in the environment but PATH,
/// HOME and CI, the private key of `key` in `PROVISION_SSH_KEY` and the host key pins in
/// `PROVISION_KNOWN_HOSTS`.
fn ssh_with_env_credentials(
    p: &Project,
    key: &ClientKey,
    pins: &str,
    command: &str,
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .arg("-C")
        .arg(p.dir.path())
        .args(["ssh", "test", "--", command])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &p.home)
        .env("CI", "true")
        .env(
            "PROVISION_SSH_KEY",
            std::fs::read_to_string(&key.private).unwrap(),
        )
        .env("PROVISION_KNOWN_HOSTS", pins)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// With `ssh.become`, `provision ssh` is still the login user's ssh, as documented: one
/// command runs as that user (not through sudo), and a shell says become is not applied.
#[test]
fn ssh_with_become_logs_in_as_the_ssh_user() {
    ensure_user("provtest-sudo", true);
    let Servers { key, sshds, .. } = &servers(1);
    let sshd = &sshds[0];
    let p = Project::new();
    p.write(
        "provision.toml",
        &format!(
            "{}ssh = {{ become = true }}\n",
            project_toml("sshbecome", &[sshd.addr("provtest-sudo")], key, "")
        ),
    );
    p.write(
        "playbooks/deploy.toml",
        "[[step]]\nname = \"who\"\ncommand = { run = \"true\" }\n",
    );
    let r = p.run(&["ssh", "test", "--", "id -un"]);
    r.expect_code(0);
    assert_eq!(r.stdout, "provtest-sudo\n", "{}", r.dump());
    assert!(!r.stderr.contains("not applied"), "{}", r.dump());
    // The same env's `exec` does go through sudo: the difference is the documented one.
    let r = p.run(&["exec", "test", "--", "id -un"]);
    r.expect_code(0);
    assert!(r.stdout.contains("] root"), "{}", r.dump());
    // A shell (no command; stdin is empty, so it ends at once) gets the note.
    let r = p.run(&["ssh", "test"]);
    assert!(
        r.stderr
            .contains("ssh.become is not applied to `provision ssh`"),
        "{}",
        r.dump()
    );
}

#[test]
fn ssh_runs_the_system_client_with_the_same_settings_jump_host_included() {
    let Servers { key, sshds, .. } = &servers(2);
    let (target, jump) = (&sshds[0], &sshds[1]);
    let p = project_on("sshapp", std::slice::from_ref(target), key, "");
    let host = target.name();

    // Direct; the host may be omitted with one host; exit codes pass through.
    let r = p.run(&[
        "ssh",
        "test",
        &host,
        "--",
        "whoami; cat /var/lib/provision/name",
    ]);
    r.expect_code(0);
    assert_eq!(r.stdout, "root\nh0\n");
    let r = p.run(&["ssh", "test", "--", "exit 7"]);
    r.expect_code(7);
    let r = p.run(&["ssh", "test", "nope", "--", "true"]);
    r.expect_code(1);
    assert!(r.stderr.contains("no host `nope`"), "{}", r.dump());
    // Interactive: a login shell on a pseudo-terminal (script(1) plays the person's terminal).
    let before_shell = logins(target);
    let mut child = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} -C {} ssh test",
            env!("CARGO_BIN_EXE_provision"),
            p.dir.path().display()
        ))
        .arg("/dev/null")
        .env("HOME", &p.home)
        .env("TERM", "dumb")
        .env_remove("CI")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    // Type once the system ssh has logged in (provision's own host key check is the first
    // login, ssh's the second), as a person types after seeing the prompt. What is typed then
    // waits in the terminal until the remote shell reads it.
    wait_until("provision ssh logs in to the target", SOON, || {
        logins(target) >= before_shell + 2
    });
    std::io::Write::write_all(&mut stdin, b"echo pty-$((6*7)); tty; exit 5\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = text(&out.stdout).replace('\r', "");
    assert!(shown.contains("\npty-42\n/dev/pts/"), "{shown}");
    assert_eq!(out.status.code(), Some(5), "{shown}");
    drop(stdin);
    // The temp folder with the config, known_hosts and key is gone afterwards.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with("provision-ssh-")
                && std::fs::read_to_string(e.path().join("config"))
                    .is_ok_and(|c| c.contains(&format!("Port {}", target.port)))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Through a jump host, strict host keys from a pin, the key only in the environment.
    let toml = format!(
        "app = \"sshapp\"\n[ssh]\nconfig = \"none\"\nretries = 0\njump = \"{}\"\n\n[env.test]\nhosts = [\"{}\"]\n",
        jump.addr("root"),
        target.addr("root")
    );
    p.write("provision.toml", &toml);
    let pins = format!(
        "{}\n{}\n",
        target.known_hosts_line(),
        jump.known_hosts_line()
    );
    let before = (logins(target), logins(jump));
    let out = ssh_with_env_credentials(&p, key, &pins, "cat /var/lib/provision/name");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "h0\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    // provision's own check and ssh's ProxyJump both went through the jump host.
    assert!(logins(jump) >= before.1 + 2, "{}", jump.log());
    assert!(logins(target) >= before.0 + 2);
    // A wrong pin for the target: refused before ssh runs, no login on the target.
    let wrong = ClientKey::generate(&p.home.join("wrong"));
    let bad_pins = format!(
        "[127.0.0.1]:{} {}\n{}\n",
        target.port,
        wrong.public,
        jump.known_hosts_line()
    );
    let before = logins(target);
    let out = ssh_with_env_credentials(&p, key, &bad_pins, "true");
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match the pinned host key"));
    assert_eq!(logins(target), before);
}

// ---------------------------------------------------------------------------------------------
// Conventions (the binary alone, or one cheap run)
// ---------------------------------------------------------------------------------------------

fn bin(args: &[&str], cwd: &Path, envs: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_provision"));
    c.args(args)
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .env_remove("CI")
        .stdin(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const COMMANDS: [&str; 16] = [
    "up",
    "plan",
    "rollback",
    "releases",
    "hosts",
    "exec",
    "ssh",
    "logs",
    "status",
    "unlock",
    "init",
    "completions",
    "man",
    "validate",
    "config",
    "secrets",
];

#[test]
fn completions_man_help_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // bash: the script loads and registers the completion.
    let script = d.join("provision.bash");
    std::fs::write(&script, bin(&["completions", "bash"], d, &[]).stdout).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p provision",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("provision"));
    let bash = std::fs::read_to_string(&script).unwrap();
    let zsh = text(&bin(&["completions", "zsh"], d, &[]).stdout);
    let fish = text(&bin(&["completions", "fish"], d, &[]).stdout);
    assert!(zsh.starts_with("#compdef provision"));
    assert!(fish.contains("complete -c provision"));
    for c in COMMANDS {
        assert!(
            bash.contains(c) && zsh.contains(c) && fish.contains(c),
            "{c}"
        );
    }
    assert!(bash.contains("--ssh-key-stdin") && fish.contains("ssh-key-stdin"));
    assert_eq!(bin(&["completions", "tcsh"], d, &[]).status.code(), Some(1));

    // man: one page to stdout, or a page per command into a folder.
    let man = text(&bin(&["man"], d, &[]).stdout);
    assert!(man.contains(".TH provision 1"), "{man}");
    for c in COMMANDS {
        assert!(
            man.contains(&format!("provision\\-{c}")),
            "man page lacks {c}"
        );
    }
    let out = bin(&["man", "--dir", d.join("man1").to_str().unwrap()], d, &[]);
    assert!(out.status.success());
    for c in COMMANDS {
        let page = std::fs::read_to_string(d.join(format!("man1/provision-{c}.1")))
            .unwrap_or_else(|e| panic!("provision-{c}.1: {e}"));
        assert!(page.contains(&format!(".TH provision-{c} 1")), "{page}");
    }
    // man(1) renders the page (man-db, installed by scripts/deps.sh).
    let out = Command::new("man")
        .args(["-l"])
        .arg(d.join("man1/provision-logs.1"))
        .env("MANPAGER", "cat")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("--follow"),
        "{}",
        text(&out.stderr)
    );

    // --help of every command shows an example.
    for c in COMMANDS {
        let help = text(&bin(&[c, "--help"], d, &[]).stdout);
        assert!(
            help.contains("Example"),
            "`provision {c} --help` has no example:\n{help}"
        );
    }

    // --version names the commit it was built from.
    let version = text(&bin(&["--version"], d, &[]).stdout);
    let git = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let rest = version
        .trim()
        .strip_prefix(&format!("provision {}", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{version}"));
    if git.status.success() {
        let sha = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no commit in {version:?}"));
        // The build's commit is HEAD, or an ancestor of it when a commit landed after the
        // build (a developer committing while the suite runs).
        let ancestor = Command::new("git")
            .args(["merge-base", "--is-ancestor", sha, "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(
            sha.len() >= 7 && (text(&git.stdout).starts_with(sha) || ancestor.success()),
            "{version} vs {}",
            text(&git.stdout)
        );
    } else {
        assert_eq!(rest, "");
    }
}

#[test]
fn color_quiet_and_config_discovery() {
    let Servers { key, sshds, .. } = &servers(1);
    let p = project_on("convapp", sshds, key, "");
    let f = p.remote_path("f.txt");
    p.write("files/f.txt", "x\n");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"file\"\nfile = {{ src = \"files/f.txt\", dest = \"{f}\" }}\n\n[[step]]\nname = \"fails\"\ncommand = {{ run = \"echo nope >&2; exit 1\" }}\n"
        ),
    );
    let dir = p.dir.path().to_str().unwrap().to_string();
    let home = p.home.to_str().unwrap().to_string();
    let env = [("HOME", home.as_str())];
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let mut all = vec!["-C", dir.as_str()];
        all.extend_from_slice(args);
        let mut e = env.to_vec();
        e.extend_from_slice(extra);
        bin(&all, p.dir.path(), &e)
    };
    // Piped (not a terminal): no colors unless asked for; NO_COLOR yields to --color always.
    let plain = run(&["plan", "test"], &[]);
    assert!(
        !text(&plain.stdout).contains('\x1b'),
        "{}",
        text(&plain.stdout)
    );
    let always = run(&["plan", "test", "--color", "always"], &[]);
    assert!(
        text(&always.stdout).contains("\x1b[33m"),
        "{}",
        text(&always.stdout)
    );
    let forced = run(&["plan", "test", "--color=always"], &[("NO_COLOR", "1")]);
    assert!(text(&forced.stdout).contains("\x1b["));
    let never = run(
        &["plan", "test", "--color", "never"],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert!(!text(&never.stdout).contains('\x1b'));
    // Under a terminal, NO_COLOR turns colors off (script(1) gives the run a pty).
    let under_pty = |no_color: bool| {
        let mut c = Command::new("script");
        c.args(["-qec"])
            .arg(format!(
                "{} -C {dir} plan test --output plain",
                env!("CARGO_BIN_EXE_provision")
            ))
            .arg("/dev/null")
            .env("HOME", &home)
            .env("TERM", "xterm")
            .env_remove("CI")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if no_color {
            c.env("NO_COLOR", "1");
        }
        text(&c.output().unwrap().stdout)
    };
    assert!(
        under_pty(false).contains("\x1b[33m"),
        "{}",
        under_pty(false)
    );
    assert!(!under_pty(true).contains("\x1b[3"), "{}", under_pty(true));

    // -q: only the failure and the one-line summary.
    let q = run(&["up", "test", "-q"], &[("CI", "1")]);
    assert_eq!(q.status.code(), Some(3));
    let lines: Vec<String> = text(&q.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].contains("failed") && lines[0].contains("fails"),
        "{lines:?}"
    );
    assert_eq!(lines[1].trim(), "nope");
    assert!(
        lines[2].starts_with("1 hosts: 1 failed, 0 unreachable; 1 changed"),
        "{lines:?}"
    );
    assert_eq!(
        run(&["plan", "test", "-q", "-v"], &[]).status.code(),
        Some(1)
    );

    // Discovery: from a folder deep inside the project, without -C.
    let deep = p.path("a/b/c");
    std::fs::create_dir_all(&deep).unwrap();
    let out = bin(&["hosts", "test"], &deep, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&sshds[0].name()));
    let elsewhere = tempfile::tempdir().unwrap();
    let out = bin(&["hosts", "test"], elsewhere.path(), &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no provision.toml here or in any parent folder"),
        "{}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Secret values in what the hosts print (issue 19): masked in logs, status, releases, hosts
// ---------------------------------------------------------------------------------------------

/// A value of the env's secrets file that the host (a fake `docker`, its release log) prints.
const CANARY: &str = "Zq8-operator-canary";
const MASK: &str = "********";

/// One server whose `docker` (first in the env's `remote_env` PATH) prints the canary in its
/// logs and as the container's image, and whose release log has the canary as deployer.
fn leaky_host(app: &str) -> (Servers, Project) {
    let servers = servers(1);
    let p = project_on(app, &servers.sshds, &servers.key, "");
    let bin = p.remote.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let docker = bin.join("docker");
    std::fs::write(
        &docker,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n\
             logs) echo \"token {CANARY} out\"; echo \"token {CANARY} err\" >&2 ;;\n\
             container) echo \"running|healthy|app:{CANARY}|2026-01-01T00:00:00Z|0\" ;;\n\
             esac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let toml = std::fs::read_to_string(p.path("provision.toml")).unwrap();
    p.write(
        "provision.toml",
        &format!("{toml}{SECRETS_ENV}remote_env = {{ PATH = {path:?} }}\n"),
    );
    p.write("secrets/test.env", &format!("TOKEN={CANARY}\n"));
    let state = servers.sshds[0].state_dir().join(app).join("test");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("releases.log"),
        format!(
            "{{\"time\":\"2026-01-01T00:00:00Z\",\"release\":\"v1\",\"user\":\"{CANARY}@box (pid 1)\",\"result\":\"ok\",\"changed\":1}}\n"
        ),
    )
    .unwrap();
    (servers, p)
}

/// The canary is nowhere in the output, and the mask is in `stream` (stdout or stderr).
#[track_caller]
fn assert_masked(r: &Run, stream: &str) {
    assert!(
        !r.stdout.contains(CANARY) && !r.stderr.contains(CANARY),
        "the secret value was printed\n{}",
        r.dump()
    );
    let text = if stream == "stdout" {
        &r.stdout
    } else {
        &r.stderr
    };
    assert!(text.contains(MASK), "no mask on {stream}\n{}", r.dump());
}

#[test]
fn logs_mask_secret_values_the_container_prints() {
    let (_servers, p) = leaky_host("maskedlogs");
    let r = p.run(&["logs", "test"]);
    r.expect_code(0);
    assert_masked(&r, "stdout");
    assert_masked(&r, "stderr");
    assert!(
        r.stdout.contains(&format!("token {MASK} out")),
        "{}",
        r.dump()
    );
}

#[test]
fn status_masks_secret_values_in_text_and_json() {
    let (_servers, p) = leaky_host("maskedstatus");
    let r = p.run(&["status", "test"]);
    r.expect_code(0);
    assert_masked(&r, "stdout");
    assert!(
        r.stdout.contains(&format!("image app:{MASK}")),
        "{}",
        r.dump()
    );
    assert!(r.stdout.contains(&format!("by {MASK}@box")), "{}", r.dump());
    let r = p.run(&["status", "test", "--output", "json"]);
    r.expect_code(0);
    assert_masked(&r, "stdout");
    let ev = &r.events()[0];
    assert_eq!(ev["event"], "status");
    assert_eq!(ev["container"]["state"], "running");
    assert_eq!(ev["container"]["image"], format!("app:{MASK}"));
    assert_eq!(ev["release"]["user"], format!("{MASK}@box (pid 1)"));
}

#[test]
fn releases_mask_secret_values_of_the_release_log() {
    let (_servers, p) = leaky_host("maskedreleases");
    for args in [
        &["releases", "test"][..],
        &["releases", "test", "--output", "json"],
    ] {
        let r = p.run(args);
        r.expect_code(0);
        assert_masked(&r, "stdout");
    }
}

#[test]
fn hosts_mask_secret_values_of_host_data() {
    // `hosts` connects nowhere: a user that is a secret value is enough.
    let p = Project::new();
    p.write(
        "provision.toml",
        &format!(
            "app = \"maskedhosts\"\n\n[env.test]\nhosts = [\"{CANARY}@10.9.8.7:22\"]\n{SECRETS_ENV}"
        ),
    );
    p.write("secrets/test.env", &format!("TOKEN={CANARY}\n"));
    for args in [
        &["hosts", "test"][..],
        &["hosts", "test", "--output", "json"],
    ] {
        let r = p.run(args);
        r.expect_code(0);
        assert_masked(&r, "stdout");
    }
}

/// `exec --container`: the command runs inside the app's container (or the one named) on each
/// host, its output prefixed like any exec; a container that is not there fails that host.
#[test]
fn exec_in_the_app_container_and_in_a_named_one() {
    let Servers { key, sshds, .. } = &servers(1);
    let app = format!("opexec{}", std::process::id());
    let p = engine_project(&app, &sshds[0], key);
    let _c = Container(app.clone());
    docker(&["run", "-d", "--name", &app, BASE_IMAGE, "sleep", "600"]);
    let inside = docker(&["inspect", "-f", "{{.Config.Hostname}}", &app]);
    let host = sshds[0].name();
    for args in [vec!["--container"], vec!["--container", app.as_str()]] {
        let mut all = vec!["exec", "test"];
        all.extend(args.iter().copied());
        all.extend(["--", "cat", "/etc/hostname"]);
        let r = p.run(&all);
        r.expect_code(0);
        assert_eq!(
            lines_of(&r.stdout, &host),
            [format!("[{host}] {}", inside.trim())],
            "{args:?}: {}",
            r.dump()
        );
    }
    let r = p.run(&[
        "exec",
        "test",
        "--container",
        "no-such-one-here",
        "--",
        "true",
    ]);
    r.expect_code(3);
    assert!(r.stdout.contains("No such container"), "{}", r.dump());
}
