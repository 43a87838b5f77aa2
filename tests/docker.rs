//! Docker deploys end to end: the real binary, a real sshd on 127.0.0.1 logging in as root, a
//! real Docker engine (one shared `dockerd` for the test run, see `support/docker.rs`), a git
//! repo of `examples/hello`, and the repo's own `playbooks/deploy.toml`.
//!
//! Every assertion is on real state: container IDs and images (`docker inspect`), the app's
//! HTTP answer, rows in PostgreSQL, files on the host, the release log, the process list.
//!
//! Scenarios are grouped so that a deployed target is reused:
//! - `deploy_update_rollback_and_unhealthy_release`: plan/up/no-op, secret and var changes,
//!   a new commit, rollback, a release whose health check fails; secrets checked throughout.
//! - `wait_for_database`: the `wait` gate succeeding late and timing out.
//! - `concurrent_ups_take_turns`: two `up` at once on one env (the deploy lock).
//! - `stateful_database_needs_allow_recreate`: the DB is only recreated with the flag, data kept.

#[path = "support/docker.rs"]
mod docker_support;
mod support;

use std::time::{Duration, Instant};

use docker_support::*;
use support::*;

/// Number of migration runs recorded in the app's database.
fn migration_runs(d: &Deploy) -> u32 {
    let n = psql(&d.app, "select count(*) from migration_runs");
    n.parse()
        .unwrap_or_else(|_| panic!("count(*) from migration_runs: {n:?}"))
}

/// The release log as `(release, result)` pairs (`provision releases test --output json`).
fn releases(d: &Deploy) -> Vec<(String, String)> {
    let r = d.run(&["releases", "test", "--output", "json"]);
    r.expect_code(0);
    d.assert_no_secrets(&r, &[]);
    r.events()
        .iter()
        .map(|e| {
            assert!(
                e["user"].as_str().is_some_and(|u| u.contains("(pid ")),
                "release record without its deployer: {e}"
            );
            assert!(
                e["time"].as_str().is_some_and(|t| t.ends_with('Z')),
                "release record without a time: {e}"
            );
            (
                e["release"].as_str().unwrap_or_default().to_string(),
                e["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Mode bits and content of a file on the target.
fn host_file(path: &std::path::Path) -> (u32, String) {
    (
        mode_of(path),
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())),
    )
}

#[test]
fn deploy_update_rollback_and_unhealthy_release() {
    let mut d = Deploy::new("dkflow");
    let (app, db) = (d.app.clone(), d.db());
    let sha1 = git(&d.work, &["rev-parse", "HEAD"]);
    let short1 = &sha1[..12];

    // 1. plan on the fresh target lists the changes and changes nothing.
    let plan = d.run(&[
        "plan",
        "test",
        "--output",
        "json",
        "-vv",
        "--detailed-exitcode",
    ]);
    plan.expect_code(2);
    d.assert_no_secrets(&plan, &[]);
    let planned = plan.steps_with("changed");
    let expected = set(&[
        "app folder",
        "checkout",
        "release note",
        "app env",
        "db env",
        "image",
        "database",
        "migrations",
        "app",
    ]);
    assert_eq!(planned, expected, "plan on a fresh target\n{}", plan.dump());
    assert!(container_id(&app).is_none() && container_id(&db).is_none());
    assert!(!d.base().exists(), "plan created the app folder");

    // `up` changes exactly those steps; no secret on any command line meanwhile.
    let watch = PsWatch::start(&d.canaries());
    let first = d.up_checked(&["-vv"]);
    let seen = watch.finish();
    first.expect_code(0);
    assert_eq!(first.steps_with("changed"), planned, "{}", first.dump());
    assert_eq!(first.failed(), 0);
    assert!(
        seen.samples >= 20,
        "only {} process-list samples",
        seen.samples
    );
    assert!(
        seen.hits.is_empty(),
        "secret values on command lines: {:#?}",
        seen.hits
    );
    // The sampling does catch the `docker run` command lines (with their --env-file).
    assert!(
        seen.docker
            .iter()
            .any(|l| l.starts_with("docker run") && l.contains("--env-file")),
        "no `docker run` command line was sampled: {:#?}",
        seen.docker
    );

    let body = hello(d.http_port);
    assert!(
        body.contains(&d.greeting) && body.contains(&format!("release {short1}")),
        "{body}"
    );
    assert_eq!(migration_runs(&d), 1);
    assert_eq!(container_image(&app), d.image_for(&sha1));
    let app_id = container_id(&app).expect("app container");
    let db_id = container_id(&db).expect("db container");

    // 9. The secrets are where they belong: env files (0600) and the containers' env.
    let (mode, app_env) = host_file(&d.base().join("app.env"));
    assert_eq!(mode, 0o600);
    assert!(app_env.contains(&format!("APP_SECRET={}\n", d.app_secret)));
    assert!(app_env.contains(&format!("PGPASSWORD={}\n", d.db_password)));
    let (mode, db_env) = host_file(&d.base().join("db.env"));
    assert_eq!(mode, 0o600);
    assert!(db_env.contains(&format!("POSTGRES_PASSWORD={}\n", d.db_password)));
    assert!(container_env(&app).contains(&format!("APP_SECRET={}", d.app_secret)));
    assert!(container_env(&db).contains(&format!("POSTGRES_PASSWORD={}", d.db_password)));

    // Second up: nothing to change, same containers, in one round trip: the steps using the
    // checkout's SHA are rendered with the one the first `up` left (checked when the
    // checkout registers it) and the gates' looks ahead find them open (issue 14).
    let again = d.up_checked(&[]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    assert_eq!(again.round_trips(), 1, "{}", again.dump());
    assert_eq!(container_id(&app).as_ref(), Some(&app_id));
    assert_eq!(container_id(&db).as_ref(), Some(&db_id));
    for out in ["plain", "json"] {
        let r = d.run(&[
            "plan",
            "test",
            "--output",
            out,
            "-vv",
            "--detailed-exitcode",
        ]);
        r.expect_code(0);
        d.assert_no_secrets(&r, &[]);
    }

    // 2a. Rotate APP_SECRET: only the app env file and the app container change.
    let old_secret = d.app_secret.clone();
    d.app_secret = format!("{old_secret}Rotated");
    d.write_secrets();
    // The host still holds the old value, which this run's redactor does not know.
    let mut planned = Default::default();
    for out in ["plain", "json"] {
        let r = d.run(&["plan", "test", "--output", out, "-vv"]);
        r.expect_code(0);
        d.assert_no_secrets(&r, std::slice::from_ref(&old_secret));
        if out == "plain" {
            assert!(r.stdout.contains("APP_SECRET"), "{}", r.dump());
        } else {
            planned = r.steps_with("changed");
        }
    }
    let watch = PsWatch::start(&[
        d.app_secret.clone(),
        old_secret.clone(),
        d.db_password.clone(),
    ]);
    let rotated = d.up_checked(&["-vv"]);
    let seen = watch.finish();
    rotated.expect_code(0);
    d.assert_no_secrets(&rotated, std::slice::from_ref(&old_secret));
    assert!(
        seen.hits.is_empty(),
        "secret values on command lines: {:#?}",
        seen.hits
    );
    assert_eq!(
        rotated.steps_with("changed"),
        set(&["app env", "app"]),
        "{}",
        rotated.dump()
    );
    // plan predicted exactly this: the env file it would rewrite is the container's input.
    assert_eq!(
        planned,
        rotated.steps_with("changed"),
        "plan listed {planned:?}"
    );
    let app_id2 = container_id(&app).expect("app container");
    assert_ne!(app_id2, app_id, "the app container was not recreated");
    assert_eq!(container_id(&db).as_ref(), Some(&db_id));
    assert!(container_env(&app).contains(&format!("APP_SECRET={}", d.app_secret)));
    assert!(
        host_file(&d.base().join("app.env"))
            .1
            .contains(&d.app_secret)
    );

    // 2b. Change the greeting var: same two steps, the page shows it.
    d.greeting = "Howdy from dkflow".into();
    d.write_config();
    let greeted = d.up_checked(&[]);
    greeted.expect_code(0);
    assert_eq!(
        greeted.steps_with("changed"),
        set(&["app env", "app"]),
        "{}",
        greeted.dump()
    );
    let app_id3 = container_id(&app).expect("app container");
    assert_ne!(app_id3, app_id2);
    assert_eq!(container_id(&db).as_ref(), Some(&db_id));
    assert!(hello(d.http_port).contains("Howdy from dkflow"));

    // 3. A new commit: new image, one more migration run, the app runs the new image.
    d.write_app_file(
        "www/index.html",
        "<!doctype html><title>hello v2</title><p><a href=\"/cgi-bin/hello\">hello</a>\n",
    );
    let sha2 = d.commit("v2");
    let short2 = &sha2[..12];
    let plan = d.run(&["plan", "test", "--output", "json"]);
    plan.expect_code(0);
    let released = d.up_checked(&[]);
    released.expect_code(0);
    assert_eq!(
        released.steps_with("changed"),
        set(&["checkout", "release note", "image", "migrations", "app"]),
        "{}",
        released.dump()
    );
    assert_eq!(plan.steps_with("changed"), released.steps_with("changed"));
    assert_eq!(migration_runs(&d), 2);
    assert_eq!(container_image(&app), d.image_for(&sha2));
    assert!(hello(d.http_port).contains(&format!("release {short2}")));
    assert_eq!(container_id(&db).as_ref(), Some(&db_id));
    let tags = docker(&["images", &app, "--format", "{{.Tag}}"]);
    assert!(tags.contains(short1) && tags.contains(short2), "{tags}");
    let again = d.up_checked(&[]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    // 4. Rollback: the previous release runs again; the log lists the releases.
    let rb = d.run(&["rollback", "test", "--output", "json"]);
    rb.expect_code(0);
    d.assert_no_secrets(&rb, &[]);
    assert!(rb.stderr.contains(&sha1), "{}", rb.dump());
    assert_eq!(container_image(&app), d.image_for(&sha1));
    assert!(hello(d.http_port).contains(&format!("release {short1}")));
    assert_eq!(migration_runs(&d), 2, "rollback re-ran a migration");
    assert_eq!(container_id(&db).as_ref(), Some(&db_id));
    let log = releases(&d);
    let ok = |s: &str| (s.to_string(), "ok".to_string());
    assert_eq!(
        log,
        vec![ok(&sha1), ok(&sha1), ok(&sha1), ok(&sha2), ok(&sha1)],
        "release log"
    );
    let plain = d.run(&["releases", "test"]);
    plain.expect_code(0);
    assert!(
        plain.stdout.contains("5 release(s)") && plain.stdout.contains(&sha2),
        "{}",
        plain.dump()
    );
    let newest = d.up_checked(&["-e", "ref=main"]);
    newest.expect_code(0);
    assert_eq!(container_image(&app), d.image_for(&sha2));
    assert!(hello(d.http_port).contains(&format!("release {short2}")));

    // 5. A release whose health check fails: exit 3, the old container keeps serving.
    let serving = container_id(&app).expect("app container");
    d.write_app_file(
        "www/cgi-bin/health",
        "#!/bin/sh\nprintf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nbroken\\n'\n",
    );
    let sha3 = d.commit("v3: unhealthy");
    let broken = d.up_checked(&[]);
    broken.expect_code(3);
    assert_eq!(
        broken.steps_with("failed"),
        set(&["app"]),
        "{}",
        broken.dump()
    );
    let text = broken.step_text("app");
    eprintln!("unhealthy release: {text}");
    assert!(
        text.contains("health check") && text.contains("restored"),
        "the failure does not mention the health check: {text}"
    );
    assert_eq!(container_id(&app).as_ref(), Some(&serving));
    assert_eq!(container_state(&app).as_deref(), Some("running"));
    assert!(container_id(&format!("{app}--previous")).is_none());
    assert_eq!(container_image(&app), d.image_for(&sha2));
    assert!(hello(d.http_port).contains(&format!("release {short2}")));
    let log = releases(&d);
    assert_eq!(
        log.last(),
        Some(&(sha3.clone(), "failed".to_string())),
        "{log:?}"
    );
    assert!(!d.state_dir().join("lock").exists(), "the lock was left");
}

#[test]
fn wait_for_database() {
    let d = Deploy::new("dkwait");
    let db = d.db();
    d.p.write(
        "playbooks/dbwait.toml",
        &format!(
            "[[step]]\nname = \"database ready\"\n\
             wait = {{ command = \"docker exec {db} pg_isready -q\", timeout = \"30s\", interval = \"1s\" }}\n"
        ),
    );
    docker(&[
        "create",
        "--name",
        &db,
        "-e",
        &format!("POSTGRES_USER={}", d.app),
        "-e",
        "POSTGRES_PASSWORD=not-a-secret",
        DB_IMAGE,
    ]);

    // The database is started only once the wait step has started (its event seen): the
    // wait must then poll until it accepts connections, however loaded the machine is.
    let mut child =
        d.p.command(&["up", "test", "--playbook", "dbwait", "--output", "json"])
            .spawn()
            .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.unwrap_or_default();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("\"step_started\"") && line.contains("database ready") {
            docker(&["start", &db]);
        }
    }
    let out = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: seen,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: Duration::ZERO,
    };
    r.expect_code(0);
    d.assert_no_secrets(&r, &[]);
    let e = r.step("database ready");
    assert_eq!(e["status"], "ok", "{}", r.dump());
    let msg = e["message"].as_str().unwrap_or_default();
    eprintln!("database ready: {msg}");
    let waited: u64 = msg
        .split("ready after ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix('s'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `ready after Ns` in {msg:?}"));
    assert!(
        waited >= 1,
        "ready after {waited}s: it did not wait for the DB started after it began"
    );

    // No database at all: the step fails after its timeout with the last output.
    d.p.write(
        "playbooks/nodb.toml",
        &format!(
            "[[step]]\nname = \"database ready\"\n\
             wait = {{ command = \"docker exec {}-nodb pg_isready -q\", timeout = \"3s\", interval = \"1s\" }}\n",
            d.app
        ),
    );
    let started = Instant::now();
    let r = d.run(&["up", "test", "--playbook", "nodb", "--output", "json"]);
    let took = started.elapsed();
    r.expect_code(3);
    d.assert_no_secrets(&r, &[]);
    let e = r.step("database ready");
    assert_eq!(e["status"], "failed", "{}", r.dump());
    let msg = e["message"].as_str().unwrap_or_default();
    eprintln!("no database: {msg} (after {took:?})");
    assert!(msg.contains("not ready after"), "{msg}");
    assert!(
        msg.contains("No such container"),
        "no last output in: {msg}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "failed after {took:?}"
    );
}

#[test]
fn concurrent_ups_take_turns() {
    let mut d = Deploy::new("dklock");
    d.extra_vars = "slow = \"no\"\n".into();
    d.write_config();
    let deploy = std::fs::read_to_string(d.p.path("playbooks/deploy.toml")).expect("playbook");
    // A slow first change, so the two runs overlap while one holds the lock.
    let (head, steps) = deploy.split_once("[[step]]").expect("steps");
    d.p.write(
        "playbooks/deploy.toml",
        &format!(
            "{head}[[step]]\nname = \"slow\"\ncommand = {{ run = \"sleep 4\" }}\nwhen = \"slow == 'yes'\"\n\n[[step]]{steps}"
        ),
    );
    let sha = git(&d.work, &["rev-parse", "HEAD"]);

    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| d.up_checked(&["-e", "slow=yes"]));
        let b = s.spawn(|| d.up_checked(&["-e", "slow=yes"]));
        (a.join().expect("up a"), b.join().expect("up b"))
    });
    let (won, lost) = match (a.code, b.code) {
        (0, 3) => (a, b),
        (3, 0) => (b, a),
        _ => panic!(
            "expected one success and one failure\n--- a ---\n{}\n--- b ---\n{}",
            a.dump(),
            b.dump()
        ),
    };
    assert!(won.steps_with("changed").contains("app"), "{}", won.dump());
    assert_eq!(lost.steps_with("failed"), set(&["slow"]), "{}", lost.dump());
    let msg = lost.step("slow")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!("refused: {msg}");
    assert!(
        msg.contains("deploy lock is held by") && msg.contains("(pid "),
        "{msg}"
    );
    assert_eq!(lost.changed(), 0, "the refused run changed something");

    let after = d.up_checked(&[]);
    after.expect_code(0);
    assert_eq!(after.changed(), 0, "{}", after.dump());
    assert!(hello(d.http_port).contains(&format!("release {}", &sha[..12])));
    assert_eq!(releases(&d), vec![(sha.clone(), "ok".to_string())]);
    assert!(
        !d.state_dir().join("lock").exists(),
        "the lock dir is left behind"
    );
}

#[test]
fn stateful_database_needs_allow_recreate() {
    let d = Deploy::new("dkstate");
    let db = d.db();
    let first = d.up_checked(&[]);
    first.expect_code(0);
    psql(
        &d.app,
        "insert into greetings (text) values ('kept across recreate')",
    );
    let db_id = container_id(&db).expect("db container");

    // Another image for the database (same content, another name): a differing stateful container.
    let other = format!("{DB_IMAGE}-{}", d.app);
    docker(&["tag", DB_IMAGE, &other]);
    let var = format!("db_image={other}");
    let refused = d.up_checked(&["-e", &var]);
    refused.expect_code(3);
    assert_eq!(
        refused.steps_with("failed"),
        set(&["database"]),
        "{}",
        refused.dump()
    );
    let msg = refused.step_text("database");
    eprintln!("stateful: {msg}");
    assert!(
        msg.contains("not recreated without --allow-recreate"),
        "{msg}"
    );
    assert_eq!(container_id(&db).as_ref(), Some(&db_id));
    assert_eq!(container_image(&db), DB_IMAGE);

    let recreated = d.up_checked(&["-e", &var, "--allow-recreate"]);
    recreated.expect_code(0);
    assert!(
        recreated.steps_with("changed").contains("database"),
        "{}",
        recreated.dump()
    );
    let new_id = container_id(&db).expect("db container");
    assert_ne!(new_id, db_id, "not recreated");
    assert_eq!(container_image(&db), other);
    assert_eq!(
        psql(
            &d.app,
            "select count(*) from greetings where text = 'kept across recreate'"
        ),
        "1",
        "the data did not survive"
    );
    assert!(hello(d.http_port).contains("2 greetings"));
    let again = d.up_checked(&["-e", &var]);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());
    let _ = docker_out(&["rmi", &other]);
}
