//! `plan` on a fresh host, where a step uses a value an earlier step registers that cannot be
//! known before that step runs: the plan shows the step as a change depending on the value
//! (instead of failing on a blank), and `up` then does it.

mod support;

use support::*;

#[test]
fn plan_shows_a_step_depending_on_an_unknown_register_then_up_does_it() {
    let s = Setup::new("planunk", 1, "retries = 0");
    let p = &s.p;
    let dir = p.remote_path("made-by-up");
    // `where.stdout` is only known once the command ran; a blank path is not absolute.
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"where\"\ncommand = {{ run = \"echo {dir}\" }}\nregister = \"where\"\n\n\
             [[step]]\nname = \"folder\"\ndirectory = {{ path = \"{{{{ where.stdout }}}}\" }}\nregister = \"folder\"\n\n\
             [[step]]\nname = \"after\"\ncommand = {{ run = \"ls {{{{ where.stdout }}}}\" }}\nwhen = \"folder.changed\"\n"
        ),
    );
    let plan = p.run(&["plan", "test", "--detailed-exitcode", "--output", "json"]);
    assert_eq!(plan.code, 2, "changes are pending\n{}", plan.dump());
    let folder = plan.step("folder");
    assert_eq!(folder["status"], "changed", "{}", plan.dump());
    let msg = folder["message"].as_str().unwrap();
    assert!(
        msg.contains("depends on `where.stdout`") && msg.contains("known after `where` (command)"),
        "{msg}"
    );
    assert_eq!(plan.failed(), 0, "{}", plan.dump());
    assert!(
        !std::path::Path::new(&dir).exists(),
        "plan changed the host"
    );

    let up = p.run(&["up", "test", "--output", "json"]);
    up.expect_code(0);
    assert!(std::path::Path::new(&dir).is_dir(), "{}", up.dump());
    assert_eq!(up.step("after")["status"], "changed", "{}", up.dump());
}
