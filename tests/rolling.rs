//! Rolling deploys and `run_once`, end to end: the real binary against several real sshd
//! daemons on 127.0.0.1 (every host's files are on this machine, so a side effect every host
//! would leave is counted in one file).
//!
//! Hosts run in the inventory's order, by name (`127.0.0.1:PORT`): the tests sort the
//! servers the same way to know which host comes first.

#[path = "support/schema.rs"]
mod schema;
mod support;

use serde_json::Value;
use std::time::Duration;
use support::*;

/// `n` servers and a project on them (as root) with `env_extra` in `[env.test]`; the host
/// names in run order.
fn setup(app: &str, n: usize, env_extra: &str) -> (Setup, Vec<String>) {
    let s = Setup::with_env(app, n, "retries = 0", env_extra);
    let mut names: Vec<String> = s.servers.sshds.iter().map(Sshd::name).collect();
    names.sort();
    (s, names)
}

/// Every event naming `host` (beside run_started's and rollout_stopped's host lists).
fn events_for(r: &Run, host: &str) -> Vec<Value> {
    r.events()
        .into_iter()
        .filter(|e| e["host"] == host)
        .collect()
}

/// The hosts of each batch_started event.
fn batches(r: &Run) -> Vec<Vec<String>> {
    r.events_of("batch_started")
        .iter()
        .map(|e| {
            let hosts = e["hosts"].as_array().expect("hosts");
            hosts
                .iter()
                .map(|h| h.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// `(status, message)` of `step` on `host`.
fn step_on(r: &Run, host: &str, step: &str) -> (String, String) {
    let e = events_for(r, host)
        .into_iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == step)
        .unwrap_or_else(|| panic!("no `{step}` on {host}\n{}", r.dump()));
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    (s("status"), s("message"))
}

fn up(p: &Project, extra: &[&str]) -> Run {
    let args: Vec<&str> = ["up", "test", "--output", "json"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    p.run(&args)
}

/// A git repo with one commit; its sha.
fn repo(p: &Project) -> (std::path::PathBuf, String) {
    let base = p.path("git");
    std::fs::create_dir_all(&base).unwrap();
    git(
        &base,
        &["init", "--quiet", "--bare", "-b", "main", "repo.git"],
    );
    git(&base, &["clone", "--quiet", "repo.git", "work"]);
    let work = base.join("work");
    std::fs::write(work.join("README"), "v1\n").unwrap();
    git(&work, &["add", "README"]);
    git(&work, &["commit", "--quiet", "-m", "v1"]);
    git(&work, &["push", "--quiet", "origin", "HEAD:main"]);
    (base.join("repo.git"), git(&work, &["rev-parse", "HEAD"]))
}

#[test]
fn a_run_once_step_runs_once_and_every_host_renders_its_registered_value() {
    let (s, names) = setup("rollonce", 3, "");
    let p = &s.p;
    let (bare, sha) = repo(p);
    let (src, ran) = (p.remote_path("src"), p.remote_path("ran"));
    p.write("templates/release.j2", "release = {{ src.sha }}\n");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"checkout\"\nrun_once = true\nregister = \"src\"\ngit = {{ repo = \"{}\", dest = \"{src}\" }}\n\n\
             [[step]]\nname = \"count\"\nrun_once = true\ncommand = {{ run = \"echo {{{{ host.name }}}} >> {ran}\", creates = \"{ran}\" }}\n\n\
             [[step]]\nname = \"release file\"\ntemplate = {{ src = \"templates/release.j2\", dest = \"{}/{{{{ host.name }}}}.release\" }}\n",
            bare.display(),
            p.remote.display()
        ),
    );
    let plan = p.run(&["plan", "test", "--output", "plain"]);
    plan.expect_code(0);
    for h in &names[1..] {
        let line = format!("[{h}] skipped      checkout: runs once on {}", names[0]);
        assert!(plan.stdout.contains(&line), "{line}\n{}", plan.dump());
    }
    let first = up(p, &[]);
    first.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        format!("{}\n", names[0]),
        "ran exactly once, on the first host\n{}",
        first.dump()
    );
    for h in &names {
        let file = p.remote.join(format!("{h}.release"));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("release = {sha}\n"),
            "{h} rendered the first host's registered sha"
        );
    }
    for h in &names[1..] {
        let (status, message) = step_on(&first, h, "checkout");
        assert_eq!(
            (status.as_str(), message),
            ("skipped", format!("ran once on {}", names[0]))
        );
    }
    assert_eq!(first.changed(), 2 + names.len(), "{}", first.dump());
    let second = up(p, &[]);
    second.expect_code(0);
    assert_eq!(second.changed(), 0, "{}", second.dump());
    assert_eq!(std::fs::read_to_string(&ran).unwrap().lines().count(), 1);
}

#[test]
fn when_the_run_once_host_fails_the_others_fail_the_step_instead_of_waiting() {
    let (s, names) = setup("rollfail", 2, "");
    let p = &s.p;
    let after = p.remote_path("after");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"migrate-ish\"\nrun_once = true\ncommand = {{ run = \"echo broken >&2; exit 3\" }}\n\n\
             [[step]]\nname = \"after\"\ncommand = {{ run = \"touch {after}-{{{{ host.name }}}}\" }}\n"
        ),
    );
    // Bounded: Project::run gives the binary 120 s; a hang fails the test there.
    let r = up(p, &[]);
    r.expect_code(3);
    assert_eq!(step_on(&r, &names[0], "migrate-ish").0, "failed");
    assert_eq!(
        step_on(&r, &names[1], "migrate-ish"),
        (
            "failed".into(),
            format!("runs once on {}, which failed it", names[0])
        )
    );
    for h in &names {
        assert!(!std::path::Path::new(&format!("{after}-{h}")).exists());
    }
    assert_eq!(r.finished()["failed_hosts"].as_array().unwrap().len(), 2);
}

#[test]
fn serial_1_and_a_failure_on_the_first_host_leave_the_second_untouched() {
    let (s, names) = setup("rollstop", 2, "serial = 1\n");
    let p = &s.p;
    let done = p.remote_path("done");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"deploy\"\ncommand = {{ run = \"test {{{{ host.name }}}} != {} && touch {done}-{{{{ host.name }}}}\" }}\n",
            names[0]
        ),
    );
    let r = up(p, &[]);
    r.expect_code(3);
    assert_eq!(batches(&r), [vec![names[0].clone()]], "{}", r.dump());
    // batch_started and rollout_stopped, as printed, match docs/events.schema.json.
    let lines = r.stdout.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(schema::validate_lines(&schema::schema(), &r.stdout), lines);
    let stopped = r.events_of("rollout_stopped");
    assert_eq!(stopped.len(), 1, "{}", r.dump());
    assert_eq!(stopped[0]["batch"], 1);
    assert_eq!(stopped[0]["of"], 2);
    assert_eq!(stopped[0]["not_reached"], serde_json::json!([names[1]]));
    assert_eq!(
        events_for(&r, &names[1]),
        Vec::<Value>::new(),
        "no event for the second host"
    );
    assert!(!std::path::Path::new(&format!("{done}-{}", names[1])).exists());
    let sshd = |name: &str| s.servers.sshds.iter().find(|d| d.name() == name).unwrap();
    assert!(
        sshd(&names[0]).log().contains("Accepted"),
        "{}",
        sshd(&names[0]).log()
    );
    let second = sshd(&names[1]);
    assert!(
        !second.log().contains("Accepted"),
        "the second host was connected to:\n{}",
        second.log()
    );
    // The recap says which batch failed and who was not reached.
    let report = p.path("report.html");
    let report_arg = report.display().to_string();
    let plain = p.run(&["up", "test", "--output", "plain", "--report", &report_arg]);
    plain.expect_code(3);
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(
        page.contains(&format!(
            "the rollout stopped after batch 1/2 (any failed host stops it); not reached: {}",
            names[1]
        )),
        "the HTML report says so"
    );
    assert!(plain.stdout.contains("batch 1/2\n"), "{}", plain.dump());
    assert!(
        plain.stdout.contains(
            "not reached (the rollout stopped after batch 1/2: any failed host stops it)"
        ),
        "{}",
        plain.dump()
    );
    assert!(
        plain.stdout.contains(&format!("{}  NOT REACHED", names[1])),
        "{}",
        plain.dump()
    );
    assert!(
        plain
            .stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("2 hosts: 1 failed, 0 unreachable, 1 not reached;"),
        "{}",
        plain.dump()
    );
    // --retry-failed takes the host the rollout did not reach.
    let list = std::fs::read_to_string(p.path(".provision/last-failed-test")).unwrap();
    assert!(list.contains(&names[1]), "{list}");
}

#[test]
fn a_serial_list_gives_ansibles_batches_and_the_command_line_overrides_it() {
    let (s, names) = setup("rolllist", 4, "serial = [1, \"50%\"]\n");
    let p = &s.p;
    let out = p.remote_path("out");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"mark\"\ncommand = {{ run = \"touch {out}-{{{{ host.name }}}}\", creates = \"{out}-{{{{ host.name }}}}\" }}\n\n\
             [[step]]\nname = \"once\"\nrun_once = true\ncommand = {{ run = \"true\", creates = \"{out}-{{{{ host.name }}}}\" }}\n"
        ),
    );
    let plan = p.run(&["plan", "test", "--output", "plain"]);
    plan.expect_code(0);
    let expect = [
        format!("batch 1/3: {}", names[0]),
        format!("batch 2/3: {}, {}", names[1], names[2]),
        format!("batch 3/3: {}", names[3]),
        format!("skipped      once: runs once on {}", names[0]),
    ];
    for line in &expect {
        assert!(
            plan.stdout.contains(line.as_str()),
            "{line}\n{}",
            plan.dump()
        );
    }
    let r = up(p, &[]);
    r.expect_code(0);
    let sizes: Vec<usize> = batches(&r).iter().map(Vec::len).collect();
    assert_eq!(sizes, [1, 2, 1], "{}", r.dump());
    // A batch starts after every host of the one before it finished.
    let events = r.events();
    let pos = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).unwrap();
    let first_done = pos(&|e| e["event"] == "host_finished" && e["host"] == names[0]);
    let batch2 = pos(&|e| e["event"] == "batch_started" && e["batch"] == 2);
    let second_connected = pos(&|e| e["event"] == "host_connected" && e["host"] == names[1]);
    assert!(
        first_done < batch2 && batch2 < second_connected,
        "{}",
        r.dump()
    );

    let again = up(p, &["--serial", "2"]);
    again.expect_code(0);
    assert_eq!(batches(&again), [names[..2].to_vec(), names[2..].to_vec()]);
    assert_eq!(again.changed(), 0, "{}", again.dump());
}

#[test]
fn max_failures_lets_the_rollout_go_on_past_a_tolerated_failure() {
    let (s, names) = setup("rolltol", 3, "serial = 1\nmax_failures = 1\n");
    let p = &s.p;
    let done = p.remote_path("done");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"deploy\"\ncommand = {{ run = \"test {{{{ host.name }}}} != {} && touch {done}-{{{{ host.name }}}}\" }}\n",
            names[0]
        ),
    );
    let r = up(p, &[]);
    r.expect_code(3);
    assert_eq!(batches(&r).len(), 3, "{}", r.dump());
    assert!(r.events_of("rollout_stopped").is_empty(), "{}", r.dump());
    for h in &names[1..] {
        assert!(std::path::Path::new(&format!("{done}-{h}")).exists());
    }
    // Two failures are one too many: the third host is not reached.
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"deploy\"\ncommand = {{ run = \"test {{{{ host.name }}}} = {} && touch {done}-again\" }}\n",
            names[2]
        ),
    );
    let r = up(p, &[]);
    r.expect_code(3);
    let stopped = r.events_of("rollout_stopped");
    assert_eq!(
        stopped[0]["not_reached"],
        serde_json::json!([names[2]]),
        "{}",
        r.dump()
    );
    assert_eq!(stopped[0]["limits"], "max_failures = 1");
    assert!(!std::path::Path::new(&format!("{done}-again")).exists());
}

#[test]
fn a_run_once_host_that_is_missing_or_left_out_is_an_error_before_any_connection() {
    let (s, names) = setup("rollname", 2, "");
    let p = &s.p;
    p.write(
        "playbooks/deploy.toml",
        "[[step]]\nname = \"m\"\nrun_once = \"web9\"\ncommand = { run = \"true\" }\n",
    );
    let r = p.run(&["up", "test"]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("playbooks/deploy.toml:3:12: step `m` runs once on host `web9`, which env `test` does not have"),
        "{}",
        r.dump()
    );
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"m\"\nrun_once = \"{}\"\ncommand = {{ run = \"true\" }}\n",
            names[1]
        ),
    );
    let r = p.run_timeout(
        &["up", "test", "--limit", &names[0]],
        Duration::from_secs(60),
    );
    r.expect_code(1);
    assert!(
        r.stderr.contains("which --limit leaves out"),
        "{}",
        r.dump()
    );
    for d in &s.servers.sshds {
        assert!(!d.log().contains("Accepted"), "{}", d.log());
    }
}
