//! A reload that reacts to a change (`when = "conf.changed"`) is not lost when the run stops
//! between the change and the reload: the next run still does it, once.

mod support;

use support::*;

#[test]
fn a_reload_after_a_failed_run_still_happens_once() {
    let s = Setup::new("pendrl", 1, "retries = 0");
    let p = &s.p;
    let (conf, gate, reloads) = (
        p.remote_path("app.conf"),
        p.remote_path("gate"),
        p.remote_path("reloads"),
    );
    p.write("templates/app.conf.j2", "workers = 4\n");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"conf\"\ntemplate = {{ src = \"templates/app.conf.j2\", dest = \"{conf}\" }}\nregister = \"conf\"\n\n\
             [[step]]\nname = \"gate\"\ncommand = {{ run = \"test -e {gate}\", creates = \"{gate}\" }}\n\n\
             [[step]]\nname = \"reload\"\nwhen = \"conf.changed\"\ncommand = {{ run = \"echo reloaded >> {reloads}\" }}\n"
        ),
    );
    // The config changes, then the run fails before the reload.
    let first = p.run(&["up", "test", "--output", "json"]);
    first.expect_code(3);
    assert_eq!(first.step("conf")["status"], "changed", "{}", first.dump());
    assert!(!std::path::Path::new(&reloads).exists(), "{}", first.dump());

    // Fixed: the config is as it should be now, but the reload it needed still runs.
    std::fs::write(&gate, "").unwrap();
    let second = p.run(&["up", "test", "--output", "json"]);
    second.expect_code(0);
    assert_eq!(second.step("conf")["status"], "ok", "{}", second.dump());
    assert_eq!(
        second.step("reload")["status"],
        "changed",
        "{}",
        second.dump()
    );
    assert_eq!(std::fs::read_to_string(&reloads).unwrap(), "reloaded\n");

    // Done once: nothing is pending any more.
    let third = p.run(&["up", "test", "--output", "json"]);
    third.expect_code(0);
    assert_eq!(third.changed(), 0, "{}", third.dump());
    assert_eq!(
        third.step("reload")["status"],
        "skipped",
        "{}",
        third.dump()
    );
    assert_eq!(std::fs::read_to_string(&reloads).unwrap(), "reloaded\n");

    // A change and its reload in the same run leave no marker either.
    p.write("templates/app.conf.j2", "workers = 8\n");
    let fourth = p.run(&["up", "test", "--output", "json"]);
    fourth.expect_code(0);
    assert_eq!(
        fourth.step("reload")["status"],
        "changed",
        "{}",
        fourth.dump()
    );
    let markers = s.sshd().state_dir().join("pendrl/test/pending");
    let left: Vec<_> = std::fs::read_dir(&markers)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "markers left: {left:?}");
    let fifth = p.run(&["up", "test", "--output", "json"]);
    assert_eq!(fifth.changed(), 0, "{}", fifth.dump());
}
