//! The runner in process, against [`LocalHosts`]: batching, deferral, gates, failures,
//! unreachable hosts, `--forks` and Ctrl-C, asserted on the events, the round trips and the
//! hosts' folders. The real-sshd integration tests (tests/*.rs) cover the same loop over SSH.

use super::testing::{LocalHosts, apply, run_local, run_local_edited, run_rolling};
use super::{Interrupt, exit};
use crate::plan::HostPlan;
use crate::report::{Event, Status};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// One host's events, each as a short line: `connected`, `start one`, `one changed: run`,
/// `unreachable: …`, `finished (2 trips)`.
fn trace(events: &[Event], host: &str) -> Vec<String> {
    events
        .iter()
        .filter_map(|ev| match ev {
            Event::HostConnected { host: h, .. } if h == host => Some("connected".into()),
            Event::StepStarted { host: h, step, .. } if h == host => Some(format!("start {step}")),
            Event::StepFinished {
                host: h,
                step,
                status,
                message,
                ..
            } if h == host => Some(format!("{step} {}: {message}", status_word(*status))),
            Event::HostUnreachable { host: h, error } if h == host => {
                Some(format!("unreachable: {error}"))
            }
            Event::HostFinished {
                host: h,
                round_trips,
                ..
            } if h == host => Some(format!("finished ({round_trips} trips)")),
            _ => None,
        })
        .collect()
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Changed => "changed",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    }
}

fn touch(local: &LocalHosts, host: &str, file: &str) {
    std::fs::write(local.home(host).join(file), "").unwrap();
}

/// Probe markers (`@@P<nonce> <step>`) in a script: which steps it inspects.
fn probed_steps(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.split_once("@@P"))
        .filter_map(|(_, rest)| rest.split_whitespace().nth(1))
        .map(|id| id.trim_end_matches("\\n'").to_string())
        .collect()
}

const TWO_GUARDED: &str = "[[step]]\nname = \"one\"\ncommand = { run = \"touch one\", unless = \"test -e one\" }\n\
    [[step]]\nname = \"two\"\ncommand = { run = \"touch two\", unless = \"test -e one\" }\n";

#[tokio::test]
async fn a_no_op_run_is_one_round_trip_per_host() {
    let local = Arc::new(LocalHosts::new());
    for h in ["a", "b"] {
        touch(&local, h, "one");
    }
    let (summary, rec) = run_local(
        &local,
        Interrupt::default(),
        &["a", "b"],
        TWO_GUARDED,
        apply(5),
    )
    .await;
    assert_eq!(summary.exit_code, exit::OK);
    for h in ["a", "b"] {
        assert_eq!(
            trace(&rec.events(), h),
            vec![
                "connected",
                "start one",
                "one ok: `unless` succeeded",
                "start two",
                "two ok: `unless` succeeded",
                "finished (1 trips)",
            ]
        );
        let scripts = local.scripts(h);
        assert_eq!(scripts.len(), 1);
        // Both steps, the lock status and the facts, in the one script.
        assert_eq!(probed_steps(&scripts[0]).len(), 4, "{}", scripts[0]);
    }
    let events = rec.events();
    assert!(
        matches!(events.first(), Some(Event::RunStarted { hosts, .. }) if hosts == &["a", "b"])
    );
    assert!(matches!(
        events.last(),
        Some(Event::RunFinished { exit_code: 0, .. })
    ));
}

#[tokio::test]
async fn a_change_shares_its_round_trip_with_the_re_probe_of_later_steps() {
    let local = Arc::new(LocalHosts::new());
    // `one` makes a directory (a user's command would end the chain), `two` is skipped by
    // `unless` once it exists.
    let one = local.home("a").join("one");
    let playbook = format!(
        "[[step]]\nname = \"one\"\ndirectory = {{ path = \"{d}\" }}\n\
         [[step]]\nname = \"two\"\ncommand = {{ run = \"touch two\", unless = \"test -e {d}\" }}\n",
        d = one.display()
    );
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], &playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    // `two` was probed before `one` ran (not ok then) and checked again on the host right
    // before its change, in `one`'s round trip: the check saw `one` there, so the chain
    // stopped before `two` and the re-probe of the same round trip made it ok. Had the
    // stale probe been used, `two` would have changed.
    assert_eq!(
        trace(&rec.events(), "a"),
        vec![
            "connected",
            "start one",
            format!("one changed: create {}", one.display()).as_str(),
            "start two",
            "two ok: `unless` succeeded",
            "finished (3 trips)",
        ]
    );
    let scripts = local.scripts("a");
    assert_eq!(
        probed_steps(&scripts[0]),
        [
            "0",
            "1",
            &usize::MAX.to_string(),
            &(usize::MAX - 2).to_string()
        ]
    );
    assert!(scripts[1].contains("mkdir") && scripts[1].contains("touch two"));
    assert!(
        scripts[1].contains("@@D"),
        "two's check rides with one's change"
    );
    assert_eq!(
        probed_steps(&scripts[1]),
        ["1"],
        "the re-probe after the chain"
    );
    assert!(scripts[2].contains("releases.log"), "the lock release");
    assert!(one.is_dir());
    assert!(!local.home("a").join("two").exists());
}

#[tokio::test]
async fn a_deferred_step_is_rendered_on_its_turn_with_the_registered_value() {
    let local = Arc::new(LocalHosts::new());
    let playbook = "[[step]]\nname = \"make\"\ncommand = { run = \"echo v42\" }\nregister = \"made\"\n\
        [[step]]\nname = \"use\"\ncommand = { run = \"echo {{ made.stdout }} > got\", unless = \"grep -qx {{ made.stdout }} got\" }\n";
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    assert_eq!(
        trace(&rec.events(), "a"),
        vec![
            "connected",
            "start make",
            "make changed: run",
            "start use",
            "use changed: run",
            "finished (4 trips)",
        ]
    );
    let scripts = local.scripts("a");
    // 1: apply `make` (`use` cannot be rendered yet, so nothing is re-probed);
    // 2: probe `use`, rendered with the value; 3: apply `use`; 4: release the lock.
    assert!(!scripts[0].contains("grep"), "{}", scripts[0]);
    assert!(scripts[1].contains("grep -qx v42 got"), "{}", scripts[1]);
    assert!(scripts[2].contains("echo v42 > got"), "{}", scripts[2]);
    assert_eq!(
        std::fs::read_to_string(local.home("a").join("got")).unwrap(),
        "v42\n"
    );
}

#[tokio::test]
async fn facts_in_a_when_ride_in_the_first_round_trip() {
    let local = Arc::new(LocalHosts::new());
    touch(&local, "a", "one");
    let playbook = "[[step]]\nname = \"one\"\nwhen = \"facts.cpus >= 1 and facts.arch != ''\"\n\
        command = { run = \"touch one\", unless = \"test -e one\" }\n\
        [[step]]\nname = \"two\"\nwhen = \"facts.cpus < 1\"\ncommand = { run = \"touch two\" }\n";
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    assert_eq!(
        trace(&rec.events(), "a"),
        vec![
            "connected",
            "start one",
            "one ok: `unless` succeeded",
            "start two",
            "two skipped: `when` is false",
            "finished (1 trips)",
        ]
    );
    assert!(!local.home("a").join("two").exists());
}

#[tokio::test]
async fn a_step_whose_fields_use_facts_is_rendered_after_the_first_round_trip() {
    let local = Arc::new(LocalHosts::new());
    let playbook = "[[step]]\nname = \"workers\"\n\
        command = { run = \"echo {{ facts.cpus * 2 + 1 }} > w\", unless = \"grep -qx {{ facts.cpus * 2 + 1 }} w\" }\n";
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], playbook, apply(5)).await;
    assert_eq!(
        summary.exit_code,
        exit::OK,
        "{:?}",
        trace(&rec.events(), "a")
    );
    let nproc = std::process::Command::new("nproc").output().unwrap();
    let cpus: u64 = String::from_utf8_lossy(&nproc.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(local.home("a").join("w")).unwrap(),
        format!("{}\n", cpus * 2 + 1)
    );
    // Again, with nothing to do: the facts trip, then the step's own probe.
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    assert_eq!(
        trace(&rec.events(), "a").last().unwrap(),
        "finished (2 trips)"
    );
}

#[tokio::test]
async fn a_gate_looks_once_ahead_and_waits_in_its_turn_only_when_closed() {
    let local = Arc::new(LocalHosts::new());
    touch(&local, "a", "one");
    touch(&local, "a", "gate-open");
    let gate = |check: &str| {
        format!(
            "[[step]]\nname = \"one\"\ncommand = {{ run = \"touch one\", unless = \"test -e one\" }}\n\
             [[step]]\nname = \"gate\"\nwait = {{ command = \"{check}\", timeout = \"5s\", interval = \"1s\" }}\n"
        )
    };
    // Open: its look in the first batch stands (a no-op in one round trip).
    let playbook = gate("test -e gate-open");
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], &playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    let t = trace(&rec.events(), "a");
    assert!(
        t[4].starts_with("gate ok: `test -e gate-open` ready after 0s"),
        "{t:?}"
    );
    assert_eq!(t[5], "finished (1 trips)");
    assert!(local.scripts("a")[0].contains("gate-open"));

    // Closed at that look (which opens it): the gate waits in a round trip of its own, and
    // its look's "not ready" is not what it reports.
    std::fs::remove_file(local.home("a").join("gate-open")).unwrap();
    let playbook = gate("test -e gate-open || { touch gate-open; false; }");
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], &playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    let t = trace(&rec.events(), "a");
    assert!(t[4].starts_with("gate ok:"), "{t:?}");
    assert_eq!(t[5], "finished (2 trips)");
    // The look (in the first batch, a zero timeout) and the wait (its own round trip, with
    // the step's 5 s timeout); "sleep" is in both scripts' poll loop, so the timeouts tell.
    let scripts = local.scripts("a");
    let runs = scripts.len();
    assert!(
        scripts[runs - 2].contains("-ge 1 ]"),
        "the look: {}",
        scripts[runs - 2]
    );
    assert!(
        scripts[runs - 1].contains("-ge 5000 ]"),
        "the wait: {}",
        scripts[runs - 1]
    );
}

/// A git repository with one commit, for the guess tests; its path.
fn repo_with_commit(dir: &Path, text: &str) {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .output()
            .expect("git is installed");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if !dir.join(".git").exists() {
        git(&["init", "-q"]);
    }
    std::fs::write(dir.join("f"), text).unwrap();
    git(&["add", "f"]);
    git(&["commit", "-q", "-m", text]);
}

#[tokio::test]
async fn a_register_guessed_from_the_last_run_lets_its_users_be_probed_in_the_first_trip() {
    let local = Arc::new(LocalHosts::new());
    let repo = tempfile::tempdir().unwrap();
    repo_with_commit(repo.path(), "v1");
    let src = local.home("a").join("src");
    let playbook = format!(
        "[[step]]\nname = \"checkout\"\ngit = {{ repo = \"{}\", dest = \"{}\" }}\nregister = \"src\"\n\
         [[step]]\nname = \"stamp\"\ncommand = {{ run = \"echo {{{{ src.short_sha }}}} > stamp\", unless = \"grep -qx {{{{ src.short_sha }}}} stamp\" }}\n",
        repo.path().display(),
        src.display()
    );
    let run = |guesses: BTreeMap<String, serde_json::Value>| {
        let (local, playbook) = (local.clone(), playbook.clone());
        async move {
            let edit = |plans: &mut Vec<HostPlan>| plans[0].guesses = guesses;
            run_local_edited(
                &local,
                Interrupt::default(),
                &["a"],
                &playbook,
                apply(5),
                edit,
            )
            .await
        }
    };
    let (first, _) = run(BTreeMap::new()).await;
    assert_eq!(first.exit_code, exit::OK);
    let steady = first.hosts[0].steady.clone();
    assert_eq!(steady["src"]["changed"], false, "{steady:?}");
    let stamp = || std::fs::read_to_string(local.home("a").join("stamp")).unwrap();
    assert_eq!(steady["src"]["short_sha"].as_str().unwrap(), stamp().trim());

    // Without a guess the no-op needs the checkout's value first: two round trips.
    let (_, rec) = run(BTreeMap::new()).await;
    assert_eq!(
        trace(&rec.events(), "a").last().unwrap(),
        "finished (2 trips)"
    );
    // With the last run's: one.
    let (_, rec) = run(steady.clone()).await;
    let t = trace(&rec.events(), "a");
    assert_eq!(t.last().unwrap(), "finished (1 trips)", "{t:?}");
    assert!(
        t.contains(&"stamp ok: `unless` succeeded".to_string()),
        "{t:?}"
    );
    // A wrong guess costs the round trip it would have saved, and nothing else.
    let wrong: BTreeMap<String, serde_json::Value> = [(
        "src".to_string(),
        serde_json::json!({ "changed": false, "sha": "0".repeat(40), "short_sha": "000000000000" }),
    )]
    .into();
    let (summary, rec) = run(wrong).await;
    assert_eq!(summary.exit_code, exit::OK);
    assert_eq!(
        trace(&rec.events(), "a").last().unwrap(),
        "finished (2 trips)"
    );
    // The ref moved since: the checkout changes, so the guess is dropped and the stamp is
    // rendered with the new value.
    repo_with_commit(repo.path(), "v2");
    let (summary, rec) = run(steady).await;
    assert_eq!(summary.exit_code, exit::OK);
    let t = trace(&rec.events(), "a");
    assert!(t.iter().any(|l| l.starts_with("stamp changed")), "{t:?}");
    assert_eq!(
        summary.hosts[0].steady["src"]["short_sha"]
            .as_str()
            .unwrap(),
        stamp().trim()
    );
    assert_ne!(
        stamp().trim(),
        first.hosts[0].steady["src"]["short_sha"].as_str().unwrap()
    );
}

#[tokio::test]
async fn a_gate_after_a_change_rides_in_the_apply_round_trip() {
    let local = Arc::new(LocalHosts::new());
    let playbook = "[[step]]\nname = \"start\"\ncommand = { run = \"touch started\" }\n\
        [[step]]\nname = \"gate\"\nwait = { command = \"test -e started\", timeout = \"5s\", interval = \"1s\" }\n";
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    let t = trace(&rec.events(), "a");
    assert_eq!(t[2], "start changed: run");
    assert!(
        t[4].starts_with("gate ok: `test -e started` ready after 0s"),
        "{t:?}"
    );
    // The apply with the gate's probe, then the lock release.
    assert_eq!(t[5], "finished (2 trips)");
}

#[tokio::test]
async fn a_failed_step_stops_its_host_and_is_reported() {
    let local = Arc::new(LocalHosts::new());
    let playbook = "[[step]]\nname = \"first\"\ncommand = { run = \"touch first\" }\n\
        [[step]]\nname = \"breaks\"\ncommand = { run = \"echo about to fail\\nexit 3\" }\n\
        [[step]]\nname = \"never\"\ncommand = { run = \"touch never\" }\n";
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::FAILED);
    assert_eq!(
        trace(&rec.events(), "a"),
        vec![
            "connected",
            "start first",
            "first changed: run",
            "start breaks",
            "breaks failed: run: exit code 3: about to fail",
            "finished (3 trips)",
        ]
    );
    let host = &summary.hosts[0];
    assert_eq!(host.stopped_at.as_deref(), Some("breaks"));
    assert_eq!((host.counts.changed, host.counts.failed), (1, 1));
    assert!(!local.home("a").join("never").exists());
    let log = local
        .home("a")
        .join(".local/state/provision/demo/test/releases.log");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("\"result\":\"failed\""), "{log}");
    let failed_output = rec.events().into_iter().find_map(|ev| match ev {
        Event::StepFinished {
            status: Status::Failed,
            output,
            ..
        } => output,
        _ => None,
    });
    assert_eq!(failed_output.as_deref(), Some("about to fail"));
}

#[tokio::test]
async fn a_step_past_its_timeout_fails_and_the_host_stops() {
    let local = Arc::new(LocalHosts::new());
    let playbook = "[[step]]\nname = \"slow\"\ntimeout = \"1s\"\ncommand = { run = \"sleep 5\" }\n\
        [[step]]\nname = \"never\"\ncommand = { run = \"touch never\" }\n";
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::FAILED);
    let t = trace(&rec.events(), "a");
    assert_eq!(t[2], "slow failed: run: remote command timed out after 1s");
    assert_eq!(t.len(), 4, "{t:?}");
    assert!(!summary.hosts[0].unreachable);
}

#[tokio::test]
async fn an_unreachable_host_exits_4_while_the_others_finish() {
    let local = Arc::new(LocalHosts::new().unreachable("b"));
    let (summary, rec) = run_local(
        &local,
        Interrupt::default(),
        &["a", "b", "c"],
        TWO_GUARDED,
        apply(5),
    )
    .await;
    assert_eq!(summary.exit_code, exit::UNREACHABLE);
    assert_eq!(
        trace(&rec.events(), "b"),
        vec![
            "unreachable: cannot connect to b:22: Connection refused (os error 111)",
            "finished (0 trips)",
        ]
    );
    let b = summary.hosts.iter().find(|h| h.name == "b").unwrap();
    assert!(b.unreachable && b.stopped_at.as_deref() == Some("connect"));
    for h in ["a", "c"] {
        assert_eq!(
            trace(&rec.events(), h).last().unwrap(),
            "finished (3 trips)"
        );
        assert!(local.home(h).join("one").exists());
    }
    assert!(matches!(
        rec.events().last(),
        Some(Event::RunFinished { unreachable_hosts, failed_hosts, .. })
            if unreachable_hosts == &["b"] && failed_hosts.is_empty()
    ));
}

#[tokio::test]
async fn a_connection_lost_mid_run_makes_the_host_unreachable_at_that_step() {
    let local = Arc::new(LocalHosts::new().lose_after("a", 1));
    let (summary, rec) =
        run_local(&local, Interrupt::default(), &["a"], TWO_GUARDED, apply(5)).await;
    assert_eq!(summary.exit_code, exit::UNREACHABLE);
    assert_eq!(
        trace(&rec.events(), "a")[2..],
        [
            "unreachable: lost during step `one`: scripted loss",
            "finished (2 trips)",
        ]
    );
    assert_eq!(summary.hosts[0].stopped_at.as_deref(), Some("one"));
}

#[tokio::test]
async fn forks_bounds_the_hosts_connected_at_once() {
    let local = Arc::new(LocalHosts::new());
    let hosts = ["a", "b", "c", "d"];
    let playbook = "[[step]]\ncommand = { run = \"sleep 0.3\" }\n";
    let (summary, _) = run_local(&local, Interrupt::default(), &hosts, playbook, apply(2)).await;
    assert_eq!(summary.exit_code, exit::OK);
    assert_eq!(
        local.max_live(),
        2,
        "two at a time, and two did run together"
    );
    assert!(hosts.iter().all(|h| local.scripts(h).len() == 2));
}

#[tokio::test]
async fn ctrl_c_lets_the_step_in_progress_finish_then_stops_and_releases_the_lock() {
    let interrupt = Interrupt::default();
    let local = Arc::new(LocalHosts::new().interrupt_after(&interrupt, 1));
    // Ctrl-C comes after the first round trip (the probe): `first`'s change then goes alone
    // (a chain only forms while no Ctrl-C is pending; a chain in progress is one round trip
    // and finishes as a step does).
    let playbook = "[[step]]\nname = \"first\"\ncommand = { run = \"touch first\", creates = \"first\" }\n\
        [[step]]\nname = \"after\"\ncommand = { run = \"touch after\" }\n";
    let (summary, rec) = run_local(&local, interrupt, &["a"], playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::INTERRUPTED);
    assert_eq!(
        trace(&rec.events(), "a"),
        vec![
            "connected",
            "start first",
            "first changed: run",
            "finished (3 trips)"
        ]
    );
    assert!(summary.hosts[0].interrupted);
    assert_eq!(rec.notes(), vec!["interrupted: a before `after`"]);
    assert!(!local.home("a").join("after").exists());
    let log = local
        .home("a")
        .join(".local/state/provision/demo/test/releases.log");
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("\"result\":\"interrupted\"")
    );
}

#[tokio::test]
async fn plan_mode_probes_once_and_changes_nothing() {
    let local = Arc::new(LocalHosts::new());
    let check = super::RunOptions {
        mode: crate::report::Mode::Check,
        forks: 5,
    };
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], TWO_GUARDED, check).await;
    assert_eq!(summary.exit_code, exit::OK);
    assert_eq!(
        trace(&rec.events(), "a"),
        vec![
            "connected",
            "start one",
            "one changed: run",
            "start two",
            "two changed: run",
            "finished (1 trips)",
        ]
    );
    // No lock in plan mode: only the two step probes, the lock's status probe and the facts.
    assert_eq!(probed_steps(&local.scripts("a")[0]).len(), 4);
    assert!(!local.home("a").join("one").exists());
    assert!(
        !local.home("a").join(".local").exists(),
        "plan mode writes no state"
    );
}

#[tokio::test]
async fn a_panic_in_one_host_fails_that_host_and_the_others_finish() {
    // b's second script (the second step's apply: it uses what the first registers, so it
    // goes on its own) panics, as a bug in a step would.
    let local = Arc::new(LocalHosts::new().panic_at("b", 1));
    let playbook = "[[step]]\nname = \"one\"\nregister = \"o\"\ncommand = { run = \"touch one\" }\n\
        [[step]]\nname = \"two\"\ncommand = { run = \"touch two {{ o.changed }}\" }\n";
    let (summary, rec) = run_local(
        &local,
        Interrupt::default(),
        &["a", "b", "c"],
        playbook,
        apply(5),
    )
    .await;
    assert_eq!(summary.exit_code, exit::FAILED);
    let events = rec.events();
    let warning = events.iter().find_map(|ev| match ev {
        Event::HostWarning { host, message } if message.contains("internal error") => {
            Some((host.clone(), message.clone()))
        }
        _ => None,
    });
    let (host, message) = warning.expect("the panic is reported");
    assert_eq!(host, "b");
    assert!(
        message.contains("`two`") && message.contains("scripted panic on b"),
        "{message}"
    );
    let b = summary.hosts.iter().find(|h| h.name == "b").unwrap();
    assert_eq!((b.counts.failed, b.stopped_at.as_deref()), (1, Some("two")));
    assert!(matches!(
        events.last(),
        Some(Event::RunFinished { failed_hosts, .. }) if failed_hosts == &["b"]
    ));
    for h in ["a", "c"] {
        assert!(local.home(h).join("two").exists(), "{h} finished its steps");
    }
    // The lock b took with its first change is released, the release recorded as failed.
    let state = local.home("b").join(".local/state/provision/demo/test");
    assert!(!state.join("lock").exists());
    let log = std::fs::read_to_string(state.join("releases.log")).unwrap();
    assert!(log.contains("\"result\":\"failed\""), "{log}");
}

/// A lock on `host` as a provision process that is gone (same machine, no such pid) left it,
/// a moment ago.
fn dead_holders_lock(local: &LocalHosts, host: &str) {
    let dir = local
        .home(host)
        .join(".local/state/provision/demo/test/lock");
    std::fs::create_dir_all(&dir).unwrap();
    let me = crate::remote::lock::Holder::me();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let info = format!(
        "dead@{h} (pid {pid})\n{now}\n0123456789abcdef\n{h}\n{pid}\n{start}\n",
        h = me.hostname,
        pid = u32::MAX - 1,
        start = me.start
    );
    std::fs::write(dir.join("info"), info).unwrap();
}

#[tokio::test]
async fn a_fresh_lock_whose_holder_is_gone_is_taken_over_at_once_with_a_warning() {
    let local = Arc::new(LocalHosts::new());
    dead_holders_lock(&local, "a");
    let playbook = "[[step]]\nname = \"one\"\ncommand = { run = \"touch one\" }\n";
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    assert!(local.home("a").join("one").exists());
    let warnings: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|ev| match ev {
            Event::HostWarning { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("took over the deploy lock of dead@")
                && w.contains(&format!("pid {}", u32::MAX - 1))
                && w.contains("no longer running")),
        "{warnings:?}"
    );
    assert!(
        !local
            .home("a")
            .join(".local/state/provision/demo/test/lock")
            .exists()
    );
}

#[tokio::test]
async fn a_step_longer_than_lock_stale_keeps_its_lock_fresh() {
    let local = Arc::new(LocalHosts::new());
    // With lock_stale = 3s the lock is refreshed every second while `long` runs; `long`
    // records how long ago the lock was last refreshed, at its end.
    let playbook = "lock_stale = \"3s\"\n\
        [[step]]\nname = \"first\"\ncommand = { run = \"touch first\" }\n\
        [[step]]\nname = \"long\"\ncommand = { run = \"sleep 4; echo $(( $(date +%s) - $(stat -c %Y .local/state/provision/demo/test/lock/info) )) > idle\" }\n";
    let (summary, _) = run_local(&local, Interrupt::default(), &["a"], playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    let idle: u64 = std::fs::read_to_string(local.home("a").join("idle"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(idle < 3, "the lock went {idle}s without a heartbeat");
}

/// Output only shown keeps its lines short; output registered is kept whole (issue 12 #13).
#[tokio::test]
async fn a_huge_line_is_cut_unless_registered() {
    let local = Arc::new(LocalHosts::new());
    let flood = "head -c 3000000 /dev/zero | tr '\\\\0' x; echo; echo last words";
    let playbook = format!(
        "[[step]]\nname = \"shown\"\ncommand = {{ run = \"{flood}\" }}\n\
         [[step]]\nname = \"kept\"\nregister = \"big\"\ncommand = {{ run = \"{flood}\" }}\n\
         [[step]]\nname = \"check\"\nwhen = \"big.stdout | length > 3000000\"\ncommand = {{ run = \"true\" }}\n"
    );
    let (summary, rec) = run_local(&local, Interrupt::default(), &["a"], &playbook, apply(5)).await;
    assert_eq!(summary.exit_code, exit::OK);
    let finished = |name: &str| {
        rec.events()
            .into_iter()
            .find_map(|ev| match ev {
                Event::StepFinished {
                    step,
                    status,
                    message,
                    output,
                    ..
                } if step == name => Some((status, message, output.unwrap_or_default())),
                _ => None,
            })
            .unwrap()
    };
    let (status, message, output) = finished("shown");
    assert_eq!(status, Status::Changed);
    assert!(message.contains("output truncated"), "{message}");
    assert!(output.len() < 200 << 10, "{} bytes of output", output.len());
    assert!(
        output.contains("bytes of this line]"),
        "the cut is not said"
    );
    assert!(output.contains("last words"), "the end is kept");
    let (status, ..) = finished("check");
    assert_eq!(status, Status::Changed, "the registered line was cut");
}

/// A step whose change needs a new login, as `docker_install` adding the session's own user
/// to `docker` does: it changes while the session is the first login, and asks to reconnect.
#[derive(Debug)]
struct JoinsAGroup;

impl crate::steps::StepKind for JoinsAGroup {
    fn probe(&self, _check: bool) -> Option<String> {
        Some("test -e joined && echo joined=1; true\n".into())
    }
    fn decide(&self, observed: Option<&crate::steps::Probe>) -> crate::steps::Decision {
        match observed.and_then(|p| p.field("joined")) {
            Some(_) => crate::steps::Decision::Ok("in the group".into()),
            None => crate::steps::Decision::change("join the group"),
        }
    }
    fn apply(&self) -> crate::steps::Action {
        crate::steps::Action::script("touch joined\n".into())
    }
    fn may_reconnect(&self) -> bool {
        true
    }

    fn reconnect_after(&self, _applied: &crate::transport::ExecOutput) -> bool {
        true
    }
}

#[tokio::test]
async fn a_change_that_needs_a_new_login_reconnects_before_the_next_step() {
    let local = Arc::new(LocalHosts::new());
    // `use` records which login its script ran in; it is probed ahead with `join`'s probe,
    // on the first login, so that probe must not be trusted after the reconnect.
    let playbook = "[[step]]\nname = \"join\"\ncommand = { run = \"true\" }\n\
        [[step]]\nname = \"use\"\ncommand = { run = \"echo $login > used_in\", unless = \"test \\\"$login\\\" = 1\" }\n";
    let swap = |plans: &mut Vec<crate::plan::HostPlan>| {
        plans[0].steps[0].prepared = Some(Arc::new(JoinsAGroup));
    };
    let (summary, rec) = super::testing::run_local_edited(
        &local,
        Interrupt::default(),
        &["a"],
        playbook,
        apply(5),
        swap,
    )
    .await;
    assert_eq!(summary.exit_code, exit::OK);
    assert_eq!(local.logins("a"), 2);
    assert_eq!(
        std::fs::read_to_string(local.home("a").join("used_in")).unwrap(),
        "2\n"
    );
    // probe; apply (+ lock); log in again; probe `use` anew; its apply; release.
    assert_eq!(
        trace(&rec.events(), "a"),
        [
            "connected",
            "start join",
            "join changed: join the group",
            "connected",
            "start use",
            "use changed: run",
            "finished (6 trips)",
        ]
    );
    assert_eq!(
        local.scripts("a").len(),
        5,
        "the login is a trip without a script"
    );

    // The next run is one login and no change.
    let (summary, rec) = super::testing::run_local_edited(
        &local,
        Interrupt::default(),
        &["a"],
        "[[step]]\nname = \"join\"\ncommand = { run = \"true\" }\n",
        apply(5),
        swap,
    )
    .await;
    assert_eq!(summary.exit_code, exit::OK);
    assert_eq!(local.logins("a"), 3);
    assert_eq!(
        trace(&rec.events(), "a"),
        [
            "connected",
            "start join",
            "join ok: in the group",
            "finished (1 trips)"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// run_once and rolling deploys
// ---------------------------------------------------------------------------------------------

/// `run_once` step `m` appends its host to `../ran` (the folder every host's folder is in)
/// and registers a value; step `use` writes the value on each host.
const ONCE_REGISTERED: &str = "[[step]]\nname = \"m\"\nrun_once = true\nregister = \"m\"\ncommand = { run = \"basename $PWD >> ../ran; echo from-$(basename $PWD)\" }\n\
    [[step]]\nname = \"use\"\ncommand = { run = \"echo {{ m.stdout }} > seen\", creates = \"seen\" }\n";

fn rolling(serial: &str) -> crate::config::Rollout {
    crate::config::Rollout {
        serial: Some(serial.parse().unwrap()),
        ..Default::default()
    }
}

/// The hosts of each `batch_started`, and the `rollout_stopped` event's hosts not reached.
fn batches(events: &[Event]) -> (Vec<Vec<String>>, Option<Vec<String>>) {
    let started = events.iter().filter_map(|e| match e {
        Event::BatchStarted { hosts, .. } => Some(hosts.clone()),
        _ => None,
    });
    let stopped = events.iter().find_map(|e| match e {
        Event::RolloutStopped { not_reached, .. } => Some(not_reached.clone()),
        _ => None,
    });
    (started.collect(), stopped)
}

/// Every event that names `host`.
fn events_of(events: &[Event], host: &str) -> usize {
    let text = format!("\"{host}\"");
    (events.iter())
        .filter(|e| !matches!(e, Event::RunStarted { .. } | Event::RolloutStopped { .. }))
        .filter(|e| serde_json::to_string(e).unwrap().contains(&text))
        .count()
}

#[tokio::test]
async fn a_run_once_step_runs_on_the_first_host_and_the_others_see_its_value() {
    for forks in [1, 5] {
        let local = Arc::new(LocalHosts::new());
        let hosts = ["a", "b", "c"];
        let (summary, rec) = run_local(
            &local,
            Interrupt::default(),
            &hosts,
            ONCE_REGISTERED,
            apply(forks),
        )
        .await;
        assert_eq!(summary.exit_code, exit::OK, "forks {forks}");
        let ran = std::fs::read_to_string(local.home("a").join("../ran")).unwrap();
        assert_eq!(ran, "a\n", "ran exactly once, on a");
        for h in hosts {
            let seen = std::fs::read_to_string(local.home(h).join("seen")).unwrap();
            assert_eq!(seen, "from-a\n", "{h} used a's registered value");
        }
        let events = rec.events();
        assert!(trace(&events, "a").contains(&"m changed: run".to_string()));
        for h in ["b", "c"] {
            assert!(
                trace(&events, h).contains(&"m skipped: ran once on a".to_string()),
                "{:?}",
                trace(&events, h)
            );
        }
    }
}

#[tokio::test]
async fn a_named_host_runs_it_even_when_it_comes_last_with_one_fork() {
    let local = Arc::new(LocalHosts::new());
    let playbook = ONCE_REGISTERED.replace("run_once = true", "run_once = \"c\"");
    let run = run_local(
        &local,
        Interrupt::default(),
        &["a", "b", "c"],
        &playbook,
        apply(1),
    );
    // a and b wait for c without holding the one fork, so c gets it.
    let (summary, _) = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("no deadlock");
    assert_eq!(summary.exit_code, exit::OK);
    let ran = std::fs::read_to_string(local.home("a").join("../ran")).unwrap();
    assert_eq!(ran, "c\n");
    let seen = std::fs::read_to_string(local.home("a").join("seen")).unwrap();
    assert_eq!(seen, "from-c\n");
}

#[tokio::test]
async fn when_the_run_once_host_fails_or_stops_first_the_others_fail_the_step() {
    let local = Arc::new(LocalHosts::new());
    let failing = ONCE_REGISTERED.replace("basename $PWD >> ../ran;", "exit 3;");
    let run = run_local(
        &local,
        Interrupt::default(),
        &["a", "b"],
        &failing,
        apply(5),
    );
    let (summary, rec) = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the waiting host does not hang");
    assert_eq!(summary.exit_code, exit::FAILED);
    assert!(
        trace(&rec.events(), "b").contains(&"m failed: runs once on a, which failed it".into()),
        "{:?}",
        trace(&rec.events(), "b")
    );
    assert!(!local.home("b").join("seen").exists());

    let local = Arc::new(LocalHosts::new());
    let before = format!(
        "[[step]]\nname = \"first\"\ncommand = {{ run = \"test $(basename $PWD) != a\" }}\n{ONCE_REGISTERED}"
    );
    let (summary, rec) =
        run_local(&local, Interrupt::default(), &["a", "b"], &before, apply(5)).await;
    assert_eq!(summary.exit_code, exit::FAILED);
    let b = trace(&rec.events(), "b");
    assert!(
        b.contains(&"m failed: runs once on a, which stopped at `first` before it".into()),
        "{b:?}"
    );

    let local = Arc::new(LocalHosts::new().unreachable("a"));
    let (summary, rec) = run_local(
        &local,
        Interrupt::default(),
        &["a", "b"],
        ONCE_REGISTERED,
        apply(5),
    )
    .await;
    assert_eq!(summary.exit_code, exit::UNREACHABLE);
    let b = trace(&rec.events(), "b");
    assert!(
        b.contains(&"m failed: runs once on a, which is unreachable".into()),
        "{b:?}"
    );
}

#[tokio::test]
async fn plan_mode_says_where_a_run_once_step_would_run() {
    let local = Arc::new(LocalHosts::new());
    let opts = super::RunOptions {
        mode: crate::report::Mode::Check,
        forks: 5,
    };
    let (summary, rec) = run_local(
        &local,
        Interrupt::default(),
        &["a", "b"],
        ONCE_REGISTERED,
        opts,
    )
    .await;
    assert_eq!(summary.exit_code, exit::OK);
    let b = trace(&rec.events(), "b");
    assert!(b.contains(&"m skipped: runs once on a".into()), "{b:?}");
    assert!(
        !local.home("a").join("../ran").exists(),
        "plan runs nothing"
    );
}

#[tokio::test]
async fn a_failed_batch_stops_the_rollout_before_the_next_is_connected() {
    let local = Arc::new(LocalHosts::new());
    let playbook = "[[step]]\nname = \"deploy\"\ncommand = { run = \"test $(basename $PWD) != a && touch deployed\" }\n";
    let (summary, rec) =
        run_rolling(&local, &["a", "b", "c"], playbook, apply(5), rolling("1")).await;
    assert_eq!(summary.exit_code, exit::FAILED);
    let events = rec.events();
    assert_eq!(
        batches(&events),
        (
            vec![vec!["a".to_string()]],
            Some(vec!["b".into(), "c".into()])
        )
    );
    for h in ["b", "c"] {
        assert_eq!(local.logins(h), 0, "{h} was never connected to");
        assert_eq!(events_of(&events, h), 0, "no event for {h}");
        assert!(!local.home(h).join("deployed").exists());
        let o = summary.hosts.iter().find(|o| o.name == h).unwrap();
        assert!(o.not_reached);
    }
}

#[tokio::test]
async fn serial_lists_give_ansibles_batches() {
    let local = Arc::new(LocalHosts::new());
    let hosts = ["h1", "h2", "h3", "h4"];
    let (summary, rec) = run_rolling(&local, &hosts, TWO_GUARDED, apply(5), rolling("1,50%")).await;
    assert_eq!(summary.exit_code, exit::OK);
    let (started, stopped) = batches(&rec.events());
    assert_eq!(started, [vec!["h1"], vec!["h2", "h3"], vec!["h4"]]);
    assert_eq!(stopped, None);
    // A batch starts once the one before it finished.
    let events = rec.events();
    let at = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred).unwrap();
    let h1_done = at(&|e| matches!(e, Event::HostFinished { host, .. } if host == "h1"));
    let second = at(&|e| matches!(e, Event::BatchStarted { batch: 2, .. }));
    let h2_connected = at(&|e| matches!(e, Event::HostConnected { host, .. } if host == "h2"));
    assert!(h1_done < second && second < h2_connected);
}

#[tokio::test]
async fn max_failures_lets_the_rollout_go_on_until_more_hosts_failed() {
    let local = Arc::new(LocalHosts::new());
    let playbook =
        "[[step]]\nname = \"deploy\"\ncommand = { run = \"test $(basename $PWD) = c\" }\n";
    let limits = crate::config::Rollout {
        max_failures: Some(1),
        ..rolling("1")
    };
    let (summary, rec) = run_rolling(&local, &["a", "b", "c"], playbook, apply(5), limits).await;
    assert_eq!(summary.exit_code, exit::FAILED);
    // a failed (tolerated), b failed (2 > 1): c is not reached.
    let (started, stopped) = batches(&rec.events());
    assert_eq!(started, [vec!["a"], vec!["b"]]);
    assert_eq!(stopped, Some(vec!["c".to_string()]));
    let limits = crate::config::Rollout {
        max_fail_percentage: Some(50),
        ..rolling("2")
    };
    let local = Arc::new(LocalHosts::new());
    let (_, rec) = run_rolling(&local, &["a", "b", "c"], playbook, apply(5), limits).await;
    // a and b both failed: 100% of batch 1 > 50%.
    assert_eq!(batches(&rec.events()).1, Some(vec!["c".to_string()]));
}

#[tokio::test]
async fn a_run_once_host_in_the_first_batch_serves_the_later_batches() {
    let local = Arc::new(LocalHosts::new());
    let (summary, rec) = run_rolling(
        &local,
        &["a", "b", "c"],
        ONCE_REGISTERED,
        apply(1),
        rolling("1"),
    )
    .await;
    assert_eq!(summary.exit_code, exit::OK);
    assert_eq!(batches(&rec.events()).0.len(), 3);
    let ran = std::fs::read_to_string(local.home("a").join("../ran")).unwrap();
    assert_eq!(ran, "a\n");
    for h in ["a", "b", "c"] {
        let seen = std::fs::read_to_string(local.home(h).join("seen")).unwrap();
        assert_eq!(seen, "from-a\n");
    }
}
