//! Ctrl-C during `up`: the step in progress finishes, no later step starts, the deploy lock is
//! released with the release recorded as interrupted, and the exit code is 130. A second
//! Ctrl-C quits at once. The slow step waits on a gate file the test opens, never on a sleep.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Instant;
use support::{SOON, Setup};

/// Lines of the child's stdout (where a plain report's notes go), as they come, and all of
/// them at the end.
fn stdout_lines(child: &mut Child) -> (mpsc::Receiver<String>, std::thread::JoinHandle<String>) {
    let (tx, rx) = mpsc::channel();
    let err = child.stdout.take().unwrap();
    let all = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    (rx, all)
}

/// Until a line containing `text` arrives (at most [`SOON`]).
fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str) {
    let deadline = Instant::now() + SOON;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return,
            Ok(_) => {}
            Err(e) => panic!("no line with {text:?} on stdout: {e}"),
        }
    }
}

fn sigint(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
}

/// A gated first step and a second one; `up` started, and waited for until the first step
/// has taken the deploy lock (it takes it with its change). Returns the run, its stdout lines
/// and the paths: gate, first step's mark, second step's mark, lock.
struct Gated {
    child: Child,
    lines: mpsc::Receiver<String>,
    all_stdout: std::thread::JoinHandle<String>,
    gate: String,
    first: String,
    second: String,
    lock: std::path::PathBuf,
}

fn start_gated(s: &Setup, app: &str) -> Gated {
    let p = &s.p;
    let (gate, first, second) = (
        p.remote_path("gate"),
        p.remote_path("first"),
        p.remote_path("second"),
    );
    p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"slow\"\ncommand = {{ run = \"while [ ! -e {gate} ]; do sleep 0.05; done; touch {first}\", creates = \"{first}\" }}\n\
             [[step]]\nname = \"after\"\ncommand = {{ run = \"touch {second}\", creates = \"{second}\" }}\n"
        ),
    );
    let mut child = p
        .command(&["up", "test", "--output", "plain"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, all_stdout) = stdout_lines(&mut child);
    let lock = s.sshd().state_dir().join(app).join("test/lock");
    support::wait_until("the slow step takes the lock", SOON, || lock.exists());
    Gated {
        child,
        lines,
        all_stdout,
        gate,
        first,
        second,
        lock,
    }
}

#[test]
fn sigint_finishes_the_running_step_then_stops_and_releases_the_lock() {
    let s = Setup::new("intr", 1, "");
    let (p, sshd) = (&s.p, s.sshd());
    let Gated {
        child,
        lines,
        all_stdout,
        gate,
        first,
        second,
        lock,
    } = start_gated(&s, "intr");
    sigint(&child);
    // Only once provision said it will stop does the step in progress get to finish.
    wait_for_line(&lines, "interrupted: finishing the steps in progress");
    std::fs::write(&gate, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = all_stdout.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
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

#[test]
fn a_second_sigint_quits_at_once_and_the_next_run_takes_the_lock_over() {
    let s = Setup::new("intr2", 1, "");
    let p = &s.p;
    let Gated {
        child,
        lines,
        all_stdout,
        gate,
        first,
        second,
        lock,
    } = start_gated(&s, "intr2");
    sigint(&child);
    wait_for_line(&lines, "press Ctrl-C again to quit at once");
    sigint(&child);
    // The step never finishes on its own: only the second Ctrl-C ends the run.
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        all_stdout.join().unwrap(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(130), "{all}");
    assert!(!std::path::Path::new(&first).exists(), "{all}");
    assert!(!std::path::Path::new(&second).exists(), "{all}");
    // Quitting at once leaves the remote command to itself (as ssh does): let it finish.
    std::fs::write(&gate, "").unwrap();
    support::wait_until("the orphaned step finishes", SOON, || {
        std::path::Path::new(&first).exists()
    });
    // The killed run left its lock; its process is gone, so the next change takes it over at
    // once (same controller host), and the run converges and releases it.
    assert!(lock.exists(), "the quit run released its lock after all");
    let r = p.run(&["up", "test", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.steps_with("changed"), ["after".to_string()].into());
    let warnings = r.events_of("host_warning");
    assert!(
        warnings.iter().any(|w| w["message"]
            .as_str()
            .unwrap()
            .contains("its process is no longer running")),
        "{}",
        r.dump()
    );
    assert!(!lock.exists(), "{}", r.dump());
}
