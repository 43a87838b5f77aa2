//! Documented features that no other test drove end to end: `--tags` and `wait.http`
//! (issue 19), against a real sshd and a real HTTP server on loopback.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use support::*;

/// Names of the steps a run reported, in order.
fn reported(run: &Run) -> Vec<String> {
    run.events_of("step_finished")
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect()
}

/// A step `name` (with `tags`, a `tags = [...]` line or nothing) that creates a file once.
fn touch_step(p: &Project, name: &str, tags: &str) -> String {
    let f = p.remote_path(name);
    format!(
        "[[step]]\nname = \"{name}\"\n{tags}command = {{ run = \"touch {f}\", creates = \"{f}\" }}\n\n"
    )
}

#[test]
fn tags_select_the_steps_of_a_plan_and_a_run() {
    let s = Setup::new("tags", 1, "");
    let p = &s.p;
    let touch = |name: &str, tags: &str| touch_step(p, name, tags);
    let playbook = [
        touch("web1", "tags = [\"web\"]\n"),
        touch("db1", "tags = [\"db\"]\n"),
        touch("both", "tags = [\"web\", \"db\"]\n"),
        touch("untagged", ""),
    ]
    .concat();
    p.write("playbooks/deploy.toml", &playbook);
    let exists = |name: &str| std::path::Path::new(&p.remote_path(name)).exists();

    let plan = p.run(&["plan", "test", "--tags", "web", "--output", "json"]);
    plan.expect_code(0);
    assert_eq!(reported(&plan), ["web1", "both"], "{}", plan.dump());
    assert!(!exists("web1"), "plan changed something");

    let up = p.run(&["up", "test", "--tags", "web", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(reported(&up), ["web1", "both"], "{}", up.dump());
    assert_eq!(up.changed(), 2, "{}", up.dump());
    assert!(exists("web1") && exists("both"));
    assert!(!exists("db1") && !exists("untagged"), "{}", up.dump());

    // Comma separated: either tag; what the first run did is not done again.
    let up = p.run(&["up", "test", "--tags", "db,web", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(reported(&up), ["web1", "db1", "both"], "{}", up.dump());
    assert_eq!(up.steps_with("changed"), ["db1".to_string()].into());
    assert!(!exists("untagged"));

    // No tags: everything, and only the untagged step is left to do.
    let up = p.run(&["up", "test", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(up.steps_with("changed"), ["untagged".to_string()].into());
}

#[test]
fn skip_tags_leave_out_their_steps_even_when_tags_select_them() {
    let s = Setup::new("skiptags", 1, "");
    let p = &s.p;
    let touch = |name: &str, tags: &str| touch_step(p, name, tags);
    let playbook = [
        touch("web1", "tags = [\"web\"]\n"),
        touch("slow", "tags = [\"web\", \"slow\"]\n"),
        touch("db1", "tags = [\"db\"]\n"),
        touch("untagged", ""),
    ]
    .concat();
    p.write("playbooks/deploy.toml", &playbook);
    let exists = |name: &str| std::path::Path::new(&p.remote_path(name)).exists();

    let plan = p.run(&["plan", "test", "--skip-tags", "slow,db", "--output", "json"]);
    plan.expect_code(0);
    assert_eq!(reported(&plan), ["web1", "untagged"], "{}", plan.dump());

    // With --tags: the skip wins over the selection.
    let up = p.run(&[
        "up",
        "test",
        "--tags",
        "web",
        "--skip-tags",
        "slow",
        "--output",
        "json",
    ]);
    up.expect_code(0);
    assert_eq!(reported(&up), ["web1"], "{}", up.dump());
    assert!(exists("web1") && !exists("slow") && !exists("db1") && !exists("untagged"));

    let up = p.run(&["up", "test", "--skip-tags", "slow", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(
        up.steps_with("changed"),
        ["db1".to_string(), "untagged".to_string()].into()
    );
    assert!(!exists("slow"), "{}", up.dump());
}

/// `-e n=3` is a number and `-e on=true` a boolean in `when` and templates; `-e v=1.10` stays
/// the text written.
#[test]
fn command_line_vars_are_typed_numbers_and_booleans() {
    let s = Setup::new("typedvars", 1, "");
    let p = &s.p;
    let out = p.remote_path("typed.txt");
    p.write("templates/typed.j2", "{{ n * 2 + 1 }} {{ v }}\n");
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"typed\"\nwhen = \"n > 2 and on\"\ntemplate = {{ src = \"templates/typed.j2\", dest = \"{out}\" }}\n"
        ),
    );
    let up = p.run(&[
        "up", "test", "-e", "n=3", "-e", "on=true", "-e", "v=1.10", "--output", "json",
    ]);
    up.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "7 1.10\n",
        "{}",
        up.dump()
    );
    // The same from a file; a later -e wins over it.
    let file = p.path("vars.toml");
    std::fs::write(&file, "n = 4\non = true\nv = \"2.50\"\n").unwrap();
    let at = format!("@{}", file.display());
    let up = p.run(&["up", "test", "-e", &at, "-e", "n=5", "--output", "json"]);
    up.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "11 2.50\n",
        "{}",
        up.dump()
    );
    // A list is not a command-line var: the error names the file, line and column.
    std::fs::write(&file, "n = 4\nxs = [1, 2]\n").unwrap();
    let bad = p.run(&["plan", "test", "-e", &at]);
    bad.expect_code(1);
    assert!(
        bad.stderr.contains(&format!("{}:2:6", file.display()))
            && bad.stderr.contains("strings, numbers and booleans"),
        "{}",
        bad.dump()
    );
    // A false boolean (not the non-empty string "false") turns the step off.
    let off = p.run(&[
        "up", "test", "-e", "n=3", "-e", "on=false", "-e", "v=1.10", "--output", "json",
    ]);
    off.expect_code(0);
    assert_eq!(
        off.steps_with("skipped"),
        ["typed".to_string()].into(),
        "{}",
        off.dump()
    );
}

/// An HTTP/1.0 server on loopback that starts listening after `delay`: `/ok` answers 200,
/// every other path 404. It serves until the test process ends.
fn late_http_server(delay: Duration) -> u16 {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the late server");
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 2048];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let status = if request.starts_with("GET /ok ") {
                "200 OK"
            } else {
                "404 Not Found"
            };
            let _ = conn
                .write_all(format!("HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    port
}

#[test]
fn wait_http_waits_for_the_status_and_fails_with_the_last_one() {
    let s = Setup::new("waithttp", 1, "retries = 0");
    let p = &s.p;
    let port = late_http_server(Duration::from_secs(2));
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"up\"\nwait = {{ http = \"http://127.0.0.1:{port}/ok\", status = 200, timeout = \"60s\", interval = \"200ms\" }}\n\n\
             [[step]]\nname = \"missing\"\nwait = {{ http = \"http://127.0.0.1:{port}/missing\", status = 200, timeout = \"2s\", interval = \"200ms\" }}\n"
        ),
    );
    let started = Instant::now();
    let run = p.run(&["up", "test", "--output", "json"]);
    run.expect_code(3);
    // It waited for the server rather than failing at once: the server came up 2 s in.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{}",
        run.dump()
    );
    assert_eq!(run.step("up")["status"], "ok", "{}", run.dump());
    let missing = run.step("missing");
    assert_eq!(missing["status"], "failed", "{}", run.dump());
    let message = missing["message"].as_str().unwrap();
    assert!(message.contains("HTTP status 404"), "{message}");
}
