//! Every step kind end to end: the real binary, a real sshd on 127.0.0.1, real effects on disk.
//!
//! Each test checks the same contract: on a fresh target `plan` lists changes (and changes
//! nothing), `up` changes exactly the steps `plan` listed, a second `up` changes nothing and
//! `plan --detailed-exitcode` then exits 0. Then it checks what landed on disk.
//!
//! Playbooks are written with placeholders: `@R` is the test's remote root, `@P` the project.

mod support;
#[path = "support/target.rs"]
mod target;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;
use target::*;

// ---------------------------------------------------------------------------------------------
// command
// ---------------------------------------------------------------------------------------------

#[test]
fn command_with_creates_runs_once() {
    let t = Target::new("root");
    std::fs::write(t.remote("already"), "untouched\n").unwrap();
    t.playbook(
        r#"
[[step]]
name = "make marker"
command = { run = "echo created > @R/marker\necho run-output", creates = "@R/marker" }

[[step]]
name = "guard already satisfied"
command = { run = "echo SHOULD-NOT-RUN > @R/already", creates = "@R/already" }
"#,
    );
    let would = t.plan_changes(&["make marker"]);
    assert!(
        !t.remote("marker").exists(),
        "plan must not run the command"
    );
    let plan = t.plan();
    assert_eq!(plan.step("guard already satisfied")["status"], "ok");

    let up = t.converge(&would);
    assert_eq!(read(&t.remote("marker")), "created\n");
    assert_eq!(
        read(&t.remote("already")),
        "untouched\n",
        "a satisfied `creates` must not run"
    );
    assert_eq!(
        t.up().round_trips(),
        1,
        "a no-op run probes every step in one round trip"
    );
    assert_eq!(up.step("guard already satisfied")["status"], "ok");
    assert!(
        up.step("make marker")["output"]
            .as_str()
            .unwrap_or_default()
            .contains("run-output"),
        "command output is reported\n{}",
        up.dump()
    );
}

#[test]
fn command_with_unless_runs_until_the_guard_holds() {
    let t = Target::new("root");
    t.playbook(
        r#"
[[step]]
name = "append hello"
command = { run = "echo hello >> lines", unless = "grep -qx hello lines", chdir = "@R" }
"#,
    );
    let would = t.plan_changes(&["append hello"]);
    assert!(!t.remote("lines").exists(), "plan must not run the command");
    t.converge(&would);
    // Two `up`s ran; the guard held on the second, so the line is there exactly once.
    assert_eq!(read(&t.remote("lines")), "hello\n");
}

#[test]
fn failing_command_fails_the_host_and_stops_its_steps() {
    let t = Target::new("root");
    t.playbook(
        r#"
[[step]]
name = "before"
command = { run = "touch @R/before", creates = "@R/before" }

[[step]]
name = "boom"
command = { run = "echo boom-stdout\necho boom-stderr >&2\nexit 7" }

[[step]]
name = "after"
command = { run = "touch @R/after", creates = "@R/after" }
"#,
    );
    let r = t.p.run(&["up", "test", "--output", "json"]);
    r.expect_code(3);
    assert!(t.remote("before").exists(), "steps before the failure ran");
    assert!(
        !t.remote("after").exists(),
        "steps after the failure must not run"
    );

    let boom = r.step("boom");
    assert_eq!(boom["status"], "failed", "{}", r.dump());
    let message = boom["message"].as_str().unwrap();
    assert!(
        message.contains("exit code 7"),
        "message names the exit code: {message}"
    );
    let output = boom["output"].as_str().unwrap_or_default();
    assert!(
        output.contains("boom-stdout") && output.contains("boom-stderr"),
        "output is reported: {boom}"
    );

    let statuses = r.step_statuses();
    assert!(
        !statuses.iter().any(|(_, s, _)| s == "after"),
        "`after` must not be reported as run\n{}",
        r.dump()
    );
    assert!(
        !r.events_of("step_started")
            .iter()
            .any(|e| e["step"] == "after"),
        "`after` must not start\n{}",
        r.dump()
    );
    assert_eq!(r.failed(), 1);
    let fin = r.finished();
    assert_eq!(fin["exit_code"], 3);
    assert_eq!(fin["failed_hosts"], serde_json::json!([t.sshd.name()]));
    let host = &r.events_of("host_finished")[0];
    assert_eq!(host["stopped_at"], "boom", "{host}");
    assert_eq!(host["unreachable"], false);

    // The text report shows the failure with its output too.
    let text = t.p.run(&["up", "test"]);
    text.expect_code(3);
    assert!(text.stdout.contains("boom"), "{}", text.dump());
    assert!(text.stdout.contains("exit code 7"), "{}", text.dump());
    assert!(
        text.stdout.contains("boom-stdout") && text.stdout.contains("boom-stderr"),
        "{}",
        text.dump()
    );
    assert!(!t.remote("after").exists());
}

#[test]
fn when_false_is_skipped() {
    let t = Target::new("root");
    t.playbook(
        r#"
[[step]]
name = "never"
when = "false"
command = { run = "touch @R/never" }

[[step]]
name = "only in test"
when = "env == 'test'"
command = { run = "touch @R/in-test", creates = "@R/in-test" }
"#,
    );
    let plan = t.plan();
    assert_eq!(plan.step("never")["status"], "skipped", "{}", plan.dump());
    let would = t.plan_changes(&["only in test"]);
    let up = t.converge(&would);
    assert_eq!(up.step("never")["status"], "skipped", "{}", up.dump());
    assert_eq!(up.skipped(), 1);
    assert!(!t.remote("never").exists(), "a skipped step must not run");
    assert!(t.remote("in-test").exists());
}

// ---------------------------------------------------------------------------------------------
// directory, file, template, env_file
// ---------------------------------------------------------------------------------------------

/// Issue 14: a fresh apply costs two round trips per host however many steps change (the
/// probes; then every change, each checked against its probe right before it runs, plus the
/// re-probe), and a no-op one. Five kinds, every one changing, against a real sshd.
#[test]
fn a_fresh_apply_of_five_changing_steps_takes_two_round_trips() {
    let t = Target::with_env(
        "root",
        "secrets = \"secrets/test.env\"\nvars = { port = 8000 }",
    );
    t.p.write("secrets/test.env", "DB_PASSWORD=rt-Secret-1\n");
    t.p.write("templates/app.conf.j2", "port = {{ port }}\n");
    t.p.write("files/blob", "blob\n");
    t.playbook(
        r#"
[[step]]
name = "app dir"
directory = { path = "@R/app", mode = "0755" }

[[step]]
name = "app env"
env_file = { dest = "@R/app/.env" }

[[step]]
name = "app config"
template = { src = "templates/app.conf.j2", dest = "@R/app/app.conf" }

[[step]]
name = "blob"
file = { src = "files/blob", dest = "@R/app/blob" }

[[step]]
name = "install"
command = { run = "date > @R/app/installed", creates = "@R/app/installed" }
"#,
    );
    let all = ["app dir", "app env", "app config", "blob", "install"];
    let would = t.plan_changes(&all);
    let up = t.converge(&would);
    assert_eq!(up.changed(), 5, "{}", up.dump());
    assert_eq!(up.round_trips(), 2, "{}", up.dump());
    assert_eq!(read(&t.remote("app/app.conf")), "port = 8000\n");
    assert_eq!(read(&t.remote("app/blob")), "blob\n");
    assert_eq!(t.up().round_trips(), 1, "the no-op");

    // One step changed on the host: still two (the other four are checked and left alone).
    // A stop flag a Ctrl-C of an earlier run left after its chain had ended is swept.
    let state = t.sshd.state_dir().join(&t.app).join("test");
    let stale = state.join("stop.0123456789abcdef");
    std::fs::write(&stale, "").unwrap();
    std::fs::write(t.remote("app/app.conf"), "port = 1\n").unwrap();
    let again = t.up();
    assert_eq!(again.steps_with("changed"), names(&["app config"]));
    assert_eq!(again.round_trips(), 2, "{}", again.dump());
    assert!(
        !stale.exists(),
        "a stale stop flag is left in {}",
        state.display()
    );
}

#[test]
fn directory_is_created_with_its_mode_and_mode_drift_is_fixed() {
    let t = Target::new("root");
    t.playbook(
        r#"
[[step]]
name = "data dir"
directory = { path = "@R/app/data/", mode = "0750" }
"#,
    );
    let would = t.plan_changes(&["data dir"]);
    assert!(!t.remote("app").exists(), "plan must not create anything");
    t.converge(&would);
    let dir = t.remote("app/data");
    assert!(dir.is_dir());
    assert_eq!(mode_of(&dir), 0o750);

    // Someone changes the mode: plan says so, up puts it back.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let plan = t.plan();
    let step = plan.step("data dir");
    assert_eq!(step["status"], "changed");
    assert!(step["message"].as_str().unwrap().contains("750"), "{step}");
    let up = t.up();
    assert_eq!(up.steps_with("changed"), names(&["data dir"]));
    assert_eq!(mode_of(&dir), 0o750);
}

#[test]
fn file_is_uploaded_with_content_and_mode() {
    let t = Target::new("root");
    t.p.write("files/app.conf", "hello\nworld\n");
    t.playbook(
        r#"
[[step]]
name = "conf dir"
directory = { path = "@R/etc" }

[[step]]
name = "app.conf"
file = { src = "files/app.conf", dest = "@R/etc/app.conf", mode = "0640" }
"#,
    );
    let would = t.plan_changes(&["conf dir", "app.conf"]);
    assert!(!t.remote("etc").exists(), "plan must not create anything");
    t.converge(&would);
    let dest = t.remote("etc/app.conf");
    assert_eq!(read(&dest), "hello\nworld\n");
    assert_eq!(mode_of(&dest), 0o640);
    assert_eq!(
        t.up().round_trips(),
        1,
        "a no-op run probes every step in one round trip"
    );
    let leftovers: Vec<_> = std::fs::read_dir(t.remote("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temp files left behind: {leftovers:?}"
    );

    // The local file changes: only that step changes, with a diff in plan.
    t.p.write("files/app.conf", "hello\nthere\n");
    let plan = t.plan();
    assert_eq!(
        plan.steps_with("changed"),
        names(&["app.conf"]),
        "{}",
        plan.dump()
    );
    let diff = plan.step("app.conf")["diff"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        diff.contains("-world") && diff.contains("+there"),
        "diff: {diff}"
    );
    let up = t.up();
    assert_eq!(
        up.steps_with("changed"),
        names(&["app.conf"]),
        "{}",
        up.dump()
    );
    assert_eq!(read(&dest), "hello\nthere\n");
}

#[test]
fn template_renders_vars_and_a_var_change_updates_only_it() {
    let t = Target::with_env("root", "vars = { port = 8000 }");
    t.p.write(
        "templates/app.conf.j2",
        "# {{ app }} ({{ env }})\nport = {{ port }}\nhost = {{ host.name }}\n",
    );
    t.playbook(
        r#"
[[step]]
name = "conf dir"
directory = { path = "@R/conf" }

[[step]]
name = "app config"
template = { src = "templates/app.conf.j2", dest = "@R/conf/app.conf", mode = "0644" }
"#,
    );
    let would = t.plan_changes(&["conf dir", "app config"]);
    t.converge(&would);
    let dest = t.remote("conf/app.conf");
    let first = format!(
        "# {} (test)\nport = 8000\nhost = {}\n",
        t.app,
        t.sshd.name()
    );
    assert_eq!(read(&dest), first);
    assert_eq!(mode_of(&dest), 0o644);

    t.set_env("vars = { port = 9000 }");
    let plan = t.plan();
    assert_eq!(
        plan.steps_with("changed"),
        names(&["app config"]),
        "{}",
        plan.dump()
    );
    let diff = plan.step("app config")["diff"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        diff.contains("-port = 8000") && diff.contains("+port = 9000"),
        "diff: {diff}"
    );
    assert!(
        !diff.contains("-host") && !diff.contains("+host"),
        "unchanged lines are context only: {diff}"
    );
    assert_eq!(read(&dest), first, "plan must not write");
    t.p.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(2);

    let up = t.up();
    assert_eq!(
        up.steps_with("changed"),
        names(&["app config"]),
        "{}",
        up.dump()
    );
    assert_eq!(read(&dest), first.replace("8000", "9000"));
    let check = t.p.run(&["plan", "test", "--detailed-exitcode"]);
    check.expect_code(0);
}

#[test]
fn env_file_writes_secrets_0600_and_never_shows_values() {
    let t = Target::with_env("root", "secrets = \"secrets/test.env\"");
    t.p.write(
        "secrets/test.env",
        "DB_PASSWORD=s3cret-Value-123\nAPI_KEY=abc-Key-789\n",
    );
    t.playbook(
        r#"
[[step]]
name = "app env"
env_file = { dest = "@R/app/.env", vars = { PORT = "8000" } }
"#,
    );
    let plan = t.plan();
    for secret in ["s3cret-Value-123", "abc-Key-789"] {
        assert!(
            !plan.stdout.contains(secret) && !plan.stderr.contains(secret),
            "plan shows a secret value\n{}",
            plan.dump()
        );
    }
    let would = t.plan_changes(&["app env"]);
    let up = t.converge(&would);
    assert!(!up.stdout.contains("s3cret-Value-123"), "{}", up.dump());
    let dest = t.remote("app/.env");
    assert_eq!(
        read(&dest),
        "API_KEY=abc-Key-789\nDB_PASSWORD=s3cret-Value-123\nPORT=8000\n"
    );
    assert_eq!(mode_of(&dest), 0o600);

    // A changed secret: plan names the key, never the old or new value.
    t.p.write(
        "secrets/test.env",
        "DB_PASSWORD=n3w-Value-456\nAPI_KEY=abc-Key-789\n",
    );
    let plan = t.plan();
    assert_eq!(plan.steps_with("changed"), names(&["app env"]));
    let diff = plan.step("app env")["diff"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        diff.contains("DB_PASSWORD") && !diff.contains("API_KEY"),
        "diff: {diff}"
    );
    for secret in ["s3cret-Value-123", "n3w-Value-456", "abc-Key-789"] {
        assert!(
            !plan.stdout.contains(secret),
            "plan shows a secret value\n{}",
            plan.dump()
        );
    }
    // Not even -vv (which shows what goes over the wire) may print the value on the host.
    let vv = t.p.run(&["plan", "test", "-vv"]);
    vv.expect_code(0);
    for secret in ["s3cret-Value-123", "n3w-Value-456", "abc-Key-789"] {
        assert!(
            !vv.stdout.contains(secret) && !vv.stderr.contains(secret),
            "plan -vv shows a secret value\n{}",
            vv.dump()
        );
    }
    let up = t.up();
    assert_eq!(up.steps_with("changed"), names(&["app env"]));
    assert_eq!(
        read(&dest),
        "API_KEY=abc-Key-789\nDB_PASSWORD=n3w-Value-456\nPORT=8000\n"
    );
    assert_eq!(mode_of(&dest), 0o600);
}

#[test]
fn template_with_a_secret_never_shows_it_not_even_after_rotation() {
    let t = Target::with_env("root", "secrets = \"secrets/test.env\"");
    t.p.write("secrets/test.env", "DB_PASSWORD=first-Pass-111\n");
    t.p.write(
        "templates/db.conf.j2",
        "user = app\npassword = {{ secrets.DB_PASSWORD }}\n",
    );
    t.playbook(
        r#"
[[step]]
name = "db config"
template = { src = "templates/db.conf.j2", dest = "@R/db.conf", mode = "0600" }
"#,
    );
    let plan = t.plan();
    assert!(
        !plan.stdout.contains("first-Pass-111"),
        "plan shows the secret\n{}",
        plan.dump()
    );
    let would = t.plan_changes(&["db config"]);
    let up = t.converge(&would);
    assert!(!up.stdout.contains("first-Pass-111"), "{}", up.dump());
    let dest = t.remote("db.conf");
    assert_eq!(read(&dest), "user = app\npassword = first-Pass-111\n");
    assert_eq!(mode_of(&dest), 0o600);

    // The secret is rotated: plan must show neither the new value nor the old one on the host.
    t.p.write("secrets/test.env", "DB_PASSWORD=second-Pass-222\n");
    for args in [
        &["plan", "test", "--output", "json"][..],
        &["plan", "test"],
        &["plan", "test", "-vv"],
    ] {
        let plan = t.p.run(args);
        plan.expect_code(0);
        for secret in ["first-Pass-111", "second-Pass-222"] {
            assert!(
                !plan.stdout.contains(secret) && !plan.stderr.contains(secret),
                "`provision {}` shows a secret value ({secret})\n{}",
                args.join(" "),
                plan.dump()
            );
        }
    }
    let up = t.up();
    assert_eq!(
        up.steps_with("changed"),
        names(&["db config"]),
        "{}",
        up.dump()
    );
    assert!(
        !up.stdout.contains("first-Pass-111") && !up.stdout.contains("second-Pass-222"),
        "{}",
        up.dump()
    );
    assert_eq!(read(&dest), "user = app\npassword = second-Pass-222\n");
}

// ---------------------------------------------------------------------------------------------
// packages
// ---------------------------------------------------------------------------------------------

fn dpkg_status(pkg: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .expect("dpkg-query");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn packages_installs_what_is_missing_and_leaves_installed_ones() {
    // Start fresh: `sl` is tiny and not installed by default.
    let (_, out) = sh("dpkg -r sl 2>&1 || true");
    assert_ne!(
        dpkg_status("sl"),
        "install ok installed",
        "could not remove sl: {out}"
    );
    assert_eq!(
        dpkg_status("openssh-server"),
        "install ok installed",
        "the tests need openssh-server"
    );

    let t = Target::new("root");
    t.playbook(
        r#"
[[step]]
name = "sl"
packages = { names = ["sl"] }

[[step]]
name = "already installed"
packages = { names = ["openssh-server"] }
"#,
    );
    let plan = t.plan();
    assert_eq!(
        plan.step("already installed")["status"],
        "ok",
        "{}",
        plan.dump()
    );
    let sl = plan.step("sl");
    assert!(sl["message"].as_str().unwrap().contains("sl"), "{sl}");
    let would = t.plan_changes(&["sl"]);
    assert_ne!(
        dpkg_status("sl"),
        "install ok installed",
        "plan must not install"
    );

    // apt-get update + install may take a while on a slow mirror.
    let up = t.p.run_timeout(
        &["up", "test", "--output", "json"],
        std::time::Duration::from_secs(600),
    );
    up.expect_code(0);
    assert_eq!(up.steps_with("changed"), would, "{}", up.dump());
    assert_eq!(up.step("already installed")["status"], "ok");
    assert_eq!(dpkg_status("sl"), "install ok installed");

    let again = t.up();
    assert_eq!(again.changed(), 0, "{}", again.dump());
    t.p.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(0);

    let _ = sh("dpkg -r sl >/dev/null 2>&1");
}

// ---------------------------------------------------------------------------------------------
// git
// ---------------------------------------------------------------------------------------------

/// A bare repo with one commit on `main`, and the working clone it was pushed from.
struct Repo {
    bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    fn new(root: &Path) -> Repo {
        let base = root.join("git");
        std::fs::create_dir_all(&base).unwrap();
        git(
            &base,
            &["init", "--quiet", "--bare", "-b", "main", "repo.git"],
        );
        git(&base, &["clone", "--quiet", "repo.git", "work"]);
        let repo = Repo {
            bare: base.join("repo.git"),
            work: base.join("work"),
        };
        repo.commit("v1\n");
        repo
    }

    /// Commit `content` as README and push it; returns the new sha.
    fn commit(&self, content: &str) -> String {
        std::fs::write(self.work.join("README"), content).unwrap();
        git(&self.work, &["add", "README"]);
        git(&self.work, &["commit", "--quiet", "-m", content.trim()]);
        git(&self.work, &["push", "--quiet", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

fn head_of(checkout: &Path) -> String {
    git(checkout, &["-c", "safe.directory=*", "rev-parse", "HEAD"])
}

#[test]
fn git_checks_out_head_and_follows_new_commits() {
    let t = Target::new("root");
    let repo = Repo::new(t.p.dir.path());
    let sha1 = git(&repo.work, &["rev-parse", "HEAD"]);
    t.playbook(&format!(
        r#"
[[step]]
name = "checkout"
git = {{ repo = "{}", dest = "@R/src" }}
register = "src"

[[step]]
name = "record sha"
command = {{ run = "echo {{{{ src.sha }}}} > @R/deployed-sha", creates = "@R/deployed-sha" }}
"#,
        repo.bare.display()
    ));
    let would = t.plan_changes(&["checkout", "record sha"]);
    assert!(!t.remote("src").exists(), "plan must not clone");
    t.converge(&would);
    assert_eq!(head_of(&t.remote("src")), sha1);
    assert_eq!(read(&t.remote("src/README")), "v1\n");
    assert_eq!(
        read(&t.remote("deployed-sha")).trim(),
        sha1,
        "the registered sha reaches later steps"
    );

    // A new commit: only the checkout changes.
    let sha2 = repo.commit("v2\n");
    assert_ne!(sha1, sha2);
    let plan = t.plan();
    assert_eq!(
        plan.steps_with("changed"),
        names(&["checkout"]),
        "{}",
        plan.dump()
    );
    let msg = plan.step("checkout")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains(&sha2[..12]),
        "plan names the new commit: {msg}"
    );
    t.p.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(2);
    assert_eq!(
        head_of(&t.remote("src")),
        sha1,
        "plan must not update the checkout"
    );

    let up = t.up();
    assert_eq!(
        up.steps_with("changed"),
        names(&["checkout"]),
        "{}",
        up.dump()
    );
    assert_eq!(head_of(&t.remote("src")), sha2);
    assert_eq!(read(&t.remote("src/README")), "v2\n");
    assert_eq!(
        read(&t.remote("deployed-sha")).trim(),
        sha1,
        "`creates` kept the command from running again"
    );
    assert_eq!(t.up().changed(), 0);
    t.p.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn git_sha_flows_into_a_template_in_plan_and_up() {
    let t = Target::new("root");
    let repo = Repo::new(t.p.dir.path());
    let sha1 = git(&repo.work, &["rev-parse", "HEAD"]);
    t.p.write(
        "templates/version.j2",
        "revision = {{ src.sha }}\nshort = {{ src.short_sha }}\n",
    );
    t.playbook(&format!(
        r#"
[[step]]
name = "checkout"
git = {{ repo = "{}", dest = "@R/src", ref = "main" }}
register = "src"

[[step]]
name = "version file"
template = {{ src = "templates/version.j2", dest = "@R/VERSION" }}
"#,
        repo.bare.display()
    ));
    let version = |sha: &str| format!("revision = {sha}\nshort = {}\n", &sha[..12]);
    let plan = t.plan();
    let diff = plan.step("version file")["diff"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        diff.contains(&format!("+revision = {sha1}")),
        "plan renders with the sha the checkout will get: {diff}"
    );
    let would = t.plan_changes(&["checkout", "version file"]);
    t.converge(&would);
    assert_eq!(head_of(&t.remote("src")), sha1);
    assert_eq!(read(&t.remote("VERSION")), version(&sha1));
    // The no-op: the template is rendered with the SHA the last `up` registered, probed in
    // the first round trip and kept once the checkout registers the same one.
    let guesses = t.p.path(".provision/guesses-test.json");
    assert!(read(&guesses).contains(&sha1), "{}", read(&guesses));
    assert_eq!(t.up().round_trips(), 1, "a no-op with a guessed register");
    // Without the guess (a fresh clone of the project): the template waits for the value.
    std::fs::remove_file(&guesses).unwrap();
    let up = t.up();
    assert_eq!((up.changed(), up.round_trips()), (0, 2), "{}", up.dump());
    // A guess that is wrong (edited) costs that round trip again, and changes nothing.
    std::fs::write(&guesses, read(&guesses).replace(&sha1, &"0".repeat(40))).unwrap();
    let up = t.up();
    assert_eq!((up.changed(), up.round_trips()), (0, 2), "{}", up.dump());

    let sha2 = repo.commit("v2\n");
    let plan = t.plan();
    assert_eq!(
        plan.steps_with("changed"),
        names(&["checkout", "version file"]),
        "{}",
        plan.dump()
    );
    let diff = plan.step("version file")["diff"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        diff.contains(&format!("-revision = {sha1}"))
            && diff.contains(&format!("+revision = {sha2}")),
        "diff: {diff}"
    );
    let up = t.up();
    assert_eq!(
        up.steps_with("changed"),
        names(&["checkout", "version file"]),
        "{}",
        up.dump()
    );
    assert_eq!(head_of(&t.remote("src")), sha2);
    assert_eq!(read(&t.remote("VERSION")), version(&sha2));
    assert_eq!(t.up().changed(), 0);
}

#[test]
fn git_pins_tags_and_shas_and_discards_local_edits() {
    let t = Target::new("root");
    let repo = Repo::new(t.p.dir.path());
    let v1 = git(&repo.work, &["rev-parse", "HEAD"]);
    git(&repo.work, &["tag", "-a", "v1", "-m", "release 1"]);
    git(&repo.work, &["push", "--quiet", "origin", "v1"]);
    let v2 = repo.commit("v2\n");
    let v3 = repo.commit("v3\n");
    t.playbook(&format!(
        r#"
[[step]]
name = "at tag"
git = {{ repo = "{repo}", dest = "@R/tagged", ref = "v1" }}

[[step]]
name = "at sha"
git = {{ repo = "{repo}", dest = "@R/pinned", ref = "{v2}" }}

[[step]]
name = "at branch"
git = {{ repo = "{repo}", dest = "@R/branch", ref = "main" }}
"#,
        repo = repo.bare.display()
    ));
    let would = t.plan_changes(&["at tag", "at sha", "at branch"]);
    t.converge(&would);
    assert_eq!(
        head_of(&t.remote("tagged")),
        v1,
        "an annotated tag checks out its commit"
    );
    assert_eq!(head_of(&t.remote("pinned")), v2);
    assert_eq!(head_of(&t.remote("branch")), v3);
    assert_eq!(read(&t.remote("tagged/README")), "v1\n");

    // Someone edits a tracked file on the host: plan notices, up puts the commit back.
    std::fs::write(t.remote("pinned/README"), "local edit\n").unwrap();
    let plan = t.plan();
    assert_eq!(
        plan.steps_with("changed"),
        names(&["at sha"]),
        "{}",
        plan.dump()
    );
    let up = t.up();
    assert_eq!(
        up.steps_with("changed"),
        names(&["at sha"]),
        "{}",
        up.dump()
    );
    assert_eq!(read(&t.remote("pinned/README")), "v2\n");
    assert_eq!(head_of(&t.remote("pinned")), v2);
    assert_eq!(t.up().changed(), 0);
}

// ---------------------------------------------------------------------------------------------
// users: plain and sudo
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_user_manages_its_own_files() {
    ensure_user("provtest-plain", false);
    let uid = uid_of_user("provtest-plain");
    let t = Target::new("provtest-plain");
    t.p.write("files/note.txt", "written by a plain user\n");
    t.playbook(
        r#"
[[step]]
name = "own dir"
directory = { path = "@R/plain/dir", mode = "0700" }

[[step]]
name = "own file"
file = { src = "files/note.txt", dest = "@R/plain/dir/note.txt", mode = "0600" }

[[step]]
name = "whoami"
command = { run = "id -un > @R/plain/whoami", creates = "@R/plain/whoami" }
"#,
    );
    let would = t.plan_changes(&["own dir", "own file", "whoami"]);
    t.converge(&would);
    let dir = t.remote("plain/dir");
    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(uid_of(&dir), uid);
    let file = t.remote("plain/dir/note.txt");
    assert_eq!(read(&file), "written by a plain user\n");
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(uid_of(&file), uid);
    assert_eq!(read(&t.remote("plain/whoami")), "provtest-plain\n");
}

/// A target logging in as the sudo user with `become`, and a directory under /etc (root's)
/// named after the test's remote dir, `tag` telling tests apart.
fn sudo_target_and_etc_dir(tag: &str) -> (Target, PathBuf) {
    ensure_user("provtest-sudo", true);
    let t = Target::with_env("provtest-sudo", "ssh = { become = true }");
    let suffix =
        t.p.remote
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("prov-remote-", "");
    let etc = PathBuf::from(format!("/etc/provision-test-{tag}{suffix}"));
    (t, etc)
}

#[test]
fn sudo_user_with_become_writes_root_owned_files() {
    let (t, etc) = sudo_target_and_etc_dir("");
    let _cleanup = Cleanup(etc.clone());
    t.p.write("files/root.conf", "owned by root\n");
    let pb = r#"
[[step]]
name = "root dir"
directory = { path = "@E", mode = "0755", owner = "root" }

[[step]]
name = "root file"
file = { src = "files/root.conf", dest = "@E/root.conf", mode = "0640", owner = "root", group = "root" }

[[step]]
name = "whoami"
command = { run = "id -un > @E/whoami", creates = "@E/whoami" }
"#
    .replace("@E", &etc.display().to_string());
    t.playbook(&pb);
    let would = t.plan_changes(&["root dir", "root file", "whoami"]);
    assert!(!etc.exists(), "plan must not create anything");
    t.converge(&would);
    assert_eq!(uid_of(&etc), 0);
    let file = etc.join("root.conf");
    assert_eq!(read(&file), "owned by root\n");
    assert_eq!(uid_of(&file), 0, "owner = \"root\"");
    assert_eq!(mode_of(&file), 0o640);
    assert_eq!(
        read(&etc.join("whoami")),
        "root\n",
        "scripts run as root through sudo"
    );
    // The login itself was the sudo user, not root.
    let log = t.sshd.log();
    assert!(
        log.contains("Accepted publickey for provtest-sudo"),
        "sshd log:\n{log}"
    );
}

/// `chown` clears setuid/setgid bits: chmod must come after it, or a mode like 2775 with an
/// owner changes on every run (issue 12 #21).
#[test]
fn setuid_and_setgid_modes_with_an_owner_converge() {
    let (t, etc) = sudo_target_and_etc_dir("s");
    let _cleanup = Cleanup(etc.clone());
    t.p.write("files/tool", "#!/bin/sh\necho tool\n");
    let pb = r#"
[[step]]
name = "shared dir"
directory = { path = "@E", mode = "2775", owner = "provtest-sudo", group = "root" }

[[step]]
name = "setuid tool"
file = { src = "files/tool", dest = "@E/tool", mode = "4755", owner = "root", group = "root" }
"#
    .replace("@E", &etc.display().to_string());
    t.playbook(&pb);
    let would = t.plan_changes(&["shared dir", "setuid tool"]);
    t.converge(&would);
    assert_eq!(mode_of(&etc), 0o2775);
    assert_eq!(mode_of(&etc.join("tool")), 0o4755);
    assert_eq!(uid_of(&etc.join("tool")), 0);
}
