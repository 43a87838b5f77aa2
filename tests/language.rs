//! The playbook language end to end, against a real sshd: `loop`, `include` with `vars`, and
//! handlers (`notify` / `[[handler]]`), each held to the contract every step kind is: `plan`
//! on a fresh host lists exactly what `up` then changes, and a second `up` changes nothing.
//! A handler whose notification survives a failed run runs on the next one, once.

mod support;

use std::collections::BTreeSet;
use support::*;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `plan` lists `expect` as changes, `up` changes exactly those, a second `up` nothing and
/// `plan --detailed-exitcode` then exits 0. Returns the first `up`.
fn plan_up_up(p: &Project, expect: &[&str]) -> Run {
    let plan = p.run(&["plan", "test", "--output", "json"]);
    plan.expect_code(0);
    assert_eq!(plan.steps_with("changed"), set(expect), "{}", plan.dump());
    assert_eq!(plan.failed(), 0, "{}", plan.dump());
    let up = p.run(&["up", "test", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(
        up.steps_with("changed"),
        set(expect),
        "up changed other steps than plan listed\n{}",
        up.dump()
    );
    let again = p.run(&["up", "test", "--output", "json"]);
    again.expect_code(0);
    assert_eq!(
        again.changed(),
        0,
        "second up changed something\n{}",
        again.dump()
    );
    p.run(&["plan", "test", "--detailed-exitcode"])
        .expect_code(0);
    up
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn a_loop_over_a_var_and_over_tables_is_one_step_per_item() {
    let s = Setup::with_env("langloop", 1, "", "vars = { users = [\"ann\", \"bob\"] }");
    let p = &s.p;
    let root = p.remote.display().to_string();
    p.write("templates/motd.j2", "{{ loop_index }}: {{ item.text }}\n");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\ndirectory = {{ path = \"{root}/home/{{{{ item }}}}\" }}\nloop = \"{{{{ users }}}}\"\n\n\
             [[step]]\nname = \"motd\"\ntemplate = {{ src = \"templates/motd.j2\", dest = \"{root}/home/{{{{ item.user }}}}/motd\" }}\n\
             loop = [{{ user = \"ann\", text = \"hi ann\" }}, {{ user = \"bob\", text = \"hi bob\", name = \"bob's\" }}]\n"
        ),
    );
    let up = plan_up_up(
        p,
        &[
            &format!("directory {root}/home/ann"),
            &format!("directory {root}/home/bob"),
            "motd ({\"text\":\"hi ann\",\"user\":\"ann\"})",
            "motd (bob's)",
        ],
    );
    assert_eq!(read(&p.remote_path("home/ann/motd")), "0: hi ann\n");
    assert_eq!(read(&p.remote_path("home/bob/motd")), "1: hi bob\n");
    // Items are steps of their own in the events, in order.
    let started: Vec<String> = up
        .events_of("step_started")
        .iter()
        .map(|e| e["step"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(started.len(), 4, "{}", up.dump());
    assert!(started[0].ends_with("/home/ann") && started[3] == "motd (bob's)");

    // Another item is one more change, the others stay as they are.
    p.write(
        "provision.toml",
        &read(p.path("provision.toml").to_str().unwrap()).replace("\"bob\"]", "\"bob\", \"cy\"]"),
    );
    let more = p.run(&["up", "test", "--output", "json"]);
    more.expect_code(0);
    assert_eq!(
        more.steps_with("changed"),
        set(&[&format!("directory {root}/home/cy")]),
        "{}",
        more.dump()
    );
}

#[test]
fn an_included_file_twice_with_its_own_vars() {
    let s = Setup::new("langinc", 1, "");
    let p = &s.p;
    let root = p.remote.display().to_string();
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\ninclude = \"roles/site.toml\"\nvars = {{ site = \"blog\", dir = \"{root}/sites\" }}\n\n\
             [[step]]\ninclude = \"roles/site.toml\"\nvars = {{ site = \"shop\", dir = \"{root}/sites\" }}\n\n\
             [[step]]\nname = \"outside\"\ncommand = {{ run = \"ls {root}/sites > {root}/list\", creates = \"{root}/list\" }}\n"
        ),
    );
    p.write(
        "playbooks/roles/site.toml",
        "[[step]]\nname = \"{{ site }} dir\"\ndirectory = { path = \"{{ dir }}/{{ site }}\" }\n\n\
         [[step]]\ninclude = \"conf.toml\"\nvars = { port = \"80{{ site | length }}\" }\n",
    );
    p.write("templates/site.conf.j2", "{{ site }} on {{ port }}\n");
    p.write(
        "playbooks/roles/conf.toml",
        "[[step]]\nname = \"{{ site }} conf\"\ntemplate = { src = \"templates/site.conf.j2\", dest = \"{{ dir }}/{{ site }}/conf\" }\n",
    );
    plan_up_up(
        p,
        &["blog dir", "blog conf", "shop dir", "shop conf", "outside"],
    );
    assert_eq!(read(&p.remote_path("sites/blog/conf")), "blog on 804\n");
    assert_eq!(read(&p.remote_path("sites/shop/conf")), "shop on 804\n");
    assert_eq!(read(&p.remote_path("list")), "blog\nshop\n");
}

/// A conf that notifies a handler, another step and the handler appending to a log.
fn handler_playbook(p: &Project) {
    let (conf, log, gate) = (
        p.remote_path("app.conf"),
        p.remote_path("reloads"),
        p.remote_path("gate"),
    );
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"conf\"\ntemplate = {{ src = \"templates/app.conf.j2\", dest = \"{conf}\" }}\nnotify = \"reload app\"\n\n\
             [[step]]\nname = \"gate\"\ncommand = {{ run = \"test -e {gate}\", creates = \"{gate}\" }}\n\n\
             [[handler]]\nname = \"reload app\"\ncommand = {{ run = \"echo reloaded >> {log}\" }}\n\n\
             [[handler]]\nname = \"never notified\"\ncommand = {{ run = \"echo never >> {log}\" }}\n"
        ),
    );
}

#[test]
fn a_handler_runs_once_at_the_end_only_when_notified() {
    let s = Setup::new("langhnd", 1, "");
    let p = &s.p;
    p.write("templates/app.conf.j2", "workers = 4\n");
    handler_playbook(p);
    std::fs::write(p.remote_path("gate"), "").unwrap();
    let log = p.remote_path("reloads");
    let up = plan_up_up(p, &["conf", "reload app"]);
    // The handler is the last step; the one nobody notifies is not in the run at all.
    let finished = up.events_of("step_finished");
    assert_eq!(
        finished.last().unwrap()["step"],
        "reload app",
        "{}",
        up.dump()
    );
    assert!(!up.dump().contains("never notified"), "{}", up.dump());
    assert_eq!(read(&log), "reloaded\n");
    let again = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(
        again.step("reload app")["status"],
        "skipped",
        "{}",
        again.dump()
    );
    assert!(
        again.step_text("reload app").contains("not notified"),
        "{}",
        again.dump()
    );

    // A change notifies again: plan says the handler would run, up runs it once.
    p.write("templates/app.conf.j2", "workers = 8\n");
    let plan = p.run(&["plan", "test", "--output", "json"]);
    assert_eq!(
        plan.steps_with("changed"),
        set(&["conf", "reload app"]),
        "{}",
        plan.dump()
    );
    let up = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(
        up.steps_with("changed"),
        set(&["conf", "reload app"]),
        "{}",
        up.dump()
    );
    assert_eq!(read(&log), "reloaded\nreloaded\n");
}

#[test]
fn a_notification_survives_a_failed_run_until_the_handler_ran() {
    let s = Setup::new("langpend", 1, "retries = 0");
    let p = &s.p;
    p.write("templates/app.conf.j2", "workers = 4\n");
    handler_playbook(p);
    let log = p.remote_path("reloads");

    // The conf changes, then the gate fails: the run stops before the handler.
    let first = p.run(&["up", "test", "--output", "json"]);
    first.expect_code(3);
    assert_eq!(first.step("conf")["status"], "changed", "{}", first.dump());
    assert!(!std::path::Path::new(&log).exists(), "{}", first.dump());

    // The notification is on the host: plan predicts the handler, though the conf is fine.
    std::fs::write(p.remote_path("gate"), "").unwrap();
    let plan = p.run(&["plan", "test", "--output", "json"]);
    plan.expect_code(0);
    assert_eq!(
        plan.steps_with("changed"),
        set(&["reload app"]),
        "{}",
        plan.dump()
    );

    let fixed = p.run(&["up", "test", "--output", "json"]);
    fixed.expect_code(0);
    assert_eq!(fixed.step("conf")["status"], "ok", "{}", fixed.dump());
    assert_eq!(
        fixed.steps_with("changed"),
        set(&["reload app"]),
        "{}",
        fixed.dump()
    );
    assert_eq!(read(&log), "reloaded\n");

    // Ran once: nothing is pending any more.
    let third = p.run(&["up", "test", "--output", "json"]);
    third.expect_code(0);
    assert_eq!(third.changed(), 0, "{}", third.dump());
    assert_eq!(read(&log), "reloaded\n");
    let markers = s.sshd().state_dir().join("langpend/test/pending");
    let left: Vec<_> = std::fs::read_dir(&markers)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "markers left: {left:?}");
}

#[test]
fn a_second_handler_is_not_lost_when_the_run_stops_after_the_first() {
    let s = Setup::new("langtwo", 1, "retries = 0");
    let p = &s.p;
    let (conf, log, gate) = (
        p.remote_path("app.conf"),
        p.remote_path("log"),
        p.remote_path("gate"),
    );
    p.write("templates/app.conf.j2", "workers = 4\n");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"conf\"\ntemplate = {{ src = \"templates/app.conf.j2\", dest = \"{conf}\" }}\nnotify = [\"first\", \"second\"]\n\n\
             [[handler]]\nname = \"first\"\ncommand = {{ run = \"echo first >> {log}\" }}\n\n\
             [[handler]]\nname = \"second\"\ncommand = {{ run = \"test -e {gate} && echo second >> {log}\" }}\n"
        ),
    );
    let failed = p.run(&["up", "test", "--output", "json"]);
    failed.expect_code(3);
    assert_eq!(
        failed.step("first")["status"],
        "changed",
        "{}",
        failed.dump()
    );
    assert_eq!(
        failed.step("second")["status"],
        "failed",
        "{}",
        failed.dump()
    );

    // The notification stays until the last handler ran: both run again (at least once each).
    std::fs::write(&gate, "").unwrap();
    let fixed = p.run(&["up", "test", "--output", "json"]);
    fixed.expect_code(0);
    assert_eq!(
        fixed.steps_with("changed"),
        set(&["first", "second"]),
        "{}",
        fixed.dump()
    );
    assert_eq!(read(&log), "first\nfirst\nsecond\n");
    let again = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(again.changed(), 0, "{}", again.dump());
}
