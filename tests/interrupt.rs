//! Ctrl-C during `up`: the step in progress finishes, no later step starts, the deploy lock is
//! released with the release recorded as interrupted, and the exit code is 130.

mod support;

use std::time::{Duration, Instant};
use support::Setup;

#[test]
fn sigint_finishes_the_running_step_then_stops_and_releases_the_lock() {
    let s = Setup::new("intr", 1, "");
    let (p, sshd) = (&s.p, s.sshd());
    let (first, second) = (p.remote_path("first"), p.remote_path("second"));
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"slow\"\ncommand = {{ run = \"sleep 3; touch {first}\", creates = \"{first}\" }}\n\
             [[step]]\nname = \"after\"\ncommand = {{ run = \"touch {second}\", creates = \"{second}\" }}\n"
        ),
    );
    let child = p
        .command(&["up", "test", "--output", "plain"])
        .spawn()
        .unwrap();
    // Wait until the slow step has started on the host (its lock is taken with that change).
    let lock = sshd.state_dir().join("intr/test/lock");
    let started = Instant::now();
    while !lock.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the slow step never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let all = format!("{stdout}\n{stderr}");
    assert_eq!(out.status.code(), Some(130), "{all}");
    assert!(
        std::path::Path::new(&first).exists(),
        "the step in progress must finish\n{all}"
    );
    assert!(
        !std::path::Path::new(&second).exists(),
        "no step may start after Ctrl-C\n{all}"
    );
    assert!(
        all.contains("interrupted: ") && all.contains("before `after`"),
        "{all}"
    );
    assert!(!lock.exists(), "the deploy lock must be released");
    let log = std::fs::read_to_string(sshd.state_dir().join("intr/test/releases.log")).unwrap();
    assert!(log.contains("\"result\":\"interrupted\""), "{log}");
    // The next run converges: the first step is done, the second runs now.
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(
        r.steps_with("changed").into_iter().collect::<Vec<_>>(),
        vec!["after".to_string()]
    );
}
